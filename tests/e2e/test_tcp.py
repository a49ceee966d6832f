"""TCP behaviour only the worker has: transport modes, an IPv6 listener, several workers on one
port (SO_REUSEPORT). What both servers share is tested in tests/e2e_tcp."""

import socket
import time

import pytest

import e2e_helpers as h
from conftest import STANDARD_ARGS

SPF = "v=spf1 -all"


def test_tcp_only_and_udp_only_modes(worker_factory):
    wt = worker_factory(*STANDARD_ARGS, "--tcp")
    h.query(wt.port, h.make_query("example.com.", "SOA"), "tcp")
    assert h.udp_exchange(wt.port, h.make_query("example.com.", "SOA").to_wire(),
                          timeout=h.NO_ANSWER_TIMEOUT) is None, "--tcp must not serve UDP"
    wu = worker_factory(*STANDARD_ARGS, "--udp")
    h.query(wu.port, h.make_query("example.com.", "SOA"), "udp")
    with pytest.raises(OSError):
        h.tcp_exchange(wu.port, h.make_query("example.com.", "SOA").to_wire(), timeout=1)


def test_ipv6_listener(worker_factory):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    w = worker_factory(*STANDARD_ARGS, host="::1")
    r = h.query(w.port, h.make_query("example.com.", "TXT"), "udp", host="::1")
    assert h.txt_strings(r.answer[0]) == [SPF]
    r = h.query(w.port, h.make_query("example.com.", "TXT"), "tcp", host="::1")
    assert h.txt_strings(r.answer[0]) == [SPF]


def test_reuseport_two_workers_share_port(worker_factory):
    base = [a for a in STANDARD_ARGS]
    i = base.index("--identity")
    w1 = worker_factory(*(base[:i] + ["--identity", "one", "--reuseport"]))
    w2 = worker_factory(*(base[:i] + ["--identity", "two", "--reuseport"]), port=w1.port, wait=False)

    def identity(transport):
        try:
            r = h.query(w1.port, h.make_query("id.server.", "TXT", "CH"), transport, timeout=0.3)
        except (AssertionError, OSError, EOFError):
            return None
        return h.txt_strings(r.answer[0])[0]

    # Wait until the second worker answers on the shared port (new sockets hash anew).
    seen = {"udp": set(), "tcp": set()}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all("two" in v for v in seen.values()):
        for t in seen:
            seen[t].add(identity(t))
    assert "two" in seen["udp"] and "two" in seen["tcp"], f"second worker never answered: {seen}"
    w1.stop()
    for transport in ("udp", "tcp"):
        for _ in range(5):
            assert identity(transport) == "two"
            r = h.query(w2.port, h.make_query("example.com.", "TXT"), transport)
            assert h.txt_strings(r.answer[0]) == [SPF]
