"""Answers through the balancer are the worker's answers: byte for byte (the ID aside) over
UDP and TCP for the contract's rows, pipelined TCP, and TC=1 when a UDP client's size is too
small."""

import random
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest

from .balancer_stack import STANDARD_ARGS, Balancer, addr, h, start_worker, wc

# (qname, qtype, qclass, make_query keyword arguments): one query per row of docs/CONTRACT.md's table.
CONTRACT = [
    ("example.com.", "SOA", "IN", {}),
    ("example.com.", "NS", "IN", {}),
    ("example.co.uk.", "NS", "IN", {"edns": 0}),
    ("Www.ExAmPlE.cOm.", "TXT", "IN", {}),
    ("a.b.example.co.uk.", "TXT", "IN", {"rd": True, "cd": True}),
    ("_dmarc.example.com.", "TXT", "IN", {}),
    ("_dmarc.sub.example.org.", "TXT", "IN", {"edns": 0}),
    ("sel._domainkey.example.com.", "TXT", "IN", {}),
    ("example.com.", "MX", "IN", {}),
    ("example.com.", "CAA", "IN", {}),
    ("example.com.", "A", "IN", {}),
    ("www.example.com.", "AAAA", "IN", {}),
    ("ns1.park.example.net.", "A", "IN", {}),
    ("ns1.park.example.net.", "AAAA", "IN", {}),
    ("example.com.", "DS", "IN", {}),
    ("example.com.", "HTTPS", "IN", {}),
    ("example.com.", 999, "IN", {}),
    ("sub.example.com.", "SOA", "IN", {}),
    ("example.com.", "ANY", "IN", {}),
    ("example.com.", "AXFR", "IN", {}),
    ("com.", "SOA", "IN", {}),
    ("co.uk.", "NS", "IN", {}),
    (".", "NS", "IN", {}),
    ("example.com.", "TXT", "CH", {}),
    ("id.server.", "TXT", "CH", {}),
    ("example.com.", "TXT", "IN", {"edns": 0, "options": [dns.edns.GenericOption(dns.edns.NSID, b"")]}),
    ("example.com.", "TXT", "IN", {"edns": 1}),
    ("example.com.", "TXT", "IN", {"edns": 0, "payload": 4096}),
    ("example.com.", "TXT", "IN", {"edns": 0, "options": [dns.edns.GenericOption(65001, b"\x01\x02")]}),
]


def raw_queries():
    """Queries dnspython will not build: other opcodes and malformed questions."""
    notify = h.make_query("example.com.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    return [
        ("NOTIFY", notify.to_wire()),
        ("QDCOUNT=0", h.raw_header(0x4242, 0x0000, qd=0)),
        ("QDCOUNT=2", h.raw_header(0x4343, 0x0000, qd=2) + h.raw_question("example.com.", 16)
         + h.raw_question("example.org.", 16)),
        ("truncated question", h.raw_header(0x4444, 0x0000) + b"\x07example\x03co"),
    ]


def contract_wires():
    out = []
    for i, (qname, qtype, qclass, kw) in enumerate(CONTRACT):
        q = h.make_query(qname, qtype, qclass, qid=0x1000 + i, **kw)
        out.append((f"{qname} {qtype} {qclass} {kw}", q.to_wire()))
    return out + raw_queries()


def exchange(port, wire, transport):
    if transport == "udp":
        reply = h.udp_exchange(port, wire, timeout=3.0)
        assert reply is not None, "no UDP answer"
        return reply
    return h.tcp_exchange(port, wire, timeout=3.0)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_answers_identical_to_the_workers(pair, transport):
    worker, balancer = pair
    for what, wire in contract_wires():
        direct = exchange(worker.port, wire, transport)
        via = exchange(balancer.port, wire, transport)
        assert via[:2] == wire[:2], f"{what}: answer ID {via[:2].hex()} != query ID {wire[:2].hex()}"
        assert via == direct, (f"{what} over {transport}: balancer answer differs from the worker's\n"
                               f"worker:   {direct.hex()}\nbalancer: {via.hex()}")


