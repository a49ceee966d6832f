"""Fixtures for the CoreDNS end-to-end tests; the machinery is in coredns_stack.py.

This directory is a package (__init__.py) so that this conftest is not imported as the
top-level module `conftest`, which tests/e2e's test modules import by that name: both suites
can run in one pytest invocation.
"""

import pytest

from .coredns_stack import BUILD_PARK, INSTALL_STOCK, Stack, _binary, _LIVE_COREDNS, wc


@pytest.fixture(scope="session")
def coredns_bin():
    """Stock CoreDNS (v1.14.7 from install-stock.sh unless $DP_COREDNS says otherwise)."""
    return _binary("DP_COREDNS", INSTALL_STOCK, "stock CoreDNS")


@pytest.fixture(scope="session")
def coredns_park_bin():
    """coredns-park: CoreDNS with the rrl plugin (deploy/coredns/build.sh or $DP_COREDNS_PARK)."""
    return _binary("DP_COREDNS_PARK", BUILD_PARK, "coredns-park")


@pytest.fixture
def stack_factory(tmp_path, coredns_bin):
    """Start stacks inside a test; all are stopped (by PID) when the test ends."""
    stacks = []

    def make(**kw):
        kw.setdefault("binary", coredns_bin)
        s = Stack(tmp_path, **kw)
        stacks.append(s)
        return s

    yield make
    for s in stacks:
        s.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for c in list(_LIVE_COREDNS):
            rep.sections.append((f"coredns {c.pid} (dns port {c.port})", c.describe()))
        for w in list(wc._LIVE_WORKERS):
            rep.sections.append((f"worker {w.pid} (port {w.port})", w.describe()))
