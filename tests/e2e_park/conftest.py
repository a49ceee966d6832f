"""Fixtures of the fake-internet tests: one Internet (internet.py) per session, inside the
network namespace run.sh made."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import internet as net  # noqa: E402


@pytest.fixture(scope="session")
def internet(tmp_path_factory):
    if not net.in_own_network_namespace():
        pytest.fail("these tests serve DNS on port 53 of loopback addresses: run them through "
                    "tests/e2e_park/run.sh, which gives them a network namespace of their own", pytrace=False)
    missing = net.tools_present()
    if missing:
        pytest.fail(f"missing {', '.join(missing)} (scripts/setup.sh installs them)", pytrace=False)
    world = net.Internet(tmp_path_factory.mktemp("internet"))
    try:
        world.start()
    except BaseException:
        world.stop()
        raise
    yield world
    world.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and "internet" in item.fixturenames and "internet" in getattr(item, "funcargs", {}):
        rep.sections.append(("fake internet", item.funcargs["internet"].describe()))
