"""Failover with real processes: a worker SIGKILLed under a bounded load loses no query that
had time to be retried and is used again once restarted; a worker that stops answering is
routed around after the deadline; with every worker down, clients get SERVFAIL within the
deadline, never silence."""

import itertools
import os
import signal
import time

import dns.rcode
import pytest

from .balancer_stack import addr, h, worker_queries, write_config
from .load import paced_udp

_run = itertools.count(1)

QUERIES = 20000
DURATION = 5.0   # seconds: 4,000 queries/s
KILL_AT = 1.0    # seconds into the load
GRACE = 1.0      # after the kill + GRACE, every query must be answered
MIN_ANSWERED = 0.995


@pytest.mark.parametrize("stall_first", [False, True], ids=["sigkill", "sigstop-then-sigkill"])
def test_sigkill_one_worker_under_load_then_restart(procs, stall_first):
    # stall_first: the worker is stopped 0.2 s before it is killed, so queries are certainly
    # in flight on its connections when they break: they must be re-sent, and answered.
    victim = procs.worker(identity="w0")
    survivor = procs.worker(identity="w1")
    b = procs.balancer(workers=[addr(victim), addr(survivor)])
    run = next(_run)
    names = [f"k{run}-{i}.example{i % 50}.com." for i in range(QUERIES)]

    events = [(KILL_AT, lambda: os.kill(victim.pid, signal.SIGKILL))]
    if stall_first:
        events.append((KILL_AT - 0.2, lambda: os.kill(victim.pid, signal.SIGSTOP)))
    sent_at, rcodes = paced_udp(b.port, names, DURATION, events=events)
    assert victim.proc.wait(timeout=5) == -signal.SIGKILL
    noerror = sum(1 for r in rcodes if r == dns.rcode.NOERROR)
    lost = [i for i, r in enumerate(rcodes) if r is None]
    other = [i for i, r in enumerate(rcodes) if r is not None and r != dns.rcode.NOERROR]
    late = [i for i, r in enumerate(rcodes) if r != dns.rcode.NOERROR and sent_at[i] >= KILL_AT + GRACE]
    m = b.metrics()
    print(f"\nsigkill under load: sent {QUERIES}, NOERROR {noerror}, no answer {len(lost)}, "
          f"other rcode {len(other)}, failed after kill+{GRACE}s {len(late)}; "
          f"balancer retries {m.value('domain_park_balancer_retries_total'):.0f}, "
          f"deadline expiries {m.value('domain_park_balancer_deadline_expired_total'):.0f}")
    assert all(t is not None for t in sent_at), "the load generator could not send everything"
    if stall_first:
        assert m.value("domain_park_balancer_retries_total") >= 1, "queries held by the stalled worker re-sent"
    assert noerror >= MIN_ANSWERED * QUERIES, f"only {noerror} of {QUERIES} answered NOERROR"
    assert not late, f"{len(late)} queries sent more than {GRACE}s after the kill failed: {late[:20]}"
    assert m.value("domain_park_balancer_worker_up", worker=addr(victim)) == 0
    assert m.value("domain_park_balancer_worker_up", worker=addr(survivor)) == 1
    assert worker_queries(survivor, qtype="TXT") >= QUERIES * (1 - KILL_AT / DURATION) * 0.9

    # Restarted on the same port, the worker is probed, marked up and used again.
    victim.stop()
    restarted = procs.worker(identity="w0-restarted", port=victim.port)
    assert worker_queries(restarted, qtype="TXT") == 0  # (its start-up check asked SOA)
    deadline = time.monotonic() + 15.0  # probe backoff is capped at 5 s by default
    i = 0
    while time.monotonic() < deadline and worker_queries(restarted, qtype="TXT") == 0:
        for _ in range(20):
            r = h.query(b.port, h.make_query(f"back{run}-{i}.example.com.", "TXT"))
            assert r.rcode() == dns.rcode.NOERROR
            i += 1
        time.sleep(0.1)
    assert worker_queries(restarted, qtype="TXT") > 0, "the restarted worker got no query within 15 s"
    assert b.metrics().value("domain_park_balancer_worker_up", worker=addr(restarted)) == 1
    assert b.metrics().value("domain_park_balancer_worker_reconnects_total", worker=addr(restarted)) >= 1


