"""A bounded, paced load against the lab's name servers while they are upgraded: UDP queries
at a fixed rate to every host, and pipelined queries on one long-lived TCP connection per host
(reopened if the server closes it, as a resolver would), every reply matched to its query by ID
and question. Runs in a thread until stopped, or until its time or count bound."""

import select
import socket
import struct
import threading
import time

from e2e_helpers import raw_header, raw_question

REPLY_TIMEOUT = 3.0  # a query unanswered this long is lost (the balancer gives up at 1.5 s)


class Target:
    def __init__(self, name, address):
        self.name = name
        self.address = address
        self.udp = {"sent": 0, "answered": 0, "lost": 0, "rcodes": {}}
        self.tcp = {"sent": 0, "answered": 0, "lost": 0, "rcodes": {}, "connections": 0}


class Load(threading.Thread):
    """`rate` UDP queries per second to each target and `tcp_rate` over TCP, until stop() or
    `max_seconds` (then it stops sending and waits REPLY_TIMEOUT for the last replies)."""

    def __init__(self, targets, rate=100, tcp_rate=20, max_seconds=600):
        super().__init__(daemon=True)
        self.targets = targets
        self.rate = rate
        self.tcp_rate = tcp_rate
        self.max_seconds = max_seconds
        self._halt = threading.Event()
        self.error = None

    def stop(self):
        self._halt.set()
        self.join(timeout=REPLY_TIMEOUT + 10)

    def summary(self):
        return {t.name: {"udp": t.udp, "tcp": t.tcp} for t in self.targets}

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def _run(self):
        qid = 0
        pending = {}  # (kind, target index, id) -> (deadline, question bytes)
        udp = []
        for t in self.targets:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((t.address, 53))
            s.setblocking(False)
            udp.append(s)
        tcp = [None] * len(self.targets)
        tcp_buf = [b""] * len(self.targets)
        start = time.monotonic()
        sent_udp = sent_tcp = 0

        def count(kind, ti, rcode):
            stats = getattr(self.targets[ti], kind)
            stats["answered"] += 1
            stats["rcodes"][rcode] = stats["rcodes"].get(rcode, 0) + 1

        def match(kind, ti, wire):
            if len(wire) < 12:
                return
            (rid,) = struct.unpack("!H", wire[:2])
            entry = pending.get((kind, ti, rid))
            if entry and wire[12:12 + len(entry[1])] == entry[1]:
                del pending[(kind, ti, rid)]
                count(kind, ti, wire[3] & 0x0F)

        def open_tcp(ti):
            c = socket.create_connection((self.targets[ti].address, 53), timeout=2)
            c.setblocking(False)
            self.targets[ti].tcp["connections"] += 1
            tcp[ti] = c
            tcp_buf[ti] = b""

        while True:
            now = time.monotonic() - start
            sending = not self._halt.is_set() and now < self.max_seconds
            if sending:
                while sent_udp < int(now * self.rate) + 1:
                    for ti, s in enumerate(udp):
                        qid = (qid + 1) & 0xFFFF
                        question = raw_question(f"load{sent_udp}.example.com.", 16)
                        try:
                            s.send(raw_header(qid, 0) + question)
                        except (BlockingIOError, ConnectionRefusedError):
                            pass  # counted as lost when its deadline passes
                        pending[("udp", ti, qid)] = (time.monotonic() + REPLY_TIMEOUT, question)
                        self.targets[ti].udp["sent"] += 1
                    sent_udp += 1
                while sent_tcp < int(now * self.tcp_rate) + 1:
                    for ti in range(len(self.targets)):
                        qid = (qid + 1) & 0xFFFF
                        question = raw_question(f"tcp{sent_tcp}.example.org.", 15)
                        wire = raw_header(qid, 0) + question
                        try:
                            if tcp[ti] is None:
                                open_tcp(ti)
                            tcp[ti].send(struct.pack("!H", len(wire)) + wire)
                        except OSError:
                            if tcp[ti] is not None:
                                tcp[ti].close()
                            tcp[ti] = None
                        pending[("tcp", ti, qid)] = (time.monotonic() + REPLY_TIMEOUT, question)
                        self.targets[ti].tcp["sent"] += 1
                    sent_tcp += 1
            elif not pending:
                break
            socks = udp + [c for c in tcp if c is not None]
            readable, _, _ = select.select(socks, [], [], 0.002)
            for s in readable:
                if s in udp:
                    ti = udp.index(s)
                    while True:
                        try:
                            match("udp", ti, s.recv(65535))
                        except (BlockingIOError, ConnectionRefusedError):
                            break
                else:
                    ti = tcp.index(s)
                    try:
                        data = s.recv(65535)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:  # the server closed it (a restart drains, then FIN): reopen
                        s.close()
                        tcp[ti] = None
                        continue
                    tcp_buf[ti] += data
                    while len(tcp_buf[ti]) >= 2:
                        (n,) = struct.unpack("!H", tcp_buf[ti][:2])
                        if len(tcp_buf[ti]) < 2 + n:
                            break
                        match("tcp", ti, tcp_buf[ti][2:2 + n])
                        tcp_buf[ti] = tcp_buf[ti][2 + n:]
            t = time.monotonic()
            for key in [k for k, (deadline, _) in pending.items() if deadline < t]:
                kind, ti, _ = key
                getattr(self.targets[ti], kind)["lost"] += 1
                del pending[key]
        for s in udp + [c for c in tcp if c is not None]:
            s.close()
