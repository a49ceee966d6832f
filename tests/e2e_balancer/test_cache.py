"""The balancer's answer cache with real processes: a hit restores the client's ID and exact
name case, counts TTLs down, is keyed on DO/CD/EDNS, is truncated per client; negative answers
are cached; the cache can be turned off; a reload empties it; with serve-stale, expired
entries answer when no worker can (RFC 8767), and without it the client gets SERVFAIL."""

import signal
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from .balancer_stack import addr, h, worker_queries, write_config


def ttls(msg):
    return [rr.ttl for section in (msg.answer, msg.authority, msg.additional) for rr in section]


def test_hit_restores_id_and_case_and_skips_the_worker(procs):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)])
    before = worker_queries(w, qtype="TXT")
    first = h.query(b.port, h.make_query("CaChE-One.Example.COM.", "TXT", qid=0x1111))
    for transport, qid, name in (("udp", 0x2222, "cAcHe-oNe.eXample.com."), ("tcp", 0x3333, "CACHE-ONE.EXAMPLE.COM.")):
        q = h.make_query(name, "TXT", qid=qid)
        wire = h.udp_exchange(b.port, q.to_wire()) if transport == "udp" else h.tcp_exchange(b.port, q.to_wire())
        r = dns.message.from_wire(wire)
        assert r.id == qid
        # The question, and the answer's owner (a pointer to it), in the client's exact case.
        assert r.question[0].name.to_text() == name
        assert r.answer[0].name.to_text() == name
        assert wire[12:12 + len(q.to_wire()) - 12] == q.to_wire()[12:], "question octets echoed exactly"
        assert r.answer == first.answer and r.flags == first.flags
    assert worker_queries(w, qtype="TXT") - before == 1, "the two repeats were answered from the cache"
    m = b.metrics()
    assert m.value("domain_park_balancer_cache_lookups_total", result="hit") >= 2


def test_ttls_count_down_on_hits(procs):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)])
    q = h.make_query("countdown.example.com.", "TXT")
    direct = ttls(h.query(w.port, q))
    assert ttls(h.query(b.port, q)) == direct  # the miss passes the worker's TTLs through
    time.sleep(2.2)
    later = ttls(h.query(b.port, q))
    assert all(t0 - t in (2, 3) for t0, t in zip(direct, later)), (direct, later)


def test_negative_answers_are_cached_with_their_soa(procs):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)])
    q = h.make_query("neg.example.com.", "HTTPS")  # NODATA with the SOA of example.com
    first = h.query(b.port, q)
    before = worker_queries(w, qtype="HTTPS")
    again = h.query(b.port, h.make_query("neg.example.com.", "HTTPS"))
    assert worker_queries(w, qtype="HTTPS") == before
    assert again.rcode() == dns.rcode.NOERROR and not again.answer
    assert again.authority == first.authority and again.authority[0].rdtype == dns.rdatatype.SOA


@pytest.mark.parametrize("a,b_kw", [
    ({"edns": 0}, {}),                       # EDNS present or not
    ({"edns": 0}, {"edns": 0, "want_do": True}),  # DO
    ({}, {"cd": True}),                      # CD
])
def test_query_flags_the_answer_depends_on_are_part_of_the_key(procs, a, b_kw):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)])
    name = f"key-{len(a)}-{len(b_kw)}.example.com."

    def make(kw):
        kw = dict(kw)
        want_do = kw.pop("want_do", False)
        q = h.make_query(name, "TXT", **kw)
        if want_do:
            q.want_dnssec(True)
        return q

    before = worker_queries(w, qtype="TXT")
    ra = h.query(b.port, make(a))
    rb = h.query(b.port, make(b_kw))
    assert worker_queries(w, qtype="TXT") - before == 2, "a different key must reach the worker"
    assert (ra.edns >= 0) == ("edns" in a) and (rb.edns >= 0) == ("edns" in b_kw)
    assert bool(rb.flags & dns.flags.CD) == b_kw.get("cd", False)
    # ...and each is a hit when repeated.
    h.query(b.port, make(a))
    h.query(b.port, make(b_kw))
    assert worker_queries(w, qtype="TXT") - before == 2


def test_hits_are_truncated_per_client(procs):
    args = []
    for i in range(13):  # an NS answer that cannot fit 1232 octets
        args += ["-n", f"ns{i}.a-rather-long-label-to-make-the-answer-big-{i:02d}.park.example.net:"
                       f"192.0.2.{i + 1},198.51.100.{i + 1},2001:db8::{i + 1},2001:db8:1::{i + 1}"]
    w = procs.worker(args=args)
    b = procs.balancer(workers=[addr(w)])
    q = h.make_query("example.com.", "NS", edns=0, payload=4096)
    full = h.tcp_exchange(b.port, q.to_wire())  # fills the cache with the big answer
    assert len(full) > 1232
    for payload, limit in ((None, 512), (1232, 1232), (4096, 1232)):
        kw = {} if payload is None else {"edns": 0, "payload": payload}
        reply = h.udp_exchange(b.port, h.make_query("example.com.", "NS", **kw).to_wire())
        assert reply is not None and len(reply) <= limit and h.parse_header(reply)["tc"]
    again = h.tcp_exchange(b.port, q.to_wire())
    assert len(again) == len(full) and not h.parse_header(again)["tc"]
    assert b.metrics().value("domain_park_balancer_cache_lookups_total", result="hit") >= 3


