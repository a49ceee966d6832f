"""sd_notify from the real worker and balancer (net/systemd_notify.cpp): a real AF_UNIX datagram
socket stands where systemd's notification socket would be ($NOTIFY_SOCKET), and the test
checks the messages and their order against what the processes are doing. Under systemd itself
the units are checked in tests/e2e_hosts (Type=notify units turning active)."""

import os
import signal
import socket
import time

import pytest

from .deploy_stack import Balancer, h, start_worker, wc

WAIT = 10.0


class NotifySocket:
    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout=WAIT):
        """The next notification as a dict of its KEY=VALUE lines (fails after timeout)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except socket.timeout:
            pytest.fail(f"no notification on {self.path} within {timeout}s")
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def none_within(self, seconds):
        self.sock.settimeout(seconds)
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            return None

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path, monkeypatch):
    n = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", n.path)
    yield n
    n.close()


def answers(port):
    reply = h.udp_exchange(port, h.make_query("example.com.", "SOA").to_wire(), timeout=1.0)
    return reply is not None and h.parse_header(reply)["rcode"] == 0


def test_worker_ready_reload_stopping(tmp_path, notify):
    port = wc.free_port()
    w = wc.start_worker(tmp_path, *wc.STANDARD_ARGS, port=port, wait=False)
    try:
        ready = notify.next()
        assert ready.get("READY") == "1", ready
        assert ready["STATUS"].startswith(f"serving udp+tcp on 127.0.0.1:{port}"), ready
        # READY=1 means answering: the very first query after it gets its answer.
        assert answers(port)
        assert notify.none_within(0.3) is None, "nothing more until something happens"

        w.signal(signal.SIGHUP)
        assert notify.next().get("RELOADING") == "1"
        after = notify.next()
        assert after.get("READY") == "1" and after["STATUS"] == ready["STATUS"], after
        assert answers(port)

        w.signal(signal.SIGTERM)
        assert notify.next().get("STOPPING") == "1"
        assert w.wait_exit() == 0
    finally:
        w.stop()


def test_worker_ready_follows_a_failed_reload(tmp_path, notify):
    """A reload that fails keeps the running configuration, so the service is ready again."""
    cfg = tmp_path / "w.json"
    cfg.write_text('{"nameservers": ["ns1.park.example.net:192.0.2.53"]}')
    port = wc.free_port()
    w = wc.start_worker(tmp_path, "--config", cfg, port=port, wait=False)
    try:
        assert notify.next().get("READY") == "1"
        cfg.write_text('{"nameservers": []}')
        w.signal(signal.SIGHUP)
        assert notify.next().get("RELOADING") == "1"
        assert notify.next().get("READY") == "1"
        assert answers(port)
        assert "reload failed" in w.stderr()
    finally:
        w.stop()


def test_no_notify_socket_is_harmless(tmp_path, monkeypatch):
    """Started by hand (NOTIFY_SOCKET unset, or pointing nowhere) the worker runs as always."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens-here"))
    w = wc.start_worker(tmp_path, *wc.STANDARD_ARGS)
    try:
        assert answers(w.port)
        w.signal(signal.SIGHUP)
        time.sleep(0.2)
        assert answers(w.port)
    finally:
        assert w.stop() == 0


def test_balancer_ready_reload_stopping(tmp_path, notify):
    # The worker is started before NOTIFY_SOCKET matters: its own READY=1 comes first.
    w = start_worker(tmp_path)
    first = notify.next()
    assert first.get("READY") == "1" and "serving udp+tcp" in first["STATUS"]
    b = Balancer(tmp_path, workers=[f"{h.HOST}:{w.port}"], wait=False)
    try:
        ready = notify.next()
        assert ready.get("READY") == "1", ready
        assert ready["STATUS"].startswith(f"serving udp+tcp on {h.HOST}:{b.port} with 1 thread(s)"), ready
        b.wait_ready()
        b.signal(signal.SIGHUP)
        assert notify.next().get("RELOADING") == "1"
        assert notify.next().get("READY") == "1"
        b.signal(signal.SIGTERM)
        assert notify.next().get("STOPPING") == "1"
        assert b.proc.wait(timeout=WAIT) == 0
    finally:
        b.stop()
        w.stop()


def test_main_pid_sends(tmp_path, notify):
    """systemd accepts notifications from the main process only (NotifyAccess=main): the
    sender of READY=1 is the worker's own PID."""
    notify.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    w = wc.start_worker(tmp_path, *wc.STANDARD_ARGS, wait=False)
    try:
        notify.sock.settimeout(WAIT)
        data, ancdata, _, _ = notify.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        assert b"READY=1" in data
        creds = [c for c in ancdata if c[0] == socket.SOL_SOCKET and c[1] == socket.SCM_CREDENTIALS]
        assert creds, "no sender credentials"
        pid = int.from_bytes(creds[0][2][:4], "little")
        assert pid == w.pid
    finally:
        w.stop()
    assert os.environ["NOTIFY_SOCKET"] == notify.path
