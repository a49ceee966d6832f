"""Response rate limiting with coredns-park (CoreDNS + this repository's rrl plugin) and
deploy/coredns/Corefile.rrl: a UDP burst of one answer beyond responses-per-second is partly
answered, partly slipped (empty TC=1 replies, every slip-ratio-th suppressed response) and
partly dropped; the same burst over TCP is answered in full (TCP is exempt); the plugin's
counters on /metrics match what the client saw.

The settings are read from Corefile.rrl itself ("shipped"), and a second run uses a copy with
other numbers ("custom"), so the expectations follow the configuration, not constants."""

import itertools
import re
import socket
import struct
import time

import dns.flags
import dns.message
import dns.rcode
import pytest

import e2e_helpers as h
from .coredns_stack import RRL_COREFILE, Stack

_run = itertools.count(1)
CUSTOM = {"responses-per-second": 5, "slip-ratio": 3, "window": 2}


def rrl_block(text):
    m = re.search(r"\n\s*rrl\s*\{(.*?)\n\s*\}", text, flags=re.S)
    assert m, "no rrl block in Corefile.rrl"
    return m


def rrl_settings(text):
    settings = {}
    for line in rrl_block(text).group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        settings[parts[0]] = int(parts[1]) if len(parts) > 1 else True
    return settings


def with_settings(text, changes):
    m = rrl_block(text)
    block = m.group(1)
    for key, value in changes.items():
        block, n = re.subn(rf"(\n\s*{re.escape(key)}\s+)\d+", rf"\g<1>{value}", block)
        assert n == 1, f"{key} not in the rrl block"
    return text[:m.start(1)] + block + text[m.end(1):]


@pytest.fixture(scope="module", params=["shipped", "custom"])
def rrl_stack(request, tmp_path_factory, coredns_park_bin):
    tmp = tmp_path_factory.mktemp(f"rrl-{request.param}")
    assert RRL_COREFILE.exists(), f"{RRL_COREFILE} is missing"
    text = RRL_COREFILE.read_text()
    if request.param == "custom":
        text = with_settings(text, CUSTOM)
    corefile = tmp / "Corefile.rrl"
    corefile.write_text(text)
    settings = rrl_settings(text)
    print(f"\nrrl settings ({request.param}): {settings}")
    s = Stack(tmp, coredns_park_bin, corefile=corefile, n_workers=1)
    s.settings = settings
    yield s
    s.stop()


def rrl_counters(stack):
    m = stack.coredns.metrics()
    return {
        "dropped": m.value("coredns_rrl_responses_dropped_total", category="response"),
        "slipped": m.value("coredns_rrl_responses_slipped_total", category="response"),
        "exempt": m.value("coredns_rrl_responses_exempt_total"),
        "requests_dropped": m.value("coredns_rrl_requests_dropped_total"),
    }


