"""The machinery of the balancer end-to-end tests (fixtures in conftest.py): real
domain-park-worker processes behind a real domain-park-balancer process, all on free loopback
ports, stopped by PID afterwards, with every process's output attached to a failure report.

Binaries:
  worker    $DOMAIN_PARK_WORKER, else build/worker/domain-park-worker (as tests/e2e)
  balancer  $DOMAIN_PARK_BALANCER, else build/balancer/domain-park-balancer

The worker launcher, port picker and wire helpers are the ones of tests/e2e (imported, not
copied): tests/e2e/conftest.py is loaded under another module name so that its fixtures and
hooks are not registered twice (as tests/e2e_coredns does).
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
E2E_DIR = REPO / "tests" / "e2e"
sys.path.insert(0, str(E2E_DIR))

import e2e_helpers as h  # noqa: E402

_spec = importlib.util.spec_from_file_location("e2e_worker_conftest_for_balancer", E2E_DIR / "conftest.py")
wc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wc)


BALANCER_BIN = os.environ.get("DOMAIN_PARK_BALANCER",
                              str(REPO / "build" / "balancer" / "domain-park-balancer"))
STANDARD_ARGS = list(wc.STANDARD_ARGS)
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

_LIVE_BALANCERS = []


def report_live_processes(rep):
    """Adds every balancer and worker still running to a failed test's report (their
    command line and output), for the pytest_runtest_makereport hooks of the conftests."""
    for b in list(_LIVE_BALANCERS):
        rep.sections.append((f"balancer {b.pid} (port {b.port})", b.describe()))
    for w in list(wc._LIVE_WORKERS):
        rep.sections.append((f"worker {w.pid} (port {w.port})", w.describe()))


def balancer_binary():
    if not os.access(BALANCER_BIN, os.X_OK):
        pytest.fail(f"balancer binary not found or not executable: {BALANCER_BIN} "
                    "(build it, or set DOMAIN_PARK_BALANCER)", pytrace=False)
    return BALANCER_BIN


# --- metrics --------------------------------------------------------------------------------------

from prom_scrape import Metrics, free_tcp_ports, http_get, scrape, wait_metrics  # noqa: E402,F401


# --- processes ------------------------------------------------------------------------------------

class Balancer:
    """One domain-park-balancer process listening on a free loopback port (UDP and TCP)."""

    def __init__(self, tmp_dir, workers=(), extra_args=(), config=None, port=None, metrics=True, wait=True,
                 wrapper=()):
        self.tmp_dir = Path(tmp_dir)
        self.port = port or wc.free_port()
        self.metrics_addr = f"{h.HOST}:{free_tcp_ports(1, taken={self.port})[0]}" if metrics else None
        self.args = [*wrapper, balancer_binary(), "--listen", f"{h.HOST}:{self.port}"]
        for w in workers:
            self.args += ["--worker", w]
        if config is not None:
            self.args += ["--config", str(config)]
        if self.metrics_addr:
            self.args += ["--metrics", self.metrics_addr]
        self.args += [str(a) for a in extra_args]
        self.log_path = self.tmp_dir / f"balancer-{self.port}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.pid = self.proc.pid
        _LIVE_BALANCERS.append(self)
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                raise

    def output(self):
        if not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self):
        return f"balancer pid {self.pid} cmd {' '.join(self.args)}\n--- stderr/stdout ---\n{self.output()}"

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Until a query through the balancer gets a worker's answer (not the balancer's SERVFAIL)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"balancer exited with code {self.proc.returncode} during start\n"
                                     + self.describe())
            q = h.make_query("example.com.", "SOA")
            reply = h.udp_exchange(self.port, q.to_wire(), timeout=0.5)
            if reply is not None:
                last = h.parse_header(reply)["rcode"]
                if last != 2:
                    if self.metrics_addr:
                        wait_metrics(self.metrics_addr)
                    return
            time.sleep(0.05)
        raise AssertionError(f"balancer not answering from a worker within {timeout}s (last rcode {last})\n"
                             + self.describe())

    def metrics(self):
        return scrape(self.metrics_addr)

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._log.close()
        if self in _LIVE_BALANCERS:
            _LIVE_BALANCERS.remove(self)
        return self.proc.returncode

    def sanitizer_report(self):
        text = self.output()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None


def start_worker(tmp_dir, args=None, identity="w0", port=None):
    """A worker with its own metrics endpoint (w.metrics_addr), ready to answer."""
    mport = free_tcp_ports(1)[0]
    args = [a for a in (STANDARD_ARGS if args is None else args)]
    if "--identity" in args:
        i = args.index("--identity")
        del args[i:i + 2]
    args += ["--identity", identity, "--metrics", f"{h.HOST}:{mport}"]
    w = wc.start_worker(tmp_dir, *args, port=port)
    w.identity = identity
    w.metrics_addr = f"{h.HOST}:{mport}"
    try:
        wait_metrics(w.metrics_addr)
    except BaseException:
        w.stop()
        raise
    return w


def worker_queries(w, **labels):
    """domain_park_queries_total of one worker, summed over the labels not given."""
    return scrape(w.metrics_addr).value("domain_park_queries_total", **labels)


def addr(w):
    return f"{h.HOST}:{w.port}"


def write_config(path, **settings):
    Path(path).write_text(json.dumps(settings))
    return path
