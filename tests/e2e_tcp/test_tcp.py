"""TCP behaviour of both servers (the worker, and the balancer's client side, which run one
connection engine): pipelining (RFC 7766), split reads, back-pressure, idle timeout, the
connection cap, bad length prefixes, half-close, resets and edns-tcp-keepalive (RFC 7828).
Every test runs once per server kind."""

import socket
import struct
import threading
import time

import dns.edns
import dns.message
import dns.rcode
import pytest

from .servers import h

SPF = "v=spf1 -all"


def check_spf_answer(reply, qid, qname):
    r = dns.message.from_wire(reply)
    assert r.id == qid
    assert r.rcode() == dns.rcode.NOERROR
    assert r.question[0].name.to_text() == qname
    assert h.txt_strings(r.answer[0]) == [SPF]
    return r


def expect_in_order(server):
    """The worker answers a connection's queries in order; the balancer in the order its workers
    answer them, which RFC 7766 6.2.1.1 allows: then only the set of answers is checked."""
    return server.kind == "worker"


def check_answers(server, got_ids, sent_ids):
    if expect_in_order(server):
        assert got_ids == sent_ids, "answers must come back in query order"
    else:
        assert sorted(got_ids) == sorted(sent_ids), "every query answered once"


def test_100_pipelined_queries_in_one_write(server):
    queries = [h.make_query(f"host{i}.example{i % 7}.com.", "TXT", qid=1000 + i) for i in range(100)]
    blob = b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
    with h.tcp_connect(server.port, timeout=5) as s:
        s.sendall(blob)
        by_id = {q.id: q for q in queries}
        ids = []
        for _ in queries:
            reply = h.tcp_recv(s)
            qid = h.parse_header(reply)["id"]
            check_spf_answer(reply, qid, by_id[qid].question[0].name.to_text())
            ids.append(qid)
    check_answers(server, ids, [q.id for q in queries])


def test_5000_pipelined_queries_with_backpressure(server):
    """The client writes far more than the socket buffers hold before reading anything back;
    every query must still be answered (in order by the worker), with nothing lost."""
    n = 5000
    wires = [h.make_query(f"bp{i}.example.com.", "TXT", qid=i).to_wire() for i in range(n)]
    blob = b"".join(struct.pack("!H", len(w)) + w for w in wires)
    errors = []
    with h.tcp_connect(server.port, timeout=20) as s:
        def sender():
            try:
                s.sendall(blob)
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        time.sleep(0.5)  # let the server fill its output buffer while nobody reads
        ids = [h.parse_header(h.tcp_recv(s))["id"] for _ in range(n)]
        t.join(timeout=10)
    assert not errors, errors
    check_answers(server, ids, list(range(n)))


