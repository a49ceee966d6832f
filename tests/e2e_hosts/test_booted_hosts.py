"""The deployment applied for real to booted Debian 12 hosts (systemd-nspawn containers, each in
its own network namespace, see lab.py): ansible/site.yml over SSH, then every unit active, the
contract answered on each host's port 53 over UDP and TCP (IPv4 and IPv6), the firewall, the
units' hardening as installed, Prometheus on the monitoring host scraping every target, reloads
that keep client connections, a second run that changes nothing, a configuration change that is
a reload, and ansible/upgrade.yml under a bounded load losing no query.

ns1 runs the balancer, ns2 CoreDNS (coredns-park) and the monitoring role. The tests run in
file order and build on each other (one lab per module).

Needs root and the tools scripts/setup.sh installs (systemd-container, debootstrap, the Ansible
venv). A machine that cannot boot containers fails the test with the reason: nothing is
skipped.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "tests"))

import e2e_helpers as h  # noqa: E402
from lab import Lab, LabError, sh  # noqa: E402
from load import Load, Target  # noqa: E402

from deploy.deploy_stack import ANSIBLE_VENV as VENV  # noqa: E402

BUILD_DIR = Path(os.environ.get("DP_BUILD_DIR", REPO / "build"))
WORKERS = 2
BASE_PORT = 5301
RUA = "dmarc-reports@lab.example.net"
SECURITY_MAX = 1.5
TLS_NAME = "ns2.lab.example.net"
TIMES = {}  # measured durations, printed at the end


def timed(name):
    class T:
        def __enter__(self):
            self.t = time.monotonic()

        def __exit__(self, *exc):
            TIMES[name] = round(time.monotonic() - self.t, 1)
    return T()


# --- the lab and Ansible -------------------------------------------------------------------------

class Deployment:
    def __init__(self, lab, workdir):
        self.lab = lab
        self.workdir = workdir
        self.ns1, self.ns2 = lab.hosts
        self.inventory = workdir / "inventory.yml"
        self.pkg = workdir / "pkg"

    def write_inventory(self):
        key = self.lab.key.with_suffix(".pub").read_text().strip()
        hosts = {}
        for host, front in ((self.ns1, "balancer"), (self.ns2, "coredns")):
            hosts[host.name] = {
                "ansible_host": host.address, "domain_park_ns_name": f"{host.name}.lab.example.net",
                "domain_park_address": host.address, "domain_park_address6": host.address6,
                "domain_park_front_end": front,
            }
        # ns2's CoreDNS also serves DoT and DoH, with a certificate made here and copied over.
        cert, tls_key = self.workdir / "tls-cert.pem", self.workdir / "tls-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-keyout", str(tls_key), "-out", str(cert), "-subj", f"/CN={TLS_NAME}",
                        "-addext", f"subjectAltName=DNS:{TLS_NAME}"], check=True, capture_output=True)
        self.tls_cert = cert
        hosts[self.ns2.name].update({"coredns_dot": True, "coredns_doh": True,
                                     "coredns_tls_cert_src": str(cert), "coredns_tls_key_src": str(tls_key)})
        inventory = {"all": {
            "vars": {
                "ansible_user": "root", "ansible_ssh_private_key_file": str(self.lab.key),
                "ansible_ssh_common_args": " ".join(self.lab.ssh_args()),
                "base_apt_update": False, "base_ssh_authorized_keys": [key],
                "domain_park_workers": WORKERS, "domain_park_worker_base_port": BASE_PORT,
                "domain_park_rua": RUA,
                # The fleet's cookie secret is made by the role on the first run, kept here.
                "domain_park_credentials": str(self.workdir / "credentials"),
                "domain_park_deb": str(self.pkg / "domain-park.deb"),
                "coredns_deb": str(self.pkg / "domain-park-coredns.deb"),
                "domain_park_rate_limit": {"responses_per_second": 0, "requests_per_second": 0,
                                           "exempt": ["127.0.0.0/8", "::1/128"]},
            },
            "children": {"nameservers": {"hosts": hosts}, "monitoring": {"hosts": {self.ns2.name: {}}}},
        }}
        self.inventory.write_text(json.dumps(inventory, indent=2))

    def playbook(self, name, *extra, timeout=900):
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible" / "ansible.cfg"),
                   PATH=f"{VENV / 'bin'}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_LOCAL_TEMP=str(self.workdir / "ansible-tmp"), ANSIBLE_HOME=str(self.workdir / "ansible-home"),
                   ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.lab.control_dir))
        cmd = [VENV / "bin" / "ansible-playbook", "-i", self.inventory, REPO / "ansible" / name, *extra]
        r = subprocess.run([str(c) for c in cmd], cwd=REPO / "ansible", env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        log = self.workdir / f"ansible-{name}-{time.monotonic_ns()}.log"
        log.write_text(r.stdout + r.stderr)
        recap = {}
        for m in re.finditer(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", r.stdout, re.M):
            recap[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)),
                                 "unreachable": int(m.group(4)), "failed": int(m.group(5))}
        return r.returncode, r.stdout + r.stderr, recap

    def must(self, name, *extra):
        rc, out, recap = self.playbook(name, *extra)
        if not (rc == 0 and recap and all(v["failed"] == 0 and v["unreachable"] == 0 for v in recap.values())):
            errors = "\n".join(line for line in out.splitlines() if line.startswith(("fatal:", "failed:", "[ERROR]")))
            pytest.fail(f"ansible-playbook {name} exited {rc}\n{errors}\n--- hosts ---\n{self.diagnose()}\n"
                        f"--- output ---\n{out[-6000:]}", pytrace=False)
        return out, recap

    def diagnose(self):
        """What failed on each host, with the journal of the failed units."""
        text = ""
        for host in self.lab.hosts:
            r = host.nsenter("sh", "-c", "systemctl --failed --no-legend --plain; for u in $(systemctl --failed "
                             "--no-legend --plain | cut -d' ' -f1); do journalctl -n 30 --no-pager -u $u; done",
                             check=False)
            text += f"[{host.name}]\n{r.stdout}{r.stderr}\n"
        return text

    def ssh(self, host, command, **kw):
        return self.lab.ssh(host, command, **kw)

    def main_pids(self, host, units):
        out = self.ssh(host, "systemctl show -p MainPID --value " + " ".join(units)).stdout.split()
        return dict(zip(units, map(int, out)))


def worker_units():
    return [f"domain-park-worker-port@{BASE_PORT + i}.service" for i in range(WORKERS)]


def front_unit(host_index):
    return "domain-park-balancer.service" if host_index == 0 else "domain-park-coredns.service"


def build_packages(outdir, version=None):
    env = dict(os.environ, DP_BUILD_DIR=str(BUILD_DIR))
    if version:
        env["DP_PACKAGE_VERSION"] = version
    r = subprocess.run(["bash", str(REPO / "deploy" / "package.sh"), str(outdir)], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"deploy/package.sh failed\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the booted-host test needs root (network namespaces, overlay mounts, systemd-nspawn)", pytrace=False)
    if not (VENV / "bin" / "ansible-playbook").exists():
        pytest.fail(f"no Ansible in {VENV} (scripts/setup.sh installs it)", pytrace=False)
    workdir = Path(tmp_path_factory.mktemp("lab"))
    with timed("root (make_root.sh)"):
        r = sh("bash", HERE / "make_root.sh", timeout=1800, check=False)
    if r.returncode != 0:
        pytest.fail(f"cannot build the container root: {r.stderr[-3000:]}", pytrace=False)
    root = r.stdout.strip().splitlines()[-1]
    with timed("packages (deploy/package.sh)"):
        build_packages(workdir / "pkg")
    lab = Lab(workdir / "hosts", ["ns1", "ns2"])
    try:
        with timed("boot 2 hosts + ssh"):
            try:
                lab.start(root)
            except (LabError, OSError) as e:
                pytest.fail(f"CANNOT BOOT TEST HOSTS on this machine (systemd-nspawn in network namespaces): {e}",
                            pytrace=False)
        d = Deployment(lab, workdir)
        d.write_inventory()
        yield d
    finally:
        lab.stop()
        print("\nbooted-host test timings (s):", json.dumps(TIMES), file=sys.stderr)


# --- the tests -----------------------------------------------------------------------------------

def test_site_playbook(dep):
    with timed("site.yml, first run"):
        _, recap = dep.must("site.yml")
    assert set(recap) == {"ns1", "ns2"}
    assert all(v["changed"] > 0 for v in recap.values())


def test_every_unit_active(dep):
    common = ["domain-park.target", *worker_units(), "nftables.service", "ssh.service",
              "prometheus-node-exporter.service", "unattended-upgrades.service"]
    for i, host in enumerate(dep.lab.hosts):
        units = common + [front_unit(i)] + (["prometheus.service"] if i == 1 else [])
        r = dep.ssh(host, "systemctl is-active " + " ".join(units), check=False)
        states = dict(zip(units, r.stdout.split()))
        assert all(s == "active" for s in states.values()), f"{host.name}: {states}"
        other = front_unit(1 - i)
        assert dep.ssh(host, f"systemctl is-active {other}", check=False).stdout.strip() != "active"
        # Type=notify: each worker told systemd it was ready with its status line.
        for u in worker_units():
            status = dep.ssh(host, f"systemctl show -p StatusText --value {u}").stdout
            assert status.startswith("serving udp+tcp on 127.0.0.1:"), (host.name, u, status)


def test_units_verify_and_hardening_as_installed(dep):
    units = "/usr/lib/systemd/system/"
    for i, host in enumerate(dep.lab.hosts):
        # Each host has the binaries of its own front end (coredns-park comes in its own package).
        r = dep.ssh(host, f"cd {units} && systemd-analyze verify domain-park.target {front_unit(i)} "
                          f"domain-park-worker-port@{BASE_PORT}.service domain-park-worker@9150.service", check=False)
        assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", (host.name, r.stdout, r.stderr)
        for u in [front_unit(i), *worker_units()]:
            out = dep.ssh(host, f"systemd-analyze security {u} --no-pager", check=False).stdout
            m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
            assert m, out[-2000:]
            assert float(m.group(1)) <= SECURITY_MAX, f"{host.name} {u}: exposure {m.group(1)}\n{out}"


def contract(host_address, transport):
    """The parking contract through one front end: a handful of rows over one transport."""
    def q(name, rdtype):
        return h.query(53, h.make_query(name, rdtype), transport=transport, timeout=3.0, host=host_address)

    r = q("example.com.", "TXT")
    assert r.rcode() == dns.rcode.NOERROR
    assert [b"v=spf1 -all"] in [list(rd.strings) for rr in r.answer for rd in rr]
    r = q("_dmarc.example.com.", "TXT")
    texts = [b"".join(rd.strings).decode() for rr in r.answer for rd in rr]
    assert texts and texts[0].startswith("v=DMARC1; p=reject;") and f"rua=mailto:{RUA}" in texts[0], texts
    r = q("sel._domainkey.example.com.", "TXT")
    assert [b"".join(rd.strings) for rr in r.answer for rd in rr] == [b"v=DKIM1; p="]
    r = q("example.com.", "MX")
    assert [(rd.preference, rd.exchange.to_text()) for rr in r.answer for rd in rr] == [(0, ".")]
    r = q("example.co.uk.", "NS")
    assert sorted(rd.target.to_text() for rr in r.answer for rd in rr) == ["ns1.lab.example.net.", "ns2.lab.example.net."]
    r = q("www.example.com.", "A")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority


def test_answers_on_port_53_udp_tcp_ipv4_ipv6(dep):
    for host in dep.lab.hosts:
        for address in (host.address, host.address6):
            for transport in ("udp", "tcp"):
                contract(address, transport)


def test_dot_and_doh_where_turned_on(dep):
    """ns2 (coredns_dot, coredns_doh) answers over TLS on 853 and HTTPS on 443 with its
    certificate (handed to the dynamic user as systemd credentials, the key root's only),
    exactly what it answers over plain DNS; ns1 (the balancer) has neither port open."""
    verify = [f"+tls-ca={dep.tls_cert}", f"+tls-hostname={TLS_NAME}"]
    show = ["+noall", "+answer", "+time=3", "+retry=0"]  # options dig and kdig both know

    def answer(tool, *args):
        """The answer records (name lower-cased, TTL left out: caches count it down) of one query."""
        r = subprocess.run([tool, f"@{dep.ns2.address}", *args, *show, "_dmarc.example.com", "TXT"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, (tool, args, r.stdout, r.stderr)
        rrs = [line.split() for line in r.stdout.splitlines() if line.strip() and not line.startswith(";")]
        return sorted((f[0].lower(), *f[2:]) for f in rrs)

    plain = answer("dig")
    assert plain and any(f[3] == '"v=DMARC1;' for f in plain), plain
    assert answer("kdig", "-p", "853", "+tls", *verify) == plain
    assert answer("dig", "-p", "443", "+https", *verify) == plain
    mode = dep.ssh(dep.ns2, "stat -c %a /etc/domain-park/tls/privkey.pem").stdout.strip()
    assert mode == "600", mode
    for port in (853, 443):
        with socket.socket() as s:
            s.settimeout(1.0)
            with pytest.raises(socket.timeout):
                s.connect((dep.ns1.address, port))


def test_one_cookie_secret_for_the_fleet(dep):
    """The role made one cookie secret on the controller and gave it to every worker and
    balancer of every host; a server cookie the balancer made is accepted when sent back."""
    secret = (dep.workdir / "credentials" / "cookie_secret").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", secret), secret
    for host, files in ((dep.ns1, ("worker.json", "balancer.json")), (dep.ns2, ("worker.json",))):
        for f in files:
            cfg = json.loads(dep.ssh(host, f"cat /etc/domain-park/{f}").stdout)
            assert cfg["cookie_secret"] == secret, (host.name, f)
    client = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    q = h.make_query("example.com.", "TXT", edns=0, options=[dns.edns.GenericOption(10, client)])
    first = h.edns_option(h.query(53, q, transport="tcp", timeout=3.0, host=dep.ns1.address), 10)
    assert first is not None and first.client == client and len(first.server) == 16
    q = h.make_query("example.com.", "TXT", edns=0,
                     options=[dns.edns.GenericOption(10, client + first.server)])
    again = h.edns_option(h.query(53, q, transport="tcp", timeout=3.0, host=dep.ns1.address), 10)
    # Valid: echoed as it was (RFC 9018 renews it only after half an hour).
    assert again is not None and again.server == first.server


def test_firewall(dep):
    """DNS from anywhere; metrics ports only from the monitoring host (ns2): from the controller
    a connection to them gets no answer at all (dropped), from ns2 it is served."""
    for host in dep.lab.hosts:
        for port in (9253, 9100, 10000 + BASE_PORT):  # front end, node exporter, first worker
            with socket.socket() as s:
                s.settimeout(1.0)
                with pytest.raises(socket.timeout):
                    s.connect((host.address, port))
            r = dep.ssh(dep.ns2, f"python3 -c \"import urllib.request as u; "
                                 f"print(u.urlopen('http://{host.address}:{port}/metrics', timeout=3).status)\"")
            assert r.stdout.strip() == "200", (host.name, port, r.stdout, r.stderr)


def prometheus_query(dep, expr):
    """An instant query to Prometheus on ns2, from ns2 itself (the firewall admits no one else)."""
    script = ("import sys, urllib.parse as p, urllib.request as u; "
              f"print(u.urlopen('http://{dep.ns2.address}:9090/api/v1/query?query=' + p.quote(sys.argv[1]), "
              "timeout=5).read().decode())")
    r = dep.ssh(dep.ns2, f"python3 -c \"{script}\" '{expr}'")
    return json.loads(r.stdout)["data"]["result"]


def test_prometheus_scrapes_every_target(dep):
    # Per name server: its workers, its front end, its node exporter; and Prometheus itself.
    expected = (WORKERS + 2) * 2 + 1
    deadline = time.monotonic() + 90
    result = []
    while time.monotonic() < deadline:
        result = prometheus_query(dep, "up")
        if len(result) == expected and all(r["value"][1] == "1" for r in result):
            break
        time.sleep(2)
    jobs = sorted((r["metric"]["job"], r["metric"]["host"], r["value"][1]) for r in result)
    assert len(result) == expected and all(v == "1" for _, _, v in jobs), jobs
    assert {j for j, _, _ in jobs} == {"domain-park-worker", "domain-park-balancer", "domain-park-coredns", "node",
                                       "prometheus"}
    rules = prometheus_query(dep, 'count(ALERTS{alertstate="firing"}) or vector(0)')
    assert rules[0]["value"][1] == "0", prometheus_query(dep, "ALERTS")


def reload_counter(dep, host, port):
    text = dep.ssh(host, f"python3 -c \"import urllib.request as u; "
                         f"print(u.urlopen('http://{host.address}:{port}/metrics', timeout=3).read().decode())\"").stdout
    return sum(float(m.group(1)) for m in
               re.finditer(r'^domain_park(?:_balancer)?_config_reloads_total\{result="success"\} (\S+)$', text, re.M))


def test_reload_keeps_client_connections(dep):
    """`systemctl reload` of the workers and the front end: a new configuration read (the reload
    counters), the same processes, and a client's TCP connection from before still answered by
    the balancer. CoreDNS's reload (SIGUSR1) restarts its servers and closes client connections
    cleanly (FIN, after the answers in flight): the client reconnects and is served."""
    for i, host in enumerate(dep.lab.hosts):
        conn = h.tcp_connect(53, timeout=3.0, host=host.address)
        try:
            q = h.make_query("example.com.", "TXT")
            h.tcp_send(conn, q.to_wire())
            assert h.tcp_recv(conn)
            before_pids = dep.main_pids(host, [front_unit(i), *worker_units()])
            worker_metrics = 10000 + BASE_PORT
            before = (reload_counter(dep, host, 9253) if i == 0 else 0, reload_counter(dep, host, worker_metrics))
            dep.ssh(host, f"systemctl reload {front_unit(i)} {' '.join(worker_units())}")
            time.sleep(1)
            after = (reload_counter(dep, host, 9253) if i == 0 else 0, reload_counter(dep, host, worker_metrics))
            assert after[1] == before[1] + 1, (before, after)
            if i == 0:
                assert after[0] == before[0] + 1, (before, after)
            assert dep.main_pids(host, [front_unit(i), *worker_units()]) == before_pids
            if i == 1:
                with pytest.raises(EOFError):
                    h.tcp_send(conn, q.to_wire())
                    h.tcp_recv(conn)
                conn.close()
                conn = h.tcp_connect(53, timeout=3.0, host=host.address)
            for _ in range(3):
                h.tcp_send(conn, q.to_wire())
                try:
                    assert h.tcp_recv(conn)
                except EOFError:
                    pytest.fail(f"{host.name}: the connection from before the reload was closed", pytrace=False)
        finally:
            conn.close()


def test_second_run_changes_nothing(dep):
    with timed("site.yml, second run"):
        out, recap = dep.must("site.yml")
    changed = [line for line in out.splitlines() if line.startswith("changed:")]
    assert all(v["changed"] == 0 for v in recap.values()), (recap, changed)


def test_configuration_change_is_a_reload(dep):
    """A new DMARC address in the inventory: worker.json changes, the workers reload (same PIDs),
    the answers change, and the clients' TCP connections, kept busy meanwhile, are never closed
    and lose no query."""
    before = {host.name: dep.main_pids(host, worker_units()) for host in dep.lab.hosts}
    new_rua = "new-reports@lab.example.net"
    load = Load([Target(host.name, host.address) for host in dep.lab.hosts], rate=20, tcp_rate=10, max_seconds=600)
    load.start()
    try:
        dep.must("site.yml", "-e", f"domain_park_rua={new_rua}")
    finally:
        load.stop()
    assert load.error is None, load.error
    for host in dep.lab.hosts:
        assert dep.main_pids(host, worker_units()) == before[host.name]
        # A name nobody asked before, so no front-end cache holds the old answer.
        r = h.query(53, h.make_query("_dmarc.fresh-after-reload.com.", "TXT"), transport="tcp", host=host.address)
        texts = [b"".join(rd.strings).decode() for rr in r.answer for rd in rr]
        assert texts and f"rua=mailto:{new_rua}" in texts[0], texts
        s = load.summary()[host.name]
        assert s["tcp"]["connections"] == 1, s
        for kind in ("udp", "tcp"):
            assert s[kind]["sent"] > 0 and s[kind]["lost"] == 0, (host.name, kind, s)
    dep.must("site.yml")  # back to the inventory's address


def test_rolling_upgrade_loses_no_query(dep):
    with timed("packages, upgrade version"):
        build_packages(dep.workdir / "pkg2", version="99.0.0+lab")
    pids = {host.name: dep.main_pids(host, [front_unit(i), *worker_units()]) for i, host in enumerate(dep.lab.hosts)}
    load = Load([Target(host.name, host.address) for host in dep.lab.hosts], rate=100, tcp_rate=20, max_seconds=600)
    load.start()
    time.sleep(2)
    try:
        with timed("upgrade.yml under load"):
            out, recap = dep.must("upgrade.yml", "-e", f"domain_park_deb={dep.workdir / 'pkg2' / 'domain-park.deb'}",
                                  "-e", f"coredns_deb={dep.workdir / 'pkg2' / 'domain-park-coredns.deb'}")
        time.sleep(2)
    finally:
        load.stop()
    assert load.error is None, load.error
    summary = load.summary()
    print("\nrolling upgrade load:", json.dumps(summary), file=sys.stderr)
    TIMES["upgrade load"] = summary
    for i, host in enumerate(dep.lab.hosts):
        version = dep.ssh(host, "dpkg-query -W -f '${Version}' domain-park").stdout
        assert version == "99.0.0+lab"
        now = dep.main_pids(host, [front_unit(i), *worker_units()])
        for u in worker_units():
            assert now[u] != pids[host.name][u], f"{host.name}: {u} was not restarted"
        # Same front-end binary in both packages: the front end keeps running.
        assert now[front_unit(i)] == pids[host.name][front_unit(i)]
        for kind in ("udp", "tcp"):
            s = summary[host.name][kind]
            assert s["sent"] > 100, s
            assert s["lost"] == 0 and s["answered"] == s["sent"], (host.name, kind, s)
            assert set(s["rcodes"]) == {0}, (host.name, kind, s)
