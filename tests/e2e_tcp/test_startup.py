"""Start-up of both programs through their shared serving settings: a metrics address that is
taken stops start-up with one line naming the address and the reason (before: civetweb's "null
context when constructing CivetServer"), and the start-up line gives the address really bound
(port 0: the port the kernel chose). An IPv6 metrics address is refused with the reason."""

import re
import socket
import subprocess

import pytest

from .servers import Balancer, STANDARD_ARGS, h, wc, free_tcp_ports


def start_cmd(kind, extra):
    if kind == "worker":
        return [wc.worker_binary(), "--host", h.HOST, "--port", str(wc.free_port()), *STANDARD_ARGS, *extra]
    from tests.e2e_balancer.balancer_stack import balancer_binary
    return [balancer_binary(), "--listen", f"{h.HOST}:{wc.free_port()}", "--worker", "127.0.0.1:9", *extra]


def test_taken_metrics_port_is_named(kind):
    with socket.socket() as s:
        s.bind((h.HOST, 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run(start_cmd(kind, ["--metrics", f"{h.HOST}:{port}"]), capture_output=True, text=True,
                           timeout=10)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1, r.stderr
    assert f"{h.HOST}:{port}" in lines[0] and "in use" in lines[0], lines[0]


def test_metrics_over_ipv6_refused_with_the_reason(kind):
    # Debian's civetweb, which serves the endpoint, is built without IPv6: say so at start-up.
    r = subprocess.run(start_cmd(kind, ["--metrics", "[::1]:9153", "--check-config"]), capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2
    assert "IPv4" in r.stderr and "metrics" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("addr", ["127.0.0.1:0"])
def test_start_up_line_gives_the_metrics_address_really_bound(kind, tmp_path, addr):
    log = tmp_path / "out.log"
    with open(log, "wb") as f:
        p = subprocess.Popen(start_cmd(kind, ["--metrics", addr]), stdout=f, stderr=f)
    try:
        m = None
        for _ in range(100):
            m = re.search(r"metrics on (\S+?)(;|$|\s)", log.read_text(), re.M)
            if m:
                break
            subprocess.run(["sleep", "0.05"])
        assert m, log.read_text()
        shown = m.group(1)
        host = addr.rsplit(":", 1)[0]
        assert shown.startswith(host + ":"), shown
        port = int(shown.rsplit(":", 1)[1])
        assert port != 0
        status, _ = h_get(shown)
        assert status == 200, f"nothing serves metrics at the address the start-up line gives: {shown}"
    finally:
        p.terminate()
        p.wait(timeout=10)


def h_get(addr):
    from .servers import scrape  # noqa: F401  (the HTTP helper lives with it)
    from prom_scrape import http_get
    return http_get(f"http://{addr}/metrics")
