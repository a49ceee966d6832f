"""CoreDNS's cache (root Corefile: `denial 100000 3600 30`) serves negative answers: the second
query for a NODATA name is answered from the cache, not by a worker, and still carries the SOA
in AUTHORITY (RFC 2308), its TTL counting down from the first answer's."""

import itertools

import dns.flags
import dns.name
import dns.rcode
import pytest

import e2e_helpers as h
from .coredns_stack import NS1, Stack, scrape

_n = itertools.count(1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, coredns_bin):
    s = Stack(tmp_path_factory.mktemp("cache"), coredns_bin, n_workers=1)
    yield s
    s.stop()


def counters(stack):
    m = stack.coredns.metrics()
    wm = scrape(stack.workers[0].metrics_addr)
    return {
        "denial_hits": m.value("coredns_cache_hits_total", type="denial"),
        "success_hits": m.value("coredns_cache_hits_total", type="success"),
        "misses": m.value("coredns_cache_misses_total"),
        "worker_A": wm.value("domain_park_queries_total", qtype="A"),
        "worker_all": wm.value("domain_park_queries_total"),
    }


def soa_of(r, zone):
    soas = h.rrsets(r.authority, "SOA")
    assert len(soas) == 1, f"expected the SOA in AUTHORITY, got {r.authority}"
    assert soas[0].name == dns.name.from_text(zone)
    assert soas[0][0].mname == dns.name.from_text(NS1)
    return soas[0]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_nodata_second_query_from_cache(stack, transport):
    zone = f"neg{next(_n)}-{transport}.com."
    qname = "www." + zone

    c0 = counters(stack)
    r1 = h.query(stack.port, h.make_query(qname, "A"), transport)
    c1 = counters(stack)
    # First query: a cache miss that the worker answers.
    assert r1.rcode() == dns.rcode.NOERROR and r1.answer == [] and r1.flags & dns.flags.AA
    soa1 = soa_of(r1, zone)
    assert c1["worker_A"] - c0["worker_A"] == 1, "the first query must reach the worker"
    assert c1["denial_hits"] == c0["denial_hits"], "the first query is not a cache hit"
    assert c1["misses"] - c0["misses"] == 1

    r2 = h.query(stack.port, h.make_query(qname, "A"), transport)
    c2 = counters(stack)
    # Second query: served from the denial cache; the worker sees nothing.
    assert c2["denial_hits"] - c1["denial_hits"] == 1, "coredns_cache_hits_total{type=denial} must move by 1"
    assert c2["success_hits"] == c1["success_hits"]
    assert c2["misses"] == c1["misses"]
    assert c2["worker_all"] == c1["worker_all"], "the worker must not see the cached query"
    assert r2.rcode() == dns.rcode.NOERROR and r2.answer == []
    assert r2.flags & dns.flags.AA and not r2.flags & dns.flags.RA
    soa2 = soa_of(r2, zone)
    assert 0 < soa2.ttl <= soa1.ttl, f"cached SOA TTL {soa2.ttl} must not exceed the first {soa1.ttl}"
    assert soa2[0] == soa1[0], "same SOA data"


def test_other_type_same_name_is_a_miss(stack):
    """The cache keys on name and type: NODATA for A does not answer AAAA."""
    zone = f"neg{next(_n)}-types.com."
    h.query(stack.port, h.make_query(zone, "A"))
    c1 = counters(stack)
    r = h.query(stack.port, h.make_query(zone, "AAAA"))
    c2 = counters(stack)
    assert r.answer == [] and soa_of(r, zone)
    assert c2["denial_hits"] == c1["denial_hits"]
    assert c2["worker_all"] - c1["worker_all"] == 1
