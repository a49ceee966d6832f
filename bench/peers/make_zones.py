#!/usr/bin/env python3
"""Build the Knot DNS and NSD peers that answer a query mix the way domain-park does.

Reads the mix written by ../make_mix.py and writes, into --out:
  zones/<D>.zone  one zone per registrable domain D in the mix (both servers read them)
  knot.conf       from knot.conf.in: 1 UDP, 1 TCP, 1 background worker, 127.0.0.1@--knot-port
  nsd.conf        from nsd.conf.in: 1 server process, 127.0.0.1@--nsd-port

Each zone holds the contract's records (docs/CONTRACT.md, "The answers"): SOA, NS, SPF TXT, null MX,
CAA at the apex and, by wildcard, at every name below it; _dmarc TXT; *._domainkey TXT with
a revoked key. A and AAAA have no data, like a worker without a landing page.

Knot cannot say "any name whose first label starts with _dmarc", so names of the mix like
_dmarc.mail.D get explicit records. Doing so turns mail.D into a node of its own, which stops
the *.D wildcard from covering it and the names below it, so mail.D then gets explicit
TXT/MX/CAA and a *.mail.D wildcard of its own.

Differences from the worker that remain are listed in ../README.md (glue for out-of-zone
name servers, the shape of the ANY answer).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from make_mix import registrable  # noqa: E402  (shared suffix list: same zones as the mix)

HERE = os.path.dirname(os.path.abspath(__file__))


def x_records(owner, ttl):
    # The records every "X" (D or a non-underscore name under D) carries.
    return [
        f'{owner} {ttl} IN TXT "v=spf1 -all"',
        f"{owner} {ttl} IN MX 0 .",
        f'{owner} {ttl} IN CAA 0 issue ";"',
    ]


def zone_text(d, subs, a):
    dmarc = "v=DMARC1; p=reject; sp=reject; np=reject; adkim=s; aspf=s;"  # the worker's default
    if a.rua:
        dmarc += f" rua=mailto:{a.rua};"
    if a.ruf:
        dmarc += f" ruf=mailto:{a.ruf};"
    ns = [n if n.endswith(".") else n + "." for n in a.nameserver]
    rname = a.rname if a.rname.endswith(".") else a.rname + "."
    lines = [
        f"$ORIGIN {d}.",
        f"@ {a.soa_ttl} IN SOA {ns[0]} {rname} {a.serial} {a.refresh} {a.retry} {a.expire} {a.minimum}",
    ]
    lines += [f"@ {a.ns_ttl} IN NS {n}" for n in ns]
    lines += x_records("@", a.ttl)
    lines += x_records("*", a.ttl)
    lines.append(f'_dmarc {a.ttl} IN TXT "{dmarc}"')
    lines.append(f'*._domainkey {a.ttl} IN TXT "v=DKIM1; p="')
    for sub in sorted(subs):
        lines += x_records(sub, a.ttl)
        # *.D no longer reaches below sub once sub is a node; this wildcard takes over.
        lines += x_records("*." + sub, a.ttl)
        lines.append(f'_dmarc.{sub} {a.ttl} IN TXT "{dmarc}"')
        lines.append(f'*._domainkey.{sub} {a.ttl} IN TXT "v=DKIM1; p="')
    return "\n".join(lines) + "\n"


def collect(mix_path):
    """Map zone -> set of relative subdomain owners that need explicit records."""
    zones = {}
    with open(mix_path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith(("#", ";")) or len(parts) > 2:
                continue  # a comment, or a malformed query (no name a zone must answer)
            name = parts[0].rstrip(".").lower()
            d = registrable(name)
            if d is None:
                continue  # e.g. a bare suffix: the worker REFUSES it, Knot (no zone) too
            subs = zones.setdefault(d, set())
            rel = name[: -len(d)].rstrip(".")
            labels = rel.split(".") if rel else []
            # Find the part below the _dmarc / _domainkey labels, e.g. "mail" in
            # "_dmarc.mail" or "sel._domainkey.mail".
            host = None
            if len(labels) >= 2 and labels[0] == "_dmarc":
                host = labels[1:]
            elif len(labels) >= 3 and labels[1] == "_domainkey":
                host = labels[2:]
            if host:
                # Every node between the host and the apex is a real node now (or an empty
                # non-terminal), so each one needs the X records explicitly.
                for i in range(len(host)):
                    if host[i].startswith("_"):
                        break
                    subs.add(".".join(host[i:]))
    return zones


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mix", help="query mix from make_mix.py")
    ap.add_argument("--out", required=True, help="output directory (zones/, knot.conf, nsd.conf)")
    ap.add_argument("--knot-port", type=int, default=5302)
    ap.add_argument("--nsd-port", type=int, default=5303)
    ap.add_argument("--nameserver", action="append", default=[],
                    help="NS host name, repeatable, first is the SOA mname (default ns1/ns2.park.example)")
    ap.add_argument("--rname", default="hostmaster.park.example")
    ap.add_argument("--rua", default="dmarc@park.example")
    ap.add_argument("--ruf", default="")
    ap.add_argument("--serial", type=int, default=1)
    ap.add_argument("--refresh", type=int, default=10800)
    ap.add_argument("--retry", type=int, default=3600)
    ap.add_argument("--expire", type=int, default=604800)
    ap.add_argument("--minimum", type=int, default=3600)
    ap.add_argument("--soa-ttl", type=int, default=3600)
    ap.add_argument("--ns-ttl", type=int, default=86400)
    ap.add_argument("--ttl", type=int, default=3600, help="TTL of TXT/MX/CAA (default 3600)")
    a = ap.parse_args()
    if not a.nameserver:
        a.nameserver = ["ns1.park.example", "ns2.park.example"]

    zones = collect(a.mix)
    zdir = os.path.join(a.out, "zones")
    os.makedirs(zdir, exist_ok=True)
    for d, subs in zones.items():
        with open(os.path.join(zdir, d + ".zone"), "w") as f:
            f.write(zone_text(d, subs, a))

    out = os.path.abspath(a.out)
    names = sorted(zones)
    zone_lists = {
        "knot": "zone:\n" + "".join(f"  - domain: {d}\n" for d in names),
        "nsd": "".join(f"zone:\n    name: {d}\n    zonefile: {d}.zone\n" for d in names),
    }
    for server, port in (("knot", a.knot_port), ("nsd", a.nsd_port)):
        with open(os.path.join(HERE, f"{server}.conf.in")) as f:
            conf = f.read()
        conf = conf.replace("@RUNDIR@", out).replace("@PORT@", str(port)).replace("@ZONEDIR@", os.path.abspath(zdir))
        with open(os.path.join(a.out, f"{server}.conf"), "w") as f:
            f.write(conf + zone_lists[server])
    print(f"{len(zones)} zones, {sum(len(s) for s in zones.values())} explicit subdomains -> {out}")


if __name__ == "__main__":
    main()
