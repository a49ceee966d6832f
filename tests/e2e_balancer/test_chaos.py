"""Chaos through the balancer, under a bounded load (UDP, 3,000 queries/s for 10 s, every name
new so the cache answers none): workers SIGKILLed, stalled with SIGSTOP, restarted, removed and
added by SIGHUP, then every worker stopped and started again (probes back off at most 500 ms here). Every query is accounted for: a
query whose deadline allowed a retry on a live worker must be answered (NOERROR); only queries
sent while no worker was alive may fail, and they get SERVFAIL, never silence. Throughout, the
balancer's metrics report each worker as it is (sampled during the run)."""

import os
import signal
import time

import dns.rcode

from .balancer_stack import addr, scrape, write_config
from .load import paced_udp

QUERIES = 30000
DURATION = 10.0
DEADLINE_S = 1.5  # the balancer's default deadline_ms


def test_chaos_under_load_every_retryable_query_answered(procs, tmp_path):
    w = [procs.worker(identity=f"w{i}") for i in range(3)]
    spare = procs.worker(identity="w3")
    cfg = tmp_path / "balancer.json"
    write_config(cfg, workers=[addr(x) for x in w[:3]], cache={"max_entries": 0}, health_backoff_max_ms=500)
    b = procs.balancer(config=cfg)
    ports = {x.identity: x.port for x in w + [spare]}
    samples = []  # (time, label, {worker: up})
    outage = []   # [start, end] of the time with no worker alive
    t0 = [0.0]

    def sample(label):
        def run():
            m = scrape(b.metrics_addr)
            samples.append((time.monotonic() - t0[0], label,
                            {lab["worker"]: v for lab, v in m.series("domain_park_balancer_worker_up")}))
        return run

    def kill(i):
        return lambda: os.kill(w[i].pid, signal.SIGKILL)

    def restart(i, ident):
        def run():
            w[i].stop()
            w[i] = procs.worker(identity=ident, port=ports[f"w{i}"])
        return run

    def reload(workers):
        def run():
            write_config(cfg, workers=workers, cache={"max_entries": 0}, health_backoff_max_ms=500)
            b.signal(signal.SIGHUP)
        return run

    def all_down():
        outage.append(time.monotonic() - t0[0])
        for x in w:
            os.kill(x.pid, signal.SIGKILL)
        os.kill(spare.pid, signal.SIGKILL)

    def all_up():
        for i in range(3):
            restart(i, f"w{i}-again")()
        spare.stop()
        outage.append(time.monotonic() - t0[0])

    a0, a1, a2, a3 = (f"127.0.0.1:{ports[k]}" for k in ("w0", "w1", "w2", "w3"))
    events = [
        (0.9, sample("start")),
        (1.0, kill(0)),                                  # a worker dies
        (1.8, sample("w0 killed")),
        (2.0, lambda: os.kill(w[1].pid, signal.SIGSTOP)),  # another stalls ...
        (2.6, lambda: os.kill(w[1].pid, signal.SIGCONT)),  # ... and comes back
        (3.0, restart(0, "w0-restarted")),               # the dead one is restarted
        (4.5, reload([a0, a1, a3])),                     # w2 removed, w3 added
        (5.5, sample("w2 out, w3 in")),
        (6.0, all_down),                                 # every worker gone
        (6.7, sample("all down")),
        (7.0, all_up),                                   # and back (w3 stays down: removed below)
        (7.2, reload([a0, a1, a2])),
        (9.0, sample("all back")),
    ]
    t0[0] = time.monotonic()
    sent_at, rcodes = paced_udp(b.port, [f"c{i}.example{i % 50}.com." for i in range(QUERIES)], DURATION,
                                events=events, wait_after=3.0)
    down_from, up_at = outage
    # A query sent within a deadline before the outage may have been on a worker that died with
    # every other; one sent during it finds none. After it, probes bring workers back (backoff
    # from 100 ms): allow a second for that.
    window = (down_from - DEADLINE_S, up_at + 1.0)
    inside = [i for i, t in enumerate(sent_at) if window[0] <= t <= window[1]]
    outside = [i for i, t in enumerate(sent_at) if not window[0] <= t <= window[1]]
    noerror_out = sum(1 for i in outside if rcodes[i] == dns.rcode.NOERROR)
    lost = [i for i, r in enumerate(rcodes) if r is None]
    servfail_in = sum(1 for i in inside if rcodes[i] == dns.rcode.SERVFAIL)
    noerror_in = sum(1 for i in inside if rcodes[i] == dns.rcode.NOERROR)
    print(f"\nchaos: {QUERIES} queries; outside the outage window {len(outside)}: {noerror_out} NOERROR "
          f"({100.0 * noerror_out / len(outside):.2f} %); inside {len(inside)}: {noerror_in} NOERROR, "
          f"{servfail_in} SERVFAIL; no answer {len(lost)}")
    assert all(t is not None for t in sent_at), "the load generator could not send everything"
    assert not lost, f"{len(lost)} queries got no answer at all (never silence): {lost[:10]}"
    assert noerror_out == len(outside), \
        f"{len(outside) - noerror_out} queries that had a live worker to retry on were not answered"
    assert noerror_in + servfail_in == len(inside), "inside the outage: NOERROR or SERVFAIL only"

    by = {label: up for _, label, up in samples}
    assert by["start"] == {a0: 1, a1: 1, a2: 1}
    assert by["w0 killed"][a0] == 0 and by["w0 killed"][a1] == 1 and by["w0 killed"][a2] == 1
    assert by["w2 out, w3 in"] == {a0: 1, a1: 1, a2: 0, a3: 1}
    assert all(v == 0 for v in by["all down"].values()), by["all down"]
    assert by["all back"][a0] == 1 and by["all back"][a1] == 1 and by["all back"][a2] == 1
    assert by["all back"][a3] == 0  # removed again
