"""Operating the balancer: SIGHUP changes the worker list without dropping client
connections, bad input stops start-up with one line and exit code 2, metrics move, SIGTERM
drains and exits 0."""

import signal
import subprocess
import time
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from .balancer_stack import addr, balancer_binary, h, worker_queries, write_config


def ask_many(port, n, prefix, transport="udp"):
    for i in range(n):
        r = h.query(port, h.make_query(f"{prefix}-{i}.example.com.", "TXT"), transport)
        assert r.rcode() == dns.rcode.NOERROR


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_sighup_adds_and_removes_workers_keeping_client_connections(procs, tmp_path):
    a = procs.worker(identity="a")
    bw = procs.worker(identity="b")
    cfg = tmp_path / "balancer.json"
    write_config(cfg, workers=[addr(a)])
    b = procs.balancer(config=cfg)
    ask_many(b.port, 50, "one")
    assert worker_queries(a, qtype="TXT") >= 50
    assert worker_queries(bw, qtype="TXT") == 0

    with h.tcp_connect(b.port, timeout=5.0) as client:
        def tcp_ask(name):
            q = h.make_query(name, "TXT")
            h.tcp_send(client, q.to_wire())
            r = dns.message.from_wire(h.tcp_recv(client))
            assert r.id == q.id and r.rcode() == dns.rcode.NOERROR

        tcp_ask("before.example.com.")
        # Add b.
        write_config(cfg, workers=[addr(a), addr(bw)])
        b.signal(signal.SIGHUP)
        wait_until(lambda: b.metrics().value("domain_park_balancer_config_reloads_total", result="success") >= 1,
                   5, "reload counted")
        tcp_ask("after-add.example.com.")

        def b_used():
            ask_many(b.port, 20, f"two-{time.monotonic_ns()}")
            return worker_queries(bw, qtype="TXT") > 0
        wait_until(b_used, 5, "the added worker gets queries")
        assert b.metrics().value("domain_park_balancer_worker_up", worker=addr(bw)) == 1

        # Remove a: it gets nothing more.
        write_config(cfg, workers=[addr(bw)])
        b.signal(signal.SIGHUP)
        wait_until(lambda: b.metrics().value("domain_park_balancer_config_reloads_total", result="success") >= 2,
                   5, "second reload counted")
        tcp_ask("after-remove.example.com.")
        a_before = worker_queries(a, qtype="TXT")
        b_before = worker_queries(bw, qtype="TXT")
        ask_many(b.port, 100, "three")
        ask_many(b.port, 20, "three-tcp", "tcp")
        tcp_ask("still-open.example.com.")
        assert worker_queries(a, qtype="TXT") == a_before, "a removed worker still gets queries"
        assert worker_queries(bw, qtype="TXT") >= b_before + 120
        assert b.metrics().value("domain_park_balancer_worker_up", worker=addr(a)) == 0

        # A broken file is refused; the running list stays.
        cfg.write_text("{ not json")
        b.signal(signal.SIGHUP)
        wait_until(lambda: b.metrics().value("domain_park_balancer_config_reloads_total", result="failure") >= 1,
                   5, "failed reload counted")
        tcp_ask("after-bad-reload.example.com.")
    assert b.proc.poll() is None


