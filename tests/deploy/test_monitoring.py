"""Monitoring as shipped: the alert rules pass `promtool check rules` and their unit tests
(every alert firing and not firing); the monitoring role's scrape configuration, rendered by
Ansible from an inventory, passes `promtool check config`; and a real Prometheus started with
that configuration scrapes real workers, a real balancer and a real coredns-park under a little
load, loads the rules, and answers every query of every panel of the Grafana dashboard with data.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from .deploy_stack import ANSIBLE, MONITORING, REPO, Balancer, h, paced_udp, run, start_worker, tool
from .deploy_stack import ANSIBLE_VENV as VENV

RULES = MONITORING / "domain-park.rules.yml"
RULE_TESTS = MONITORING / "domain-park.rules.test.yml"
DASHBOARD = MONITORING / "grafana" / "domain-park.json"
RUNBOOK = REPO / "docs" / "runbook.md"
RATE_INTERVAL = "15s"  # what the dashboard's $__rate_interval becomes with a 1 s scrape interval


def promtool():
    return tool("promtool", "Debian package prometheus")


def test_rules_check():
    r = run([promtool(), "check", "rules", RULES])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in r.stdout, r.stdout


def test_rules_unit_tests():
    r = run([promtool(), "test", "rules", RULE_TESTS.name], cwd=MONITORING)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def alerts():
    import yaml
    return [rule for g in yaml.safe_load(RULES.read_text())["groups"] for rule in g["rules"] if "alert" in rule]


def test_every_alert_is_tested_firing_and_not_firing():
    """The unit tests name every alert at least once with expected alerts and once with none."""
    import yaml
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing, quiet = set(), set()
    for t in tests:
        for case in t["alert_rule_test"]:
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names == firing, names ^ firing
    assert names == quiet, names ^ quiet
    severities = {(a["alert"], a["labels"]["severity"]) for a in alerts()}
    fired = {(case["alertname"], e["exp_labels"]["severity"]) for t in tests for case in t["alert_rule_test"]
             for e in case.get("exp_alerts") or []}
    assert severities == fired, severities ^ fired


def test_every_alert_has_summary_severity_and_a_runbook_section():
    anchors = {re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
               for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    for a in alerts():
        assert a["labels"]["severity"] in ("warning", "critical"), a
        assert a["annotations"]["summary"] and a["annotations"]["description"], a
        url = a["annotations"]["runbook_url"]
        assert url.startswith("docs/runbook.md#"), url
        assert url.split("#", 1)[1] in anchors, f"{a['alert']}: no section {url} in docs/runbook.md"


# --- a real Prometheus on the real processes -----------------------------------------------------

def render(template, inventory, dest, extra):
    """Render one of the monitoring role's templates with Ansible, for the inventory's monitoring host."""
    ansible = VENV / "bin" / "ansible"
    if not ansible.exists():
        pytest.fail(f"no Ansible in {VENV} (scripts/setup.sh installs it)", pytrace=False)
    args = [ansible, "-i", inventory, "mon", "-c", "local", "-m", "ansible.builtin.template",
            "-a", f"src={ANSIBLE / 'roles' / 'monitoring' / 'templates' / template} dest={dest}"]
    args += ["-e", json.dumps(dict(extra, ansible_python_interpreter=str(VENV / "bin" / "python")))]
    r = run(args, env=dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                           ANSIBLE_LOCAL_TEMP=str(Path(dest).parent / ".ansible-tmp"),
                           ANSIBLE_HOME=str(Path(dest).parent / ".ansible-home")))
    assert r.returncode == 0, r.stdout + r.stderr
    return dest


class Prometheus:
    def __init__(self, tmp, config, port):
        self.addr = f"{h.HOST}:{port}"
        self.log = open(tmp / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [tool("prometheus", "Debian package prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address={self.addr}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def api(self, path, **params):
        url = f"http://{self.addr}/api/v1/{path}?" + urllib.parse.urlencode(params)
        status, body = h_get(url)
        assert status == 200, (url, status, body[:500])
        return json.loads(body)["data"]

    def wait_up(self, expected, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (Path(self.log.name).read_text())[-3000:]
            status, body = h_get(f"http://{self.addr}/api/v1/query?query=up")
            if status == 200:
                res = json.loads(body)["data"]["result"]
                if len(res) == expected and all(r["value"][1] == "1" for r in res):
                    return res
            time.sleep(0.5)
        raise AssertionError(f"targets not all up within {timeout}s: {body[:2000]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.log.close()


def h_get(url):
    from prom_scrape import http_get
    return http_get(url, timeout=5)


@pytest.fixture
def coredns_park():
    from e2e_coredns.coredns_stack import BUILD_PARK, _binary
    return _binary("DP_COREDNS_PARK", BUILD_PARK, "coredns-park")


def test_dashboard_queries_return_data_from_a_real_prometheus(tmp_path, coredns_park):
    from e2e_coredns.coredns_stack import RRL_COREFILE, CoreDNS
    from prom_scrape import free_tcp_ports

    workers = [start_worker(tmp_path, identity=f"w{i}") for i in range(2)]
    balancer = coredns = prom = None
    try:
        upstreams = [f"{h.HOST}:{w.port}" for w in workers]
        balancer = Balancer(tmp_path, workers=upstreams, extra_args=["--responses-per-second", "20"])
        # DP_WORKERS holds one address (the Corefile says why).
        coredns = CoreDNS(coredns_park, RRL_COREFILE, upstreams[:1], tmp_path, name="coredns-park")
        coredns.wait_ready()

        # The monitoring role's own templates, for an inventory of two name servers on loopback.
        hosts = {
            "lab1": {"domain_park_scrape": {"workers": [w.metrics_addr for w in workers], "front_end": "balancer",
                                            "front_metrics": balancer.metrics_addr, "node": ""}},
            "lab2": {"domain_park_scrape": {"workers": [], "front_end": "coredns", "front_metrics": coredns.metrics_addr,
                                            "node": ""}},
        }
        prom_port = free_tcp_ports(1)[0]
        inventory = tmp_path / "inventory.json"
        inventory.write_text(json.dumps({"all": {"children": {
            "nameservers": {"hosts": hosts}, "monitoring": {"hosts": {"mon": {}}}}}}))
        rules_dir = tmp_path / "rules"
        rules_dir.mkdir()
        (rules_dir / "domain-park.rules.yml").write_text(RULES.read_text())
        extra = {"monitoring_listen": f"{h.HOST}:{prom_port}", "monitoring_rules_dir": str(rules_dir),
                 "monitoring_scrape_interval": "1s", "monitoring_evaluation_interval": "1s",
                 "monitoring_alertmanagers": []}
        config = render("prometheus.yml.j2", inventory, tmp_path / "prometheus.yml", extra)
        r = run([promtool(), "check", "config", config])
        assert r.returncode == 0, r.stdout + r.stderr

        prom = Prometheus(tmp_path, config, prom_port)
        # 2 workers, the balancer, CoreDNS, Prometheus itself.
        up = prom.wait_up(5)
        assert {(x["metric"]["job"], x["metric"]["host"]) for x in up} == {
            ("domain-park-worker", "lab1"), ("domain-park-balancer", "lab1"), ("domain-park-coredns", "lab2"),
            ("prometheus", "mon")}
        groups = prom.api("rules")["groups"]
        loaded = {rule["name"] for g in groups for rule in g["rules"] if rule["type"] == "alerting"}
        assert loaded == {a["alert"] for a in alerts()}

        # A little load through both front ends: 100 names asked 20 times each (cache hits, and
        # the balancer's RRL at 20/s limits some), over UDP; some TCP too.
        names = [f"site{i % 100}.example.com." for i in range(2000)]
        results = {}

        def through(name, port):
            results[name] = paced_udp(port, names, duration=8.0)

        threads = [threading.Thread(target=through, args=("balancer", balancer.port)),
                   threading.Thread(target=through, args=("coredns", coredns.port))]
        for t in threads:
            t.start()
        for port in (balancer.port, coredns.port):
            for i in range(20):
                h.query(port, h.make_query(f"tcp{i}.example.net.", "MX"), transport="tcp")
        for t in threads:
            t.join(timeout=60)
        # And a burst of one question, which both rate limiters (20 identical answers/s) cut.
        for port in (balancer.port, coredns.port):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for i in range(60):
                    s.sendto(h.make_query("burst.example.com.", "TXT", qid=i).to_wire(), (h.HOST, port))
        assert all(sum(1 for rc in results[n][1] if rc is not None) > 1000 for n in results), \
            {n: sum(1 for rc in results[n][1] if rc is not None) for n in results}
        time.sleep(4)  # a few more scrapes after the load

        dashboard = json.loads(DASHBOARD.read_text())
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        assert len(panels) >= 12
        empty = []
        for p in panels:
            for target in p["targets"]:
                expr = (target["expr"].replace("$__rate_interval", RATE_INTERVAL).replace('=~"$host"', '=~".*"'))
                assert "$" not in expr, expr
                result = prom.api("query", query=expr)["result"]
                if not result:
                    empty.append(f"{p['title']}: {expr}")
        assert not empty, "panel queries without data:\n" + "\n".join(empty)
        # And the load shows where it should: answers counted by the balancer and CoreDNS.
        answered = prom.api("query", query=f'sum(rate(domain_park_balancer_requests_total[{RATE_INTERVAL}]))')
        assert float(answered["result"][0]["value"][1]) > 0
    finally:
        if prom:
            prom.stop()
        if coredns:
            coredns.stop()
        if balancer:
            balancer.stop()
        for w in workers:
            w.stop()
