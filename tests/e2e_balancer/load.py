"""A bounded, paced UDP load for the balancer tests: one socket, queries spread evenly over a
fixed time, replies collected while sending, each matched to its query by ID and question.
Loopback only; bounded in count and time."""

import select
import socket
import struct
import time

from .balancer_stack import h


def paced_udp(port, names, duration, qtype=16, wait_after=2.0, events=()):
    """Send one query per name (at most 65536), evenly over `duration` seconds.

    events: (seconds from start, callable) run once when due, between sends.
    Returns (sent_at, rcodes): the send time of each query in seconds from the start, and the
    rcode of its first matching reply or None (no reply within wait_after of the last send)."""
    n = len(names)
    assert n <= 65536
    wires = [h.raw_header(i & 0xFFFF, 0x0000) + h.raw_question(name, qtype) for i, name in enumerate(names)]
    sent_at = [None] * n
    rcodes = [None] * n
    pending_events = sorted(events, key=lambda e: e[0])
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.connect((h.HOST, port))
        s.setblocking(False)
        start = time.monotonic()
        i = 0
        while True:
            now = time.monotonic() - start
            while pending_events and pending_events[0][0] <= now:
                pending_events.pop(0)[1]()
            due = min(n, int(now / duration * n) + 1)
            while i < due:
                try:
                    s.send(wires[i])
                except (BlockingIOError, ConnectionRefusedError):
                    break
                sent_at[i] = now
                i += 1
            if i == n and (answered == n or now > duration + wait_after):
                break
            readable, _, _ = select.select([s], [], [], 0.001)
            if not readable:
                continue
            while True:
                try:
                    reply = s.recv(65535)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                if len(reply) < 12:
                    continue
                (qid,) = struct.unpack("!H", reply[:2])
                # IDs are unique (n <= 65536); the question must be the one asked.
                if qid < n and rcodes[qid] is None and reply[12:len(wires[qid])] == wires[qid][12:]:
                    rcodes[qid] = reply[3] & 0x0F
                    answered += 1
    return sent_at, rcodes