def run_balancer(*args, timeout=10):
    return subprocess.run([balancer_binary(), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


BAD = [
    (["--listen", "127.0.0.1:5300"], "workers"),
    (["--worker", "nonsense"], "--worker"),
    (["--worker", "127.0.0.1"], "--worker"),
    (["--worker", "127.0.0.1:5300", "--worker", "127.0.0.1:5300"], "workers"),
    (["--worker", "127.0.0.1:5300", "--listen", "localhost:53"], "listen"),
    (["--worker", "127.0.0.1:5300", "--listen", "127.0.0.1:99999"], "listen"),
    (["--worker", "127.0.0.1:5300", "--threads", "65"], "--threads"),
    (["--worker", "127.0.0.1:5300", "--threads", "0"], "--threads"),
    (["--worker", "127.0.0.1:5300", "--threads", "x"], "--threads"),
    (["--worker", "127.0.0.1:5300", "--max-retries", "3"], "--max-retries"),
    (["--worker", "127.0.0.1:5300", "--deadline-ms", "soon"], "--deadline-ms"),
    (["--worker", "127.0.0.1:5300", "--metrics", "nowhere"], "metrics"),
    (["--worker", "127.0.0.1:5300", "--bogus"], "--bogus"),
    (["--worker"], "--worker"),
    (["--config", "/nonexistent/balancer.json"], "config"),
]


@pytest.mark.parametrize("args,names", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_flags_exit_2_with_one_line(args, names):
    for extra in ([], ["--check-config"]):
        res = run_balancer(*extra, *args)
        assert res.returncode == 2, f"{args}: exit {res.returncode}\n{res.stderr}"
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, f"{args}: expected one line, got {res.stderr!r}"
        assert names in lines[0], f"{args}: {lines[0]!r} does not name {names}"


@pytest.mark.parametrize("content,names", [
    ('{"workers": ["127.0.0.1:5300"], "wokers": []}', "wokers"),
    ('{"workers": "127.0.0.1:5300"}', "workers"),
    ('{"workers": ["127.0.0.1:5300"], "deadline_action": "retry"}', "deadline_action"),
    ('{"workers": ["127.0.0.1:5300"], "upstream_max_outstanding": 70000}', "upstream_max_outstanding"),
    ('{"workers": ["127.0.0.1:5300"], "health_backoff_min_ms": 500, "health_backoff_max_ms": 100}',
     "health_backoff_max_ms"),
    ("[1, 2]", "config"),
    ("{ nope", "config"),
])
def test_bad_config_file_exit_2_with_one_line(tmp_path, content, names):
    cfg = tmp_path / "bad.json"
    cfg.write_text(content)
    res = run_balancer("--config", str(cfg), "--check-config")
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and names in lines[0], res.stderr


def test_check_config_accepts_a_valid_file(tmp_path):
    cfg = write_config(tmp_path / "ok.json", listen=["127.0.0.1:5353", "[::1]:5353"], workers=["127.0.0.1:5300"],
                       deadline_ms=2000, attempt_timeout_ms=600, max_retries=1, deadline_action="drop",
                       upstream_connections=4, metrics="127.0.0.1:9253")
    res = run_balancer("--config", str(cfg), "--check-config")
    assert res.returncode == 0, res.stderr
    res = run_balancer("--help")
    assert res.returncode == 0 and "--worker" in res.stdout


def test_deploy_example_is_valid():
    """deploy/balancer.example.json is what the systemd unit's ExecStartPre checks."""
    example = Path(__file__).resolve().parents[2] / "deploy" / "balancer.example.json"
    res = run_balancer("--config", str(example), "--check-config")
    assert res.returncode == 0, res.stderr


def test_metrics_move(procs):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)])
    m0 = b.metrics()
    ask_many(b.port, 10, "m", "udp")
    ask_many(b.port, 5, "mt", "tcp")
    ask_many(b.port, 5, "m", "tcp")  # answered from the cache
    m1 = b.metrics()

    def delta(name, **labels):
        return m1.value(name, **labels) - m0.value(name, **labels)

    assert delta("domain_park_balancer_requests_total", transport="udp", rcode="NOERROR") == 10
    assert delta("domain_park_balancer_requests_total", transport="tcp", rcode="NOERROR") == 10
    assert delta("domain_park_balancer_cache_lookups_total", result="hit") == 5
    assert delta("domain_park_balancer_cache_lookups_total", result="miss") == 15
    assert delta("domain_park_balancer_cache_inserts_total") == 15
    assert delta("domain_park_balancer_cache_entries") == 15
    assert delta("domain_park_balancer_request_duration_seconds_count", transport="udp") == 10
    assert delta("domain_park_balancer_worker_queries_total", worker=addr(w)) == 15
    assert delta("domain_park_balancer_worker_answers_total", worker=addr(w)) == 15
    assert delta("domain_park_balancer_tcp_connections_accepted_total") == 10
    assert m1.value("domain_park_balancer_worker_up", worker=addr(w)) == 1
    assert m1.value("domain_park_balancer_worker_outstanding", worker=addr(w)) == 0
    assert m1.value("domain_park_balancer_inflight_queries") == 0
    for name in ("domain_park_balancer_retries_total", "domain_park_balancer_deadline_expired_total",
                 "domain_park_balancer_worker_reconnects_total", "domain_park_balancer_worker_failures_total",
                 "domain_park_balancer_servfail_total", "domain_park_balancer_dropped_total"):
        assert m1.has(name), name


def test_sigterm_answers_in_flight_then_exits_0(procs):
    w = procs.worker()
    b = procs.balancer(workers=[addr(w)])
    with h.tcp_connect(b.port, timeout=5.0) as s:
        qs = [h.make_query(f"t{i}.example.com.", "TXT") for i in range(20)]
        s.sendall(b"".join(len(q.to_wire()).to_bytes(2, "big") + q.to_wire() for q in qs))
        got = 0
        for _ in qs:
            h.tcp_recv(s)
            got += 1
        b.signal(signal.SIGTERM)
        # The balancer closes the idle connection with a FIN, then exits 0.
        state, _ = h.wait_for_close(s, 5.0)
        assert state == "fin"
    assert b.proc.wait(timeout=10) == 0
    assert got == 20