def test_responses_and_runts_are_dropped(pair):
    worker, balancer = pair
    before = balancer.metrics().value("domain_park_balancer_dropped_total", reason="malformed")
    response = bytearray(h.make_query("example.com.", "TXT").to_wire())
    response[2] |= 0x80
    assert h.udp_exchange(balancer.port, bytes(response), timeout=h.NO_ANSWER_TIMEOUT) is None
    assert h.udp_exchange(balancer.port, b"\x12\x34\x01", timeout=h.NO_ANSWER_TIMEOUT) is None
    assert balancer.metrics().value("domain_park_balancer_dropped_total", reason="malformed") >= before + 2
    # Still serving.
    assert h.query(balancer.port, h.make_query("example.com.", "TXT")).rcode() == dns.rcode.NOERROR


def test_100_pipelined_queries_on_one_connection(pair):
    worker, balancer = pair
    queries = [h.make_query(f"p{i}.example{i % 7}.com.", ["TXT", "MX", "CAA", "SOA"][i % 4], qid=i + 1)
               for i in range(100)]
    with h.tcp_connect(balancer.port, timeout=5.0) as s:
        # All 100 in one write: the balancer must frame them out of one read.
        s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries)))
        answers = {}
        for _ in range(100):
            wire = h.tcp_recv(s)
            answers[struct.unpack("!H", wire[:2])[0]] = wire
    assert sorted(answers) == list(range(1, 101)), "every query answered exactly once"
    for q in queries:
        direct = h.tcp_exchange(worker.port, q.to_wire())
        assert answers[q.id] == direct, f"pipelined answer to {q.question[0]} differs from the worker's"


def test_pipelined_connection_stays_open_across_queries(pair):
    worker, balancer = pair
    with h.tcp_connect(balancer.port, timeout=5.0) as s:
        for i in range(20):
            q = h.make_query(f"k{i}.example.com.", "TXT")
            h.tcp_send(s, q.to_wire())
            r = dns.message.from_wire(h.tcp_recv(s))
            assert r.id == q.id and r.rcode() == dns.rcode.NOERROR


# Many long name server names with several addresses each: the NS answer cannot fit 1232 octets.
BIG_NS = [f"ns{i}.a-rather-long-label-to-make-the-answer-big-{i:02d}.park.example.net" for i in range(13)]


@pytest.fixture(scope="module")
def big_pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("big")
    args = []
    for i, ns in enumerate(BIG_NS):
        args += ["-n", f"{ns}:192.0.2.{i + 1},198.51.100.{i + 1},2001:db8::{i + 1},2001:db8:1::{i + 1}"]
    w = start_worker(tmp, args=args)
    try:
        b = Balancer(tmp, workers=[addr(w)])
    except BaseException:
        w.stop()
        raise
    yield w, b
    b.stop()
    w.stop()


@pytest.mark.parametrize("edns,limit", [(None, 512), (512, 512), (1000, 1000), (1232, 1232), (4096, 1232)])
def test_big_answer_truncated_over_udp(big_pair, edns, limit):
    worker, balancer = big_pair
    kw = {} if edns is None else {"edns": 0, "payload": edns}
    q = h.make_query("example.com.", "NS", **kw)
    reply = h.udp_exchange(balancer.port, q.to_wire())
    assert reply is not None
    assert len(reply) <= limit, f"UDP answer of {len(reply)} octets, client limit {limit}"
    hdr = h.parse_header(reply)
    assert hdr["id"] == q.id and hdr["qr"] and hdr["tc"], hdr
    assert hdr["rcode"] == 0 and hdr["aa"] and hdr["qdcount"] == 1
    assert hdr["ancount"] == 0 and hdr["nscount"] == 0
    qbytes = q.to_wire()[12:]
    qsec = qbytes if edns is None else qbytes[:len(qbytes) - 11]  # the question, without the OPT
    assert reply[12:12 + len(qsec)] == qsec, "a truncated answer echoes the question"
    r = dns.message.from_wire(reply)
    assert (r.edns >= 0) == (edns is not None), "OPT kept exactly when the query had one"
    assert balancer.metrics().value("domain_park_balancer_udp_truncated_total") >= 1


def test_big_answer_complete_over_tcp(big_pair):
    worker, balancer = big_pair
    q = h.make_query("example.com.", "NS", edns=0)
    via = h.tcp_exchange(balancer.port, q.to_wire())
    assert via == h.tcp_exchange(worker.port, q.to_wire())
    r = dns.message.from_wire(via)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == len(BIG_NS)
    assert len(via) > 1232


