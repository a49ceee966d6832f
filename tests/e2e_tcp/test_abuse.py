"""The abuse suite: what a hostile client does to a public server, against the worker and
against the balancer, each run bounded in count and time. During every abuse a well-behaved
client keeps getting correct answers within its timeout, the server's RSS stays under a bound
the test states, and the metric that counts the refusal moves. (Descriptor exhaustion under a
low limit, with recovery, and the metrics endpoint under slow HTTP clients are in
test_limits.py.)"""

import random
import resource
import socket
import struct
import threading
import time

import dns.rcode
import pytest

from .servers import close_all, h

SPF = "v=spf1 -all"


@pytest.fixture(autouse=True)
def enough_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def well_behaved(server, n=5):
    """n queries over UDP (with the retries a resolver makes) and n over TCP, all answered right."""
    for i in range(n):
        for transport in ("udp", "tcp"):
            name = f"good{i}-{transport}-{time.monotonic_ns()}.example.com."
            for attempt in range(3):
                try:
                    r = h.query(server.port, h.make_query(name, "TXT"), transport, timeout=1.0)
                    break
                except (AssertionError, OSError, EOFError):
                    if attempt == 2:
                        raise
            assert r.rcode() == dns.rcode.NOERROR and h.txt_strings(r.answer[0]) == [SPF]


