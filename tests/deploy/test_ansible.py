"""ansible/ passes yamllint and ansible-lint's production profile, and ansible-playbook
--syntax-check accepts both playbooks. The playbooks are applied for real in tests/e2e_hosts."""

import os

import pytest

from .deploy_stack import ANSIBLE, run
from .deploy_stack import ANSIBLE_VENV as VENV



def venv_tool(name):
    path = VENV / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} missing (scripts/setup.sh installs Ansible, ansible-lint and yamllint there)",
                    pytrace=False)
    return path


def env():
    return dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"),
                ANSIBLE_NOCOLOR="1", NO_COLOR="1", ANSIBLE_HOME=str(ANSIBLE / ".cache" / "ansible-home"))


def test_yamllint():
    r = run([venv_tool("yamllint"), "--strict", "."], cwd=ANSIBLE, env=env())
    assert r.returncode == 0, r.stdout + r.stderr


def test_ansible_lint_production_profile():
    r = run([venv_tool("ansible-lint"), "--nocolor"], cwd=ANSIBLE, env=env(), timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Profile 'production' was required, and it passed" in out, out


@pytest.mark.parametrize("playbook", ["site.yml", "upgrade.yml"])
def test_syntax_check(playbook):
    r = run([venv_tool("ansible-playbook"), "--syntax-check", "-i", "inventory/example/hosts.yml", playbook],
            cwd=ANSIBLE, env=env())
    assert r.returncode == 0, r.stdout + r.stderr