def test_query_split_byte_by_byte(server):
    q = h.make_query("sPlIt.example.com.", "TXT", qid=0x5151)
    data = struct.pack("!H", len(q.to_wire())) + q.to_wire()
    with h.tcp_connect(server.port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in data:
            s.send(bytes([b]))
            time.sleep(0.003)
        check_spf_answer(h.tcp_recv(s), 0x5151, "sPlIt.example.com.")
        # The same connection keeps working afterwards.
        q2 = h.make_query("next.example.com.", "TXT", qid=0x5152)
        h.tcp_send(s, q2.to_wire())
        check_spf_answer(h.tcp_recv(s), 0x5152, "next.example.com.")


def test_two_queries_split_across_odd_boundaries(server):
    q1 = h.make_query("one.example.com.", "TXT", qid=1)
    q2 = h.make_query("two.example.com.", "TXT", qid=2)
    blob = b"".join(struct.pack("!H", len(w)) + w for w in (q1.to_wire(), q2.to_wire()))
    cuts = [1, len(q1.to_wire()) + 1, len(q1.to_wire()) + 3, len(blob) - 1]
    with h.tcp_connect(server.port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        prev = 0
        for c in cuts + [len(blob)]:
            s.send(blob[prev:c])
            prev = c
            time.sleep(0.05)
        check_spf_answer(h.tcp_recv(s), 1, "one.example.com.")
        check_spf_answer(h.tcp_recv(s), 2, "two.example.com.")


def test_several_connections_interleaved(server):
    socks = [h.tcp_connect(server.port) for _ in range(8)]
    try:
        for rnd in range(3):
            for i, s in enumerate(socks):
                h.tcp_send(s, h.make_query(f"c{i}r{rnd}.example.com.", "TXT", qid=i * 10 + rnd).to_wire())
            for i, s in reversed(list(enumerate(socks))):
                check_spf_answer(h.tcp_recv(s), i * 10 + rnd, f"c{i}r{rnd}.example.com.")
    finally:
        for s in socks:
            s.close()


def test_idle_timeout_closes_with_fin(server_factory):
    w = server_factory("--idle-timeout", "1")
    with h.tcp_connect(w.port) as s:
        q = h.make_query("idle.example.com.", "TXT", qid=77)
        h.tcp_send(s, q.to_wire())
        check_spf_answer(h.tcp_recv(s), 77, "idle.example.com.")
        kind, info = h.wait_for_close(s, timeout=5)
        assert kind == "fin", f"expected an orderly close (FIN) after the idle timeout, got {kind} {info!r}"
        assert 0.5 <= info <= 4.0, f"closed after {info:.2f}s with --idle-timeout 1"


def test_idle_timeout_without_any_query(server_factory):
    w = server_factory("--idle-timeout", "1")
    with h.tcp_connect(w.port) as s:
        kind, info = h.wait_for_close(s, timeout=5)
        assert kind == "fin", f"expected FIN, got {kind} {info!r}"


def test_connection_cap_evicts_least_recently_active(server_factory):
    w = server_factory("--max-connections", "3")
    socks = []
    try:
        for i in range(4):
            s = h.tcp_connect(w.port)
            socks.append(s)
            h.tcp_send(s, h.make_query(f"c{i}.example.com.", "TXT", qid=100 + i).to_wire())
            if i < 3:
                check_spf_answer(h.tcp_recv(s), 100 + i, f"c{i}.example.com.")
            time.sleep(0.1)
        # The fourth connection is served ...
        check_spf_answer(h.tcp_recv(socks[3]), 103, "c3.example.com.")
        # ... and the first (least recently active) one was closed with FIN.
        kind, info = h.wait_for_close(socks[0], timeout=3)
        assert kind == "fin", f"first connection: expected FIN on eviction, got {kind} {info!r}"
        for i in (1, 2, 3):
            h.tcp_send(socks[i], h.make_query(f"again{i}.example.com.", "TXT", qid=200 + i).to_wire())
            check_spf_answer(h.tcp_recv(socks[i]), 200 + i, f"again{i}.example.com.")
    finally:
        for s in socks:
            s.close()


def test_connection_cap_respects_activity(server_factory):
    """The evicted connection is the least recently *active*, not the oldest."""
    w = server_factory("--max-connections", "3")
    socks = []
    try:
        for i in range(3):
            s = h.tcp_connect(w.port)
            socks.append(s)
            h.tcp_send(s, h.make_query(f"c{i}.example.com.", "TXT", qid=i).to_wire())
            check_spf_answer(h.tcp_recv(s), i, f"c{i}.example.com.")
            time.sleep(0.05)
        # Make the first connection the most recently active one.
        time.sleep(0.05)
        h.tcp_send(socks[0], h.make_query("fresh.example.com.", "TXT", qid=9).to_wire())
        check_spf_answer(h.tcp_recv(socks[0]), 9, "fresh.example.com.")
        time.sleep(0.05)
        s4 = h.tcp_connect(w.port)
        socks.append(s4)
        h.tcp_send(s4, h.make_query("c3.example.com.", "TXT", qid=3).to_wire())
        check_spf_answer(h.tcp_recv(s4), 3, "c3.example.com.")
        kind, info = h.wait_for_close(socks[1], timeout=3)
        assert kind == "fin", f"second connection (least recently active): expected FIN, got {kind} {info!r}"
        h.tcp_send(socks[0], h.make_query("still.example.com.", "TXT", qid=10).to_wire())
        check_spf_answer(h.tcp_recv(socks[0]), 10, "still.example.com.")
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("length", [0, 5, 11])
def test_short_length_prefix_closes(server, length):
    with h.tcp_connect(server.port) as s:
        s.sendall(struct.pack("!H", length) + b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00"[:length])
        kind, info = h.wait_for_close(s, timeout=3)
        assert kind in ("fin", "rst"), f"length prefix {length}: expected the connection closed, got {kind} {info!r}"
    # The server is fine afterwards.
    h.query(server.port, h.make_query("example.com.", "SOA"), "tcp")


def test_garbage_after_good_query_still_answers_first(server):
    q = h.make_query("first.example.com.", "TXT", qid=0x0101)
    with h.tcp_connect(server.port) as s:
        s.sendall(struct.pack("!H", len(q.to_wire())) + q.to_wire() + b"\x00\x03abc")
        check_spf_answer(h.tcp_recv(s), 0x0101, "first.example.com.")
        kind, info = h.wait_for_close(s, timeout=3)
        assert kind in ("fin", "rst"), f"expected close after the bad length, got {kind} {info!r}"


@pytest.mark.parametrize("idle,expected", [(None, 300), (7, 70)])
def test_tcp_keepalive_option(server_factory, idle, expected):
    args = ["--idle-timeout", str(idle)] if idle else []
    w = server_factory(*args)
    ka = dns.edns.GenericOption(dns.edns.OptionType.KEEPALIVE, b"")
    q = h.make_query("example.com.", "TXT", edns=0, options=[ka])
    r = dns.message.from_wire(h.tcp_exchange(w.port, q.to_wire()))
    assert r.rcode() == dns.rcode.NOERROR
    opt = h.edns_option(r, 11)
    assert opt is not None, f"no edns-tcp-keepalive option in TCP answer: {r.options}"
    data = h.option_data(opt)
    assert len(data) == 2, f"keepalive option data {data!r} must be a 16-bit timeout"
    assert struct.unpack("!H", data)[0] == expected, f"timeout {data!r}, expected {expected} (x100 ms)"

    r = dns.message.from_wire(h.udp_exchange(w.port, q.to_wire()))
    assert r.rcode() == dns.rcode.NOERROR
    assert h.edns_option(r, 11) is None, "edns-tcp-keepalive must not be sent over UDP"


def test_no_keepalive_unless_requested(server):
    q = h.make_query("example.com.", "TXT", edns=0)
    r = dns.message.from_wire(h.tcp_exchange(server.port, q.to_wire()))
    assert h.edns_option(r, 11) is None


def test_half_close_after_queries_still_answered(server):
    qs = [h.make_query(f"hc{i}.example.com.", "TXT", qid=300 + i) for i in range(3)]
    with h.tcp_connect(server.port) as s:
        s.sendall(b"".join(struct.pack("!H", len(q.to_wire())) + q.to_wire() for q in qs))
        s.shutdown(socket.SHUT_WR)
        by_id = {q.id: q for q in qs}
        ids = []
        for _ in qs:
            reply = h.tcp_recv(s)
            qid = h.parse_header(reply)["id"]
            check_spf_answer(reply, qid, by_id[qid].question[0].name.to_text())
            ids.append(qid)
        check_answers(server, ids, [q.id for q in qs])
        kind, info = h.wait_for_close(s, timeout=3)
        assert kind == "fin", f"after the client's FIN and the answers, expected FIN, got {kind} {info!r}"


def test_client_reset_mid_message_does_not_hurt(server):
    for _ in range(5):
        s = h.tcp_connect(server.port)
        q = h.make_query("reset.example.com.", "TXT").to_wire()
        s.sendall(struct.pack("!H", len(q)) + q[:10])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
    r = h.query(server.port, h.make_query("example.com.", "TXT"), "tcp")
    assert h.txt_strings(r.answer[0]) == [SPF]


def test_many_connections_over_cap(server_factory):
    w = server_factory("--max-connections", "3")
    socks = []
    try:
        for i in range(30):
            socks.append(h.tcp_connect(w.port))
        time.sleep(0.3)
        # The three most recent connections are the ones left open and they work.
        for i in (27, 28, 29):
            h.tcp_send(socks[i], h.make_query(f"m{i}.example.com.", "TXT", qid=i).to_wire())
            check_spf_answer(h.tcp_recv(socks[i]), i, f"m{i}.example.com.")
        for i in range(27):
            kind, info = h.wait_for_close(socks[i], timeout=2)
            assert kind == "fin", f"connection {i} of 30 with cap 3: expected FIN, got {kind} {info!r}"
    finally:
        for s in socks:
            s.close()
