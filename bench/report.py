#!/usr/bin/env python3
"""Turn one bench/run.sh results directory into Markdown tables (printed and saved)."""

import glob
import json
import math
import os
import re
import statistics
import sys

SERVERS = ["echo", "worker", "knot"]
TRANSPORTS = ["udp", "tcp"]


def load(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        # dns_load output: the JSON summary is the last line.
        return json.loads(text.splitlines()[-1])
    except ValueError:
        return None


def fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def ratio(a, b):
    if not a or not b:
        return "–"
    return f"{a / b:.2f}"


def throughput(d, out):
    if not os.path.isdir(os.path.join(d, "throughput")):
        return
    meta = load(os.path.join(d, "meta.json")) or {}
    out.append(f"### Throughput ({meta.get('duration', '?')} s per run, server on CPU "
               f"{meta.get('server_cpu', '?')}, dns_load on CPU {meta.get('client_cpu', '?')})\n")
    out.append(f"UDP: {meta.get('udp', '?')}; TCP: {meta.get('tcp', '?')}.\n")
    out.append("| server | transport | answered q/s | p50 µs | p99 µs | p99.9 µs | lost | "
               "server CPU % | dns_load CPU % | other CPU % | server RSS MiB (peak) | bytes/answer |")
    out.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    qps = {}
    for s in SERVERS:
        for t in TRANSPORTS:
            r = load(os.path.join(d, "throughput", f"{s}-{t}.json"))
            m = load(os.path.join(d, "throughput", f"{s}-{t}.server.json")) or {}
            if r is None:
                if m.get("skipped"):
                    out.append(f"| {s} | {t} | skipped: {m['skipped']} | | | | | | | | | |")
                continue
            qps[(s, t)] = r["qps"]
            lat = r["latency_us"]
            # The server idles outside the generator's span (startup, mix loading), so rates
            # are over the span when the generator reports it.
            wall = r.get("span_s") or m.get("wall_s")
            cpu = 100.0 * m["cpu_s"] / wall if wall else None
            gen = 100.0 * m["client_cpu_s"] / wall if wall and "client_cpu_s" in m else None
            other = 100.0 * m["other_cpu_s"] / wall if wall and "other_cpu_s" in m else None
            # Per-process and per-CPU tick accounting disagree by up to ~20% of a core, so small
            # values either way mean "nothing else ran".
            other_s = fmt(other) + (" ⚠" if other is not None and other > 20 else "")
            rss = (f"{m['rss_kb'] / 1024:.1f} ({m['hwm_kb'] / 1024:.1f})" if "rss_kb" in m else "–")
            out.append(f"| {s} | {t} | {fmt(r['qps'])} | {fmt(lat['p50'], 1)} | {fmt(lat['p99'], 1)} | "
                       f"{fmt(lat['p999'], 1)} | {fmt(r['lost'])} | {fmt(cpu)} | {fmt(gen)} | {other_s} | {rss} | "
                       f"{fmt(r.get('avg_answer_bytes'), 1)} |")
    out.append("")
    out.append("CPU columns are % of one core over the run. A server near 100% is the limit being "
               "measured; if dns_load is near 100% and the server is not, the generator was the limit "
               "and the row is a lower bound. 'other' is CPU used by neither (other processes, "
               "unaccounted kernel work); tick accounting makes it noisy by ±20%, so ⚠ marks only runs where "
               "other processes took more than 20% of a core.\n")
    out.append("| ratio of answered q/s | UDP | TCP |")
    out.append("|---|--:|--:|")
    for num, den in [("worker", "echo"), ("worker", "knot"), ("knot", "echo")]:
        out.append(f"| {num} / {den} | {ratio(qps.get((num, 'udp')), qps.get((den, 'udp')))} | "
                   f"{ratio(qps.get((num, 'tcp')), qps.get((den, 'tcp')))} |")
    out.append("")


def check_cells(r):
    """The answer-check columns of one dns_load pass: sent | answered | rcodes | question
    mismatches | truncated | bytes/answer."""
    rc = ", ".join(f"{k} {v:,}" for k, v in r["rcodes"].items())
    return (f"{fmt(r['sent'])} | {fmt(r['answered'])} | {rc} | {fmt(r['mismatched'])} | "
            f"{fmt(r['truncated'])} | {fmt(r.get('avg_answer_bytes'), 1)}")


def verify(d, out):
    files = sorted(glob.glob(os.path.join(d, "verify", "*.json")))
    if not files:
        return
    out.append("### Answer check (one pass over the whole mix, UDP, before the load)\n")
    out.append("| server | queries | answered | rcodes | question mismatches | truncated | bytes/answer |")
    out.append("|---|--:|--:|---|--:|--:|--:|")
    for s in SERVERS:
        r = load(os.path.join(d, "verify", f"{s}.json"))
        if r is None:
            continue
        out.append(f"| {s} | {check_cells(r)} |")
    out.append("")


def idle(d, out):
    rows = []
    for s in SERVERS:
        r = load(os.path.join(d, "idle", f"{s}.json"))
        if r is not None:
            rows.append((s, r))
    if not rows:
        return
    out.append("### Idle TCP connections (one query each, then held open)\n")
    out.append("| server | connections held | closed by server | RSS before MiB | RSS after MiB | bytes per connection |")
    out.append("|---|--:|--:|--:|--:|--:|")
    for s, r in rows:
        held = r.get("opened", 0)
        per = (r["rss_after_kb"] - r["rss_before_kb"]) * 1024 / held if held else None
        out.append(f"| {s} | {fmt(held)} | {fmt(r.get('closed_by_server'))} | {r['rss_before_kb'] / 1024:.1f} | "
                   f"{r['rss_after_kb'] / 1024:.1f} | {fmt(per)} |")
    out.append("")


def parse_dnsperf(path):
    try:
        text = open(path).read()
    except OSError:
        return None
    def grab(pattern, cast=float):
        m = re.search(pattern, text)
        return cast(m.group(1)) if m else None
    return {
        "sent": grab(r"Queries sent:\s+(\d+)", int),
        "answered": grab(r"Queries completed:\s+(\d+)", int),
        "lost": grab(r"Queries lost:\s+(\d+)", int),
        "qps": grab(r"Queries per second:\s+([\d.]+)"),
        "mean_us": (grab(r"Average Latency \(s\):\s+([\d.]+)") or 0) * 1e6,
    }


def dnsperf(d, out):
    meta = load(os.path.join(d, "dnsperf", "meta.json"))
    if meta is None:
        return
    out.append(f"### dns_load against dnsperf ({meta['target']}, same mix, {meta['duration']} s each)\n")
    out.append("| tool | mode | target q/s | sent | answered q/s | lost | mean latency µs |")
    out.append("|---|---|--:|--:|--:|--:|--:|")
    for label, tag in [("rate", "at a fixed rate"), ("max", "closed loop, same in-flight limit")]:
        p = parse_dnsperf(os.path.join(d, "dnsperf", f"dnsperf-{label}.txt"))
        r = load(os.path.join(d, "dnsperf", f"dns_load-{label}.json"))
        target = fmt(float(meta["rate"])) if label == "rate" else "max"
        if p and p["qps"] is not None:
            out.append(f"| dnsperf | {tag} | {target} | {fmt(p['sent'])} | {fmt(p['qps'])} | {fmt(p['lost'])} | "
                       f"{fmt(p['mean_us'], 1)} |")
        if r:
            out.append(f"| dns_load | {tag} | {target} | {fmt(r['sent'])} | {fmt(r['qps'])} | {fmt(r['lost'])} | "
                       f"{fmt(r['latency_us']['mean'], 1)} |")
    out.append("")


def pairs(d, out):
    """run.sh pairs: back-to-back echo/worker UDP runs; the median pair ratio."""
    pdir = os.path.join(d, "pairs")
    if not os.path.isdir(pdir):
        return
    rows = []
    i = 1
    while True:
        e, w = load(os.path.join(pdir, f"{i}-echo.json")), load(os.path.join(pdir, f"{i}-worker.json"))
        if not e or not w:
            break
        eq, wq = e["answered"] / e["span_s"], w["answered"] / w["span_s"]
        rows.append((i, eq, wq, wq / eq if eq else 0.0))
        i += 1
    if not rows:
        return
    out.append("### UDP worker/echo in back-to-back pairs\n")
    out.append("| pair | first | echo q/s | worker q/s | worker/echo |")
    out.append("| --: | --- | --: | --: | --: |")
    for i, eq, wq, r in rows:
        out.append(f"| {i} | {'echo' if i % 2 else 'worker'} | {eq:,.0f} | {wq:,.0f} | {r:.3f} |")
    ratios = sorted(r for *_, r in rows)
    # The quieter half: pairs whose combined rate (geometric mean of the two) is at or above
    # the median. Selecting on the echo alone would bias the ratio down (a lucky echo second
    # is a low ratio); the pair's mean treats both sides alike.
    level = statistics.median(math.sqrt(eq * wq) for _, eq, wq, _ in rows)
    quiet = [r for _, eq, wq, r in rows if math.sqrt(eq * wq) >= level]
    out.append(f"\nMedian worker/echo over {len(rows)} pairs: **{statistics.median(ratios):.3f}** "
               f"(range {ratios[0]:.3f}-{ratios[-1]:.3f}); over the quieter {len(quiet)} "
               f"(pair rate at or above its median, {level:,.0f} q/s): {statistics.median(quiet):.3f}.\n")


def save(d, out):
    """Print the report's lines and write them to table.md in the results directory."""
    text = "\n".join(out)
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write(text + "\n")
    print(text)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS_DIR")
    d = sys.argv[1]
    out = [f"## domain-park bench — {os.path.basename(os.path.normpath(d))}\n"]
    verify(d, out)
    throughput(d, out)
    idle(d, out)
    dnsperf(d, out)
    pairs(d, out)
    save(d, out)


if __name__ == "__main__":
    main()
