#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/TARGET/): a few well-formed
inputs each, so the fuzzers start from every kind of message and event the code handles.
Run it again after changing a target's input format; crashes found later are added to the
corpus as regression inputs by hand (corpus/TARGET/crash-*), never regenerated.
Needs dnspython."""

import json
import random
import struct
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rrset

HERE = Path(__file__).resolve().parent / "corpus"


def write(target, name, data):
    d = HERE / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def queries():
    """(name, wire) of queries touching every answer row and parser branch."""
    out = []
    ka = dns.edns.GenericOption(11, b"")
    nsid = dns.edns.GenericOption(3, b"")
    cookie = dns.edns.GenericOption(10, bytes(range(8)))
    rows = [("example.com.", "TXT"), ("_dmarc.example.com.", "TXT"), ("sel._domainkey.example.com.", "TXT"),
            ("example.co.uk.", "MX"), ("www.example.com.", "A"), ("example.com.", "SOA"), ("example.com.", "NS"),
            ("example.com.", "CAA"), ("ns1.park.example.", "AAAA"), ("a._mta-sts.example.com.", "TXT"),
            ("com.", "NS"), ("EXAMPLE.org.", "ANY"), ("example.com.", "AXFR"), ("x.example.com.", "DS")]
    for i, (name, rdtype) in enumerate(rows):
        q = dns.message.make_query(name, rdtype, id=0x1000 + i, use_edns=(i % 2 == 0) and 0,
                                   options=[ka, nsid, cookie][: i % 4] if i % 2 == 0 else None)
        out.append((f"q{i:02d}-{rdtype.lower()}", q.to_wire()))
    chaos = dns.message.make_query("id.server.", "TXT", "CH", id=7)
    out.append(("chaos", chaos.to_wire()))
    notify = dns.message.make_query("example.com.", "SOA", id=8)
    notify.set_opcode(dns.opcode.NOTIFY)
    out.append(("notify", notify.to_wire()))
    badvers = dns.message.make_query("example.com.", "TXT", id=9, use_edns=1)
    out.append(("badvers", badvers.to_wire()))
    out.append(("runt", b"\x12\x34\x01"))
    out.append(("response", dns.message.make_response(dns.message.make_query("example.com.", "A")).to_wire()))
    return out


def answer_for(wire, rdtype_text, rdata):
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    r.answer.append(dns.rrset.from_text(q.question[0].name, 3600, "IN", rdtype_text, rdata))
    return r.to_wire()


def main():
    qs = queries()
    for name, wire in qs:
        write("worker", name, wire)
    # Balancer: flags, upstream ID, query length, query, then the answer (raw), or flags bit 1:
    # the worker policy's answer with one octet changed.
    random.seed(20261201)
    for i, (name, wire) in enumerate(qs[:12]):
        head = struct.pack("!BHH", (i % 2) | (i % 3 == 0) << 1 | (i << 4 & 0xF0), 0x2000 + i, len(wire))
        up = bytearray(wire)
        up[0:2] = struct.pack("!H", 0x2000 + i)
        try:
            ans = answer_for(bytes(up), "TXT", '"v=spf1 -all"')
        except Exception:
            ans = bytes(up)
        write("balancer", f"pair{i:02d}", head + wire + ans + (b"\x00\x10\x01" if i % 3 == 0 else b""))
    # The client's DNS cookie at the front: a client cookie alone over UDP, client and server
    # cookie over TCP; the worker policy's answer.
    for i, (tcp, value) in enumerate([(0, bytes(range(8))), (1, bytes(range(24)))]):
        q = dns.message.make_query("example.com.", "TXT", id=0x3000 + i, use_edns=0,
                                   options=[dns.edns.GenericOption(10, value)])
        wire = q.to_wire()
        write("balancer", f"cookie{i}", struct.pack("!BHH", tcp | 1 << 1, 0x3100 + i, len(wire)) + wire)
    # TCP engine: scripts of events (see fuzz_tcp_engine.cpp for the opcodes).
    scripts = {
        "accept-send-answer": bytes([0, 2, 0, 3, 0, 20, 8, 9, 3, 0, 0]),
        "split-and-slow": bytes([0, 1, 0, 0, 5, 0, 40, 1, 0, 0, 7]) + b"\x00\x0e" + bytes(12) + bytes([5, 0x10, 0x00]),
        "backpressure": bytes([0, 4, 0, 0, 0, 2, 0, 8, 1, 40, 2, 0, 8, 1, 40, 3, 0, 0, 9, 8, 8]),
        "many-evict": bytes([0] * 10 + [2, 3, 1, 12, 5, 0x20, 0x00, 10]),
        "half-close-reset": bytes([0, 0, 2, 0, 3, 0, 20, 6, 0, 7, 1, 10, 8, 9, 12, 0]),
        "reconfigure-shutdown": bytes([0, 0, 2, 1, 5, 1, 30, 11, 1, 0x10, 0x00, 8, 5, 0x0f, 0xff, 10]),
    }
    for name, data in scripts.items():
        write("tcp_engine", name, data)
    # Configuration: mode octet (0 worker JSON, 1 balancer JSON, 2 worker argv, 3 balancer argv).
    worker_json = {"nameservers": ["ns1.park.example:192.0.2.1"], "rua": "r@park.example", "soa": {"serial": 7},
                   "tcp_idle_timeout": 30, "landing": ["192.0.2.80"]}
    balancer_json = {"workers": ["127.0.0.1:5300"], "cache": {"max_entries": 10},
                     "rate_limit": {"responses_per_second": 5, "exempt": ["10.0.0.0/8"]}}
    write("config", "worker-json", b"\x00" + json.dumps(worker_json).encode())
    write("config", "balancer-json", b"\x01" + json.dumps(balancer_json).encode())
    write("config", "nested", b"\x00" + b'{"soa": {"ttl": 1, "ttl": 2}, "a": [[[[1]]]]}')
    write("config", "worker-argv", b"\x02" + b"\x00".join([b"-n", b"ns1.example.net:192.0.2.1", b"--port", b"5300",
                                                            b"--rua=x@example.net", b"--tcp"]))
    write("config", "balancer-argv", b"\x03" + b"\x00".join([b"--worker", b"127.0.0.1:1", b"--listen", b"[::1]:53",
                                                              b"--threads", b"2", b"--serve-stale", b"60"]))
    # Rate limiter: settings octets, then events.
    rl = bytes([3, 4, 24, 56, 2, 1, 1, 5, 2, 0, 16, 1, 1])
    for k in range(40):
        rl += bytes([k % 3, 0xC0 if k % 2 else 0x20, k, k % 5, k % 2 * 2, 10]) + b"\x07example\x03com\x00"[:10] + bytes([k % 4, 0, 16])
    write("rate_limit", "mixed", rl)


if __name__ == "__main__":
    main()