def burst_size(settings):
    rps = settings["responses-per-second"]
    n = max(10 * rps, 100)
    # Stay under the per-network request limit, so only response limiting acts.
    req = settings.get("requests-per-second", 0)
    if req:
        n = min(n, req // 2)
    assert n > 2 * rps, "burst too small to exceed the allowance"
    return n


def udp_burst(port, qname, n, collect_seconds=2.0):
    """n queries for one name sent back to back without waiting, then every reply collected
    (bounded by collect_seconds). Returns {id: reply} for the replies that came."""
    ids = list(range(1000, 1000 + n))
    replies = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.connect((h.HOST, port))
        for qid in ids:
            s.send(h.make_query(qname, "TXT", qid=qid).to_wire())
        deadline = time.monotonic() + collect_seconds
        while len(replies) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                wire = s.recv(65535)
            except socket.timeout:
                break
            r = dns.message.from_wire(wire)
            assert r.id in ids and r.id not in replies, f"unexpected or duplicate reply id {r.id}"
            replies[r.id] = r
    return replies


def test_udp_burst_answered_slipped_dropped(rrl_stack):
    s = rrl_stack
    rps, slip = s.settings["responses-per-second"], s.settings.get("slip-ratio", 2)
    n = burst_size(s.settings)
    qname = f"rrl{next(_run)}-udp.com."
    before = rrl_counters(s)
    replies = udp_burst(s.port, qname, n)
    # Let late suppressions land in the counters (the burst is over; bounded wait).
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        after = rrl_counters(s)
        if len(replies) + (after["dropped"] - before["dropped"]) >= n:
            break
        time.sleep(0.05)
    after = rrl_counters(s)

    full = [r for r in replies.values() if not r.flags & dns.flags.TC]
    slipped = [r for r in replies.values() if r.flags & dns.flags.TC]
    no_reply = n - len(replies)
    limited = n - len(full)
    print(f"\nburst of {n} (allowance {rps}/s, slip-ratio {slip}): answered {len(full)}, "
          f"slipped {len(slipped)}, no reply {no_reply}; metrics {dict((k, after[k] - before[k]) for k in after)}")

    for r in full:
        assert r.rcode() == dns.rcode.NOERROR and h.txt_strings(r.answer[0]) == ["v=spf1 -all"]
    for r in slipped:
        # A slip: same header and question, no records, TC=1 (a real client retries over TCP).
        assert r.rcode() == dns.rcode.NOERROR
        assert r.answer == [] and r.authority == [] and r.additional == []
        assert r.question[0].name.to_text() == qname

    # The allowance is answered: the account starts with one second of credit.
    assert len(full) >= rps
    assert limited > 0, "a burst beyond the allowance must be limited"
    # Slips are every slip-ratio-th suppressed response. Each response allowed beyond the
    # initial allowance (credit earned during the burst) can restart that count once.
    extra = len(full) - rps
    assert limited // slip - extra - 1 <= len(slipped) <= limited // slip + 1, (len(slipped), limited, slip)
    assert no_reply > 0 and len(slipped) > 0
    # The counters agree with the client, one for one.
    assert after["slipped"] - before["slipped"] == len(slipped)
    assert after["dropped"] - before["dropped"] == no_reply
    assert after["requests_dropped"] == before["requests_dropped"]


def test_tcp_burst_fully_answered(rrl_stack):
    s = rrl_stack
    n = burst_size(s.settings)
    qname = f"rrl{next(_run)}-tcp.com."
    before = rrl_counters(s)
    with h.tcp_connect(s.port, timeout=10.0) as c:
        # All n queries pipelined in one write.
        c.sendall(b"".join(struct.pack("!H", len(w)) + w
                           for w in (h.make_query(qname, "TXT", qid=2000 + i).to_wire() for i in range(n))))
        replies = [dns.message.from_wire(h.tcp_recv(c)) for _ in range(n)]
    after = rrl_counters(s)
    assert sorted(r.id for r in replies) == list(range(2000, 2000 + n))
    for r in replies:
        assert not r.flags & dns.flags.TC
        assert r.rcode() == dns.rcode.NOERROR and h.txt_strings(r.answer[0]) == ["v=spf1 -all"]
    assert after["exempt"] - before["exempt"] == n
    assert after["slipped"] == before["slipped"] and after["dropped"] == before["dropped"]


def test_limited_udp_client_still_answered_over_tcp(rrl_stack):
    """What slip is for: while the UDP account of a name is limited, the same client asking
    over TCP gets the full answer."""
    s = rrl_stack
    n = burst_size(s.settings)
    qname = f"rrl{next(_run)}-both.com."
    replies = udp_burst(s.port, qname, n)
    assert len([r for r in replies.values() if not r.flags & dns.flags.TC]) < n
    r = h.query(s.port, h.make_query(qname, "TXT"), "tcp")
    assert not r.flags & dns.flags.TC and h.txt_strings(r.answer[0]) == ["v=spf1 -all"]
