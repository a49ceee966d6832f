#!/usr/bin/env python3
"""Turn one bench/balancer.sh results directory into Markdown tables (printed and saved)."""

import os
import sys

from report import check_cells, fmt, load, save  # shared with run.sh's report

FRONTS = ["balancer", "dnsdist", "coredns"]
LABEL = {"balancer": "domain-park balancer", "dnsdist": "dnsdist", "coredns": "CoreDNS"}
MIXES = ["hit", "miss"]
TRANSPORTS = ["udp", "tcp"]
# The targets: ours >= 1.5x CoreDNS and >= dnsdist, on both mixes.
TARGETS = {"coredns": 1.5, "dnsdist": 1.0}


def delta(m, key):
    a, b = (m.get("cache_before") or {}).get(key), (m.get("cache_after") or {}).get(key)
    return None if a is None or b is None else b - a


def cache_state(d, front):
    if front != "balancer":
        return "on"
    try:
        state = open(os.path.join(d, front, "cache.txt")).read().strip()
    except OSError:
        return "?"
    return "off" if state == "rejected" else state


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report_balancer.py RESULTS_DIR")
    d = sys.argv[1]
    meta = load(os.path.join(d, "meta.json")) or {}
    fronts = [f for f in FRONTS if os.path.isdir(os.path.join(d, f))]
    out = [f"## Fronts in front of the same workers — {os.path.basename(os.path.normpath(d))}\n"]
    out.append(f"{meta.get('workers', '?')} domain-park workers (distinct loopback ports) and the front on CPU "
               f"{meta.get('server_cpu', '?')}, dns_load on CPU {meta.get('client_cpu', '?')}; "
               f"{meta.get('duration', '?')} s per run, closed loop. UDP: {meta.get('udp', '?')}; "
               f"TCP: {meta.get('tcp', '?')}. Cache capacity {fmt(meta.get('cache_entries'))} entries "
               f"everywhere. hit = the bench mix ({fmt(meta.get('mix_lines'))} queries over 10,000 domains), "
               f"already cached; miss = the same with a fresh random label per query.\n")
    versions = meta.get("versions") or {}
    out.append("Versions: " + "; ".join(f"{k} {v}" for k, v in versions.items() if v) + ".\n")
    if "balancer" in fronts and cache_state(d, "balancer") != "on":
        rejected = os.path.exists(os.path.join(d, "balancer.nocache"))
        out.append("**The balancer ran without an answer cache** ("
                   + ("this build rejects the cache setting" if rejected else "none configured")
                   + "): its hit-mix rows are forwarding numbers.\n")

    out.append("| front | cache | mix | clients | answered q/s | p50 µs | p99 µs | lost | not NOERROR or TC | "
               "cache hit % | front CPU % | workers CPU % | dns_load CPU % | other CPU % | front RSS MiB |")
    out.append("|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    qps = {}
    for f in fronts:
        if os.path.exists(os.path.join(d, f, "skipped.json")):
            out.append(f"| {LABEL[f]} | | | | did not start | | | | | | | | | | |")
            continue
        for mix in MIXES:
            for t in TRANSPORTS:
                r = load(os.path.join(d, f, f"{mix}-{t}.json"))
                m = load(os.path.join(d, f, f"{mix}-{t}.server.json")) or {}
                if r is None:
                    continue
                qps[(f, mix, t)] = r["qps"]
                lat = r["latency_us"]
                wall = r.get("span_s") or m.get("wall_s")
                pct = lambda k: 100.0 * m[k] / wall if wall and k in m else None  # noqa: E731
                h, mi = delta(m, "hits"), delta(m, "misses")
                hit = 100.0 * h / (h + mi) if h is not None and mi is not None and h + mi > 0 else None
                other = pct("other_cpu_s")
                other_s = fmt(other) + (" ⚠" if other is not None and other > 20 else "")
                # Counted as answered, but not a served answer (REFUSED/SERVFAIL, a rate limiter's
                # slip): must stay 0 for the q/s to mean what it says.
                bad = sum(v for k, v in r["rcodes"].items() if k != "NOERROR") + r.get("truncated", 0)
                out.append(f"| {LABEL[f]} | {cache_state(d, f)} | {mix} | {t} | {fmt(r['qps'])} | "
                           f"{fmt(lat['p50'])} | {fmt(lat['p99'])} | {fmt(r['lost'])} | {fmt(bad)} | {fmt(hit, 1)} | "
                           f"{fmt(pct('front_cpu_s'))} | {fmt(pct('workers_cpu_s'))} | {fmt(pct('client_cpu_s'))} | "
                           f"{other_s} | {fmt(m['rss_kb'] / 1024, 1) if 'rss_kb' in m else '–'} |")
    out.append("")
    out.append("CPU columns are % of one core over the run; front and workers share one core, so their sum "
               "near 100% is the limit being measured. dns_load near 100% with the server core below it "
               "means the generator was the limit (the row is a lower bound). 'other' is CPU used by none of "
               "them (⚠ above 20%: other processes took CPU; tick accounting is noisy by ±20%). 'lost' counts "
               "answers that did not come within 2 s (late ones included). 'not NOERROR or TC' counts answers "
               "that are no served answer (REFUSED, SERVFAIL, TC=1: e.g. a rate limiter); it must be 0. 'cache hit %' "
               "comes from the front's own metrics (– where it exports none). Latency is closed-loop, so it is "
               "mostly queueing at that load (in flight ÷ q/s).\n")

    if "balancer" in fronts:
        others = [f for f in ("coredns", "dnsdist") if f in fronts]
        if others:
            out.append("| mix | clients | " + " | ".join(f"ours / {LABEL[o]} (target ≥ {TARGETS[o]})" for o in others) + " |")
            out.append("|---|---|" + "--:|" * len(others))
            for mix in MIXES:
                for t in TRANSPORTS:
                    cells = []
                    for o in others:
                        a, b = qps.get(("balancer", mix, t)), qps.get((o, mix, t))
                        if not a or not b:
                            cells.append("–")
                            continue
                        x = a / b
                        cells.append(f"{x:.2f} {'✓' if x >= TARGETS[o] else '✗'}")
                    if any(c != "–" for c in cells):
                        out.append(f"| {mix} | {t} | " + " | ".join(cells) + " |")
            out.append("")

    out.append(f"Memory per cached answer: RSS of a fresh front after {fmt(meta.get('mem_warm'))} queries for "
               f"new names, then after one UDP pass of {fmt(meta.get('mem_names'))} more, each a name never "
               f"asked before; bytes per entry = RSS growth ÷ entries added (the front's cache-entry metric; "
               f"without one, ÷ the names answered). 'threads' is the front's thread count.\n")
    out.append("| front | cache | threads | RSS before MiB | RSS after MiB | names asked | entries added | bytes per cached answer |")
    out.append("|---|---|--:|--:|--:|--:|--:|--:|")
    for f in fronts:
        m = load(os.path.join(d, f, "mem.server.json"))
        if m is None:
            continue
        r = load(os.path.join(d, f, "mem.json")) or {}
        try:
            threads = open(os.path.join(d, f, "threads.txt")).read().strip()
        except OSError:
            threads = "?"
        grow = (m["rss_after_kb"] - m["rss_before_kb"]) * 1024
        added = delta(m, "entries")
        cache = cache_state(d, f)
        if cache != "on":
            per = "no cache"
        else:
            den = added if added else r.get("answered") or m["names"]
            per = fmt(grow / den) if den else "–"
        out.append(f"| {LABEL[f]} | {cache} | {threads} | {m['rss_before_kb'] / 1024:.1f} | "
                   f"{m['rss_after_kb'] / 1024:.1f} | {fmt(m['names'])} | {fmt(int(added) if added is not None else None)} | {per} |")
    out.append("")

    out.append("Answer check (one pass over the whole hit mix per transport, before the load):\n")
    out.append("| front | clients | sent | answered | rcodes | question mismatches | truncated | bytes/answer |")
    out.append("|---|---|--:|--:|---|--:|--:|--:|")
    for f in fronts:
        for t in TRANSPORTS:
            r = load(os.path.join(d, f, f"verify-{t}.json"))
            if r is None:
                continue
            out.append(f"| {LABEL[f]} | {t} | {check_cells(r)} |")
    out.append("")
    save(d, out)


if __name__ == "__main__":
    main()