def test_cache_off(procs):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)], extra_args=["--cache-entries", "0"])
    before = worker_queries(w, qtype="TXT")
    for _ in range(5):
        h.query(b.port, h.make_query("nocache.example.com.", "TXT"))
    assert worker_queries(w, qtype="TXT") - before == 5
    assert b.metrics().value("domain_park_balancer_cache_entries") == 0


def test_reload_empties_the_cache(procs, tmp_path):
    w = procs.worker()
    cfg = write_config(tmp_path / "b.json", workers=[addr(w)])
    b = procs.balancer(config=cfg)
    q = h.make_query("reload.example.com.", "TXT")
    h.query(b.port, q)
    before = worker_queries(w, qtype="TXT")
    h.query(b.port, q)
    assert worker_queries(w, qtype="TXT") == before
    b.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while b.metrics().value("domain_park_balancer_config_reloads_total", result="success") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    h.query(b.port, q)
    assert worker_queries(w, qtype="TXT") == before + 1


def stale_stack(procs, tmp_path, serve_stale):
    w = procs.worker()
    cfg = write_config(tmp_path / "b.json", workers=[addr(w)], deadline_ms=800, attempt_timeout_ms=300,
                       cache={"max_ttl": 1, "serve_stale": serve_stale, "stale_ttl": 30})
    b = procs.balancer(config=cfg)
    h.query(b.port, h.make_query("stale.example.com.", "TXT"))  # cached for 1 s
    w.stop()
    time.sleep(1.3)  # expired now
    return b


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_serve_stale_when_no_worker_answers(procs, tmp_path, transport):
    b = stale_stack(procs, tmp_path, serve_stale=3600)
    t0 = time.monotonic()
    r = h.query(b.port, h.make_query("STALE.example.com.", "TXT"), transport, timeout=3.0)
    assert time.monotonic() - t0 < 1.5, "within the deadline"
    assert r.rcode() == dns.rcode.NOERROR and r.answer
    assert r.question[0].name.to_text() == "STALE.example.com."
    assert set(ttls(r)) == {30}, "stale answers carry stale_ttl (RFC 8767)"
    # A name never cached: SERVFAIL, also within the deadline.
    t0 = time.monotonic()
    r = h.query(b.port, h.make_query("never.example.com.", "TXT"), transport, timeout=3.0)
    assert r.rcode() == dns.rcode.SERVFAIL and time.monotonic() - t0 < 1.5
    assert b.metrics().value("domain_park_balancer_cache_lookups_total", result="stale") >= 1


def test_no_stale_answers_unless_enabled(procs, tmp_path):
    b = stale_stack(procs, tmp_path, serve_stale=0)
    t0 = time.monotonic()
    r = h.query(b.port, h.make_query("stale.example.com.", "TXT"), timeout=3.0)
    assert r.rcode() == dns.rcode.SERVFAIL and time.monotonic() - t0 < 1.5
    assert b.metrics().value("domain_park_balancer_cache_lookups_total", result="stale") == 0


def test_thousands_of_pipelined_cache_hits_on_one_connection(procs, tmp_path):
    """Cache hits are answered at once, inside the read that brought them: the connection's
    unsent-bytes cap must pause and resume reading without losing or stalling any answer."""
    w = procs.worker()
    b = procs.balancer(config=write_config(tmp_path / "b.json", workers=[addr(w)], tcp_max_pending_bytes=8192))
    names = [f"pipe-{i}.example.com." for i in range(30)]
    for n in names:
        h.query(b.port, h.make_query(n, "TXT"), "tcp")  # cached now
    queries = [h.make_query(names[i % 30], "TXT", qid=i) for i in range(3000)]
    with h.tcp_connect(b.port, timeout=10.0) as s:
        s.sendall(b"".join(len(q.to_wire()).to_bytes(2, "big") + q.to_wire() for q in queries))
        seen = set()
        for _ in queries:
            r = dns.message.from_wire(h.tcp_recv(s))
            assert r.rcode() == dns.rcode.NOERROR and r.answer and r.id not in seen
            seen.add(r.id)
    assert seen == set(range(3000))
    m = b.metrics()
    assert m.value("domain_park_balancer_cache_lookups_total", result="hit") >= 3000
    assert m.value("domain_park_balancer_tcp_read_paused_total") >= 1, "the 8 KiB cap should have paused reading"
