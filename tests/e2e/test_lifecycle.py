"""Process lifecycle: command-line and configuration errors, --check-config, SIGHUP reload,
SIGTERM/SIGINT shutdown, and the Prometheus metrics endpoint."""

import json
import signal
import subprocess
import time
import urllib.request

import dns.message
import dns.rcode
import pytest

import e2e_helpers as h
from conftest import NS1, NS1_ADDRS, STANDARD_ARGS, free_port, free_tcp_port, worker_binary

GOOD_NS = f"{NS1}:{NS1_ADDRS[0]}"


def run_worker_once(args, timeout=5):
    cmd = [worker_binary(), *[str(a) for a in args]]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{cmd} did not exit within {timeout}s (stderr so far: {e.stderr!r})")
    return p


def listen_args():
    return ["--host", "127.0.0.1", "--port", str(free_port())]


def write_config(path, obj):
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


# --- bad input: exit 2, one line naming the setting -----------------------------------------------

BAD_FLAG_CASES = {
    "unknown_flag": (["-n", GOOD_NS, "--no-such-flag"], "no-such-flag"),
    "bare_ipv4_nameserver": (["-n", "192.0.2.1"], "nameserver"),
    "bare_ipv6_nameserver": (["-n", "2001:db8::1"], "nameserver"),
    "nameserver_bad_address": (["-n", "ns1.example.net:not-an-ip"], "nameserver"),
    "no_nameserver": ([], "nameserver"),
    "missing_flag_value": (["-n", GOOD_NS, "--rua"], "rua"),
    "bad_idle_timeout": (["-n", GOOD_NS, "--idle-timeout", "abc"], "idle-timeout"),
    "bad_max_connections": (["-n", GOOD_NS, "--max-connections", "many"], "max-connections"),
    "bad_host": (["-n", GOOD_NS, "--host", "not-an-address"], "host"),
    "bad_metrics": (["-n", GOOD_NS, "--metrics", "nonsense"], "metrics"),
    "missing_config_file": (["-n", GOOD_NS, "-c", "/nonexistent/domain-park.json"], "domain-park.json"),
    "missing_psl_file": (["-n", GOOD_NS, "--psl-file", "/nonexistent/psl.dat"], "psl"),
    # A file that is no Public Suffix List would have the worker park co.uk itself.
    "psl_file_not_a_list": (["-n", GOOD_NS, "--psl-file", "/etc/passwd"], "psl_file"),
    "rua_not_an_address": (["-n", GOOD_NS, "--rua", "notanemail"], "rua"),
    "ruf_one_label_domain": (["-n", GOOD_NS, "--ruf", "x@y"], "ruf"),
    "rua_tag_separator": (["-n", GOOD_NS, "--rua", "a;p=none@example.net"], "rua"),
    "huge_port_value": (["-n", GOOD_NS, "--port", "9" * 5000], "port"),
    "huge_host_value": (["-n", GOOD_NS, "--host", "h" * 5000], "host"),
}


def assert_usage_error(p, must_mention):
    assert p.returncode == 2, f"exit code {p.returncode}, expected 2; stderr {p.stderr!r}"
    err = p.stderr.strip()
    assert err, "an error must be reported on stderr"
    assert "\n" not in err, f"expected exactly one line on stderr, got:\n{p.stderr}"
    assert len(err) < 400, f"the error line quotes too much: {len(err)} characters"
    assert must_mention.lower() in err.lower(), f"error {err!r} does not name {must_mention!r}"


@pytest.mark.parametrize("case", sorted(BAD_FLAG_CASES))
def test_bad_flags_exit_2(case):
    args, mention = BAD_FLAG_CASES[case]
    # --host comes first so that a bad --host later in args overrides it.
    p = run_worker_once(listen_args() + args)
    assert_usage_error(p, mention)


@pytest.mark.parametrize("port", ["70000", "abc", "-1", "65536"])
def test_bad_port_exit_2(port):
    p = run_worker_once(["--host", "127.0.0.1", "-n", GOOD_NS, "--port", port])
    assert_usage_error(p, "port")


