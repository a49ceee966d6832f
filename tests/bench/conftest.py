"""Fixtures for the tests of the bench tools: the real worker (the launcher of tests/e2e,
imported, not copied), the real echo server, and dns_load run to completion.

This directory is a package (__init__.py) so that this conftest is not imported as the
top-level module `conftest`, which tests/e2e's test modules import by that name.
"""

import importlib.util
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DP_BUILD_DIR", REPO / "build"))
DNS_LOAD = str(BUILD / "bench" / "dns_load")
ECHO = str(BUILD / "bench" / "echo_server")

_spec = importlib.util.spec_from_file_location("e2e_worker_conftest_for_bench", REPO / "tests" / "e2e" / "conftest.py")
wc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wc)


def dns_load(port, *args, timeout=60):
    """Run dns_load against 127.0.0.1:port to its end; its JSON summary."""
    r = subprocess.run([DNS_LOAD, "-q", "-s", "127.0.0.1", "-p", str(port), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def worker(tmp_path):
    w = wc.start_worker(tmp_path, *wc.STANDARD_ARGS)
    yield w
    w.stop()
    wc.assert_clean(w)


@pytest.fixture
def echo(tmp_path):
    port = wc.free_port()
    log = open(tmp_path / "echo.log", "wb")
    p = subprocess.Popen([ECHO, "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log)
    try:
        for _ in range(100):  # up when it echoes one query
            try:
                if dns_load(port, "-f", write_mix(tmp_path / "probe.txt", ["example.com A"]), "-n", 1, "-d", 0,
                            "-t", 0.2)["answered"] == 1:
                    break
            except AssertionError:
                pass
        yield port
    finally:
        os.kill(p.pid, signal.SIGTERM)
        p.wait(timeout=10)
        log.close()


def write_mix(path, lines):
    Path(path).write_text("".join(f"{ln}\n" for ln in lines))
    return str(path)
