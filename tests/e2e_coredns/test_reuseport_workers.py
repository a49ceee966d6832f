"""Past forward's 15-upstream limit, the documented way: several workers share ONE address with
--reuseport (distinct --identity each) and CoreDNS forwards to that single address. CoreDNS
opens several pooled TCP connections under concurrent load and the kernel spreads them across
the workers."""

import itertools
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import dns.rcode

import e2e_helpers as h
from .coredns_stack import ROOT_COREFILE, scrape

THREADS = 50
PER_THREAD = 20
N_WORKERS = 3
_run = itertools.count(1)


def concurrent_queries(port, make_name, qtype, rdclass="IN", transport="udp"):
    """THREADS threads x PER_THREAD queries, all in flight together; returns the replies."""
    start = threading.Barrier(THREADS, timeout=10)

    def client(t):
        start.wait()
        out = []
        for i in range(PER_THREAD):
            q = h.make_query(make_name(t, i), qtype, rdclass)
            out.append(h.query(port, q, transport, timeout=5.0))
        return out

    with ThreadPoolExecutor(max_workers=THREADS) as ex:
        return [r for rs in ex.map(client, range(THREADS)) for r in rs]


def test_reuseport_workers_share_one_upstream(stack_factory):
    """The repository's Corefile with DP_WORKERS = the one shared address: every query is
    answered and more than one worker answers (each worker's own counter; the queries use
    distinct names, so none is a cache hit)."""
    s = stack_factory(n_workers=N_WORKERS, reuseport=True)
    assert len({w.port for w in s.workers}) == 1 and s.coredns.upstreams == [f"{h.HOST}:{s.workers[0].port}"]
    before = [scrape(w.metrics_addr).value("domain_park_queries_total", qtype="TXT") for w in s.workers]
    run = next(_run)
    replies = concurrent_queries(s.port, lambda t, i: f"rp{run}-{t}-{i}.com.", "TXT")
    assert len(replies) == THREADS * PER_THREAD
    assert all(r.rcode() == dns.rcode.NOERROR and r.answer for r in replies)
    after = [scrape(w.metrics_addr).value("domain_park_queries_total", qtype="TXT") for w in s.workers]
    moved = {w.identity: a - b for w, a, b in zip(s.workers, after, before)}
    print(f"\nqueries answered per worker: {moved}")
    assert sum(moved.values()) == THREADS * PER_THREAD, moved
    assert sum(1 for v in moved.values() if v > 0) > 1, f"only one worker answered: {moved}"
    conns = sum(scrape(w.metrics_addr).value("domain_park_tcp_connections_accepted_total") for w in s.workers)
    assert conns > 1, "CoreDNS should have opened several connections"


def corefile_without_cache(tmp_path):
    """The root Corefile minus its cache block. With the cache, `id.server CH TXT` is answered
    from the cache for 30 s (the cache's minimum TTL) after the first answer, i.e. always by
    the same worker, so identities can only be seen without it."""
    text = ROOT_COREFILE.read_text()
    new, n = re.subn(r"\n    cache 3600 \{.*?\n    \}\n", "\n", text, flags=re.S)
    assert n == 1, "cache block not found in the root Corefile"
    out = tmp_path / "Corefile.nocache"
    out.write_text(new)
    return out


def test_reuseport_identities_via_chaos(stack_factory, tmp_path):
    s = stack_factory(n_workers=N_WORKERS, reuseport=True, corefile=corefile_without_cache(tmp_path),
                      identities=[f"reuse-{i}" for i in range(N_WORKERS)])
    replies = concurrent_queries(s.port, lambda t, i: "id.server.", "TXT", "CH")
    assert len(replies) == THREADS * PER_THREAD
    assert all(r.rcode() == dns.rcode.NOERROR and r.answer for r in replies)
    seen = {}
    for r in replies:
        ident = h.txt_strings(r.answer[0])[0]
        seen[ident] = seen.get(ident, 0) + 1
    print(f"\nidentities answering id.server CH TXT: {seen}")
    assert set(seen) <= {w.identity for w in s.workers}
    assert len(seen) > 1, f"only one worker identity answered: {seen}"
