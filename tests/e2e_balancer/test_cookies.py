"""DNS cookies at the balancer (RFC 7873, RFC 9018): it answers its clients' cookies itself,
over UDP and TCP, for worker answers and cache hits alike (a cached answer carries the cookie
computed for the client asking, never a stored one); the workers never see a cookie; a valid
server cookie exempts a client from response rate limiting, and a client that sent only a
client cookie is slipped BADCOOKIE with a fresh one instead of TC=1."""

import re
import signal
import socket
import subprocess
import time

import dns.edns
import dns.flags
import dns.message
import dns.rcode

from .balancer_stack import addr, h, scrape, write_config

SECRET = "e5e973e5a6b2a43f48e7dc849e37bfcf"
OTHER = "445536bcd2513298075a5d379663c962"
COOKIE = 10
BADCOOKIE = 23


def exchange(port, wire, transport="udp", source="127.0.0.1"):
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(h.DEFAULT_TIMEOUT)
        s.bind((source, 0))
        if transport == "udp":
            s.sendto(wire, (h.HOST, port))
            return s.recv(65535)
        s.connect((h.HOST, port))
        h.tcp_send(s, wire)
        return h.tcp_recv(s)


def ask(port, cookie, qname="example.com.", transport="udp", source="127.0.0.1"):
    q = h.make_query(qname, "TXT", edns=0, options=[dns.edns.GenericOption(COOKIE, cookie)])
    r = dns.message.from_wire(exchange(port, q.to_wire(), transport, source))
    assert r.id == q.id
    return r


def cookie_of(r):
    opt = h.edns_option(r, COOKIE)
    assert opt is not None, f"no COOKIE option: {r}"
    return opt.client + opt.server


def stack(procs, tmp_path, **settings):
    w = procs.worker()
    cfg = write_config(tmp_path / "b.json", workers=[addr(w)], cookie_secret=SECRET, **settings)
    return w, procs.balancer(config=cfg)


def test_cookies_from_workers_and_cache_are_each_clients_own(procs, tmp_path):
    w, b = stack(procs, tmp_path)
    m0 = b.metrics()
    a = ask(b.port, b"\x01" * 8, "shared.example.com.")  # a miss: the worker answers
    ca = cookie_of(a)
    assert ca[:8] == b"\x01" * 8 and len(ca) == 24
    assert h.txt_strings(a.answer[0]) == ["v=spf1 -all"]
    # Another client, another address: a cache hit, with the cookie made for it.
    bb = ask(b.port, b"\x02" * 8, "shared.example.com.", source="127.0.0.2")
    cb = cookie_of(bb)
    assert cb[:8] == b"\x02" * 8 and cb[8:] != ca[8:]
    assert bb.answer == a.answer
    m1 = b.metrics()
    assert m1.value("domain_park_balancer_cache_lookups_total", result="hit") - \
        m0.value("domain_park_balancer_cache_lookups_total", result="hit") == 1
    # Each cookie is valid for its own client only, over UDP and TCP, from the cache.
    for transport in ("udp", "tcp"):
        assert cookie_of(ask(b.port, ca, "shared.example.com.", transport)) == ca
        assert cookie_of(ask(b.port, cb, "shared.example.com.", transport, source="127.0.0.2")) == cb
        assert cookie_of(ask(b.port, ca, "shared.example.com.", transport, source="127.0.0.2")) != ca
    m2 = b.metrics()
    assert m2.value("domain_park_balancer_cookies_total", result="client_only") == 2
    assert m2.value("domain_park_balancer_cookies_total", result="valid") == 4
    assert m2.value("domain_park_balancer_cookies_total", result="invalid") == 2
    # A miss over TCP: the worker's answer gets the client's cookie too.
    t = ask(b.port, ca, "tcp-miss.example.com.", "tcp")
    assert cookie_of(t) == ca
    # The workers never saw a cookie.
    wm = scrape(w.metrics_addr)
    assert sum(v for _, v in wm.series("domain_park_cookies_total")) == 0
    assert wm.value("domain_park_queries_total") >= 2


def test_malformed_cookie_is_formerr_through_the_balancer(procs, tmp_path):
    _, b = stack(procs, tmp_path)
    for transport in ("udp", "tcp"):
        r = ask(b.port, b"\xab" * 9, transport=transport)
        assert r.rcode() == dns.rcode.FORMERR
        assert h.edns_option(r, COOKIE) is None
    assert b.metrics().value("domain_park_balancer_cookies_total", result="malformed") == 2


def test_dig_cookie_through_the_balancer(procs, tmp_path):
    _, b = stack(procs, tmp_path)

    def dig(*extra):
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(b.port), "example.com", "TXT", "+norec", *extra],
                             capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"; COOKIE: ([0-9a-f]+) \(good\)", out)
        assert m and "v=spf1 -all" in out, out
        return m.group(1)

    first = dig("+cookie")
    assert dig(f"+cookie={first}") == first
    assert dig(f"+cookie={first}", "+tcp") == first


