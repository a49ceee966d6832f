"""Fixtures for the end-to-end tests: start the real domain-park-worker binary on a free
loopback port, wait until it answers, stop it by PID afterwards, and show its stderr when a
test fails.

The binary is taken from $DOMAIN_PARK_WORKER (default: build/worker/domain-park-worker in
this repository).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e_helpers as h  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WORKER_BIN = os.environ.get("DOMAIN_PARK_WORKER", str(REPO / "build" / "worker" / "domain-park-worker"))

START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0

# Workers alive during the current test, so a failure report can show their stderr.
_LIVE_WORKERS = []


def worker_binary():
    if not os.access(WORKER_BIN, os.X_OK):
        pytest.fail(f"worker binary not found or not executable: {WORKER_BIN} "
                    "(build it, or set DOMAIN_PARK_WORKER)", pytrace=False)
    return WORKER_BIN


def free_port(host=h.HOST):
    """A port that is free on host for both TCP and UDP at the time of the call."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            with socket.socket(family, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP")


def free_tcp_port(host=h.HOST):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
        t.bind((host, 0))
        return t.getsockname()[1]


class Worker:
    def __init__(self, args, port, stderr_path, host=h.HOST):
        self.args = args
        self.port = port
        self.host = host
        self.stderr_path = stderr_path
        self._stderr_file = open(stderr_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._stderr_file,
                                     stderr=self._stderr_file)
        self.pid = self.proc.pid
        _LIVE_WORKERS.append(self)

    def stderr(self):
        if not self._stderr_file.closed:
            self._stderr_file.flush()
        try:
            return Path(self.stderr_path).read_text(errors="replace")
        except OSError:
            return ""

    def describe(self):
        return f"worker pid {self.pid} cmd {' '.join(self.args)}\n--- stderr/stdout ---\n{self.stderr()}"

    def wait_ready(self, transport="udp", timeout=START_TIMEOUT):
        """Poll an SOA query until the worker answers it (bounded)."""
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with code {self.proc.returncode} during start\n"
                                     + self.describe())
            q = h.make_query("example.com.", "SOA")
            try:
                if transport == "udp":
                    if h.udp_exchange(self.port, q.to_wire(), timeout=0.2, host=self.host) is not None:
                        return
                else:
                    h.tcp_exchange(self.port, q.to_wire(), timeout=0.5, host=self.host)
                    return
            except (OSError, EOFError) as e:
                last_err = e
            time.sleep(0.05)
        raise AssertionError(f"worker did not answer an SOA query over {transport} within "
                             f"{timeout}s (last error: {last_err})\n" + self.describe())

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def sanitizer_report(self):
        """The first sanitizer finding in the worker's output, or None."""
        text = self.stderr()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer", "ERROR: MemorySanitizer"):
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._stderr_file.close()
        if self in _LIVE_WORKERS:
            _LIVE_WORKERS.remove(self)
        return self.proc.returncode


def start_worker(tmp_dir, *args, port=None, host=h.HOST, listen=True, wait=True, ready_transport=None, wrapper=()):
    """Start the worker with args (plus --host/--port unless listen=False) and wait until it
    answers. ready_transport defaults to udp unless --tcp (TCP only) is among args. `wrapper`
    runs before the binary and execs it (e.g. prlimit for a lower descriptor limit)."""
    port = port if port is not None else free_port(host)
    cmd = [*wrapper, worker_binary()]
    if listen:
        cmd += ["--host", host, "--port", str(port)]
    cmd += [str(a) for a in args]
    stderr_path = Path(tmp_dir) / f"worker-{port}-{time.monotonic_ns()}.log"
    w = Worker(cmd, port, stderr_path, host)
    if wait:
        if ready_transport is None:
            ready_transport = "tcp" if "--tcp" in cmd else "udp"
        try:
            w.wait_ready(ready_transport)
        except BaseException:
            w.stop()
            raise
    return w


# The configuration most tests use. Name servers live under example.net so that their names
# have a registrable domain of their own (example.net) distinct from the test domains.
NS1 = "ns1.park.example.net"
NS2 = "ns2.park.example.net"
NS1_ADDRS = ["192.0.2.53", "2001:db8::53"]
NS2_ADDRS = ["192.0.2.54"]
RUA = "dmarc@park.example.net"
RUF = "forensic@park.example.net"
IDENTITY = "w0"
STANDARD_ARGS = [
    "-n", f"{NS1}:{','.join(NS1_ADDRS)}",
    "-n", f"{NS2}:{','.join(NS2_ADDRS)}",
    "--rua", RUA, "--ruf", RUF, "--identity", IDENTITY,
]


@pytest.fixture
def worker_factory(tmp_path):
    started = []

    def factory(*args, **kw):
        w = start_worker(tmp_path, *args, **kw)
        started.append(w)
        return w

    yield factory
    for w in started:
        w.stop()
    for w in started:
        assert_clean(w)


def assert_clean(w):
    report = w.sanitizer_report()
    assert report is None, f"sanitizer finding in worker pid {w.pid} ({' '.join(w.args)}):\n{report}"


@pytest.fixture(scope="module")
def std_worker(tmp_path_factory):
    """One worker with the standard configuration, shared by a test module."""
    w = start_worker(tmp_path_factory.mktemp("std"), *STANDARD_ARGS)
    yield w
    w.stop()
    assert_clean(w)


@pytest.fixture(scope="module")
def plain_worker(tmp_path_factory):
    """A worker with a single name server and no identity, rua or ruf."""
    w = start_worker(tmp_path_factory.mktemp("plain"), "-n", f"{NS1}:{NS1_ADDRS[0]}")
    yield w
    w.stop()
    assert_clean(w)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _LIVE_WORKERS:
        for w in list(_LIVE_WORKERS):
            rep.sections.append((f"worker {w.pid} (port {w.port})", w.describe()))
