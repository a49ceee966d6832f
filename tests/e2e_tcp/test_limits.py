"""The limits that keep strangers from wearing the TCP side down, tried as an attacker would,
against both servers: slow senders (a message deadline; octets are not activity), input held
by half-sent messages (bounded for the process, memory given back), descriptor exhaustion
(refused cleanly, counted, recovered from), the metrics endpoint under slow HTTP clients, a
reload that changes TCP settings (re-derived, applied). Every load is bounded in count and time."""

import select
import signal
import socket
import struct
import subprocess
import threading
import time

import dns.edns
import dns.message
import dns.rcode
import pytest

from .servers import close_all, h, scrape

SPF = "v=spf1 -all"


def good_answer(server, transport="tcp", name="ok.example.com."):
    r = h.query(server.port, h.make_query(name, "TXT"), transport, timeout=3.0)
    assert r.rcode() == dns.rcode.NOERROR and h.txt_strings(r.answer[0]) == [SPF]


def closed_by_server(sock):
    """True once the server closed (FIN or reset) the socket; never blocks."""
    try:
        r, _, _ = select.select([sock], [], [], 0)
        if not r:
            return False
        return sock.recv(65536) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_slowloris_message_deadline(server_factory):
    """A length prefix, then an octet at a time: before, every octet refreshed the idle timer
    and such a connection stayed forever. Now the whole message has tcp_message_timeout."""
    server = server_factory(config={"tcp_message_timeout": 2, "tcp_idle_timeout": 60})
    socks = [h.tcp_connect(server.port) for _ in range(20)]
    try:
        for s in socks:
            s.sendall(struct.pack("!H", 500))  # announces 500 octets
        open_ = set(range(len(socks)))
        deadline = time.monotonic() + 8
        while open_ and time.monotonic() < deadline:
            for i in list(open_):
                if closed_by_server(socks[i]):
                    open_.discard(i)
                    continue
                try:
                    socks[i].send(b"x")
                except OSError:
                    open_.discard(i)
            good_answer(server)  # a well-behaved client is served meanwhile
            time.sleep(0.25)
        assert not open_, f"{len(open_)} trickling connections still open after 8 s (message timeout 2 s)"
        assert server.metric("tcp_connections_closed_total", reason="message_timeout") == 20
    finally:
        close_all(socks)


def test_trickling_connections_are_evicted_before_active_ones(server_factory):
    """At the cap the least recently active connection goes; octets of an unfinished message
    are not activity, so a trickling connection cannot push real clients out."""
    server = server_factory("--max-connections", "4")
    trickle = [h.tcp_connect(server.port) for _ in range(3)]
    real = h.tcp_connect(server.port)
    try:
        h.tcp_send(real, h.make_query("real.example.com.", "TXT", qid=7).to_wire())
        assert h.parse_header(h.tcp_recv(real))["id"] == 7
        for _ in range(4):  # the trickling ones keep sending after the real client's last query
            time.sleep(0.2)
            for s in trickle:
                s.send(b"\x01")
        newcomers = [h.tcp_connect(server.port) for _ in range(3)]
        time.sleep(0.5)
        assert all(closed_by_server(s) for s in trickle), "the trickling connections should have been evicted"
        h.tcp_send(real, h.make_query("still.example.com.", "TXT", qid=8).to_wire())
        assert h.parse_header(h.tcp_recv(real))["id"] == 8, "the real client was evicted"
        close_all(newcomers)
    finally:
        close_all(trickle + [real])


def test_half_sent_messages_bounded_for_the_process_and_memory_returned(server_factory):
    """300 connections each announcing 65,535 octets and sending 65,000: before, each held 64 KiB
    (~19 MiB) that stayed in the process after they closed. Now the process holds at most
    tcp_max_input_bytes (the oldest incomplete messages' connections are closed to stay under
    it) and gives the memory back when they are gone."""
    budget = 4 << 20
    server = server_factory(config={"tcp_max_input_bytes": budget, "tcp_message_timeout": 60})
    good_answer(server)
    base = server.rss_kib()
    socks = []
    try:
        chunk = struct.pack("!H", 65535) + b"a" * 65000
        for _ in range(300):
            s = h.tcp_connect(server.port)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            try:
                s.sendall(chunk)
            except OSError:
                pass  # closed already: over the budget
            socks.append(s)
        time.sleep(1.0)
        good_answer(server)
        held = server.metric("tcp_input_bytes")
        grown = server.rss_kib() - base
        closed = server.metric("tcp_connections_closed_total", reason="input_budget")
        assert held <= budget, f"{held} octets held, budget {budget}"
        assert closed >= 300 - budget // 65536, f"only {closed} connections closed for the input budget"
        assert grown < (budget >> 10) + 6 * 1024, f"RSS grew {grown} KiB with a {budget >> 10} KiB input budget"
    finally:
        close_all(socks)
    time.sleep(1.0)
    good_answer(server)
    assert server.metric("tcp_input_bytes") == 0
    back = server.rss_kib() - base
    assert back < 3 * 1024, f"RSS still {back} KiB above its start after the connections closed"


