"""The systemd units (deploy/systemd) as `cmake --install` writes them: `systemd-analyze verify`
finds nothing to complain about, and `systemd-analyze security --offline=true` rates every unit
at an exposure of 1.5 or below (with the shared hardening drop-in). Negative controls show the
checks can fail. The units are run under a real systemd in tests/e2e_hosts."""

import re
import shutil
from pathlib import Path

import pytest

from .deploy_stack import REPO, UNIT_DIR, run, tool

SECURITY_MAX = 1.5
SERVICES = ["domain-park-balancer.service", "domain-park-coredns.service", "domain-park-worker-port@.service",
            "domain-park-worker@.service"]
# What `systemd-analyze verify` is given: templates as instances.
VERIFY = ["domain-park.target", "domain-park-balancer.service", "domain-park-coredns.service",
          "domain-park-worker-port@5301.service", "domain-park-worker@9150.service"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`cmake --install` of the build tree into a temporary prefix, plus coredns-park there."""
    from e2e_coredns.coredns_stack import BUILD_PARK, _binary
    prefix = tmp_path_factory.mktemp("prefix") / "usr"
    build = REPO / "build"
    r = run([tool("cmake", "Debian package cmake"), "--install", build, "--prefix", prefix])
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.copy(_binary("DP_COREDNS_PARK", BUILD_PARK, "coredns-park"), prefix / "bin" / "coredns-park")
    return prefix


def exposure(path):
    r = run([tool("systemd-analyze", "Debian package systemd"), "security", "--offline=true", "--no-pager", path])
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    return float(m.group(1)), r.stdout


def test_install_rewrites_paths_for_the_prefix(installed):
    units = installed / "lib" / "systemd" / "system"
    for u in SERVICES:
        text = (units / u).read_text()
        assert "/usr/bin/" not in text.replace(str(installed), "PREFIX"), u
        for exe in re.findall(r"^Exec\w*=(\S+)", text, re.M):
            assert exe.startswith((str(installed), "/bin/kill")), (u, exe)
            assert Path(exe).exists(), (u, exe)
    assert (units / "domain-park-.service.d" / "hardening.conf").exists()
    assert (installed / "lib" / "domain-park" / "wait-ready").stat().st_mode & 0o111


def test_verify(installed):
    units = installed / "lib" / "systemd" / "system"
    r = run([tool("systemd-analyze", "Debian package systemd"), "verify", *VERIFY], cwd=units)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


def test_verify_catches_a_broken_unit(installed, tmp_path):
    """Negative control: a typo in a directive and a missing binary are both reported."""
    units = installed / "lib" / "systemd" / "system"
    bad = tmp_path / "domain-park-balancer.service"
    bad.write_text((units / "domain-park-balancer.service").read_text()
                   .replace("TimeoutStopSec=", "TimeoutStopSecs=")
                   .replace(f"{installed}/bin/domain-park-balancer --config", f"{installed}/bin/nonesuch --config"))
    r = run([tool("systemd-analyze", "Debian package systemd"), "verify", bad])
    assert r.returncode != 0 or "TimeoutStopSecs" in r.stderr, r.stdout + r.stderr
    assert "TimeoutStopSecs" in r.stderr and "nonesuch" in r.stderr, r.stderr


@pytest.mark.parametrize("unit", SERVICES)
def test_security_exposure(unit):
    score, report = exposure(UNIT_DIR / unit)
    assert score <= SECURITY_MAX, f"{unit}: exposure {score} > {SECURITY_MAX}\n{report}"


def test_security_exposure_without_the_drop_in_is_high(tmp_path):
    """Negative control: the same unit without hardening.conf scores far worse, so the drop-in is
    what the scores above measure."""
    shutil.copy(UNIT_DIR / "domain-park-balancer.service", tmp_path)
    score, _ = exposure(tmp_path / "domain-park-balancer.service")
    assert score > 5.0, score


def test_every_unit_is_part_of_the_target():
    for u in SERVICES:
        text = (UNIT_DIR / u).read_text()
        assert "PartOf=domain-park.target" in text and "WantedBy=domain-park.target" in text, u
        assert re.search(r"^StartLimitBurst=\d+$", text, re.M) and re.search(r"^TasksMax=\d+$", text, re.M), u
        assert re.search(r"^MemoryMax=\d+[MG]$", text, re.M), u
    for u in ("domain-park-balancer.service", "domain-park-worker-port@.service", "domain-park-worker@.service"):
        assert "Type=notify" in (UNIT_DIR / u).read_text(), u