BAD_CONFIG_CASES = {
    "unknown_key": ({"nameservers": [GOOD_NS], "no_such_key": 1}, "no_such_key"),
    "unknown_soa_key": ({"nameservers": [GOOD_NS], "soa": {"bogus": 1}}, "bogus"),
    "bare_address_nameserver": ({"nameservers": ["192.0.2.1"]}, "nameserver"),
    "empty_nameservers": ({"nameservers": []}, "nameserver"),
    "wrong_type": ({"nameservers": [GOOD_NS], "rua": 5}, "rua"),
    "invalid_json": ('{"nameservers": [', "json"),
    "not_an_object": ('["ns1.example.net"]', ""),
    "duplicate_key": ('{"nameservers": ["ns1.example.net"], "ttl": 60, "ttl": 70}', "'ttl' appears twice"),
    "duplicate_nested_key": ('{"nameservers": ["ns1.example.net"], "soa": {"ttl": 1, "ttl": 2}}', "appears twice"),
    # Used to crash --check-config with SIGSEGV (the error message printed the value recursively).
    "nested_200000_levels": ("[" * 200000 + "]" * 200000, "deeper than 16"),
    "nested_value_200000_levels": ('{"rua": ' + "[" * 200000 + "]" * 200000 + "}", "deeper than 16"),
    "huge_bad_value": ({"nameservers": [GOOD_NS], "port": "x" * 100000}, "port"),
    "caa_iodef_not_a_url": ({"nameservers": [GOOD_NS], "caa_iodef": "security@example.net"}, "caa_iodef"),
    "rname_dotted_local_part": ({"nameservers": [GOOD_NS], "soa": {"rname": "host.master@example.net"}}, "soa.rname"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIG_CASES))
def test_bad_config_exit_2(tmp_path, case):
    obj, mention = BAD_CONFIG_CASES[case]
    cfg = write_config(tmp_path / "config.json", obj)
    p = run_worker_once(listen_args() + ["-c", cfg])
    assert_usage_error(p, mention)
    p = run_worker_once(listen_args() + ["-c", cfg, "--check-config"])
    assert_usage_error(p, mention)


def test_check_config_ok(tmp_path):
    p = run_worker_once(listen_args() + ["-n", GOOD_NS, "--check-config"])
    assert p.returncode == 0, f"exit {p.returncode}, stderr {p.stderr!r}"
    cfg = write_config(tmp_path / "config.json", {"nameservers": [GOOD_NS], "rua": "a@example.net"})
    p = run_worker_once(listen_args() + ["-c", cfg, "--check-config"])
    assert p.returncode == 0, f"exit {p.returncode}, stderr {p.stderr!r}"


def test_check_config_does_not_serve():
    args = listen_args()
    port = int(args[-1])
    p = run_worker_once(args + ["-n", GOOD_NS, "--check-config"])
    assert p.returncode == 0
    assert h.udp_exchange(port, h.make_query("example.com.", "SOA").to_wire(), timeout=0.3) is None


# --- SIGHUP -------------------------------------------------------------------------------------------

def dmarc(port, transport="udp", sock=None, qid=None):
    q = h.make_query("_dmarc.example.com.", "TXT", qid=qid)
    if sock is not None:
        h.tcp_send(sock, q.to_wire())
        r = dns.message.from_wire(h.tcp_recv(sock))
        assert r.id == q.id
    else:
        r = h.query(port, q, transport)
    assert r.rcode() == dns.rcode.NOERROR
    return h.txt_strings(r.answer[0])[0]


def expect_dmarc(rua):
    return f"v=DMARC1; p=reject; sp=reject; np=reject; adkim=s; aspf=s; rua=mailto:{rua};"


def wait_for(fn, expected, timeout=3.0):
    deadline = time.monotonic() + timeout
    got = fn()
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        got = fn()
    return got


def test_sighup_reload_keeps_connections(tmp_path, worker_factory):
    cfg = write_config(tmp_path / "config.json", {"nameservers": [GOOD_NS], "rua": "a@example.net"})
    w = worker_factory("-c", cfg)
    with h.tcp_connect(w.port) as s:
        assert dmarc(w.port, sock=s) == expect_dmarc("a@example.net")
        write_config(cfg, {"nameservers": [GOOD_NS], "rua": "b@example.net"})
        w.signal(signal.SIGHUP)
        got = wait_for(lambda: dmarc(w.port, sock=s), expect_dmarc("b@example.net"))
        assert got == expect_dmarc("b@example.net"), "the open TCP connection must see the reloaded config"
    assert dmarc(w.port, "udp") == expect_dmarc("b@example.net")
    assert w.proc.poll() is None, "worker must keep running after SIGHUP"


