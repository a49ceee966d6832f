"""Amplification over UDP, measured: for every kind of answer, the octets a spoofed query of the
shortest useful form (`a.io`, a registrable domain of two short labels) makes the worker send,
over the octets of that query, without EDNS and with EDNS (payload 1232), with the standard
configuration and with the largest one the settings allow (13 name servers with 8 addresses
each, the longest identity, reports, iodef and landing addresses). The factors go into the
README's security section (run with -s to print the table); the test holds every UDP answer
to 512 octets without EDNS and 1232 with it, whatever the configuration."""

import json

import dns.edns
import dns.message
import pytest

import e2e_helpers as h
from conftest import STANDARD_ARGS

NAME = "a.io."
ROWS = [
    ("SPF (TXT at D)", NAME, "TXT", "IN", []),
    ("DMARC", "_dmarc." + NAME, "TXT", "IN", []),
    ("DKIM", "s._domainkey." + NAME, "TXT", "IN", []),
    ("null MX", NAME, "MX", "IN", []),
    ("CAA", NAME, "CAA", "IN", []),
    ("NS with glue", NAME, "NS", "IN", []),
    ("SOA", NAME, "SOA", "IN", []),
    ("A (NODATA, or landing)", NAME, "A", "IN", []),
    ("AAAA (NODATA, or landing)", NAME, "AAAA", "IN", []),
    ("ANY (RFC 8482)", NAME, "ANY", "IN", []),
    ("DNSKEY (NODATA)", NAME, "DNSKEY", "IN", []),
    ("no registrable domain (REFUSED)", "io.", "NS", "IN", []),
    ("CHAOS id.server", "id.server.", "TXT", "CH", []),
    ("NSID asked", NAME, "TXT", "IN", ["nsid"]),
]


def largest_config(tmp_path):
    ns = [f"ns{i}.park-{'x' * 40}.example.net:" + ",".join(
        [f"192.0.2.{i * 8 + k}" for k in range(4)] + [f"2001:db8::{i:x}:{k}" for k in range(4)]) for i in range(13)]
    cfg = {
        "nameservers": ns,
        "rua": "dmarc-aggregate-reports-" + "r" * 30 + "@reports.park.example.net",
        "ruf": "dmarc-failure-reports-" + "f" * 30 + "@reports.park.example.net",
        "identity": "i" * 64,
        "caa_iodef": "mailto:security-" + "s" * 200 + "@park.example.net",
        "landing": [f"192.0.2.{200 + k}" for k in range(8)] + [f"2001:db8:ffff::{k}" for k in range(8)],
    }
    p = tmp_path / "largest.json"
    p.write_text(json.dumps(cfg))
    return p


def measure(port, name, rdtype, rdclass, opts, edns):
    options = [dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")] if "nsid" in opts else None
    q = h.make_query(name, rdtype, rdclass, edns=0 if edns else None, payload=1232, options=options)
    wire = q.to_wire()
    reply = h.udp_exchange(port, wire)
    assert reply is not None, f"no answer to {name} {rdtype}"
    return len(wire), len(reply)


@pytest.mark.parametrize("config", ["standard", "largest"])
def test_udp_amplification_bounded_and_reported(worker_factory, tmp_path, config):
    args = list(STANDARD_ARGS) if config == "standard" else ["-c", str(largest_config(tmp_path))]
    w = worker_factory(*args)
    lines = [f"\n{config} configuration: answer octets / query octets (no EDNS | EDNS 1232)"]
    worst = 0.0
    for label, name, rdtype, rdclass, opts in ROWS:
        cells = []
        for edns in (False, True):
            qlen, alen = measure(w.port, name, rdtype, rdclass, opts, edns)
            assert alen <= (1232 if edns else 512), f"{label}: {alen} octets over UDP"
            factor = alen / qlen
            worst = max(worst, factor)
            cells.append(f"{alen}/{qlen} = {factor:.1f}")
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines.append(f"worst factor: {worst:.1f}")
    print("\n".join(lines))
    # The cap on any UDP answer bounds the factor by 1232 over the shortest query with EDNS.
    assert worst <= 1232 / 33 + 0.01
