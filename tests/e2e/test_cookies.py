"""DNS cookies (RFC 7873, RFC 9018 server cookies) from the real worker: dig +cookie and
dnspython, over UDP and TCP; secrets shared by a group of servers and rotated; cookies bound
to the client's address; malformed options; the cookie metrics."""

import json
import re
import socket
import subprocess

import dns.edns
import dns.message
import dns.rcode
import pytest

import e2e_helpers as h
import prom_scrape
from conftest import NS1, NS1_ADDRS, STANDARD_ARGS, assert_clean, start_worker, worker_binary

SECRET = "e5e973e5a6b2a43f48e7dc849e37bfcf"
OTHER = "445536bcd2513298075a5d379663c962"
COOKIE = 10


def cookie_of(r):
    opt = h.edns_option(r, COOKIE)
    assert opt is not None, f"no COOKIE option in the answer: {r}"
    return opt.client + opt.server


def ask(worker, cookie, transport="udp", qname="example.com.", source="127.0.0.1"):
    q = h.make_query(qname, "TXT", edns=0, options=[dns.edns.GenericOption(COOKIE, cookie)])
    wire = q.to_wire()
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(h.DEFAULT_TIMEOUT)
            s.bind((source, 0))
            s.sendto(wire, (h.HOST, worker.port))
            reply = s.recv(65535)
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(h.DEFAULT_TIMEOUT)
            s.bind((source, 0))
            s.connect((h.HOST, worker.port))
            h.tcp_send(s, wire)
            reply = h.tcp_recv(s)
    r = dns.message.from_wire(reply)
    assert r.id == q.id
    return r


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    d = tmp_path_factory.mktemp("cookies")
    path = d / "worker.json"
    path.write_text(json.dumps({"nameservers": [f"{NS1}:{NS1_ADDRS[0]}"], "cookie_secret": SECRET}))
    return path


@pytest.fixture(scope="module")
def worker(tmp_path_factory, config):
    w = start_worker(tmp_path_factory.mktemp("cw"), "-c", config)
    yield w
    w.stop()
    assert_clean(w)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_client_cookie_gets_server_cookie_then_it_is_valid(worker, transport):
    client = bytes.fromhex("2464c4abcf10c957")
    r = ask(worker, client, transport)
    assert r.rcode() == dns.rcode.NOERROR
    got = cookie_of(r)
    assert got[:8] == client, "the client cookie comes back"
    assert len(got) == 24 and got[8] == 1 and got[9:12] == b"\0\0\0", "an RFC 9018 version-1 server cookie"
    assert h.txt_strings(r.answer[0]) == ["v=spf1 -all"], "the answer itself is unchanged"
    # Sent back, it is valid: the same cookie is answered (fresh, under half an hour).
    r2 = ask(worker, got, transport)
    assert r2.rcode() == dns.rcode.NOERROR
    assert cookie_of(r2) == got


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_cookie_is_bound_to_the_client_address(worker, transport):
    # Over TCP the address is the one the connection engine recorded when it accepted.
    got = cookie_of(ask(worker, b"\x01" * 8, transport))
    assert cookie_of(ask(worker, got, transport)) == got
    # The same cookie from another address is not ours: a normal answer with a new one.
    r = ask(worker, got, transport, source="127.0.0.2")
    assert r.rcode() == dns.rcode.NOERROR and r.answer
    new = cookie_of(r)
    assert new[:8] == got[:8] and new != got


@pytest.mark.parametrize("length", [1, 7, 9, 15, 41])
def test_malformed_cookie_is_formerr(worker, length):
    r = ask(worker, b"\xab" * length)
    assert r.rcode() == dns.rcode.FORMERR
    assert r.edns == 0, "a FORMERR for a query with OPT carries OPT"
    assert h.edns_option(r, COOKIE) is None
    assert not r.answer


def test_a_group_sharing_a_secret_accepts_each_others_cookies(tmp_path, config, worker):
    # Another server of the same (anycast) group: same secret, so same cookies (RFC 9018 2).
    peer = start_worker(tmp_path, "-c", config)
    try:
        got = cookie_of(ask(worker, b"\x02" * 8))
        assert cookie_of(ask(peer, got)) == got, "a cookie of the group is valid at every member"
    finally:
        peer.stop()
    assert_clean(peer)


