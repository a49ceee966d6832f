"""Shared by the deployment checks (tests/deploy): where the deployment files are, and the real
worker and balancer launchers of tests/e2e_balancer (imported, not copied)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))

from e2e_balancer.balancer_stack import Balancer, h, start_worker, wc  # noqa: E402,F401
from e2e_balancer.load import paced_udp  # noqa: E402,F401

UNIT_DIR = REPO / "deploy" / "systemd"
MONITORING = REPO / "deploy" / "monitoring"
ANSIBLE = REPO / "ansible"
CMD_TIMEOUT = 300
# Ansible, ansible-lint and yamllint: the venv scripts/setup.sh makes.
ANSIBLE_VENV = Path(os.environ.get("DP_ANSIBLE_VENV", Path(os.environ.get("DP_CACHE", Path.home() / ".cache/domain-park"))
                                   / "venv-ansible"))


def tool(name, hint):
    """The path of a command-line tool the checks need; a loud failure when it is missing
    (scripts/setup.sh installs every one of them)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH ({hint}; scripts/setup.sh installs it)", pytrace=False)
    return path


def run(cmd, timeout=CMD_TIMEOUT, **kw):
    """Run a command to completion (bounded); the CompletedProcess with text output."""
    return subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, **kw)

