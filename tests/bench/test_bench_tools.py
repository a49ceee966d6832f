"""The bench tools do what the benchmark's numbers rely on: dns_load counts malformed, refused
and dropped queries apart, sends fresh names with --random-label, never runs ahead of an
open-loop schedule and holds idle connections; make_mix.py and the zone builder produce what
they promise; bench.py runs end to end against the real worker and echo server and exits 2
with one line on bad arguments. The real worker, the real echo server, dnspython as the
independent server where one must drop queries."""

import json
import os
import re
import socket
import subprocess
import sys
import threading

import dns.flags
import dns.message
import pytest

from .conftest import BUILD, DNS_LOAD, REPO, dns_load, write_mix

BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

from make_mix import SUFFIXES  # noqa: E402

MIXED = ["park-1.com TXT", "co.uk TXT", "park-2.com MX !noquestion", "park-3.co.uk TXT !cut",
         "park-4.com A !opt2", "_dmarc.park-5.com TXT"]


class DnspythonServer:
    """A UDP server on 127.0.0.1: answers (NOERROR, empty) every query dnspython parses with
    exactly one question and at most one additional record, drops the rest, and records the
    question names it saw."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.names, self.dropped = [], 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            try:
                q = dns.message.from_wire(wire)
                ok = len(q.question) == 1 and int.from_bytes(wire[10:12], "big") <= 1
            except Exception:  # noqa: BLE001 - any parse failure means: drop it
                ok = False
            if not ok:
                self.dropped += 1
                continue
            self.names.append(q.question[0].name.to_text())
            r = dns.message.make_response(q)
            r.flags &= ~dns.flags.RA
            self.sock.sendto(r.to_wire(), peer)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def dnspython_server():
    s = DnspythonServer()
    yield s
    s.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_malformed_and_refused_queries_are_counted_apart(worker, tmp_path, transport):
    mix = write_mix(tmp_path / "mix.txt", MIXED)
    r = dns_load(worker.port, "-m", transport, "-f", mix, "-n", 600, "-d", 0, "-c", 2, "-w", 10)
    assert r["sent"] == 600 and r["answered"] == 600
    assert (r["bad_sent"], r["bad_answered"], r["bad_unanswered"]) == (300, 300, 0)
    # The worker answers FORMERR to each malformed kind and REFUSED for a bare suffix.
    assert r["rcodes"] == {"NOERROR": 200, "FORMERR": 300, "REFUSED": 100}
    assert r["mismatched"] == 0 and r["lost"] == 0 and r["unexpected"] == 0


def test_dropped_malformed_queries_are_not_lost(dnspython_server, tmp_path):
    mix = write_mix(tmp_path / "mix.txt", MIXED)
    # One well-formed query in flight at a time: a dropped malformed one must not hold it.
    r = dns_load(dnspython_server.port, "-f", mix, "-n", 60, "-d", 0, "-w", 1, "-t", 0.5)
    assert r["answered"] == 30 and r["lost"] == 0
    assert (r["bad_sent"], r["bad_answered"], r["bad_unanswered"]) == (30, 0, 30)
    assert dnspython_server.dropped == 30


def test_random_label_asks_a_new_name_every_time(dnspython_server, tmp_path):
    mix = write_mix(tmp_path / "mix.txt", ["Park-1.Co.Uk TXT"])
    r = dns_load(dnspython_server.port, "-f", mix, "-n", 300, "-d", 0, "-w", 20, "--random-label", "-S", 7)
    assert r["answered"] == 300 and r["mismatched"] == 0
    names = dnspython_server.names
    assert len(names) == 300 and len(set(names)) == 300
    assert all(re.fullmatch(r"[a-z2-7]{10}\.Park-1\.Co\.Uk\.", n) for n in names), names[:3]
    # Another seed, other labels.
    dns_load(dnspython_server.port, "-f", mix, "-n", 300, "-d", 0, "-w", 20, "--random-label", "-S", 8)
    assert not set(names[:300]) & set(dnspython_server.names[300:])


def test_open_loop_never_runs_ahead_of_its_schedule(echo, tmp_path):
    mix = write_mix(tmp_path / "mix.txt", ["park-1.com TXT", "park-2.com A"])
    r = dns_load(echo, "-f", mix, "-r", 3000, "-d", 0.5, "-c", 2, "-w", 1000)
    assert r["target_rate"] == 3000
    assert 0 < r["sent"] <= 3000 * r["duration_s"] + 1
    assert r["answered"] == r["sent"] and r["lost"] == 0


def test_tcp_idle_holds_every_connection(worker, tmp_path):
    mix = write_mix(tmp_path / "mix.txt", ["park-1.com MX !cut", "park-1.com TXT"])
    # The first line of the mix is malformed: tcp-idle must use a query the server answers.
    out = subprocess.run([DNS_LOAD, "-s", "127.0.0.1", "-p", str(worker.port), "-m", "tcp-idle", "-f", mix,
                          "-c", "40", "-d", "0.3", "--wave", "8"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ready, summary = out.stdout.strip().splitlines()
    assert ready.startswith("READY ") and json.loads(ready[6:])["opened"] == 40
    s = json.loads(summary)
    assert (s["opened"], s["failed"], s["closed_by_server"]) == (40, 0, 0)


def test_make_mix_is_deterministic_with_its_shares(tmp_path):
    def make(path):
        subprocess.run([sys.executable, BENCH / "make_mix.py", "-o", path, "--domains", "500", "--queries", "5000"],
                       check=True)
        return open(path).read().splitlines()
    a, b = make(tmp_path / "a.txt"), make(tmp_path / "b.txt")
    assert a == b and len(a) == 5000
    bad = [ln for ln in a if len(ln.split()) == 3]
    refused = [ln for ln in a if len(ln.split()) == 2 and ln.split()[0] in SUFFIXES]
    assert 25 <= len(bad) <= 75 and 25 <= len(refused) <= 75  # 1% each
    assert {ln.split()[2] for ln in bad} == {"!noquestion", "!cut", "!opt2"}


def test_zones_leave_out_malformed_and_refused_names(tmp_path):
    mix = write_mix(tmp_path / "mix.txt", MIXED + ["www.park-6.org A"])
    subprocess.run([sys.executable, BENCH / "peers" / "make_zones.py", mix, "--out", tmp_path / "z",
                    "--knot-port", "15999", "--nsd-port", "15998"], check=True, capture_output=True)
    zones = sorted(os.listdir(tmp_path / "z" / "zones"))
    assert zones == ["park-1.com.zone", "park-5.com.zone", "park-6.org.zone"]
    knot = (tmp_path / "z" / "knot.conf").read_text()
    nsd = (tmp_path / "z" / "nsd.conf").read_text()
    assert "127.0.0.1@15999" in knot and "127.0.0.1@15998" in nsd
    for z in ("park-1.com", "park-5.com", "park-6.org"):
        assert f"- domain: {z}\n" in knot and f"name: {z}\n" in nsd
    assert "rrl-ratelimit: 0" in nsd  # NSD's RRL would otherwise limit the bench's one client


def bench_py(*args, timeout=300):
    return subprocess.run([sys.executable, BENCH / "bench.py", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="bench.py pins systems and load to two different CPUs")
def test_bench_runs_end_to_end_against_the_worker_and_the_echo_server(tmp_path):
    out = tmp_path / "results"
    r = bench_py("--quick", "--systems", "echo,worker", "--rounds", 2, "--seconds", 0.3, "--lat-seconds", 0.3,
                 "--rates", "1000,4000", "--idle-conns", "10,30", "--quiet-wait", 0, "--build", BUILD, "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["systems"] == ["echo", "worker"] and set(meta["phases"]) >= {"check", "throughput", "latency", "memory"}
    check = json.loads((out / "check" / "worker-udp.json").read_text())
    assert check["rcodes"]["FORMERR"] == meta["mix"]["malformed"] and check["bad_unanswered"] == 0
    assert check["rcodes"]["REFUSED"] == meta["mix"]["refused"] and check["mismatched"] == 0
    for system in ("echo", "worker"):
        for t in ("udp", "tcp"):
            for rnd in (1, 2):
                run = json.loads((out / "throughput" / f"{system}-{t}-r{rnd}.json").read_text())
                assert run["answered"] > 0 and run["bench"]["server_cpu_s"] >= 0
        assert (out / "latency" / f"{system}-udp-1000.json").exists()
    mem = json.loads((out / "memory" / "worker.json").read_text())
    assert [s["opened"] for s in mem["idle"]["steps"]] == [10, 30]
    table = (out / "table.md").read_text()
    assert re.search(r"\| domain-park worker \| – \| [\d,]+ ", table), table[:2000]
    assert "| domain-park worker | UDP | " in table  # the latency rows
    assert (out / "readme.md").exists() and (out / "machine.md").exists()


@pytest.mark.parametrize("args", [["--systems", "nope"], ["--rates", "1000,x"], ["--rounds", "0"],
                                  ["--server-cpu", "1", "--client-cpu", "1"], ["--quick", "--publish"]])
def test_bad_arguments_stop_with_one_line_and_exit_2(args):
    r = bench_py("--check-args", *args)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("bench: "), r.stderr