def fd_count(pid):
    import os
    return len(os.listdir(f"/proc/{pid}/fd"))


def set_nofile(pid, n):
    """The process's soft descriptor limit (the hard one stays: lowering and raising the soft
    limit up to it needs no privilege)."""
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={n}:"], check=True)


def hard_nofile(pid):
    out = subprocess.run(["prlimit", f"--pid={pid}", "--nofile", "--raw", "--noheadings", "--output=HARD"],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def test_descriptor_exhaustion_refused_cleanly_counted_and_recovered(server_factory):
    """The process runs out of descriptors (its limit lowered under it): new connections are
    closed at once and counted, established ones and UDP keep being served, the listener does
    not spin, and once descriptors are free again connections are accepted by themselves."""
    server = server_factory()
    hard = hard_nofile(server.pid)
    held = [h.tcp_connect(server.port) for _ in range(20)]
    try:
        for i, s in enumerate(held):
            h.tcp_send(s, h.make_query(f"held{i}.example.com.", "TXT", qid=i).to_wire())
            assert h.parse_header(h.tcp_recv(s))["id"] == i
        time.sleep(0.2)
        set_nofile(server.pid, fd_count(server.pid) + 2)
        extra = []
        refused_seen = 0
        for _ in range(30):
            try:
                s = h.tcp_connect(server.port, timeout=2)
            except OSError:
                refused_seen += 1
                continue
            extra.append(s)
        time.sleep(0.5)
        shut = sum(1 for s in extra if closed_by_server(s))
        assert shut + refused_seen >= 25, f"only {shut + refused_seen} of 30 connections refused at the limit"
        # Established connections and UDP are still served.
        for i, s in enumerate(held[:5]):
            h.tcp_send(s, h.make_query(f"again{i}.example.com.", "TXT", qid=100 + i).to_wire())
            assert h.parse_header(h.tcp_recv(s))["id"] == 100 + i
        good_answer(server, "udp")
        # Not spinning on a readable listener: the process is mostly idle.
        t0 = cpu_seconds(server.pid)
        time.sleep(1.0)
        assert cpu_seconds(server.pid) - t0 < 0.5, "the server burns CPU while out of descriptors"
        close_all(extra)
        close_all(held[10:])
        held = held[:10]
        time.sleep(0.5)
        good_answer(server)  # a new connection is accepted again
        m = server.metrics()
        prefix = "domain_park_" if server.kind == "worker" else "domain_park_balancer_"
        assert m.value(prefix + "tcp_connections_refused_total", reason="fd_limit") >= 1
    finally:
        close_all(held)
        set_nofile(server.pid, hard)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


def test_descriptor_budget_counts_closing_connections(server_factory):
    """Connections waiting for a peer's FIN hold descriptors too: with a low limit and clients that
    never close, the server must stay under it (before, open + closing ran out of descriptors and
    the metrics scrape stalled)."""
    server = server_factory(wrapper=["prlimit", "--nofile=160:160"])
    socks = []
    try:
        for i in range(400):  # every one evicts an older one, which then waits for our FIN's answer
            try:
                socks.append(h.tcp_connect(server.port, timeout=2))
            except OSError:
                pass
        time.sleep(0.3)
        assert fd_count(server.pid) < 160
        m = server.metrics()  # the scrape works: descriptors are left
        prefix = "domain_park_" if server.kind == "worker" else "domain_park_balancer_"
        assert m.value(prefix + "tcp_connections_open") < 160
        assert m.value(prefix + "tcp_connections_closed_total", reason="evicted") > 0
        good_answer(server, "udp")
        good_answer(server)
    finally:
        close_all(socks)


def test_metrics_endpoint_survives_slow_clients(server_factory):
    """Clients holding half-sent HTTP requests (before: two of them blocked every scrape)."""
    server = server_factory()
    host, port = server.metrics_addr.rsplit(":", 1)
    slow = []
    try:
        for _ in range(6):
            s = socket.create_connection((host, int(port)), timeout=3)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
            slow.append(s)
        time.sleep(0.2)
        for _ in range(3):
            t0 = time.monotonic()
            scrape(server.metrics_addr)
            assert time.monotonic() - t0 < 3.0
        # A slow client is cut off after metrics_timeout (3 s) instead of holding a thread.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not all(closed_by_server(s) for s in slow):
            time.sleep(0.2)
        assert all(closed_by_server(s) for s in slow), "slow metrics clients were never cut off"
    finally:
        close_all(slow)


def test_reload_rederives_keepalive_and_applies_the_connection_cap(server_factory, tmp_path):
    """Before: after a SIGHUP changing tcp_idle_timeout the worker closed idle connections at the
    new timeout but kept announcing the old one, and a new tcp_max_connections was ignored."""
    server = server_factory(config={"tcp_idle_timeout": 30, "tcp_max_connections": 10})
    conf = server.proc.args[server.proc.args.index("--config") + 1]
    import json
    from pathlib import Path
    cfg = json.loads(Path(conf).read_text())
    socks = [h.tcp_connect(server.port) for _ in range(6)]
    try:
        for i, s in enumerate(socks):
            h.tcp_send(s, h.make_query(f"c{i}.example.com.", "TXT", qid=i).to_wire())
            h.tcp_recv(s)
        cfg.update(tcp_idle_timeout=7, tcp_max_connections=3)
        Path(conf).write_text(json.dumps(cfg))
        server.signal(signal.SIGHUP)
        time.sleep(0.5)
        ka = dns.edns.GenericOption(dns.edns.OptionType.KEEPALIVE, b"")
        q = h.make_query("example.com.", "TXT", edns=0, options=[ka])
        r = dns.message.from_wire(h.tcp_exchange(server.port, q.to_wire()))
        assert struct.unpack("!H", h.option_data(h.edns_option(r, 11)))[0] == 70, "keepalive not re-derived"
        shut = sum(1 for s in socks if closed_by_server(s))
        assert shut >= 3, f"only {shut} of 6 connections closed after the cap went to 3"
        assert server.metric("config_reloads_total", result="success") == 1
        assert server.metric("config_restart_required") == 0
    finally:
        close_all(socks)


def test_reload_says_which_settings_need_a_restart(server_factory):
    server = server_factory(config={"tcp_backlog": 100})
    conf = server.proc.args[server.proc.args.index("--config") + 1]
    import json
    from pathlib import Path
    cfg = json.loads(Path(conf).read_text())
    cfg.update(tcp_backlog=200, tcp_idle_timeout=9)
    Path(conf).write_text(json.dumps(cfg))
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and server.metric("config_reloads_total", result="success") < 1:
        time.sleep(0.05)
    assert server.metric("config_restart_required") == 1
    out = server.proc.output() if hasattr(server.proc, "output") else server.proc.stderr()
    assert "only on restart" in out and "tcp_backlog" in out


def test_balancer_waits_for_query_ids_instead_of_servfail(server_factory, kind):
    """Every query ID on every connection to the worker in use during a 300 ms stall: before, the
    balancer answered SERVFAIL (no_worker) at once; now it opens more connections and queues
    queries within their deadline."""
    if kind != "balancer":
        pytest.skip("balancer only")
    server = server_factory(config={"upstream_connections": 1, "upstream_max_connections": 2,
                                    "upstream_max_outstanding": 64, "tcp_max_queries_per_connection": 4096})
    n = 1500
    wires = [h.make_query(f"stall{i}.example.com.", "TXT", qid=i).to_wire() for i in range(n)]
    blob = b"".join(struct.pack("!H", len(w)) + w for w in wires)
    server.worker.signal(signal.SIGSTOP)
    try:
        with h.tcp_connect(server.port, timeout=10) as s:
            sender = threading.Thread(target=s.sendall, args=(blob,), daemon=True)
            sender.start()
            time.sleep(0.3)
            server.worker.signal(signal.SIGCONT)
            rcodes = [h.parse_header(h.tcp_recv(s))["rcode"] for _ in range(n)]
            sender.join(timeout=5)
    finally:
        server.worker.signal(signal.SIGCONT)
    assert rcodes.count(0) == n, f"{n - rcodes.count(0)} of {n} not NOERROR"
    m = server.metrics()
    assert m.value("domain_park_balancer_servfail_total") == 0
    assert m.value("domain_park_balancer_waiting_queries") == 0
