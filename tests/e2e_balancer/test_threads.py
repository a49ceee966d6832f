"""`threads` > 1: each thread has its own SO_REUSEPORT sockets, worker connections and
metrics; the kernel spreads clients over them. Every thread must answer, every thread must
apply a reload, the metrics endpoint must sum the threads, and SIGTERM must stop them all."""

import os
import signal
import socket
import time

import dns.edns
import dns.message
import dns.rcode
import pytest

from .balancer_stack import addr, h, worker_queries, write_config

THREADS = 3


def nsid_of(reply):
    for o in reply.options:
        if o.otype == dns.edns.NSID:
            return o.data if hasattr(o, "data") else o.nsid
    return None


def ask_from_many_sockets(port, n, prefix):
    """n queries, each from its own UDP socket (own source port), so that SO_REUSEPORT's
    hash spreads them over every thread. Returns the replies."""
    replies = []
    for i in range(n):
        q = h.make_query(f"{prefix}-{i}.example.com.", "TXT", edns=0, options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2.0)
            s.sendto(q.to_wire(), (h.HOST, port))
            r = dns.message.from_wire(s.recv(65535))
        assert r.id == q.id and r.rcode() == dns.rcode.NOERROR
        replies.append(r)
    return replies


def test_threads_answer_udp_and_tcp_and_metrics_sum(procs):
    w = procs.worker(identity="w")
    b = procs.balancer(workers=[addr(w)], extra_args=["--threads", THREADS])
    # The engine threads exist (main + THREADS engines + the metrics server's).
    tasks = os.listdir(f"/proc/{b.pid}/task")
    assert len(tasks) >= 1 + THREADS, tasks
    before = b.metrics().value("domain_park_balancer_requests_total", transport="udp")
    ask_from_many_sockets(b.port, 60, "udp")
    for i in range(20):  # each its own connection: spread over the threads' listeners
        r = h.query(b.port, h.make_query(f"tcp-{i}.example.com.", "TXT"), "tcp")
        assert r.rcode() == dns.rcode.NOERROR
    m = b.metrics()
    assert m.value("domain_park_balancer_requests_total", transport="udp") - before == 60
    assert m.value("domain_park_balancer_requests_total", transport="tcp") >= 20
    # Worker stats are summed over threads; up is 1 only when every thread sees it up.
    assert m.value("domain_park_balancer_worker_up", worker=addr(w)) == 1
    assert m.value("domain_park_balancer_worker_answers_total", worker=addr(w)) >= 80
    # Every thread holds its own connections to the worker.
    assert worker_queries(w, qtype="TXT") >= 80


def test_every_thread_applies_a_reload(procs, tmp_path):
    a = procs.worker(identity="a")
    bw = procs.worker(identity="b")
    cfg = write_config(tmp_path / "balancer.json", workers=[addr(a)], threads=THREADS)
    b = procs.balancer(config=cfg)
    assert {nsid_of(r) for r in ask_from_many_sockets(b.port, 40, "one")} == {b"a"}
    write_config(cfg, workers=[addr(bw)], threads=THREADS)
    b.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while b.metrics().value("domain_park_balancer_config_reloads_total", result="success") < 1:
        assert time.monotonic() < deadline, "reload not counted"
        time.sleep(0.05)
    time.sleep(0.3)  # the threads apply it on their own loops
    # 100 source ports: a thread that kept the old list would answer some of them from "a".
    assert {nsid_of(r) for r in ask_from_many_sockets(b.port, 100, "two")} == {b"b"}


def test_sigterm_stops_every_thread(procs):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)], extra_args=["--threads", THREADS])
    ask_from_many_sockets(b.port, 10, "x")
    b.signal(signal.SIGTERM)
    assert b.proc.wait(timeout=10) == 0
    assert "stopped" in b.output()