def test_all_workers_down_gives_servfail_within_deadline(procs):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)], extra_args=["--deadline-ms", "1500"])
    os.kill(w.pid, signal.SIGKILL)
    w.proc.wait(timeout=5)
    for transport in ("udp", "tcp", "udp", "tcp"):
        q = h.make_query("example.com.", "TXT", edns=0)
        t0 = time.monotonic()
        r = h.query(b.port, q, transport, timeout=3.0)
        elapsed = time.monotonic() - t0
        assert r.rcode() == dns.rcode.SERVFAIL, dns.rcode.to_text(r.rcode())
        assert elapsed < 1.5 + 0.5, f"SERVFAIL after {elapsed:.2f}s, deadline 1.5s"
        assert r.question[0].name == q.question[0].name and r.edns >= 0
    assert b.metrics().value("domain_park_balancer_servfail_total") >= 4
    assert b.metrics().value("domain_park_balancer_requests_total", rcode="SERVFAIL") >= 4


def test_worker_that_stops_answering_servfail_at_deadline_then_recovers(procs):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)], extra_args=["--deadline-ms", "1500", "--attempt-timeout-ms", "400"])
    os.kill(w.pid, signal.SIGSTOP)
    try:
        q = h.make_query("stalled.example.com.", "TXT")
        t0 = time.monotonic()
        r = h.query(b.port, q, "udp", timeout=4.0)
        elapsed = time.monotonic() - t0
        assert r.rcode() == dns.rcode.SERVFAIL
        assert elapsed < 1.5 + 1.0, f"SERVFAIL after {elapsed:.2f}s, deadline 1.5s"
        m = b.metrics()
        # Three attempts of 400 ms ran out at 1.2 s, before the 1.5 s deadline: the label says so.
        assert m.value("domain_park_balancer_servfail_total", reason="retries_exhausted") == 1
        assert m.value("domain_park_balancer_servfail_total", reason="deadline") == 0
        assert m.value("domain_park_balancer_deadline_expired_total") == 0
        assert m.value("domain_park_balancer_worker_failures_total", reason="timeout") >= 1
        # Three timeouts mark it down: the next query is answered at once.
        t0 = time.monotonic()
        r = h.query(b.port, h.make_query("stalled2.example.com.", "TXT"), "tcp", timeout=4.0)
        assert r.rcode() == dns.rcode.SERVFAIL
        assert b.metrics().value("domain_park_balancer_worker_up", worker=addr(w)) == 0
    finally:
        os.kill(w.pid, signal.SIGCONT)
    # It answers the probe again and comes back.
    deadline = time.monotonic() + 10.0
    rcode = None
    while time.monotonic() < deadline:
        rcode = h.query(b.port, h.make_query("back.example.com.", "TXT"), "udp").rcode()
        if rcode == dns.rcode.NOERROR:
            break
        time.sleep(0.1)
    assert rcode == dns.rcode.NOERROR, "worker not used again within 10 s of SIGCONT"


def test_servfail_reason_deadline_when_the_deadline_cuts_an_attempt(procs):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)], extra_args=["--deadline-ms", "1200", "--attempt-timeout-ms", "1000"])
    os.kill(w.pid, signal.SIGSTOP)
    try:
        r = h.query(b.port, h.make_query("late.example.com.", "TXT"), "udp", timeout=4.0)
        assert r.rcode() == dns.rcode.SERVFAIL
        m = b.metrics()
        assert m.value("domain_park_balancer_servfail_total", reason="deadline") == 1
        assert m.value("domain_park_balancer_servfail_total", reason="retries_exhausted") == 0
        assert m.value("domain_park_balancer_deadline_expired_total") == 1
    finally:
        os.kill(w.pid, signal.SIGCONT)


def test_deadline_action_drop(procs, tmp_path):
    w = procs.worker()
    cfg = write_config(tmp_path / "drop.json", deadline_action="drop", deadline_ms=800, attempt_timeout_ms=300,
                       health_failures=100)
    b = procs.balancer(workers=[addr(w)], config=cfg)
    os.kill(w.pid, signal.SIGSTOP)
    try:
        q = h.make_query("dropped.example.com.", "TXT")
        assert h.udp_exchange(b.port, q.to_wire(), timeout=2.0) is None, "drop: no answer after the deadline"
        assert b.metrics().value("domain_park_balancer_dropped_total", reason="deadline") >= 1
    finally:
        os.kill(w.pid, signal.SIGCONT)
