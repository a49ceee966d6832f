"""The machinery of the CoreDNS end-to-end tests (fixtures in conftest.py): real domain-park workers behind a real CoreDNS
process (the repository's Corefile, or deploy/coredns/Corefile.rrl with the coredns-park build),
all on free loopback ports, stopped by PID afterwards, with CoreDNS's and the workers' output
attached to every failure report.

Binaries:
  worker        $DOMAIN_PARK_WORKER, else build/worker/domain-park-worker (as tests/e2e)
  CoreDNS       $DP_COREDNS, else the last line printed by deploy/coredns/install-stock.sh
  coredns-park  $DP_COREDNS_PARK, else the last line printed by deploy/coredns/build.sh

The worker launcher, port picker and wire helpers are the ones of tests/e2e (imported, not
copied): tests/e2e/conftest.py is loaded under another module name so that its fixtures and
hooks are not registered twice.
"""

import importlib.util
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

_spec = importlib.util.spec_from_file_location("e2e_worker_conftest", E2E_DIR / "conftest.py")
wc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wc)


ROOT_COREFILE = REPO / "Corefile"
RRL_COREFILE = REPO / "deploy" / "coredns" / "Corefile.rrl"
INSTALL_STOCK = REPO / "deploy" / "coredns" / "install-stock.sh"
BUILD_PARK = REPO / "deploy" / "coredns" / "build.sh"

# Bounded waits. Building CoreDNS from source can take minutes on a cold Go cache.
SCRIPT_TIMEOUT = 1200
READY_TIMEOUT = 20.0
# The Corefile's health plugin has `lameduck 5s`: SIGTERM keeps serving 5 s before exiting.
STOP_TIMEOUT = 15.0

# The configuration of the workers (the one tests/e2e uses).
NS1, NS2, NS1_ADDRS, NS2_ADDRS = wc.NS1, wc.NS2, wc.NS1_ADDRS, wc.NS2_ADDRS
RUA, RUF, IDENTITY = wc.RUA, wc.RUF, wc.IDENTITY
STANDARD_ARGS = list(wc.STANDARD_ARGS)

# Processes alive during the current test, for failure reports.
_LIVE_COREDNS = []


# --- binaries -------------------------------------------------------------------------------------

def _binary(env_var, script, what):
    path = os.environ.get(env_var)
    if path:
        if not os.access(path, os.X_OK):
            pytest.fail(f"${env_var}={path} is not an executable file", pytrace=False)
        return path
    if not script.exists():
        pytest.fail(f"{what}: ${env_var} is not set and {script.relative_to(REPO)} does not exist",
                    pytrace=False)
    try:
        res = subprocess.run(["bash", str(script)], cwd=REPO, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{what}: {script.relative_to(REPO)} did not finish within {SCRIPT_TIMEOUT}s\n"
                    f"stdout:\n{e.stdout}\nstderr:\n{e.stderr}", pytrace=False)
    lines = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
    if res.returncode != 0 or not lines:
        pytest.fail(f"{what}: {script.relative_to(REPO)} exited {res.returncode}\n"
                    f"stdout:\n{res.stdout[-4000:]}\nstderr:\n{res.stderr[-4000:]}", pytrace=False)
    path = lines[-1]
    if not os.access(path, os.X_OK):
        pytest.fail(f"{what}: {script.relative_to(REPO)} printed {path!r} as its last line, "
                    "which is not an executable file", pytrace=False)
    return path


# --- metrics --------------------------------------------------------------------------------------

from prom_scrape import Metrics, http_get, scrape  # noqa: E402,F401
from prom_scrape import free_tcp_ports as distinct_tcp_ports  # noqa: E402


