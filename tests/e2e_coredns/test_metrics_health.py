"""CoreDNS's Prometheus endpoint, parsed with prometheus_client's text parser: request counters
move by exactly the queries sent, per transport; two healthy workers record no health-check
failure; a dead worker does (so the zero is not vacuous)."""

import itertools
import time

import dns.rcode

import e2e_helpers as h
from .coredns_stack import scrape

# The names the health-check failure counters have had across CoreDNS versions; 1.14.7 has the
# first (labels proxy_name, to; appears after the first failure) and the last (no labels).
HEALTH_FAILURE_METRICS = [
    "coredns_proxy_healthcheck_failures_total",
    "coredns_forward_healthcheck_failures_total",
    "coredns_forward_healthcheck_broken_total",
]

_n = itertools.count(1)


def requests_by_proto(m):
    return {p: m.value("coredns_dns_requests_total", proto=p) for p in ("udp", "tcp")}


def settled_metrics(coredns):
    """A scrape once the request counters stand still (bounded, 5 s): CoreDNS counts a query
    after its answer is written, and a readiness probe whose answer came after its client's
    timeout is counted late."""
    last = coredns.metrics()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = coredns.metrics()
        if requests_by_proto(now) == requests_by_proto(last):
            return now
        last = now
    return last


def test_requests_total_counts_every_query(stack_factory):
    s = stack_factory(n_workers=2)
    before = settled_metrics(s.coredns)
    sent = {"udp": 0, "tcp": 0}
    # A mix: misses, a repeat (cache hit), an error and an ANY (answered by the any plugin):
    # every one is a request to CoreDNS, whoever answers it.
    names = [(f"m{next(_n)}.com.", "TXT"), ("www.mrep.com.", "A"), ("www.mrep.com.", "A"),
             ("com.", "SOA"), (f"m{next(_n)}.com.", "ANY"), (f"m{next(_n)}.co.uk.", "MX")]
    for transport, count in (("udp", 13), ("tcp", 7)):
        for i in range(count):
            qname, qtype = names[i % len(names)]
            r = h.query(s.port, h.make_query(qname, qtype), transport)
            assert r.rcode() in (dns.rcode.NOERROR, dns.rcode.REFUSED)
            sent[transport] += 1
    after = settled_metrics(s.coredns)
    b, a = requests_by_proto(before), requests_by_proto(after)
    moved = {p: a[p] - b[p] for p in a}
    assert moved == {"udp": 13, "tcp": 7}, f"coredns_dns_requests_total moved {moved}, sent {sent}"
    # Responses are counted too, one per query.
    resp = after.value("coredns_dns_responses_total") - before.value("coredns_dns_responses_total")
    assert resp == 20
    refused = (after.value("coredns_dns_responses_total", rcode="REFUSED")
               - before.value("coredns_dns_responses_total", rcode="REFUSED"))
    assert refused == sum(1 for t, c in (("udp", 13), ("tcp", 7)) for i in range(c)
                          if names[i % len(names)][0] == "com.")


def present_health_metrics(m):
    found = {}
    for name in HEALTH_FAILURE_METRICS:
        if m.has(name):
            found[name] = m.series(name)
    return found


def test_no_healthcheck_failures_with_healthy_workers(stack_factory):
    s = stack_factory(n_workers=2)
    # ~5 s of light traffic to both workers (round_robin), bounded: at most 100 queries.
    deadline = time.monotonic() + 5.0
    sent = 0
    while time.monotonic() < deadline and sent < 100:
        r = h.query(s.port, h.make_query(f"hc{next(_n)}.com.", "TXT"))
        assert r.rcode() == dns.rcode.NOERROR
        sent += 1
        time.sleep(0.05)
    m = s.coredns.metrics()
    found = present_health_metrics(m)
    print(f"\nhealth-check failure metrics present in this CoreDNS: {sorted(found) or 'none'}; "
          f"absent: {sorted(set(HEALTH_FAILURE_METRICS) - set(found))}")
    for name, series in found.items():
        for labels, value in series:
            assert value == 0, f"{name}{labels} = {value} with two healthy workers"
    # Both workers served part of the load (round_robin), seen from CoreDNS and from the workers.
    for w in s.workers:
        to = f"{h.HOST}:{w.port}"
        assert m.value("coredns_proxy_request_duration_seconds_count", to=to) > 0, f"no requests to {to}"
        assert scrape(w.metrics_addr).value("domain_park_queries_total", qtype="TXT") > 0


def test_dead_worker_records_healthcheck_failures(stack_factory):
    """The control for the test above: with one worker gone, forward's health checks of it
    fail and the counter of failures (by upstream) appears and moves, while every query is
    still answered by the other worker."""
    s = stack_factory(n_workers=2)
    dead = s.workers[1]
    dead.stop()
    dead_to = f"{h.HOST}:{dead.port}"
    failures = 0
    deadline = time.monotonic() + 6.0
    answered = 0
    while time.monotonic() < deadline and answered < 200:
        q = h.make_query(f"dead{next(_n)}.com.", "TXT")
        reply = h.udp_exchange(s.port, q.to_wire(), timeout=2.5)
        assert reply is not None, "every query must still be answered (by the live worker)"
        answered += 1
        failures = s.coredns.metrics().value("coredns_proxy_healthcheck_failures_total", to=dead_to)
        if failures >= 1:
            break
        time.sleep(0.05)
    assert failures >= 1, f"no coredns_proxy_healthcheck_failures_total for {dead_to} after {answered} queries"
