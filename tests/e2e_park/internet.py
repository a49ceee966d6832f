"""A small fake DNS internet on the loopback of a network namespace of our own (run.sh makes
it with `unshare -rn`), every server on port 53 as in real life, started and stopped by PID:

  127.0.0.2   knotd: the root zone and the `test.` TLD (the parent of every domain below)
  127.0.0.20  knotd: reports.test (DMARC report mailboxes, with the wildcard report
              authorization of RFC 7489 7.1), and zones of other operators
  127.0.0.10  domain-park-worker ns1.park.test  } the parking name servers (park.json)
  127.0.0.11  domain-park-worker ns2.park.test  }
  127.0.0.12  domain-park-worker ns1.badpark.test: reports to a parked domain (badrua.json)
  127.0.0.53  unbound: a real recursive resolver with the fake root as its root hints

Delegations in test.: parked.test, parked2.test, park.test -> ns1/ns2.park.test; reports.test,
elsewhere.test -> ns.reports.test; lame.test -> ns1.park.test + ns.reports.test (which does not
serve it); silent.test -> ns1.park.test + ns.silent.test (127.0.0.30, nothing listens);
undelegated.test: none; badrua.test -> ns1.badpark.test.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

WORKER_BIN = os.environ.get("DOMAIN_PARK_WORKER", str(REPO / "build" / "worker" / "domain-park-worker"))
CHECK_BIN = os.environ.get("DOMAIN_PARK_CHECK", str(REPO / "build" / "check" / "domain-park-check"))
# checkdmarc from the venv scripts/setup.sh makes for it (DP_CHECKDMARC: another one).
CHECKDMARC = os.environ.get("DP_CHECKDMARC", str(Path(os.environ.get("DP_CACHE", Path.home() / ".cache" / "domain-park"))
                                                  / "venv-checkdmarc" / "bin" / "checkdmarc"))

ROOT_TLD, REPORTS, NS1, NS2, BADPARK, RESOLVER, SILENT = (
    "127.0.0.2", "127.0.0.20", "127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.53", "127.0.0.30")
RUA = "dmarc@reports.test"
PARKING_NS = ["ns1.park.test", "ns2.park.test"]

SOA = "SOA {mname} hostmaster.{zone} 1 3600 600 86400 60"

ROOT_ZONE = f"""\
$TTL 3600
. {SOA.format(mname="ns.tld.test.", zone="tld.test.")}
. NS ns.tld.test.
test. NS ns.tld.test.
ns.tld.test. A {ROOT_TLD}
"""

TLD_ZONE = f"""\
$ORIGIN test.
$TTL 3600
@ {SOA.format(mname="ns.tld.test.", zone="tld.test.")}
@ NS ns.tld.test.
ns.tld.test. A {ROOT_TLD}
park NS ns1.park.test.
park NS ns2.park.test.
ns1.park A {NS1}
ns2.park A {NS2}
parked NS ns1.park.test.
parked NS ns2.park.test.
parked2 NS ns1.park.test.
parked2 NS ns2.park.test.
reports NS ns.reports.test.
ns.reports A {REPORTS}
elsewhere NS ns.reports.test.
lame NS ns1.park.test.
lame NS ns.reports.test.
silent NS ns1.park.test.
silent NS ns.silent.test.
ns.silent A {SILENT}
badrua NS ns1.badpark.test.
badpark NS ns1.badpark.test.
ns1.badpark A {BADPARK}
"""

REPORTS_ZONE = f"""\
$ORIGIN reports.test.
$TTL 3600
@ {SOA.format(mname="ns.reports.test.", zone="reports.test.")}
@ NS ns.reports.test.
ns A {REPORTS}
@ MX 10 mx.reports.test.
mx A {REPORTS}
@ TXT "v=spf1 mx -all"
; RFC 7489 7.1: this organization accepts DMARC reports about any domain.
*._report._dmarc TXT "v=DMARC1"
"""

ELSEWHERE_ZONE = f"""\
$ORIGIN elsewhere.test.
$TTL 3600
@ {SOA.format(mname="ns.reports.test.", zone="elsewhere.test.")}
@ NS ns.reports.test.
@ TXT "v=spf1 mx -all"
@ MX 10 mx.reports.test.
"""

KNOT_CONF = """\
server:
    rundir: "{dir}"
    pidfile: "{dir}/knot.pid"
    listen: {addr}@53
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "{dir}/knot.sock"
database:
    storage: "{dir}/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{dir}"
    file: "%s.zone"
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
{zones}
"""

UNBOUND_CONF = """\
server:
    interface: {addr}
    port: 53
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    do-ip6: no
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    root-hints: "{dir}/root.hints"
    module-config: "iterator"
    num-threads: 1
    harden-referral-path: no
    # unbound answers the special-use test. (RFC 6761) itself unless told not to.
    local-zone: "test." nodefault