def test_secret_rotation_accepts_the_previous_secret(tmp_path, worker):
    old = cookie_of(ask(worker, b"\x03" * 8))
    rolled = tmp_path / "rolled.json"
    rolled.write_text(json.dumps({"nameservers": [f"{NS1}:{NS1_ADDRS[0]}"], "cookie_secret": OTHER,
                                  "cookie_secret_previous": SECRET}))
    done = tmp_path / "done.json"
    done.write_text(json.dumps({"nameservers": [f"{NS1}:{NS1_ADDRS[0]}"], "cookie_secret": OTHER}))
    metrics = f"127.0.0.1:{prom_scrape.free_tcp_ports(1)[0]}"
    w = start_worker(tmp_path, "-c", rolled, "--metrics", metrics)
    w2 = start_worker(tmp_path, "-c", done)
    try:
        prom_scrape.wait_metrics(metrics)
        new = cookie_of(ask(w, old))
        assert new[:8] == old[:8] and new != old, "a cookie of the previous secret is renewed with the new one"
        assert cookie_of(ask(w, new)) == new
        assert cookie_of(ask(w2, new)) == new, "the new secret's cookie is valid once rotation is over"
        assert cookie_of(ask(w2, old)) != old
        m = prom_scrape.scrape(metrics)
        assert m.value("domain_park_cookies_total", result="valid") == 2
        assert m.value("domain_park_cookies_total", result="invalid") == 0
    finally:
        w.stop()
        w2.stop()
    assert_clean(w)
    assert_clean(w2)


def test_cookie_metrics(tmp_path):
    metrics = f"127.0.0.1:{prom_scrape.free_tcp_ports(1)[0]}"
    w = start_worker(tmp_path, *STANDARD_ARGS, "--metrics", metrics)
    try:
        prom_scrape.wait_metrics(metrics)
        got = cookie_of(ask(w, b"\x04" * 8))  # client_only
        ask(w, got)  # valid
        ask(w, got, transport="tcp")  # valid
        ask(w, got[:8] + b"\x09" * 16)  # invalid
        ask(w, b"\x05" * 9)  # malformed
        m = prom_scrape.scrape(metrics)
        assert m.value("domain_park_cookies_total", result="client_only") == 1
        assert m.value("domain_park_cookies_total", result="valid") == 2
        assert m.value("domain_park_cookies_total", result="invalid") == 1
        assert m.value("domain_park_cookies_total", result="malformed") == 1
        assert m.value("domain_park_malformed_total", reason="cookie") == 1
    finally:
        w.stop()
    assert_clean(w)


def test_cookies_off(tmp_path):
    cfg = tmp_path / "off.json"
    cfg.write_text(json.dumps({"nameservers": [f"{NS1}:{NS1_ADDRS[0]}"], "cookies": False}))
    w = start_worker(tmp_path, "-c", cfg)
    try:
        r = ask(w, b"\x06" * 8)
        assert r.rcode() == dns.rcode.NOERROR and h.edns_option(r, COOKIE) is None
    finally:
        w.stop()
    assert_clean(w)


@pytest.mark.parametrize("bad", [{"cookie_secret": "abc"}, {"cookie_secret": "zz" * 16},
                                 {"cookie_secret_previous": SECRET}, {"cookies": "yes"}])
def test_bad_cookie_settings_exit_2(tmp_path, bad):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"nameservers": [f"{NS1}:{NS1_ADDRS[0]}"], **bad}))
    p = subprocess.run([worker_binary(), "-c", str(cfg), "--check-config"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and next(iter(bad)) in lines[0], p.stderr


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_dig_cookie(worker, transport):
    def dig(*args):
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(worker.port), "example.com", "TXT", "+norec",
                              "+cookie" if not args else args[0], "+tcp" if transport == "tcp" else "+notcp"],
                             capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"; COOKIE: ([0-9a-f]+) \(good\)", out)
        assert m, f"dig did not see a good cookie:\n{out}"
        assert "v=spf1 -all" in out
        return m.group(1)

    first = dig()
    assert len(first) == 48
    # dig +cookie=HEX sends a client and server cookie: ours comes back as is.
    assert dig(f"+cookie={first}") == first
