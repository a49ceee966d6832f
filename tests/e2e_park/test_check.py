"""domain-park-check against the fake internet: the delegation at the parent (knotd serving
test.), each parking name server (the real workers) over UDP and TCP, the DMARC report
domains through a real resolver (unbound). A domain parked right passes every check (exit 0);
a lame delegation, a silent name server, a record that differs, a domain delegated elsewhere or
not at all, and reports sent to a parked domain each fail with their own clear line (exit 1)."""

import json
import re
import subprocess

import pytest

import internet as net

ROWS = ["SOA", "SPF", "DMARC", "DKIM", "null MX", "CAA", "NS"]


def check(*args, config=None):
    cmd = [net.CHECK_BIN, "--resolver", net.RESOLVER, "--timeout", "500", *args]
    if config:
        cmd += ["-c", str(config)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def check_json(domain, config):
    rc, out, err = check("--json", domain, config=config)
    assert rc in (0, 1), f"exit {rc}\n{out}\n{err}"
    j = json.loads(out)
    assert j["ok"] == (rc == 0)
    return rc, j


def failed(j):
    return [c for c in j["checks"] if not c["ok"]]


def test_a_domain_parked_right_passes_every_check(internet):
    rc, out, err = check("parked.test", config=internet.park_config)
    assert rc == 0, f"{out}\n{err}"
    lines = out.splitlines()
    assert lines[-1] == "parked.test: parked right"
    assert all(line.startswith("\u2714") for line in lines[:-1]), out
    rc, j = check_json("parked.test", internet.park_config)
    assert rc == 0 and not failed(j)
    # Each parking name server, over UDP and over TCP, for every record; then the delegation
    # and the report address.
    seen = {(c["check"], c.get("server"), c.get("transport")) for c in j["checks"]}
    for ns in net.PARKING_NS:
        for tr in ("udp", "tcp"):
            for row in ROWS:
                assert (row, ns, tr) in seen, (row, ns, tr)
    by = {c["check"]: c for c in j["checks"] if "server" not in c or c["check"] == "delegation"}
    assert by["delegation"]["seen"] == "ns1.park.test, ns2.park.test"
    assert by["rua receives mail"]["seen"] == "mailto:dmarc@reports.test: MX 10 mx.reports.test"
    assert "v=DMARC1" in by["rua authorized"]["seen"]
    spf = [c for c in j["checks"] if c["check"] == "SPF"]
    assert all(c["seen"] == '"v=spf1 -all"' for c in spf)
    assert len(j["checks"]) == 1 + 2 * 2 * len(ROWS) + 2
    # Any name under the domain checks its registrable domain.
    rc, out, _ = check("www.parked.test", config=internet.park_config)
    assert rc == 0 and out.splitlines()[-1] == "parked.test: parked right"


def test_lame_delegation(internet):
    rc, j = check_json("lame.test", internet.park_config)
    assert rc == 1
    bad = failed(j)
    assert bad[0]["check"] == "delegation" and "differs" in bad[0]["problem"]
    lame = [c for c in bad if c["check"] == "authoritative"]
    assert {(c["server"], c["transport"]) for c in lame} == {("ns.reports.test", "udp"), ("ns.reports.test", "tcp")}
    assert all("lame delegation: ns.reports.test (127.0.0.20) is not authoritative for lame.test" == c["problem"]
               for c in lame)
    assert all(c["seen"] == "REFUSED" for c in lame)
    # The parking server itself is fine.
    assert all(c["ok"] for c in j["checks"] if c.get("server") == "ns1.park.test")
    _, out, _ = check("lame.test", config=internet.park_config)
    assert re.search(r"^\u2718 authoritative +ns.reports.test 127.0.0.20 udp$", out, re.M), out
    assert "    lame delegation: ns.reports.test (127.0.0.20) is not authoritative for lame.test" in out
    assert out.splitlines()[-1] == "lame.test: NOT parked right"


def test_name_server_that_does_not_answer(internet):
    rc, j = check_json("silent.test", internet.park_config)
    assert rc == 1
    silent = [c for c in failed(j) if c["check"] == "answers"]
    assert {(c["server"], c["address"], c["transport"]) for c in silent} == {
        ("ns.silent.test", net.SILENT, "udp"), ("ns.silent.test", net.SILENT, "tcp")}
    assert all(c["problem"].startswith(f"ns.silent.test ({net.SILENT}) does not answer over ") for c in silent)


def test_record_that_differs(internet, tmp_path):
    # The operator expects the original DMARC record; the servers publish the current default.
    cfg = json.loads(internet.park_config.read_text())
    cfg["dmarc_tags"] = "p=reject;"
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps(cfg))
    rc, j = check_json("parked.test", expect)
    assert rc == 1
    bad = failed(j)
    assert {c["check"] for c in bad} == {"DMARC"}
    assert len(bad) == 4  # two servers, UDP and TCP
    for c in bad:
        assert c["seen"] == f'"v=DMARC1; p=reject; sp=reject; np=reject; adkim=s; aspf=s; rua=mailto:{net.RUA};"'
        assert c["expected"] == f'"v=DMARC1; p=reject; rua=mailto:{net.RUA};"'
        assert c["problem"] == "_dmarc.parked.test DMARC differs"


