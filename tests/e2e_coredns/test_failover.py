"""Failover: two workers on distinct ports behind CoreDNS (forward with max_fails 3,
health_check 1s, round_robin). A worker killed under load is routed around; restarted on the
same port, it is sent traffic again."""

import itertools
import os
import signal
import time

import dns.rcode

from .coredns_stack import STANDARD_ARGS, scrape
from .load import paced_udp, summary

_run = itertools.count(1)

QUERIES = 4000
RATE = 1000.0          # queries per second: ~4 s of load
KILL_AT = 1000         # ~1 s in
TAIL = 1000            # the last queries: all must be answered
MAX_FAILURE_RATE = 0.05


def test_kill_one_worker_under_load_then_restart(stack_factory):
    s = stack_factory(n_workers=2)
    victim, survivor = s.workers
    run = next(_run)
    # Distinct names: every query misses the cache and goes to a worker.
    names = [f"f{run}-{i}.com." for i in range(QUERIES)]
    killed = {}

    def on_index(i):
        if i == KILL_AT:
            os.kill(victim.pid, signal.SIGKILL)
            killed["at"] = i

    results = paced_udp(s.port, names, rate=RATE, timeout=0.5, max_seconds=40.0, on_index=on_index)
    assert killed.get("at") == KILL_AT
    assert victim.proc.wait(timeout=5) == -signal.SIGKILL
    stats = summary(results)
    failed_at = [i for i, r in enumerate(results) if r != dns.rcode.NOERROR]
    print(f"\nfailover: {stats}; failures at indexes {failed_at[:20]}{'...' if len(failed_at) > 20 else ''}")

    # Before the kill everything is answered.
    assert all(r == dns.rcode.NOERROR for r in results[:KILL_AT]), f"failures before the kill: {failed_at}"
    # CoreDNS routes around the dead worker: the tail is answered in full.
    tail = results[-TAIL:]
    assert all(r == dns.rcode.NOERROR for r in tail), \
        f"{sum(r != dns.rcode.NOERROR for r in tail)} of the last {TAIL} queries failed: {failed_at}"
    # Failures, if any, only in a short window after the kill, and few.
    assert len(failed_at) < MAX_FAILURE_RATE * QUERIES, stats
    if failed_at:
        assert failed_at[-1] - failed_at[0] < QUERIES - TAIL - KILL_AT
    # The survivor did the work after the kill (it answered at least the tail).
    assert scrape(survivor.metrics_addr).value("domain_park_queries_total", qtype="TXT") >= TAIL

    # Restart the killed worker on the same port; CoreDNS's health check finds it up again
    # and round_robin sends it traffic: its own counter moves.
    victim.stop()
    restarted = s.start_worker(0, STANDARD_ARGS, "w0-restarted", port=victim.port)
    assert restarted.port == victim.port
    before = scrape(restarted.metrics_addr).value("domain_park_queries_total", qtype="TXT")
    assert before == 0
    deadline = time.monotonic() + 10.0
    got = 0
    i = 0
    while time.monotonic() < deadline and got == 0:
        batch = [f"f{run}-back-{i + k}.com." for k in range(50)]
        i += 50
        res = paced_udp(s.port, batch, rate=200.0, timeout=0.5, max_seconds=5.0)
        assert all(r == dns.rcode.NOERROR for r in res), summary(res)
        got = scrape(restarted.metrics_addr).value("domain_park_queries_total", qtype="TXT")
    assert got > 0, "the restarted worker got no query within 10 s"
    print(f"restarted worker answered {got:.0f} of the {i} queries sent after its restart")