remote-control:
    control-enable: no
"""


def wait_dns(addr, name=".", rdtype="SOA", timeout=10.0, tcp=False):
    """Until addr:53 answers (name, rdtype) with NOERROR."""
    deadline = time.monotonic() + timeout
    q = dns.message.make_query(name, rdtype)
    last = "nothing"
    while True:
        try:
            r = (dns.query.tcp if tcp else dns.query.udp)(q, addr, timeout=0.5)
            if r.rcode() == dns.rcode.NOERROR:
                return
            last = dns.rcode.to_text(r.rcode())
        except (OSError, dns.exception.Timeout):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{addr}:53 does not answer {name} {rdtype} with NOERROR within {timeout}s ({last})")
        time.sleep(0.05)


class Process:
    def __init__(self, name, cmd, log_dir):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log)

    def output(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


class Internet:
    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.procs = []

    def knot(self, name, addr, zones):
        d = self.tmp / name
        d.mkdir()
        for zone, text in zones.items():
            (d / f"{zone.rstrip('.')}.zone").write_text(text)  # knotd's "%s.zone": "test.zone", ".zone"
        conf = d / "knot.conf"
        conf.write_text(KNOT_CONF.format(dir=d, addr=addr,
                                         zones="\n".join(f"  - domain: {z}" for z in zones)))
        self.procs.append(Process(name, ["knotd", "-c", conf], self.tmp))

    def worker_config(self, name, nameservers, rua):
        cfg = self.tmp / f"{name}.json"
        cfg.write_text(json.dumps({"nameservers": nameservers, "rua": rua,
                                   "cookie_secret": "e5e973e5a6b2a43f48e7dc849e37bfcf"}))
        return cfg

    def worker(self, name, addr, cfg):
        self.procs.append(Process(name, [WORKER_BIN, "-c", cfg, "--host", addr, "--port", "53"], self.tmp))

    def start(self):
        self.knot("knot-root", ROOT_TLD, {".": ROOT_ZONE, "test.": TLD_ZONE})
        self.knot("knot-reports", REPORTS, {"reports.test.": REPORTS_ZONE, "elsewhere.test.": ELSEWHERE_ZONE})
        self.park_config = self.worker_config("park", [f"ns1.park.test:{NS1}", f"ns2.park.test:{NS2}"], RUA)
        self.worker("ns1", NS1, self.park_config)
        self.worker("ns2", NS2, self.park_config)
        # A parking operator whose DMARC reports go to a parked domain (its own park.test).
        self.badrua_config = self.worker_config("badrua", [f"ns1.badpark.test:{BADPARK}"], "dmarc@park.test")
        self.worker("badpark", BADPARK, self.badrua_config)
        d = self.tmp / "unbound"
        d.mkdir()
        (d / "root.hints").write_text(f". 3600000 NS ns.tld.test.\nns.tld.test. 3600000 A {ROOT_TLD}\n")
        conf = d / "unbound.conf"
        conf.write_text(UNBOUND_CONF.format(dir=d, addr=RESOLVER))
        self.procs.append(Process("unbound", ["unbound", "-d", "-c", conf], self.tmp))
        try:
            for addr in (ROOT_TLD, REPORTS):
                wait_dns(addr, "test." if addr == ROOT_TLD else "reports.test.")
            for addr in (NS1, NS2, BADPARK):
                wait_dns(addr, "example.test.")
            wait_dns(RESOLVER, "parked.test.", "TXT")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.describe()}") from None
        return self

    def describe(self):
        return "\n".join(f"--- {p.name} (pid {p.proc.pid}, exit {p.proc.poll()}) ---\n{p.output()[-3000:]}"
                         for p in self.procs)

    def stop(self):
        for p in self.procs:
            p.stop()


def in_own_network_namespace():
    """run.sh sets DP_PARK_NETNS in the namespace it made; port 53 on 127.0.0.x is ours there."""
    return os.environ.get("DP_PARK_NETNS") == "1"


def tools_present():
    """The tools missing (empty when all are there)."""
    return [t for t in ("knotd", "unbound", CHECKDMARC) if shutil.which(t) is None]


def udp_port_free(addr):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((addr, 53))
            return True
        except OSError:
            return False