def test_listens_on_several_addresses_ipv4_and_ipv6(procs):
    try:
        port6 = wc.free_port("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    w = procs.worker()
    # The fixture's --listen 127.0.0.1:PORT plus a second address, IPv6 loopback.
    b = procs.balancer(workers=[addr(w)], extra_args=["--listen", f"[::1]:{port6}"])
    for host, port in (("::1", port6), (h.HOST, b.port)):
        for transport in ("udp", "tcp"):
            q = h.make_query("example.com.", "TXT")
            r = h.query(port, q, transport, host=host)
            assert r.rcode() == dns.rcode.NOERROR, (host, transport)


def test_worker_idle_close_is_routine(procs):
    # The worker closes idle connections after 1 s: the balancer reopens them without
    # counting a failure, and queries keep being answered.
    w = procs.worker(args=list(STANDARD_ARGS) + ["--idle-timeout", "1"])
    b = procs.balancer(workers=[addr(w)])
    for round_ in range(3):
        r = h.query(b.port, h.make_query(f"idle{round_}.example.com.", "TXT"))
        assert r.rcode() == dns.rcode.NOERROR
        time.sleep(1.6)
    m = b.metrics()
    assert m.value("domain_park_balancer_worker_up", worker=addr(w)) == 1
    assert m.value("domain_park_balancer_worker_failures_total", worker=addr(w)) == 0
    assert m.value("domain_park_balancer_worker_reconnects_total", worker=addr(w)) >= 2
    assert m.value("domain_park_balancer_retries_total") == 0


def test_garbage_never_crashes(pair):
    worker, balancer = pair
    rng = random.Random(7)
    for _ in range(2000):
        n = rng.choice([0, 1, 11, 12, 13, 30, 100, 600, 1500, 4000])
        wire = bytes(rng.getrandbits(8) for _ in range(n))
        h.udp_exchange(balancer.port, wire, timeout=0.001) if n else None
    for _ in range(20):
        with h.tcp_connect(balancer.port, timeout=2.0) as s:
            try:
                s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 3000))))
                s.settimeout(0.2)
                s.recv(65535)
            except OSError:
                pass
    assert balancer.proc.poll() is None
    assert h.query(balancer.port, h.make_query("example.com.", "TXT"), "udp").rcode() == dns.rcode.NOERROR
    assert h.query(balancer.port, h.make_query("example.com.", "TXT"), "tcp").rcode() == dns.rcode.NOERROR


def test_edns_tcp_keepalive_is_the_balancers(procs):
    """RFC 7828 through the balancer: a TCP client gets the balancer's idle timeout (not the
    worker's), a UDP client never gets the option, even though the worker sees both over TCP."""
    w = procs.worker()  # idle timeout 30 s: it would answer 300
    b = procs.balancer(workers=[addr(w)], extra_args=["--idle-timeout", "7"])
    keepalive = [dns.edns.GenericOption(11, b"")]
    for name in ("ka.example.com.", "ka.example.com."):  # the second time is not a cache hit either
        r = h.query(b.port, h.make_query(name, "TXT", edns=0, options=keepalive), "tcp")
        opt = h.edns_option(r, 11)
        assert r.rcode() == dns.rcode.NOERROR and opt is not None
        assert h.option_data(opt) == struct.pack("!H", 70)
    for name in ("ka-udp.example.com.", "ka-udp.example.com."):  # a miss, then a cache hit
        wire = h.udp_exchange(b.port, h.make_query(name, "TXT", edns=0, options=keepalive).to_wire())
        r = dns.message.from_wire(wire)
        assert r.rcode() == dns.rcode.NOERROR and r.answer
        assert h.edns_option(r, 11) is None, "edns-tcp-keepalive must not be sent over UDP"
    # The option twice in one query: every copy comes out before the query goes to a worker
    # (before, only the first did, and the UDP client got the worker's keepalive answer).
    twice = [dns.edns.GenericOption(11, b""), dns.edns.GenericOption(11, b"")]
    for name in ("ka-twice.example.com.", "ka-twice.example.com."):
        wire = h.udp_exchange(b.port, h.make_query(name, "TXT", edns=0, options=twice).to_wire())
        r = dns.message.from_wire(wire)
        assert r.rcode() == dns.rcode.NOERROR and r.answer
        assert h.edns_option(r, 11) is None, "edns-tcp-keepalive twice over UDP: still none in the answer"