def connect_many(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect((h.HOST, port))
        except BlockingIOError:
            pass
        socks.append(s)
    return socks


def mib(kib):
    return kib / 1024.0


def test_10000_idle_connections(server_factory):
    # A long idle timeout, so that late connections find the early ones still open (at the cap)
    # and not already closed as idle.
    server = server_factory("--max-connections", "5000", "--idle-timeout", "120")
    base = server.rss_kib()
    socks = connect_many(server.port, 10000)
    try:
        # The kernel's accept queue overflows under a burst of 10,000 SYNs; the dropped ones are
        # retransmitted after 1, 3, 7 ... s, so on a slow machine the last connections arrive
        # well after the burst. Wait for them (bounded) rather than for a fixed time.
        deadline = time.monotonic() + 30
        while (time.monotonic() < deadline
               and server.metric("tcp_connections_closed_total", reason="evicted") < 4900):
            time.sleep(0.5)
        well_behaved(server)
        grown = server.rss_kib() - base
        print(f"\n{server.kind}: 10,000 idle connections, cap 5,000: RSS +{mib(grown):.1f} MiB")
        assert grown < 24 * 1024, f"RSS grew {mib(grown):.1f} MiB (bound 24 MiB)"
        assert server.metric("tcp_connections_closed_total", reason="evicted") >= 4900
        # The evicted ones wait for their peers' FIN (which never comes) for tcp_close_grace (5 s),
        # then give their descriptors back.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server.metric("tcp_connections_open") > 5001:
            time.sleep(0.5)
        assert server.metric("tcp_connections_open") <= 5001
    finally:
        close_all(socks)


def test_1000_slowloris_connections(server_factory):
    server = server_factory(config={"tcp_message_timeout": 3})
    base = server.rss_kib()
    socks = [h.tcp_connect(server.port) for _ in range(1000)]
    try:
        for s in socks:
            s.setblocking(False)
            s.send(struct.pack("!H", 300))  # announces 300 octets
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for s in socks:
                try:
                    s.send(b"x")  # an octet a second, per connection
                except OSError:
                    pass
            well_behaved(server, 1)
            if server.metric("tcp_connections_closed_total", reason="message_timeout") >= 1000:
                break
            time.sleep(1.0)
        grown = server.rss_kib() - base
        print(f"\n{server.kind}: 1,000 slowloris connections: RSS +{mib(grown):.1f} MiB")
        assert server.metric("tcp_connections_closed_total", reason="message_timeout") == 1000
        assert grown < 16 * 1024
    finally:
        close_all(socks)


def test_1000_connections_announcing_65535_and_sending_half(server_factory):
    budget = 16 << 20
    server = server_factory(config={"tcp_max_input_bytes": budget, "tcp_message_timeout": 60})
    base = server.rss_kib()
    half = struct.pack("!H", 65535) + b"h" * 32767
    socks = []
    try:
        for _ in range(1000):
            s = h.tcp_connect(server.port)
            s.setblocking(False)
            try:
                s.send(half)
            except OSError:
                pass
            socks.append(s)
        time.sleep(1.5)
        well_behaved(server)
        grown = server.rss_kib() - base
        held = server.metric("tcp_input_bytes")
        closed = server.metric("tcp_connections_closed_total", reason="input_budget")
        print(f"\n{server.kind}: 1,000 half-sent 64 KiB messages, budget 16 MiB: held {held / 2**20:.1f} MiB, "
              f"{closed:.0f} closed for the budget, RSS +{mib(grown):.1f} MiB")
        assert held <= budget
        assert closed >= 1000 - budget // 32768
        assert grown < 28 * 1024, f"RSS grew {mib(grown):.1f} MiB (bound 28 MiB)"
    finally:
        close_all(socks)


def test_pipelining_100000_queries_without_reading(server_factory):
    server = server_factory()
    base = server.rss_kib()
    n = 100000
    wires = [h.make_query(f"p{i}.example{i % 20}.com.", "TXT", qid=i & 0xFFFF).to_wire() for i in range(n)]
    blob = b"".join(struct.pack("!H", len(w)) + w for w in wires)
    with h.tcp_connect(server.port, timeout=30) as s:
        sender = threading.Thread(target=s.sendall, args=(blob,), daemon=True)
        sender.start()
        time.sleep(2.0)  # nothing is read meanwhile
        well_behaved(server)
        grown = server.rss_kib() - base
        paused = server.metric("tcp_read_paused_total")
        print(f"\n{server.kind}: 100,000 pipelined queries unread: RSS +{mib(grown):.1f} MiB, reading paused {paused:.0f}x")
        assert paused >= 1
        assert grown < 16 * 1024
        # The client reads at last: every query is answered.
        got = 0
        for _ in range(n):
            h.tcp_recv(s)
            got += 1
        sender.join(timeout=10)
    assert got == n


def test_connections_reset_mid_answer(server_factory):
    server = server_factory()
    wires = b"".join(struct.pack("!H", len(w)) + w for w in
                     (h.make_query(f"r{i}.example.com.", "TXT", qid=i).to_wire() for i in range(2000)))
    before = server.metric("tcp_connections_closed_total")
    base = server.rss_kib()
    for _ in range(100):
        s = h.tcp_connect(server.port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(wires)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST while the answers are on their way
    time.sleep(0.5)
    well_behaved(server)
    assert server.metric("tcp_connections_closed_total") - before >= 100
    assert server.metric("tcp_connections_open") == 0
    assert server.rss_kib() - base < 8 * 1024


def test_half_closed_connections_get_their_answers(server_factory):
    server = server_factory()
    before = server.metric("tcp_connections_closed_total", reason="peer")
    socks = []
    for i in range(500):
        s = h.tcp_connect(server.port)
        h.tcp_send(s, h.make_query(f"hc{i}.example.com.", "TXT", qid=i).to_wire())
        s.shutdown(socket.SHUT_WR)
        socks.append(s)
    try:
        for i, s in enumerate(socks):
            assert h.parse_header(h.tcp_recv(s))["id"] == i
            kind, _ = h.wait_for_close(s, timeout=3)
            assert kind == "fin"
        assert server.metric("tcp_connections_closed_total", reason="peer") - before == 500
        well_behaved(server)
    finally:
        close_all(socks)


def test_udp_flood_of_garbage_and_of_responses(server_factory):
    server = server_factory()
    base = server.rss_kib()
    rng = random.Random(20261201)
    response = h.make_query("example.com.", "TXT").to_wire()
    response = response[:2] + bytes([response[2] | 0x80]) + response[3:]  # QR=1
    stop = threading.Event()

    def flood():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((h.HOST, server.port))
            s.setblocking(False)
            for i in range(100000):
                if stop.is_set():
                    break
                data = response if i % 2 else bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))
                try:
                    s.send(data)
                except (BlockingIOError, ConnectionRefusedError):
                    time.sleep(0.0005)

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        well_behaved(server)
    finally:
        stop.set()
        t.join(timeout=30)
    time.sleep(0.3)
    m = server.metrics()
    if server.kind == "worker":
        dropped = m.value("domain_park_dropped_total", transport="udp")
        assert m.value("domain_park_malformed_total", reason="is_response") > 1000
    else:
        dropped = m.value("domain_park_balancer_dropped_total", reason="malformed")
    print(f"\n{server.kind}: UDP flood of garbage and responses: {dropped:.0f} dropped, RSS +{mib(server.rss_kib() - base):.1f} MiB")
    assert dropped > 1000
    assert server.rss_kib() - base < 8 * 1024
    well_behaved(server)