def test_sighup_reload_changes_nameservers(tmp_path, worker_factory):
    cfg = write_config(tmp_path / "config.json", {"nameservers": [GOOD_NS]})
    w = worker_factory("-c", cfg)

    def mname():
        r = h.query(w.port, h.make_query("example.com.", "SOA"), "udp")
        return r.answer[0][0].mname.to_text()

    assert mname() == NS1 + "."
    write_config(cfg, {"nameservers": ["ns9.other.example.org:192.0.2.99", GOOD_NS]})
    w.signal(signal.SIGHUP)
    assert wait_for(mname, "ns9.other.example.org.") == "ns9.other.example.org."
    r = h.query(w.port, h.make_query("ns9.other.example.org.", "A"), "tcp")
    assert [rd.address for rd in r.answer[0]] == ["192.0.2.99"]


def test_sighup_with_bad_config_keeps_old(tmp_path, worker_factory):
    cfg = write_config(tmp_path / "config.json", {"nameservers": [GOOD_NS], "rua": "a@example.net"})
    w = worker_factory("-c", cfg)
    assert dmarc(w.port) == expect_dmarc("a@example.net")
    write_config(cfg, '{"nameservers": [')
    w.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert w.proc.poll() is None, f"a bad config on SIGHUP must not stop the worker:\n{w.stderr()}"
    assert dmarc(w.port) == expect_dmarc("a@example.net")
    assert dmarc(w.port, "tcp") == expect_dmarc("a@example.net")


def test_sighup_without_config_file_keeps_serving(worker_factory):
    w = worker_factory(*STANDARD_ARGS)
    w.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert w.proc.poll() is None, f"SIGHUP without -c stopped the worker:\n{w.stderr()}"
    r = h.query(w.port, h.make_query("_dmarc.example.com.", "TXT"), "udp")
    assert h.txt_strings(r.answer[0])[0].startswith("v=DMARC1; p=reject; sp=reject; np=reject; adkim=s; aspf=s; rua=mailto:")


def test_flags_override_config(tmp_path, worker_factory):
    cfg = write_config(tmp_path / "config.json", {"nameservers": [GOOD_NS], "rua": "a@example.net"})
    w = worker_factory("-c", cfg, "--rua", "flag@example.net")
    assert dmarc(w.port) == expect_dmarc("flag@example.net")
    write_config(cfg, {"nameservers": [GOOD_NS], "rua": "b@example.net"})
    w.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert dmarc(w.port) == expect_dmarc("flag@example.net"), "a flag still overrides the file after reload"


# --- shutdown -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_promptly(worker_factory, sig):
    w = worker_factory(*STANDARD_ARGS)
    idle = h.tcp_connect(w.port)  # an idle open connection must not hold up the exit
    try:
        h.query(w.port, h.make_query("example.com.", "SOA"), "tcp")
        start = time.monotonic()
        w.signal(sig)
        rc = w.wait_exit(timeout=5)
        elapsed = time.monotonic() - start
        assert rc is not None, "worker did not exit within 5 s of the signal"
        assert rc == 0, f"exit code {rc} after {signal.Signals(sig).name}"
        assert elapsed < 3.0, f"took {elapsed:.2f}s to exit"
        kind, _ = h.wait_for_close(idle, timeout=1)
        assert kind in ("fin", "rst")
    finally:
        idle.close()


# --- metrics ------------------------------------------------------------------------------------------