@pytest.mark.parametrize("domain,problem", [
    ("elsewhere.test", "elsewhere.test is not delegated here: its name servers at test are ns.reports.test, "
                       "not the parking name servers ns1.park.test, ns2.park.test"),
    ("undelegated.test", "undelegated.test is not delegated: the parent zone test says it does not exist"),
])
def test_not_delegated_here(internet, domain, problem):
    rc, j = check_json(domain, internet.park_config)
    assert rc == 1
    assert [c["problem"] for c in failed(j)] == [problem]
    assert len(j["checks"]) == 1, "nothing else is checked for a domain that is not ours"


def test_reports_to_a_parked_domain(internet):
    rc, j = check_json("badrua.test", internet.badrua_config)
    assert rc == 1
    bad = {c["check"]: c for c in failed(j)}
    assert set(bad) == {"rua receives mail", "rua authorized"}
    assert bad["rua receives mail"]["problem"] == "park.test has a null MX (RFC 7505): it cannot receive the reports"
    assert bad["rua authorized"]["problem"] == (
        'park.test does not authorize reports for badrua.test: where park.test\'s DNS is hosted, '
        'publish *._report._dmarc.park.test TXT "v=DMARC1"')


@pytest.mark.parametrize("args,word", [([], "DOMAIN"), (["a.test", "b.test"], "one DOMAIN"),
                                       (["--bogus", "a.test"], "--bogus"), (["-n", "192.0.2.1", "a.test"], "bare address"),
                                       (["--resolver", "nowhere", "a.test"], "--resolver"),
                                       (["--timeout", "x", "a.test"], "--timeout"),
                                       (["-c", "/nonexistent.json", "a.test"], "/nonexistent.json")])
def test_bad_arguments_exit_2(args, word):
    p = subprocess.run([net.CHECK_BIN, *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0], p.stderr


def test_the_workers_file_is_read_as_the_worker_reads_it(internet, tmp_path):
    # The same declarations read it: a key the worker refuses (a typo) is refused here too,
    # and a worker-only key (the listen port) is accepted and does not matter.
    bad = tmp_path / "typo.json"
    bad.write_text(json.dumps({"nameservers": ["ns1.park.test"], "dmarc_tag": "p=reject;"}))
    p = subprocess.run([net.CHECK_BIN, "-c", str(bad), "a.test"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p
    assert "dmarc_tag: unknown setting" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    bad.write_text(json.dumps({"nameservers": ["ns1.park.test"], "dmarc_tags": "sp=reject; p=reject"}))
    p = subprocess.run([net.CHECK_BIN, "-c", str(bad), "a.test"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "dmarc_tags: p must come first" in p.stderr, p.stderr
    good = tmp_path / "worker.json"
    good.write_text(json.dumps({**json.loads(internet.park_config.read_text()), "port": 5300, "tcp_idle_timeout": 10}))
    rc, out, err = check("parked.test", config=good)
    assert rc == 0, f"{out}\n{err}"
