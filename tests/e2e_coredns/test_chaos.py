"""Chaos through CoreDNS (the repository's Corefile: forward over persistent TCP to three
workers, health checks every second), under the same bounded load as the balancer's chaos test
(UDP, 3,000 queries/s for 10 s, every name new): a worker SIGKILLed, another stalled with
SIGSTOP, the dead one restarted, then every worker stopped and started again. Every query is
accounted for and the shares are reported; the assertions hold CoreDNS to what it does (see
tests/e2e_coredns/README.md "Chaos"): no query is left without an answer outside the moments a
worker dies or stalls with queries on it, and it recovers by itself."""

import os
import signal
import sys
import time
from pathlib import Path

import dns.rcode

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.e2e_balancer.load import paced_udp  # noqa: E402

from .coredns_stack import STANDARD_ARGS  # noqa: E402

QUERIES = 30000
DURATION = 10.0


def test_chaos_through_coredns_accounted(stack_factory):
    s = stack_factory(n_workers=3)
    w = s.workers
    ports = [x.port for x in w]
    marks = {}
    t0 = [0.0]

    def mark(name):
        marks[name] = time.monotonic() - t0[0]

    def restart(i, ident):
        w[i].stop()
        s.start_worker(i, STANDARD_ARGS, ident, port=ports[i])

    def kill0():
        mark("kill")
        os.kill(w[0].pid, signal.SIGKILL)

    def stop1():
        mark("stop")
        os.kill(w[1].pid, signal.SIGSTOP)

    def all_down():
        mark("down")
        for x in s.workers:
            os.kill(x.pid, signal.SIGKILL)

    def all_up():
        for i in range(3):
            restart(i, f"w{i}-again")
        mark("up")

    events = [
        (1.0, kill0),
        (2.0, stop1),
        (2.6, lambda: os.kill(s.workers[1].pid, signal.SIGCONT)),
        (3.0, lambda: restart(0, "w0-restarted")),
        (6.0, all_down),
        (7.0, all_up),
    ]
    t0[0] = time.monotonic()
    sent_at, rcodes = paced_udp(s.port, [f"c{i}.example{i % 50}.com." for i in range(QUERIES)], DURATION,
                                events=events, wait_after=6.0)
    assert all(t is not None for t in sent_at), "the load generator could not send everything"

    def window(a, b):
        return [i for i, t in enumerate(sent_at) if a <= t <= b]

    def share(idx):
        ok = sum(1 for i in idx if rcodes[i] == dns.rcode.NOERROR)
        none = sum(1 for i in idx if rcodes[i] is None)
        return ok, none, len(idx) - ok - none, len(idx)

    calm = window(0, marks["kill"]) + window(marks["stop"] + 1.5, marks["down"] - 1.0) + window(marks["up"] + 3.0, 99)
    events_window = window(marks["kill"], marks["stop"] + 1.5)
    outage = window(marks["down"] - 1.0, marks["up"] + 3.0)
    for name, idx in (("calm", calm), ("kill and stall", events_window), ("all down and back", outage)):
        ok, none, other, n = share(idx)
        print(f"\nchaos via CoreDNS, {name}: {n} queries, {ok} NOERROR ({100.0 * ok / max(n, 1):.2f} %), "
              f"{other} other rcode, {none} no answer")
    ok, none, other, n = share(calm)
    assert ok == n, f"{n - ok} of {n} queries sent while no worker was dying or down were not answered"
    # After everything came back, the last second is answered in full: it recovered by itself.
    tail = window(DURATION - 1.0, 99)
    assert all(rcodes[i] == dns.rcode.NOERROR for i in tail), "CoreDNS did not recover"