def parse_metrics(text):
    """{(sample name, frozenset(labels)): value} from the Prometheus text format."""
    samples = {}
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        text_string_to_metric_families = None
    if text_string_to_metric_families is not None:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                samples[(s.name, frozenset(s.labels.items()))] = float(s.value)
        return samples
    import re
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        assert m, f"bad metrics line {line!r}"
        labels = frozenset(label_re.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def total(samples, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def scrape(mport, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=timeout) as resp:
        assert resp.status == 200
        return parse_metrics(resp.read().decode())


@pytest.fixture
def metrics_worker(worker_factory):
    mport = free_tcp_port()
    w = worker_factory(*STANDARD_ARGS, "--metrics", f"127.0.0.1:{mport}")
    deadline = time.monotonic() + 5
    while True:
        try:
            scrape(mport)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return w, mport


def test_metrics_udp_queries_counted(metrics_worker):
    w, mport = metrics_worker
    before = scrape(mport)
    for i in range(7):
        h.query(w.port, h.make_query(f"m{i}.example.com.", "TXT"), "udp")
    for i in range(3):
        h.query(w.port, h.make_query("com.", "SOA"), "udp")
    time.sleep(0.1)  # let the worker finish its bookkeeping after sending
    after = scrape(mport)
    name = "domain_park_queries_total"
    assert any(n == name for n, _ in after), f"no {name} in metrics: {sorted({n for n, _ in after})}"
    delta = total(after, name, transport="udp") - total(before, name, transport="udp")
    assert delta == 10, f"udp queries moved by {delta}, sent 10"
    assert total(after, name, transport="tcp") == total(before, name, transport="tcp")
    # The refused ones are labelled as such (label values may be mnemonic or numeric).
    refused = sum(v for (n, ls), v in after.items() if n == name and dict(ls).get("transport") == "udp"
                  and dict(ls).get("rcode") in ("REFUSED", "5"))
    refused_before = sum(v for (n, ls), v in before.items() if n == name and dict(ls).get("transport") == "udp"
                         and dict(ls).get("rcode") in ("REFUSED", "5"))
    assert refused - refused_before == 3, f"refused udp queries moved by {refused - refused_before}, sent 3"


def test_metrics_tcp_connections_counted(metrics_worker):
    w, mport = metrics_worker
    before = scrape(mport)
    socks = [h.tcp_connect(w.port) for _ in range(2)]
    try:
        for i, s in enumerate(socks):
            for j in range(3):
                q = h.make_query(f"t{i}{j}.example.com.", "TXT")
                h.tcp_send(s, q.to_wire())
                assert dns.message.from_wire(h.tcp_recv(s)).id == q.id
        during = scrape(mport)
        assert total(during, "domain_park_tcp_connections_open") - total(before, "domain_park_tcp_connections_open") == 2
    finally:
        for s in socks:
            s.close()

    def closed_by_peer():
        return total(scrape(mport), "domain_park_tcp_connections_closed_total", reason="peer")

    peer_before = total(before, "domain_park_tcp_connections_closed_total", reason="peer")
    assert wait_for(closed_by_peer, peer_before + 2) == peer_before + 2
    after = scrape(mport)
    accepted = (total(after, "domain_park_tcp_connections_accepted_total")
                - total(before, "domain_park_tcp_connections_accepted_total"))
    assert accepted == 2, f"accepted moved by {accepted}, opened 2"
    tcp_q = total(after, "domain_park_queries_total", transport="tcp") - total(before, "domain_park_queries_total",
                                                                                transport="tcp")
    assert tcp_q == 6, f"tcp queries moved by {tcp_q}, sent 6"
    assert total(after, "domain_park_tcp_connections_open") == total(before, "domain_park_tcp_connections_open")
    udp_q = total(after, "domain_park_queries_total", transport="udp") - total(before, "domain_park_queries_total",
                                                                                transport="udp")
    assert udp_q == 0


def test_metrics_malformed_and_truncated(metrics_worker):
    w, mport = metrics_worker
    before = scrape(mport)
    assert h.udp_exchange(w.port, b"\x01\x02\x03\x04\x05", timeout=h.NO_ANSWER_TIMEOUT) is None
    time.sleep(0.1)
    after = scrape(mport)
    moved = total(after, "domain_park_malformed_total") - total(before, "domain_park_malformed_total")
    assert moved == 1, f"malformed_total moved by {moved} for one 5-byte datagram"


def test_metrics_suffix_lookups(metrics_worker):
    # A new top-level label is answered by libpsl once; after that the hot table (or the
    # memo) answers it, and names under a known suffix never get past the table.
    w, mport = metrics_worker
    name = "domain_park_suffix_lookups_slow_total"
    h.query(w.port, h.make_query("warm.example.com.", "TXT"), "udp")
    before = scrape(mport)
    for i in range(5):
        r = h.query(w.port, h.make_query(f"a.b.newtld{i}x.", "TXT"), "udp")
        assert r.rcode() == dns.rcode.NOERROR
    time.sleep(0.1)
    middle = scrape(mport)
    assert total(middle, name, path="libpsl") - total(before, name, path="libpsl") == 5
    for i in range(5):
        h.query(w.port, h.make_query(f"c.b.newtld{i}x.", "TXT"), "udp")
    for i in range(20):
        h.query(w.port, h.make_query(f"n{i}.example.com.", "TXT"), "udp")
    time.sleep(0.1)
    after = scrape(mport)
    assert total(after, name, path="libpsl") == total(middle, name, path="libpsl")


def test_metrics_tcp_close_reasons(worker_factory):
    mport = free_tcp_port()
    w = worker_factory(*STANDARD_ARGS, "--metrics", f"127.0.0.1:{mport}", "--idle-timeout", "1",
                       "--max-connections", "2")
    deadline = time.monotonic() + 5
    while True:
        try:
            before = scrape(mport)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    name = "domain_park_tcp_connections_closed_total"
    # bad_length: a length prefix below a header
    with h.tcp_connect(w.port) as s:
        s.sendall(b"\x00\x05hello")
        assert h.wait_for_close(s, 3)[0] in ("fin", "rst")
    # evicted: three connections with a cap of two
    a, b = h.tcp_connect(w.port), h.tcp_connect(w.port)
    time.sleep(0.1)
    c = h.tcp_connect(w.port)
    assert h.wait_for_close(a, 3)[0] == "fin"
    # idle: b and c time out after one second
    assert h.wait_for_close(b, 4)[0] == "fin"
    assert h.wait_for_close(c, 4)[0] == "fin"
    for x in (a, b, c):
        x.close()
    time.sleep(0.2)
    after = scrape(mport)

    def moved(reason):
        return total(after, name, reason=reason) - total(before, name, reason=reason)

    assert moved("bad_length") == 1
    assert moved("evicted") == 1
    assert moved("idle") == 2
    assert moved("peer") == 0
    assert total(after, "domain_park_tcp_connections_open") == 0


def test_metrics_udp_truncated(worker_factory):
    from test_contract import BIG_NS, BIG_ADDRS
    mport = free_tcp_port()
    args = []
    for ns in BIG_NS:
        args += ["-n", f"{ns}:{','.join(BIG_ADDRS[ns])}"]
    w = worker_factory(*args, "--metrics", f"127.0.0.1:{mport}")
    deadline = time.monotonic() + 5
    while True:
        try:
            before = scrape(mport)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    for _ in range(2):
        reply = h.udp_exchange(w.port, h.make_query("example.com.", "NS").to_wire())
        assert h.parse_header(reply)["tc"]
    h.query(w.port, h.make_query("example.com.", "TXT"), "udp")
    time.sleep(0.1)
    after = scrape(mport)
    moved = total(after, "domain_park_udp_truncated_total") - total(before, "domain_park_udp_truncated_total")
    assert moved == 2, f"udp_truncated_total moved by {moved}, sent 2 truncated answers"


def test_metrics_bytes_and_histogram(metrics_worker):
    w, mport = metrics_worker
    before = scrape(mport)
    q = h.make_query("bytes.example.com.", "TXT")
    reply = h.udp_exchange(w.port, q.to_wire())
    assert reply is not None
    time.sleep(0.1)
    after = scrape(mport)
    rx = (total(after, "domain_park_received_bytes_total", transport="udp")
          - total(before, "domain_park_received_bytes_total", transport="udp"))
    tx = (total(after, "domain_park_sent_bytes_total", transport="udp")
          - total(before, "domain_park_sent_bytes_total", transport="udp"))
    assert rx == len(q.to_wire()), f"received bytes moved by {rx}, sent {len(q.to_wire())}"
    assert tx == len(reply), f"sent bytes moved by {tx}, got {len(reply)}"
    cnt = (total(after, "domain_park_query_duration_seconds_count")
           - total(before, "domain_park_query_duration_seconds_count"))
    assert cnt == 1, f"query_duration_seconds_count moved by {cnt}"