class CoreDNS:
    """One CoreDNS process: `coredns -conf COREFILE -dns.port PORT` with the DP_* variables."""

    def __init__(self, binary, corefile, upstreams, tmp_dir, name="coredns", extra_env=None):
        self.binary = str(binary)
        self.corefile = str(corefile)
        self.port = wc.free_port()
        mp, hp, rp = distinct_tcp_ports(3, taken={self.port})
        self.metrics_addr = f"127.0.0.1:{mp}"
        self.health_addr = f"127.0.0.1:{hp}"
        self.ready_addr = f"127.0.0.1:{rp}"
        self.upstreams = list(upstreams)
        self.env = dict(os.environ, DP_LISTEN=h.HOST, DP_WORKERS=" ".join(self.upstreams),
                        DP_METRICS=self.metrics_addr, DP_HEALTH=self.health_addr, DP_READY=self.ready_addr,
                        **(extra_env or {}))
        self.args = [self.binary, "-conf", self.corefile, "-dns.port", str(self.port)]
        self.log_path = Path(tmp_dir) / f"{name}-{self.port}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, cwd=tmp_dir, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        self.pid = self.proc.pid
        _LIVE_COREDNS.append(self)

    def output(self):
        if not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self):
        return (f"CoreDNS pid {self.pid}: DP_WORKERS={self.env['DP_WORKERS']!r} "
                f"DP_METRICS={self.metrics_addr} DP_READY={self.ready_addr} cmd {' '.join(self.args)}\n"
                f"--- Corefile {self.corefile} ---\n{Path(self.corefile).read_text(errors='replace')}\n"
                f"--- stdout/stderr ---\n{self.output()}")

    def wait_ready(self, timeout=READY_TIMEOUT):
        """/ready answers 200 (every plugin ready), then a query through CoreDNS is answered.
        The probe is `. NS`: REFUSED by the workers, never cached, so it leaves no cache entry."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"CoreDNS exited with code {self.proc.returncode} during start\n"
                                     + self.describe())
            status, _ = http_get(f"http://{self.ready_addr}/ready", timeout=0.5)
            last = f"/ready -> {status}"
            if status == 200:
                q = h.make_query(".", "NS")
                reply = h.udp_exchange(self.port, q.to_wire(), timeout=0.5)
                if reply is not None:
                    return
                last = "/ready 200 but no DNS answer"
            time.sleep(0.1)
        raise AssertionError(f"CoreDNS not ready within {timeout}s ({last})\n" + self.describe())

    def metrics(self):
        return scrape(self.metrics_addr)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._log.close()
        if self in _LIVE_COREDNS:
            _LIVE_COREDNS.remove(self)
        return self.proc.returncode


def literal_upstreams_corefile(corefile, upstreams, tmp_dir):
    """A copy of corefile with the worker list written into it instead of {$DP_WORKERS}.

    CoreDNS substitutes {$VAR} inside one token (coredns/caddy caddyfile/parse.go,
    replaceEnvVars on each token), so DP_WORKERS="A B" reaches forward as the single upstream
    "A B" and CoreDNS exits with `failed to resolve "A B"` (test_corefile_env.py shows it); the
    Corefile documents DP_WORKERS as one shared address and says to write distinct addresses in
    its place, which is what stacks with more than one worker address do with this copy; every
    other line is the original's."""
    text = Path(corefile).read_text()
    assert text.count("{$DP_WORKERS}") == 1, f"{corefile}: expected one {{$DP_WORKERS}}"
    out = Path(tmp_dir) / f"{Path(corefile).name}.{len(upstreams)}-upstreams"
    out.write_text(text.replace("{$DP_WORKERS}", " ".join(upstreams)))
    return out


class Stack:
    """N workers (each with its own metrics endpoint) and one CoreDNS forwarding to them."""

    def __init__(self, tmp_dir, binary, corefile=ROOT_COREFILE, n_workers=2, worker_args=None,
                 reuseport=False, identities=None, env_list=False, extra_env=None):
        self.tmp_dir = Path(tmp_dir)
        self.workers = []
        self.worker_metrics = []
        self.coredns = None
        worker_args = list(STANDARD_ARGS if worker_args is None else worker_args)
        identities = identities or [f"w{i}" for i in range(n_workers)]
        try:
            shared_port = wc.free_port() if reuseport else None
            for i in range(n_workers):
                self.start_worker(i, worker_args, identities[i], port=shared_port, reuseport=reuseport)
            upstreams = sorted({f"{h.HOST}:{w.port}" for w in self.workers})
            if len(upstreams) > 1 and not env_list:
                corefile = literal_upstreams_corefile(corefile, upstreams, self.tmp_dir)
            self.coredns = CoreDNS(binary, corefile, upstreams, self.tmp_dir, extra_env=extra_env)
            self.coredns.wait_ready()
        except BaseException:
            self.stop()
            raise

    def start_worker(self, i, worker_args, identity, port=None, reuseport=False, metrics_port=None):
        mport = metrics_port or distinct_tcp_ports(1)[0]
        args = [*worker_args]
        if "--identity" in args:
            j = args.index("--identity")
            del args[j:j + 2]
        args += ["--identity", identity, "--metrics", f"{h.HOST}:{mport}"]
        if reuseport:
            args.append("--reuseport")
        w = wc.start_worker(self.tmp_dir, *args, port=port)
        w.identity = identity
        w.metrics_addr = f"{h.HOST}:{mport}"
        # The metrics endpoint must answer before the worker counts as started.
        deadline = time.monotonic() + 5
        while http_get(f"http://{w.metrics_addr}/metrics", timeout=0.5)[0] != 200:
            if time.monotonic() > deadline:
                w.stop()
                raise AssertionError(f"worker metrics {w.metrics_addr} not answering\n" + w.describe())
            time.sleep(0.05)
        if i < len(self.workers):
            self.workers[i] = w
        else:
            self.workers.append(w)
        return w

    @property
    def port(self):
        return self.coredns.port

    def stop(self):
        if self.coredns is not None:
            self.coredns.stop()
        for w in self.workers:
            w.stop()
        for w in self.workers:
            wc.assert_clean(w)


def worker_queries(w, **labels):
    """domain_park_queries_total of one worker, summed over the labels not given."""
    return scrape(w.metrics_addr).value("domain_park_queries_total", **labels)
