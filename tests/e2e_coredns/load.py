"""A bounded UDP query loop for the CoreDNS tests: one socket, paced, short timeouts, every
reply matched to its query by ID and question. Loopback only."""

import socket
import time

import dns.message
import dns.rcode

import e2e_helpers as h


def paced_udp(port, qnames, qtype="TXT", rate=1000.0, timeout=0.25, max_seconds=30.0, on_index=None):
    """Send one query per name, at most `rate` per second, waiting up to `timeout` for each.

    Returns a list, one entry per name: the reply's rcode, or None (no answer in time, or
    not sent before max_seconds ran out). on_index(i) is called before query i is sent."""
    results = [None] * len(qnames)
    start = time.monotonic()
    end = start + max_seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((h.HOST, port))
        for i, qname in enumerate(qnames):
            now = time.monotonic()
            if now >= end:
                break
            due = start + i / rate
            if due > now:
                time.sleep(due - now)
            if on_index is not None:
                on_index(i)
            q = h.make_query(qname, qtype)
            s.send(q.to_wire())
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                s.settimeout(left)
                try:
                    wire = s.recv(65535)
                except (socket.timeout, ConnectionRefusedError):
                    break
                try:
                    r = dns.message.from_wire(wire)
                except Exception:  # noqa: BLE001 - an undecodable reply counts as no answer
                    continue
                if r.id == q.id and r.question and r.question[0].name == q.question[0].name:
                    results[i] = r.rcode()
                    break
    return results


def summary(results):
    ok = sum(1 for r in results if r == dns.rcode.NOERROR)
    none = sum(1 for r in results if r is None)
    return {"sent": len(results), "noerror": ok, "no_answer": none, "other": len(results) - ok - none}
