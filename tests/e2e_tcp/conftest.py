"""Fixtures of the TCP behaviour tests (the machinery is in servers.py): every test that takes
`kind` runs once against the worker and once against the balancer."""

import pytest

from .servers import KINDS, report_live_processes, start


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def server_factory(tmp_path, kind):
    started = []

    def factory(*flags, config=None, wrapper=()):
        return start(kind, tmp_path, started, *flags, config=config, wrapper=wrapper)

    yield factory
    for p in reversed(started):
        p.stop()
    for p in started:
        report = p.sanitizer_report()
        assert report is None, report


@pytest.fixture
def server(server_factory):
    return server_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        report_live_processes(rep)