def burst(port, cookie, n, source="127.0.0.1"):
    """n identical UDP queries at once; returns the replies' (rcode, tc, cookie) and how many
    did not come back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        ids = set()
        for i in range(n):
            q = h.make_query("rrl.example.com.", "TXT", edns=0, qid=0x200 + i,
                             options=[dns.edns.GenericOption(COOKIE, cookie)])
            ids.add(q.id)
            s.sendto(q.to_wire(), (h.HOST, port))
        out = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and len(out) < n:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                r = dns.message.from_wire(s.recv(65535))
            except socket.timeout:
                break
            assert r.id in ids
            opt = h.edns_option(r, COOKIE)
            out.append((r.rcode(), bool(r.flags & dns.flags.TC), opt.client + opt.server if opt else None))
        return out, n - len(out)


def test_rrl_badcookie_instead_of_slip_and_valid_cookies_exempt(procs, tmp_path):
    _, b = stack(procs, tmp_path, rate_limit={"responses_per_second": 2, "slip": 1, "window": 5})
    m0 = b.metrics()
    client = b"\x07" * 8
    replies, lost = burst(b.port, client, 20)
    assert lost == 0, "slip 1: every suppressed answer is slipped"
    full = [r for r in replies if r[0] == dns.rcode.NOERROR and not r[1]]
    bad = [r for r in replies if r[0] == BADCOOKIE]
    assert 2 <= len(full) <= 4, replies
    assert len(full) + len(bad) == 20, "a client with a cookie is slipped BADCOOKIE, never TC=1"
    assert all(not tc and ck and ck[:8] == client for _, tc, ck in bad)
    fresh = bad[0][2]
    m1 = b.metrics()
    assert m1.value("domain_park_balancer_badcookie_total") - m0.value("domain_park_balancer_badcookie_total") == len(bad)
    # With the server cookie it was given, the same client is not rate limited at all.
    replies, lost = burst(b.port, fresh, 20)
    assert lost == 0 and all(rc == dns.rcode.NOERROR and not tc for rc, tc, _ in replies), replies
    m2 = b.metrics()
    assert m2.value("domain_park_balancer_rrl_cookie_exempt_total") - \
        m1.value("domain_park_balancer_rrl_cookie_exempt_total") == 20
    # Without a cookie, the same flood is still slipped with TC=1.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        tcs = 0
        for i in range(10):
            s.sendto(h.make_query("rrl.example.com.", "TXT", edns=0, qid=0x400 + i).to_wire(), (h.HOST, b.port))
        for _ in range(10):
            try:
                tcs += h.parse_header(s.recv(65535))["tc"]
            except socket.timeout:
                break
        assert tcs >= 5


def test_sighup_rotates_the_secret_in_every_thread(procs, tmp_path):
    # Each query thread re-derives its cookies from the reloaded record. Every ask comes from a
    # new socket, so SO_REUSEPORT spreads them over both threads.
    w = procs.worker()
    path = tmp_path / "b.json"
    write_config(path, workers=[addr(w)], threads=2, cookie_secret=SECRET)
    b = procs.balancer(config=path)
    old = cookie_of(ask(b.port, b"\x0a" * 8))

    def reload(**cookies):
        n = b.metrics().value("domain_park_balancer_config_reloads_total", result="success")
        write_config(path, workers=[addr(w)], threads=2, **cookies)
        b.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while b.metrics().value("domain_park_balancer_config_reloads_total", result="success") < n + 1:
            assert time.monotonic() < deadline, "reload not counted"
            time.sleep(0.05)

    def rounds_until(pred, what):
        # A reload reaches each thread a moment after it is counted: ask in rounds of 8 until
        # a whole round shows it (bounded).
        deadline = time.monotonic() + 5
        while True:
            before = b.metrics()
            got = [cookie_of(ask(b.port, old)) for _ in range(8)]
            if pred(got, before, b.metrics()):
                return got
            assert time.monotonic() < deadline, what

    def delta(before, after, result):
        return after.value("domain_park_balancer_cookies_total", result=result) - \
            before.value("domain_park_balancer_cookies_total", result=result)

    # Rolling: the old secret's cookie is still valid, and is renewed with the new secret.
    reload(cookie_secret=OTHER, cookie_secret_previous=SECRET)
    got = rounds_until(lambda g, m0, m1: all(c != old for c in g) and delta(m0, m1, "valid") == 8,
                       "every thread accepts the previous secret and answers with the new one")
    new = got[0]
    assert all(c[:8] == old[:8] and len(c) == 24 for c in got)
    # Rotation done: the old cookie is someone else's now; the renewed one stays valid.
    reload(cookie_secret=OTHER)
    rounds_until(lambda g, m0, m1: delta(m0, m1, "invalid") == 8, "every thread refuses the old secret")
    assert all(cookie_of(ask(b.port, new)) == new for _ in range(8))


def test_bad_cookie_secret_exit_2(procs, tmp_path):
    from .balancer_stack import balancer_binary
    w = procs.worker()
    cfg = write_config(tmp_path / "bad.json", workers=[addr(w)], cookie_secret="nothex")
    p = subprocess.run([balancer_binary(), "-c", str(cfg), "--check-config"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "cookie_secret" in p.stderr
