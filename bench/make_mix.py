#!/usr/bin/env python3
"""Write a deterministic DNS query mix for the domain-park benchmarks.

One "name type" per line (the format dns_load and dnsperf both read). The mix spreads over
--domains distinct registrable domains under real public suffixes (so the worker's Public
Suffix List lookup does real work), and weighs query kinds roughly like the traffic a parked
domain gets: mail receivers checking SPF, DMARC and DKIM, CAs checking CAA, resolvers
asking for addresses, NS, SOA, DS and HTTPS, and the odd ANY.

A small share of the lines is what a public server also gets: --refused of them ask for a
bare public suffix (`co.uk TXT`: no registrable domain, REFUSED by the worker; no zone for
Knot or NSD), --malformed of them carry a third word, `!noquestion`, `!cut` or `!opt2`, that
makes dns_load send a malformed query instead (see mix_query.hpp). dnsperf does not read
the third word: give it the mix without those lines (`grep -v '!'`).

Same --seed and arguments, same file, byte for byte.
"""

import argparse
import random
import sys

# Public suffixes (ICANN section of the PSL) the domains live under. Two-label suffixes make
# the registrable domain differ from "the last two labels". make_zones.py imports this list
# to find the zone of each name, so both always agree.
SUFFIXES = [
    "com", "net", "org", "de", "nl", "io", "info", "fr",
    "co.uk", "org.uk", "com.au", "co.jp", "com.br",
]

DKIM_SELECTORS = ["default", "google", "selector1", "selector2", "s1", "k1", "mail", "dkim"]
SUB_LABELS = ["mail", "shop", "blog", "dev", "api", "smtp", "m", "ftp"]

# (weight, pattern, type); patterns: {d} domain, {sel} DKIM selector, {sub} host label,
# {rnd} random label. _dmarc/_domainkey below a subdomain exercise "X" below D.
KINDS = [
    (16, "{d}", "TXT"),
    (14, "_dmarc.{d}", "TXT"),
    (8, "{sel}._domainkey.{d}", "TXT"),
    (12, "{d}", "MX"),
    (10, "{d}", "A"),
    (8, "{d}", "AAAA"),
    (6, "www.{d}", "A"),
    (3, "www.{d}", "AAAA"),
    (5, "{d}", "CAA"),
    (2, "www.{d}", "CAA"),
    (3, "{d}", "SOA"),
    (4, "{d}", "NS"),
    (2, "{d}", "DS"),
    (1, "{d}", "DNSKEY"),
    (3, "{d}", "HTTPS"),
    (2, "www.{d}", "HTTPS"),
    (1, "{d}", "ANY"),
    (3, "{rnd}.{d}", "TXT"),
    (2, "{sub}.{d}", "MX"),
    (2, "{rnd}.{d}", "A"),
    (1, "_dmarc.{sub}.{d}", "TXT"),
    (1, "{sel}._domainkey.{sub}.{d}", "TXT"),
    (1, "{rnd}.{sub}.{d}", "A"),
]


def registrable(name):
    """The registrable domain of a mix name under SUFFIXES, or None."""
    labels = name.rstrip(".").lower().split(".")
    best = None
    for suffix in SUFFIXES:
        s = suffix.split(".")
        if len(labels) > len(s) and labels[-len(s):] == s:
            if best is None or len(s) > len(best):
                best = s
    if best is None:
        return None
    return ".".join(labels[-(len(best) + 1):])


def random_label(rng):
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 10)))


MALFORMATIONS = ["!noquestion", "!cut", "!opt2"]


def mix_case(rng, name):
    # 0x20 encoding, as resolvers send it: the server must echo the case exactly.
    return "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in name)


def make_domains(rng, count):
    return [f"park-{i}.{rng.choice(SUFFIXES)}" for i in range(count)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default="-", help="output file (default stdout)")
    ap.add_argument("--domains", type=int, default=10000, help="distinct registrable domains (default 10000)")
    ap.add_argument("--queries", type=int, default=100000, help="lines in the mix (default 100000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--case-random", action="store_true", help="randomize letter case (0x20)")
    ap.add_argument("--refused", type=float, default=0.01,
                    help="share of queries for a bare public suffix, answered REFUSED (default 0.01)")
    ap.add_argument("--malformed", type=float, default=0.01,
                    help="share of malformed queries, the kinds in turn (default 0.01)")
    args = ap.parse_args()
    if args.domains < 1 or args.queries < args.domains:
        ap.error("need --domains >= 1 and --queries >= --domains")
    if not (0 <= args.refused and 0 <= args.malformed and args.refused + args.malformed < 0.5):
        ap.error("need 0 <= --refused, --malformed and their sum below 0.5")

    rng = random.Random(args.seed)
    domains = make_domains(rng, args.domains)
    weights = [k[0] for k in KINDS]
    # Every domain at least once, the rest drawn at random; then shuffled so consecutive
    # queries hit different domains, as a server in the wild sees them.
    picks = domains + [rng.choice(domains) for _ in range(args.queries - args.domains)]
    rng.shuffle(picks)
    lines = []
    bad = 0
    for d in picks:
        _, pattern, qtype = rng.choices(KINDS, weights)[0]
        name = pattern.format(d=d, sel=rng.choice(DKIM_SELECTORS), sub=rng.choice(SUB_LABELS),
                              rnd=random_label(rng))
        extra = ""
        draw = rng.random()
        if draw < args.malformed:
            extra = " " + MALFORMATIONS[bad % len(MALFORMATIONS)]
            bad += 1
        elif draw < args.malformed + args.refused:
            name = rng.choice(SUFFIXES)
        if args.case_random:
            name = mix_case(rng, name)
        lines.append(f"{name} {qtype}{extra}\n")

    out = sys.stdout if args.output == "-" else open(args.output, "w")
    out.writelines(lines)
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
