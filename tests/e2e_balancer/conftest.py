"""Fixtures for the balancer end-to-end tests; the machinery is in balancer_stack.py.

This directory is a package (__init__.py) so that this conftest is not imported as the
top-level module `conftest`, which tests/e2e's test modules import by that name.
"""

import pytest

from .balancer_stack import Balancer, report_live_processes, start_worker, wc


@pytest.fixture
def procs(tmp_path):
    """Start workers and balancers inside a test; all are stopped (by PID) when it ends, and
    any sanitizer finding in their output fails the test."""

    class Procs:
        def __init__(self):
            self.workers = []
            self.balancers = []

        def worker(self, **kw):
            w = start_worker(tmp_path, **kw)
            self.workers.append(w)
            return w

        def balancer(self, **kw):
            b = Balancer(tmp_path, **kw)
            self.balancers.append(b)
            return b

    p = Procs()
    yield p
    for b in p.balancers:
        b.stop()
    for w in p.workers:
        w.stop()
    for b in p.balancers:
        assert b.sanitizer_report() is None, b.sanitizer_report()
    for w in p.workers:
        wc.assert_clean(w)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """One standard worker and one balancer in front of it, shared by a test module."""
    tmp = tmp_path_factory.mktemp("pair")
    w = start_worker(tmp)
    try:
        b = Balancer(tmp, workers=[f"{wc.h.HOST}:{w.port}"])
    except BaseException:
        w.stop()
        raise
    yield w, b
    b.stop()
    w.stop()
    assert b.sanitizer_report() is None, b.sanitizer_report()
    wc.assert_clean(w)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        report_live_processes(rep)
