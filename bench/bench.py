#!/usr/bin/env python3
"""All of domain-park's benchmarks in one run: every system side by side on this machine.

Started by bench/run.sh (which installs the peers, builds, and sets up the Python
environments first); `bench/run.sh --help` lists the options. What one run does, in order:

  setup       the query mixes (make_mix.py), the Knot/NSD zones (peers/make_zones.py), the
              configurations of every front; then every system started at once, each on its
              own loopback port, all pinned to CPU 0 (an idle one costs nothing), dns_load
              pinned to CPU 1
  check       one pass over the whole mix per system and transport: the answers' rcodes, the
              question echoed, malformed queries answered or dropped (over TCP apart: one at a
              time, to see who closes the connection); this also fills the fronts' caches
  throughput  closed loop, ROUNDS rounds; in each round every (system, transport) cell once,
              the order reversed every other round (ABBA), so the machine's noise hits every
              system alike; the scaling cells (balancer + 1 worker, balancer with 2 threads)
              are cells of the same rounds
  latency     open loop at fixed offered rates (the ladder), each system up to the first rate
              above its closed-loop throughput; rate by rate, all systems at one rate before
              the next, the order alternating
  dnsperf     dnsperf and dns_load against the worker at one rate (a cross-check of the tool)
  memory      each system started afresh, alone: RSS/PSS idle, with 1,000 and 10,000 idle TCP
              connections, and for the fronts per cached answer
  report      report.py: table.md, the PNG plots, machine.md, readme.md (the README section)

Every process is started here and stopped here by PID; all traffic is on 127.0.0.1; every
load run is bounded in count and time.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from make_mix import registrable  # noqa: E402  (the mix's own suffix list)

TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

# The settings of a full run and of --quick; every one can be overridden by an option.
PROFILES = {
    "full": dict(rounds=4, seconds=2.0, lat_seconds=2.0,
                 rates=[2000, 5000, 10000, 20000, 50000, 100000, 150000, 200000, 250000, 500000, 1000000],
                 lat_transports=["udp", "tcp"], idle_conns=[1000, 10000], mem_warm=20000,
                 mem_names=100000, domains=10000, queries=100000, scaling=True, dnsperf=True,
                 quiet_wait=10.0, quiet_budget=120.0, slow_check=10000, timeout=2.0),
    "quick": dict(rounds=1, seconds=0.7, lat_seconds=0.7, rates=[10000, 100000],
                  lat_transports=["udp"], idle_conns=[1000], mem_warm=0, mem_names=0,
                  domains=2000, queries=20000, scaling=False, dnsperf=False, quiet_wait=1.0,
                  quiet_budget=5.0, slow_check=1000, timeout=0.5),
}

# The systems, in the order of every table. "front" systems sit in front of the same two
# workers and are measured on two mixes: hit (the bench mix, already in their caches) and
# miss (a fresh random label on every query: every query goes to a worker).
SYSTEMS = {
    "echo": dict(label="echo reference (no DNS work)", kind="server"),
    "worker": dict(label="domain-park worker", kind="server"),
    "balancer": dict(label="domain-park balancer", kind="front"),
    "dnsdist": dict(label="dnsdist", kind="front"),
    "coredns": dict(label="CoreDNS (Corefile)", kind="front"),
    "knot": dict(label="Knot DNS", kind="server"),
    "nsd": dict(label="NSD", kind="server"),
    "pydp-direct": dict(label="domain-park 0.5.1 (Python), direct", kind="server", slow=True),
    "pydp-threads": dict(label="domain-park 0.5.1 (Python), threads", kind="server", slow=True),
}
ALL_SYSTEMS = list(SYSTEMS)
FRONTS = [s for s in SYSTEMS if SYSTEMS[s]["kind"] == "front"]
WORKER_NS = ["-n", "ns1.park.example:192.0.2.53", "-n", "ns2.park.example:192.0.2.54"]
RUA = "dmarc@park.example"
CACHE_ENTRIES = 200000
UDP_CLOSED = ["-m", "udp", "-c", "4", "-w", "50"]
TCP_CLOSED = ["-m", "tcp", "-c", "10", "-w", "100"]
OPEN_WINDOW = "16384"  # open loop: queries in flight per socket/connection before sending waits
PYDP_THREADS = 8       # --application threads --workers 8, as in the measurement


class BenchError(Exception):
    """A problem that stops the run: one line, exit code 2 (settings) or 1 (the run)."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

STARTED = []  # every Proc started, for the final stop
NICE = 0      # --nice: the priority of every system and of dns_load


def pinned(cpu):
    """The command prefix that runs a program on one CPU (with PRIORITY: at the bench's nice)."""
    return ["taskset", "-c", str(cpu)]


def prioritize():
    """In the child before exec (a session of its own): the bench's nice, for the process and
    for its scheduler autogroup. With autogroups on (the kernel's default for desktops and this
    VM) CPU time is shared between sessions first, whatever their processes' nice values."""
    if NICE:
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(NICE))
        except OSError:
            pass  # no autogroups: the process's own nice is all there is


PRIORITY = {"start_new_session": True, "preexec_fn": prioritize}

class Proc:
    """One process started by the bench, pinned to a CPU, stopped by its PID."""

    def __init__(self, name, argv, logfile, cpu, env=None, cwd=None):
        self.name, self.argv, self.logfile, self.cpu = name, argv, logfile, cpu
        self.env, self.cwd, self.popen = env, cwd, None

    def start(self):
        env = dict(os.environ)
        env.update(self.env or {})
        out = open(self.logfile, "ab")
        self.popen = subprocess.Popen(pinned(self.cpu) + self.argv, stdout=out,
                                      stderr=subprocess.STDOUT, env=env, cwd=self.cwd, **PRIORITY)
        out.close()
        STARTED.append(self)
        return self

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace=7.0):
        """SIGTERM, up to `grace` seconds to exit (workers drain), then SIGKILL; children too."""
        if self.popen is None:
            return
        if self.alive():
            kids = tree(self.pid)[1:]
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
            for k in kids:  # NSD's children exit with it; anything left is killed by PID
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self in STARTED:
            STARTED.remove(self)


def stop_all():
    for p in list(reversed(STARTED)):
        p.stop()


def tree(pid):
    """pid and its descendants (NSD forks a server and xfrd; the others are one process)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def ticks(pids):
    """user + system CPU ticks of these processes (all threads)."""
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return t


def busy_ticks():
    """Busy ticks of the whole machine (user, nice, system, irq, softirq, steal), all CPUs."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(pids):
    """RSS summed over the processes (each counts its shared pages) and PSS (shared pages
    divided among the processes that map them: NSD's zone data counted once)."""
    every = [q for p in pids for q in tree(p)]
    return {"rss_kb": sum(status_kb(p, "VmRSS") for p in every),
            "pss_kb": sum(pss_kb(p) for p in every),
            "threads": sum(status_kb(p, "Threads") for p in every), "processes": len(every)}


def port_free(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


# ---------------------------------------------------------------- the run

class Run:
    def __init__(self, a):
        self.a = a
        self.out = a.out
        self.cfg = os.path.join(self.out, "configs")
        self.logs = os.path.join(self.out, "logs")
        self.work = os.path.join(self.out, "work")
        for d in (self.cfg, self.logs, self.work):
            os.makedirs(d, exist_ok=True)
        self.dns_load = os.path.join(a.build, "bench", "dns_load")
        self.next_port = a.port_base
        self.instances = {}     # key -> Instance (the load set)
        self.backends = []      # the workers behind the fronts
        self.capacity = {}      # (instance key, transport) -> closed-loop q/s
        self.waited = 0.0       # seconds spent waiting for a quiet machine
        self.seeds = 1000       # every load run its own seed: fresh labels, other query IDs
        self.meta = {"phases": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}

    # ------------------------------------------------------------ helpers

    def port(self, n=1):
        """n consecutive free loopback ports (UDP and TCP)."""
        while True:
            base = self.next_port
            self.next_port += n
            if self.next_port > 65000:
                raise BenchError("no free loopback ports above --port-base")
            if all(port_free(base + i) for i in range(n)):
                return base

    def load(self, port, args, out=None, timeout=None):
        """One dns_load run pinned to the client CPU; its JSON summary (also saved to out)."""
        argv = pinned(self.a.client_cpu) + [self.dns_load, "-q", "-s", "127.0.0.1",
                "-p", str(port)] + [str(x) for x in args]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout or 600, **PRIORITY)
        lines = r.stdout.strip().splitlines()
        if r.returncode != 0 or not lines:
            raise BenchError(f"dns_load failed ({' '.join(argv)}): {r.stderr.strip()[:300]}")
        j = json.loads(lines[-1])
        if out:
            with open(out, "w") as f:
                f.write(lines[-1] + "\n")
        return j

    def wait_quiet(self):
        """Wait until the machine is under 10% busy, at most --quiet-wait s (not at all once the
        run has waited its quiet budget in all): a build elsewhere on a 2-core box halves the
        numbers without any other sign. Returns the seconds waited."""
        limit = self.a.quiet_wait if self.waited < self.a.quiet_budget else 0.0
        t0 = time.monotonic()
        while True:
            a = busy_ticks()
            time.sleep(0.25)
            b = busy_ticks()
            if (b - a) * 10 < TCK * NCPU * 0.25 or time.monotonic() - t0 >= limit:
                waited = round(time.monotonic() - t0 - 0.25, 2)
                self.waited += waited
                return waited

    def mix(self, transport):
        # Malformed queries go over UDP only in the load phases: over TCP several servers
        # close the connection on one (RFC 7766 allows it), and a pipelined client then loses
        # everything in flight; the check phase sends them over TCP one at a time instead.
        return self.mix_path if transport == "udp" else self.mix_wf_path

    # ------------------------------------------------------------ inputs

    def make_inputs(self):
        a = self.a
        self.mix_path = os.path.join(self.out, "mix.txt")
        subprocess.run([sys.executable, os.path.join(HERE, "make_mix.py"), "-o", self.mix_path,
                        "--domains", str(a.domains), "--queries", str(a.queries)], check=True)
        lines = [ln for ln in open(self.mix_path) if ln.strip() and ln[0] not in "#;"]
        self.mix_lines = len(lines)
        self.mix_wf_path = os.path.join(self.out, "mix-wellformed.txt")
        with open(self.mix_wf_path, "w") as f:
            f.writelines(ln for ln in lines if "!" not in ln)
        self.mix_wf_lines = sum(1 for ln in lines if "!" not in ln)
        # Readiness of Knot and NSD: every zone answers (they load zones after binding).
        zones = sorted({registrable(ln.split()[0]) for ln in lines if "!" not in ln} - {None})
        self.zone_probe = os.path.join(self.work, "probe-zones.txt")
        with open(self.zone_probe, "w") as f:
            f.writelines(f"{d} TXT\n" for d in zones)
        self.small_probe = os.path.join(self.work, "probe.txt")
        with open(self.small_probe, "w") as f:
            f.write("example.com TXT\n")
        # The malformed-over-TCP check: each kind 10 times, each after a well-formed query.
        self.tcp_bad_mix = os.path.join(self.work, "tcp-malformed.txt")
        good = [ln for ln in lines if "!" not in ln and registrable(ln.split()[0])][:30]
        with open(self.tcp_bad_mix, "w") as f:
            for i, ln in enumerate(good):
                f.write(f"{ln.strip()}\n{ln.split()[0]} MX {['!noquestion', '!cut', '!opt2'][i % 3]}\n")
        self.meta["mix"] = {"lines": self.mix_lines, "wellformed": self.mix_wf_lines,
                            "malformed": self.mix_lines - self.mix_wf_lines,
                            "refused": sum(1 for ln in lines if "!" not in ln and registrable(ln.split()[0]) is None),
                            "domains": a.domains}

    def make_zones(self):
        self.knot_port, self.nsd_port = self.port(), self.port()
        zdir = os.path.join(self.work, "zones")
        subprocess.run([sys.executable, os.path.join(HERE, "peers", "make_zones.py"), self.mix_path,
                        "--out", zdir, "--knot-port", str(self.knot_port), "--nsd-port", str(self.nsd_port)],
                       check=True, stdout=subprocess.DEVNULL)
        self.zdir = zdir
        for f in ("knot.conf", "nsd.conf"):
            shutil.copy(os.path.join(zdir, f), os.path.join(self.cfg, f))

    # ------------------------------------------------------------ systems

    def proc(self, name, argv, env=None, cwd=None):
        return Proc(name, argv, os.path.join(self.logs, f"{name}.log"), self.a.server_cpu, env, cwd)

    def worker_argv(self, port, identity):
        return [self.a.worker_bin, "--host", "127.0.0.1", "--port", str(port), *WORKER_NS, "--rua", RUA,
                "--identity", identity, "--idle-timeout", "300", "--max-connections", "20000"]

    def start_backends(self):
        for i in range(2):
            port = self.port()
            p = self.proc(f"backend-w{i}", self.worker_argv(port, f"w{i}")).start()
            self.backends.append((p, port))
        for p, port in self.backends:
            self.wait_ready(p, port, self.small_probe, 1, ["udp", "tcp"], f"backend worker on {port}")

    def make_instance(self, key, system, mix=None, tag="", workers=2, threads=1, wait=True):
        """Start one instance of a system (its processes and ports) and return it; with wait,
        once it answers."""
        a = self.a
        name = key + tag
        inst = {"key": name, "system": system, "mix": mix, "threads": threads, "workers": 0,
                "metrics": None, "procs": []}
        if system == "echo":
            inst["port"] = port = self.port()
            inst["procs"] = [self.proc(name, [os.path.join(a.build, "bench", "echo_server"), "--host",
                                              "127.0.0.1", "--port", str(port)])]
        elif system == "worker":
            inst["port"] = port = self.port()
            inst["procs"] = [self.proc(name, self.worker_argv(port, "bench"))]
        elif system == "knot":
            inst["port"] = self.knot_port
            os.makedirs(os.path.join(self.zdir, "db"), exist_ok=True)
            inst["procs"] = [self.proc(name, ["knotd", "-c", os.path.join(self.zdir, "knot.conf")])]
        elif system == "nsd":
            inst["port"] = self.nsd_port
            inst["procs"] = [self.proc(name, ["nsd", "-d", "-c", os.path.join(self.zdir, "nsd.conf")])]
        elif system.startswith("pydp-"):
            # The original runs one transport per process: a UDP and a TCP process on one port.
            inst["port"] = port = self.port()
            mode = system.split("-", 1)[1]
            env = {"TLDEXTRACT_CACHE": os.path.join(self.work, "tldextract"),
                   # The Debian list as tldextract's only source: nothing is fetched.
                   "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": a.psl_file,
                   # Should anything try to fetch regardless, it meets a closed loopback port.
                   "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                   "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
            for t in ("udp", "tcp"):
                argv = [os.path.join(a.pydp_venv, "bin", "domain-park"), "--application", mode]
                if mode == "threads":
                    argv += ["--workers", str(PYDP_THREADS)]
                argv += ["--host", "127.0.0.1", "--port", str(port), f"--{t}", *WORKER_NS, "--rua", RUA,
                         "--log-dir", self.logs]
                inst["procs"].append(self.proc(f"{name}-{t}", argv, env=env))
        else:  # a front over the first `workers` backends
            base = self.port(4)
            inst["port"], inst["metrics"], inst["workers"] = base, base + 1, workers
            addrs = [f"127.0.0.1:{port}" for _, port in self.backends[:workers]]
            conf = os.path.join(self.cfg, f"{name}.conf")
            if system == "balancer":
                members = {"listen": [f"127.0.0.1:{base}"], "workers": addrs,
                           "metrics": f"127.0.0.1:{base + 1}", "threads": threads,
                           # The same capacity as the others; entries live as long as CoreDNS's
                           # (3600 s cap), so hit-mix entries outlive the run.
                           "cache": {"max_entries": CACHE_ENTRIES, "max_ttl": 3600, "max_negative_ttl": 3600},
                           "tcp_idle_timeout": 300, "tcp_max_connections": 20000}
                conf = conf[:-5] + ".json"
                with open(conf, "w") as f:
                    json.dump(members, f, indent=2)
                inst["procs"] = [self.proc(name, [a.balancer_bin, "-c", conf])]
            elif system == "dnsdist":
                text = open(os.path.join(HERE, "peers", "dnsdist.conf.in")).read()
                servers = "".join(f'newServer({{address="{x}", name="w{i}"}})\n' for i, x in enumerate(addrs))
                text = (text.replace("@LISTEN@", f"127.0.0.1:{base}").replace("@WEB@", f"127.0.0.1:{base + 1}")
                        .replace("@SERVERS@", servers.rstrip("\n")).replace("@CACHE@", str(CACHE_ENTRIES)))
                with open(conf, "w") as f:
                    f.write(text)
                inst["procs"] = [self.proc(name, ["dnsdist", "--supervised", "--disable-syslog", "-C", conf])]
            elif system == "coredns":
                text = open(os.path.join(ROOT, "Corefile")).read().replace("{$DP_WORKERS}", " ".join(addrs))
                text = re.sub(r"(?m)^(\s+(?:success|denial) )\d+", rf"\g<1>{CACHE_ENTRIES}", text)
                # No 5 s lameduck on SIGTERM: the bench stops and starts it many times.
                text = re.sub(r"(?m)^\s+lameduck .*\n", "", text)
                conf = os.path.join(self.cfg, f"{name}.Corefile")
                with open(conf, "w") as f:
                    f.write(text)
                env = {"DP_LISTEN": "127.0.0.1", "DP_METRICS": f"127.0.0.1:{base + 1}", "DP_HEALTH": f"127.0.0.1:{base + 2}",
                       "DP_READY": f"127.0.0.1:{base + 3}", "GOMAXPROCS": "1"}
                inst["procs"] = [self.proc(name, [a.coredns_bin, "-conf", conf, "-dns.port", str(base)], env=env)]
        for p in inst["procs"]:
            p.start()
        if wait:
            self.instance_ready(inst)
        return inst

    def instance_ready(self, inst):
        probe, count = (self.zone_probe, None) if inst["system"] in ("knot", "nsd") else (self.small_probe, 1)
        for p in inst["procs"]:
            transports = [p.name.rsplit("-", 1)[1]] if inst["system"].startswith("pydp-") else ["udp", "tcp"]
            self.wait_ready(p, inst["port"], probe, count, transports, inst["key"])

    def wait_ready(self, proc, port, probe, count, transports, what, limit=60.0):
        """Up when every query of the probe is answered NOERROR over each transport."""
        n = count or sum(1 for _ in open(probe))
        t0 = time.monotonic()
        for t in transports:
            while True:
                if not proc.alive():
                    tail = open(proc.logfile, errors="replace").read()[-1500:]
                    raise BenchError(f"{what} exited during start-up; its log ends:\n{tail}")
                j = self.load(port, ["-m", t, "-f", probe, "-n", n, "-d", 0, "-c", 1, "-w", min(n, 100), "-t", 0.5])
                if j.get("rcodes", {}).get("NOERROR", 0) == n:
                    break
                if time.monotonic() - t0 > limit:
                    raise BenchError(f"{what} did not answer its {n} probe queries over {t} within {limit:.0f} s")
                time.sleep(0.2)

    def instance_pids(self, inst):
        return [q for p in inst["procs"] if p.alive() for q in tree(p.pid)]

    def backend_pids(self, inst):
        return [p.pid for p, _ in self.backends[:inst["workers"]]]

    def start_load_set(self, systems):
        """Every system of the run at once, each on its own ports (one per front and mix)."""
        plan = []
        for s in systems:
            if SYSTEMS[s]["kind"] == "front":
                plan += [(s, s, "hit", "", 2, 1), (s, s, "miss", "-miss", 2, 1)]
            else:
                plan.append((s, s, None, "", 2, 1))
        if self.a.scaling and "balancer" in systems:
            plan += [("balancer-1w", "balancer", "miss", "", 1, 1),
                     ("balancer-2t", "balancer", "hit", "", 2, 2),
                     ("balancer-2t", "balancer", "miss", "-miss", 2, 2)]
        if any(SYSTEMS[s]["kind"] == "front" for s in systems):
            self.start_backends()
        for key, system, mix, tag, workers, threads in plan:
            inst = self.make_instance(key, system, mix, tag, workers, threads, wait=False)
            self.instances[inst["key"]] = inst
        log(f"started {', '.join(self.instances)}; waiting until each answers")
        for inst in self.instances.values():
            self.instance_ready(inst)

    # ------------------------------------------------------------ measuring

    def cache_stats(self, inst):
        """The front's cache counters from its own metrics: hits, misses, entries (or None)."""
        if inst["metrics"] is None:
            return None
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{inst['metrics']}/metrics", timeout=2).read().decode()
        except OSError:
            return None
        names = {"balancer": ("domain_park_balancer_cache_lookups_total", "domain_park_balancer_cache_entries"),
                 "dnsdist": (None, "dnsdist_pool_cache_entries"),
                 "coredns": (None, "coredns_cache_entries")}[inst["system"]]
        hits = misses = entries = 0.0
        for line in text.splitlines():
            m = re.match(r"([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
            if not m or line.startswith("#"):
                continue
            name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
            if name == names[1]:
                entries += value
            elif inst["system"] == "balancer" and name == names[0]:
                if 'result="hit"' in labels:
                    hits += value
                elif 'result="miss"' in labels:
                    misses += value
            elif name in ("dnsdist_cache_hits", "coredns_cache_hits_total"):
                hits += value
            elif name in ("dnsdist_cache_misses", "coredns_cache_misses_total"):
                misses += value
        return {"hits": hits, "misses": misses, "entries": entries}

    def client_args(self, inst, transport, rate=None):
        args = list(UDP_CLOSED if transport == "udp" else TCP_CLOSED)
        if rate:
            args[args.index("-w") + 1] = OPEN_WINDOW
            args += ["-r", rate]
        args += ["-f", self.mix(transport)]
        if inst["mix"] == "miss":
            args.append("--random-label")
        return args

    def measure(self, inst, transport, seconds, out, rate=None):
        """One load run with the CPU of the system, of its workers, of dns_load and of the rest
        of the machine over it, the system's memory after it, and the cache counters. Each run
        has a seed of its own, so no cache-miss run asks a name an earlier run asked."""
        self.seeds += 1
        seed = self.seeds
        waited = self.wait_quiet()
        pids, wpids = self.instance_pids(inst), self.backend_pids(inst)
        c0 = self.cache_stats(inst)
        s0, w0, m0, t0 = ticks(pids), ticks(wpids), busy_ticks(), time.monotonic()
        r = self.load(inst["port"], self.client_args(inst, transport, rate) + ["-d", seconds, "-S", seed,
                                                                               "-t", self.a.timeout])
        s1, w1, m1, t1 = ticks(pids), ticks(wpids), busy_ticks(), time.monotonic()
        c1 = self.cache_stats(inst)
        r["bench"] = {"instance": inst["key"], "system": inst["system"], "mix": inst["mix"], "transport": transport,
                      "threads": inst["threads"], "workers": inst["workers"], "rate": rate, "seed": seed,
                      "server_cpu_s": (s1 - s0) / TCK, "workers_cpu_s": (w1 - w0) / TCK,
                      "other_cpu_s": (m1 - m0 - (s1 - s0) - (w1 - w0)) / TCK - r.get("cpu_s", 0),
                      "wall_s": t1 - t0, "quiet_wait_s": waited, **memory(self.serving(inst, transport))}
        if c0 and c1:
            r["bench"]["cache"] = {k: c1[k] - c0[k] for k in ("hits", "misses")} | {"entries": c1["entries"]}
        with open(out, "w") as f:
            json.dump(r, f)
        return r

    # ------------------------------------------------------------ phases

    def phase(self, name, fn):
        if name not in self.a.phases:
            return
        log(f"== {name}")
        t0 = time.monotonic()
        fn()
        self.meta["phases"][name] = round(time.monotonic() - t0, 1)
        self.save_meta()

    def check(self):
        d = os.path.join(self.out, "check")
        os.makedirs(d, exist_ok=True)
        for key, inst in self.instances.items():
            # The Python original answers ~4,000 q/s, and a miss instance has no cache to fill:
            # the first --slow-check queries of the mix are enough there.
            slow = SYSTEMS[inst["system"]].get("slow") or inst["mix"] == "miss"
            n_udp = min(self.mix_lines, self.a.slow_check) if slow else self.mix_lines
            n_tcp = min(self.mix_wf_lines, self.a.slow_check) if slow else self.mix_wf_lines
            extra = ["--random-label"] if inst["mix"] == "miss" else []
            # A cache per thread (the balancer's) is reached through the kernel's spreading of
            # source ports: more passes from more sockets fill each thread's share.
            passes = 1 if inst["threads"] == 1 or inst["mix"] == "miss" else 6
            log(f"check {key}: {n_udp} UDP and {n_tcp} TCP queries" + (f", {passes} passes" if passes > 1 else ""))
            for i in range(passes):
                sfx = f"-{i}" if i else ""
                self.load(inst["port"], ["-m", "udp", "-f", self.mix_path, "-n", n_udp, "-d", 0, "-c", 4 if i else 1,
                                         "-w", 100, "-t", 2, "-S", 11 + i] + extra, os.path.join(d, f"{key}-udp{sfx}.json"))
                self.load(inst["port"], ["-m", "tcp", "-f", self.mix_wf_path, "-n", n_tcp, "-d", 0, "-c", 4 if i else 1,
                                         "-w", 100, "-t", 2, "-S", 21 + i] + extra, os.path.join(d, f"{key}-tcp{sfx}.json"))
            if inst["mix"] != "miss":
                # Malformed queries over TCP, one at a time: who answers, who closes.
                self.load(inst["port"], ["-m", "tcp", "-f", self.tcp_bad_mix, "-n", 60, "-d", 0, "-c", 1, "-w", 1,
                                         "-t", 1], os.path.join(d, f"{key}-tcp-malformed.json"))
            r = json.load(open(os.path.join(d, f"{key}-udp.json")))
            log(f"  {key}: {r['rcodes']}, mismatched {r['mismatched']}, lost {r['lost']}")

    def cells(self):
        out = []
        for key, inst in self.instances.items():
            for t in self.a.transports:
                out.append((key, t))
        return out

    def throughput(self):
        d = os.path.join(self.out, "throughput")
        os.makedirs(d, exist_ok=True)
        cells = self.cells()
        results = {}
        for rnd in range(1, self.a.rounds + 1):
            order = cells if rnd % 2 else list(reversed(cells))
            log(f"round {rnd}/{self.a.rounds}: {len(order)} cells of {self.a.seconds:g} s")
            for key, t in order:
                r = self.measure(self.instances[key], t, self.a.seconds, os.path.join(d, f"{key}-{t}-r{rnd}.json"))
                results.setdefault((key, t), []).append(r["qps"])
            log("  " + ", ".join(f"{k}/{t} {v[-1]:,.0f}" for (k, t), v in results.items()))
        for k, v in results.items():
            self.capacity[k] = sorted(v)[len(v) // 2]

    def latency(self):
        d = os.path.join(self.out, "latency")
        os.makedirs(d, exist_ok=True)
        cells = [(k, t) for k, t in self.cells() if t in self.a.lat_transports
                 and not k.startswith("balancer-1w") and not k.startswith("balancer-2t")]
        if not self.capacity:  # no throughput phase: every rate of the ladder
            self.capacity = {c: float("inf") for c in cells}
        for i, rate in enumerate(self.a.rates):
            # Each system up to the first rate above its closed-loop rate (one point past
            # saturation shows how it fails).
            here = [c for c in cells if rate <= self.capacity.get(c, 0)
                    or rate == min([r for r in self.a.rates if r > self.capacity.get(c, 0)] or [0])]
            if not here:
                continue
            if i % 2:
                here.reverse()
            log(f"open loop at {rate:,} q/s: {len(here)} cells of {self.a.lat_seconds:g} s")
            for key, t in here:
                self.measure(self.instances[key], t, self.a.lat_seconds, os.path.join(d, f"{key}-{t}-{rate}.json"),
                             rate=rate)

    def dnsperf(self):
        inst = self.instances.get("worker")
        if inst is None or not shutil.which("dnsperf"):
            log("dnsperf check skipped (no worker in this run, or no dnsperf)")
            return
        d = os.path.join(self.out, "dnsperf")
        os.makedirs(d, exist_ok=True)
        rate, secs = self.a.dnsperf_rate, 5
        self.wait_quiet()
        r = subprocess.run(pinned(self.a.client_cpu) + ["dnsperf", "-s", "127.0.0.1", "-p",
                            str(inst["port"]), "-d", self.mix_wf_path, "-e", "-l", str(secs), "-Q", str(rate),
                            "-c", "4", "-q", "200"], capture_output=True, text=True, timeout=60, **PRIORITY)
        open(os.path.join(d, "dnsperf.txt"), "w").write(r.stdout + r.stderr)
        self.wait_quiet()
        self.load(inst["port"], ["-m", "udp", "-c", 4, "-w", 50, "-r", rate, "-d", secs, "-f", self.mix_wf_path],
                  os.path.join(d, "dns_load.json"))
        json.dump({"rate": rate, "seconds": secs, "target": "worker"}, open(os.path.join(d, "meta.json"), "w"))

    def respond_bench(self):
        exe = os.path.join(self.a.build, "bench", "respond_bench")
        if not os.path.exists(exe):
            return
        r = subprocess.run(pinned(self.a.client_cpu) + [exe, "-f", self.mix_path, "-r", "10"],
                           capture_output=True, text=True, timeout=120, **PRIORITY)
        if r.returncode == 0:
            open(os.path.join(self.out, "respond_bench.json"), "w").write(r.stdout)

    def memory_phase(self, systems):
        d = os.path.join(self.out, "memory")
        os.makedirs(d, exist_ok=True)
        if any(SYSTEMS[s]["kind"] == "front" for s in systems) and not self.backends:
            self.start_backends()
        for s in systems:
            if s == "echo":
                continue  # a throughput reference only (a fixed input buffer per connection)
            log(f"memory: {s}")
            res = {}
            # Idle TCP connections, on a fresh process.
            inst = self.make_instance(f"mem-{s}", s)
            try:
                res["idle"] = self.idle_connections(inst)
            finally:
                self.stop_instance(inst)
            if SYSTEMS[s]["kind"] == "front" and self.a.mem_names:
                inst = self.make_instance(f"mem-{s}-cache", s, mix="miss")
                try:
                    res["cache"] = self.cache_memory(inst)
                finally:
                    self.stop_instance(inst)
            with open(os.path.join(d, f"{s}.json"), "w") as f:
                json.dump(res, f)

    def stop_instance(self, inst):
        for p in inst["procs"]:
            p.stop()

    def serving(self, inst, transport="tcp"):
        """The processes that serve this transport (the original runs one per transport)."""
        procs = [p for p in inst["procs"] if p.alive()]
        if inst["system"].startswith("pydp-"):
            procs = [p for p in procs if p.name.endswith("-" + transport)]
        return [p.pid for p in procs]

    def idle_connections(self, inst):
        time.sleep(0.5)  # settle after start-up and the probe
        pids = self.serving(inst)
        res = {"idle": memory(pids), "steps": []}
        holders, asked, opened = [], 0, 0
        try:
            for total in self.a.idle_conns:
                n = total - asked
                # Held far longer than needed; stopped by PID once measured.
                p = subprocess.Popen(pinned(self.a.client_cpu) + [self.dns_load, "-s", "127.0.0.1", "-p",
                                      str(inst["port"]), "-m", "tcp-idle", "-f", self.mix_wf_path, "-c", str(n),
                                      "-d", "60", "-t", "20", "--wave", "8"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                holders.append(p)
                line = p.stdout.readline()  # READY {...} once every connection served a query
                ready = json.loads(line.split(" ", 1)[1]) if line.startswith("READY") else {"opened": 0, "failed": n}
                asked, opened = total, opened + ready["opened"]
                time.sleep(0.5)
                # opened: all held so far (this step's and the earlier ones')
                step = {"connections": total, "opened": opened, "failed": ready["failed"],
                        "setup_s": ready.get("setup_s"), **memory(pids)}
                step["open_now"] = self.established(inst["port"])
                res["steps"].append(step)
                log(f"  {total:,} connections ({opened:,} opened, {step['open_now']:,} open now): "
                    f"RSS {step['rss_kb'] / 1024:.1f} MiB, PSS {step['pss_kb'] / 1024:.1f} MiB")
        finally:
            for p in holders:
                p.terminate()
                p.wait()
        return res

    def established(self, port):
        """Established TCP connections to this local port (/proc/net/tcp, and tcp6 for a
        server on a dual-stack socket such as CoreDNS's)."""
        n = 0
        hexport = f":{port:04X}"
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[1].endswith(hexport) and fields[3] == "01":
                        n += 1
        return n

    def cache_memory(self, inst):
        a = self.a
        self.load(inst["port"], ["-m", "udp", "-f", self.mix_wf_path, "-n", a.mem_warm, "-d", 0, "-c", 1, "-w", 100,
                                 "-t", 2, "--random-label", "-S", 100])
        time.sleep(1.0)
        pids = self.serving(inst)
        before, c0 = memory(pids), self.cache_stats(inst)
        r = self.load(inst["port"], ["-m", "udp", "-f", self.mix_wf_path, "-n", a.mem_names, "-d", 0, "-c", 1,
                                     "-w", 100, "-t", 2, "--random-label", "-S", 101])
        time.sleep(1.0)
        after, c1 = memory(pids), self.cache_stats(inst)
        return {"warm": a.mem_warm, "names": a.mem_names, "answered": r["answered"], "before": before,
                "after": after, "entries_before": (c0 or {}).get("entries"), "entries_after": (c1 or {}).get("entries")}

    # ------------------------------------------------------------ record

    def versions(self):
        def first(cmd):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                return (r.stdout + r.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.SubprocessError):
                return None
        git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True)
        pydp = []
        freeze = os.path.join(self.a.pydp_venv, "bin", "pip")
        if os.path.exists(freeze):
            pydp = subprocess.run([freeze, "freeze"], capture_output=True, text=True).stdout.split()
        return {"tree": git.stdout.strip(), "knot": first(["knotd", "-V"]), "nsd": first(["nsd", "-v"]),
                "dnsdist": first(["dnsdist", "--version"]), "coredns": first([self.a.coredns_bin, "-version"]),
                "balancer": first([self.a.balancer_bin, "--version"]), "dnsperf": first(["dnsperf", "-h"]),
                "domain-park (Python)": [x for x in pydp if x.split("==")[0] in ("domain-park", "nserver", "tldextract", "dnslib")]}

    def save_meta(self):
        a = self.a
        self.meta["quiet_waited_s"] = round(self.waited, 1)
        self.meta["settings"] = {k: getattr(a, k) for k in (
            "profile", "rounds", "seconds", "lat_seconds", "rates", "transports", "lat_transports", "idle_conns",
            "mem_warm", "mem_names", "domains", "queries", "scaling", "server_cpu", "client_cpu", "nice", "quiet_wait",
            "quiet_budget", "timeout",
            "systems", "phases", "psl_file")}
        self.meta["settings"].update(udp=" ".join(UDP_CLOSED), tcp=" ".join(TCP_CLOSED), open_window=OPEN_WINDOW,
                                     cache_entries=CACHE_ENTRIES, pydp_threads=PYDP_THREADS)
        self.meta["instances"] = {k: {x: v[x] for x in ("system", "mix", "threads", "workers", "port")}
                                  for k, v in self.instances.items()}
        with open(os.path.join(self.out, "meta.json"), "w") as f:
            json.dump(self.meta, f, indent=1)


# ---------------------------------------------------------------- main

class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        print(f"bench: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    ap = OneLineParser(prog="bench/run.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the short profile: 1 round of 0.7 s, 2 rates, UDP latency "
                    "only, 1,000 idle connections, no cache memory, a 20,000-query mix, no scaling cells "
                    "(under 2 minutes)")
    ap.add_argument("--publish", action="store_true", help="after a full run, copy its report to bench/published/ "
                    "and replace the README's performance block with it")
    ap.add_argument("--check-args", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--systems", help=f"comma-separated subset of: {','.join(ALL_SYSTEMS)} (default all)")
    ap.add_argument("--phases", help="comma-separated subset of: check,throughput,latency,dnsperf,memory "
                    "(default all; latency needs throughput for each system's saturation, else runs every rate)")
    ap.add_argument("--rounds", type=int, help="throughput rounds (full 4, quick 1)")
    ap.add_argument("--seconds", type=float, help="seconds per throughput cell (full 2, quick 0.7)")
    ap.add_argument("--lat-seconds", type=float, help="seconds per open-loop point (full 2, quick 0.7)")
    ap.add_argument("--rates", help="open-loop ladder, q/s, comma-separated (full 2000,5000,10000,20000,50000,100000,"
                    "150000,200000,250000,500000,1000000; quick 10000,100000)")
    ap.add_argument("--transports", default="udp,tcp", help="client transports of the throughput phase (udp,tcp)")
    ap.add_argument("--lat-transports", help="client transports of the latency phase (full udp,tcp; quick udp)")
    ap.add_argument("--idle-conns", help="idle TCP connection counts, ascending (full 1000,10000; quick 1000)")
    ap.add_argument("--no-scaling", action="store_true", help="leave out the scaling cells")
    ap.add_argument("--quiet-wait", type=float, help="seconds to wait for an idle machine before each run (full 10, quick "
                    "1); once the run has waited 120 s (quick 5 s) in all, no more")
    ap.add_argument("--dnsperf-rate", type=int, default=50000, help="rate of the dnsperf cross-check (50000)")
    ap.add_argument("--nice", type=int, help="priority of every system and of dns_load, -20..19 (-10 as root, "
                    "else 0): on a shared machine other work then disturbs the measurements less; it "
                    "favours no system over another")
    ap.add_argument("--server-cpu", type=int, default=0, help="CPU of every system (0)")
    ap.add_argument("--client-cpu", type=int, default=1, help="CPU of dns_load (1)")
    ap.add_argument("--port-base", type=int, default=15300, help="first loopback port to use (15300)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="CMake build directory (build/)")
    ap.add_argument("--out", help="results directory (default bench/results/<stamp>)")
    ap.add_argument("--coredns-bin", default=os.environ.get("DP_COREDNS", ""), help="stock CoreDNS binary (run.sh installs it)")
    ap.add_argument("--pydp-venv", default=os.path.join(HERE, ".build", "domain-park-0.5.1"),
                    help="virtual environment holding domain-park 0.5.1 (run.sh creates it)")
    ap.add_argument("--psl-file", default="/usr/share/publicsuffix/public_suffix_list.dat",
                    help="Public Suffix List given to the Python original's tldextract")
    a = ap.parse_args(argv)
    if a.publish and a.quick:
        ap.error("--publish takes a full run, not --quick")
    a.profile = "quick" if a.quick else "full"
    prof = PROFILES[a.profile]

    def csv(v, conv=str):
        try:
            return [conv(x) for x in v.split(",") if x]
        except ValueError:
            ap.error(f"bad list {v!r}")

    a.rounds = prof["rounds"] if a.rounds is None else a.rounds
    a.seconds = prof["seconds"] if a.seconds is None else a.seconds
    a.lat_seconds = prof["lat_seconds"] if a.lat_seconds is None else a.lat_seconds
    a.rates = csv(a.rates, int) if a.rates else prof["rates"]
    a.transports = csv(a.transports)
    a.lat_transports = csv(a.lat_transports) if a.lat_transports else prof["lat_transports"]
    a.idle_conns = csv(a.idle_conns, int) if a.idle_conns else prof["idle_conns"]
    a.quiet_wait = prof["quiet_wait"] if a.quiet_wait is None else a.quiet_wait
    a.scaling = prof["scaling"] and not a.no_scaling
    for k in ("mem_warm", "mem_names", "domains", "queries", "slow_check", "timeout", "quiet_budget"):
        setattr(a, k, prof[k])
    a.systems = csv(a.systems) if a.systems else list(ALL_SYSTEMS)
    a.phases = csv(a.phases) if a.phases else ["check", "throughput", "latency", "dnsperf", "memory"]
    if not prof["dnsperf"] and "dnsperf" in a.phases and not a.phases == ["dnsperf"]:
        a.phases.remove("dnsperf")
    for s in a.systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r}: choose from {','.join(ALL_SYSTEMS)}")
    for p in a.phases:
        if p not in ("check", "throughput", "latency", "dnsperf", "memory"):
            ap.error(f"unknown phase {p!r}")
    for t in a.transports + a.lat_transports:
        if t not in ("udp", "tcp"):
            ap.error(f"unknown transport {t!r}")
    if a.rounds < 1 or a.seconds <= 0 or a.lat_seconds <= 0 or any(r <= 0 for r in a.rates):
        ap.error("rounds, seconds and rates must be positive")
    if a.idle_conns != sorted(a.idle_conns) or any(n <= 0 for n in a.idle_conns):
        ap.error("--idle-conns must be positive and ascending")
    if a.server_cpu == a.client_cpu or max(a.server_cpu, a.client_cpu) >= NCPU:
        ap.error(f"--server-cpu and --client-cpu must be two different CPUs of the {NCPU}")
    if a.nice is None:
        a.nice = -10 if os.geteuid() == 0 else 0
    if not -20 <= a.nice <= 19 or (a.nice < 0 and os.geteuid() != 0):
        ap.error("--nice must be -20..19, and below 0 only as root")
    a.worker_bin = os.path.join(a.build, "worker", "domain-park-worker")
    a.balancer_bin = os.path.join(a.build, "balancer", "domain-park-balancer")
    return a


def available(a):
    """The requested systems whose programs are here; the others are skipped, with the reason."""
    need = {"echo": [os.path.join(a.build, "bench", "echo_server")], "worker": [a.worker_bin],
            "balancer": [a.balancer_bin, a.worker_bin], "dnsdist": ["dnsdist", a.worker_bin],
            "coredns": [a.coredns_bin, a.worker_bin], "knot": ["knotd"], "nsd": ["nsd"],
            "pydp-direct": [os.path.join(a.pydp_venv, "bin", "domain-park")],
            "pydp-threads": [os.path.join(a.pydp_venv, "bin", "domain-park")]}
    out, skipped = [], {}
    for s in a.systems:
        missing = [x for x in need[s] if not x or not (shutil.which(x) or os.access(x, os.X_OK))]
        if missing:
            skipped[s] = "missing " + ", ".join(x or "(no path given)" for x in missing)
        else:
            out.append(s)
    return out, skipped


def main(argv):
    a = parse_args(argv)
    if a.check_args:
        return 0
    global NICE
    NICE = a.nice
    if not os.access(os.path.join(a.build, "bench", "dns_load"), os.X_OK):
        print(f"bench: no dns_load in {a.build}/bench (run scripts/build.sh, or give --build)", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if a.quick else "")
    a.out = os.path.abspath(a.out or os.path.join(HERE, "results", stamp))
    os.makedirs(a.out, exist_ok=True)
    # Idle TCP connections need one descriptor each, here (dns_load) and in every server.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < max(a.idle_conns) + 1000:
        a.idle_conns = [n for n in a.idle_conns if n + 1000 <= hard] or [hard - 1000]
        log(f"ulimit -Hn is {hard}: idle connections limited to {a.idle_conns}")
    systems, skipped = available(a)
    for s, why in skipped.items():
        log(f"skipping {s}: {why}")
    run = Run(a)
    run.meta["skipped"] = skipped
    run.meta["systems"] = systems

    def on_signal(signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.monotonic()
    try:
        run.make_inputs()
        run.make_zones()
        run.meta["versions"] = run.versions()
        run.meta["machine"] = machine()
        log(f"results in {a.out}; systems: {' '.join(systems)}")
        if any(p in a.phases for p in ("check", "throughput", "latency", "dnsperf")):
            t1 = time.monotonic()
            run.start_load_set(systems)
            run.meta["phases"]["start"] = round(time.monotonic() - t1, 1)
            log(f"all up: {len(STARTED)} processes on CPU {a.server_cpu}")
            run.meta["idle_busy_pct"] = idle_busy()
            run.phase("check", run.check)
            run.phase("throughput", run.throughput)
            run.phase("latency", run.latency)
            run.phase("dnsperf", run.dnsperf)
            run.respond_bench()
            stop_all()
            run.backends = []
        run.phase("memory", lambda: run.memory_phase(systems))
    except BenchError as e:
        log(f"stopped: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        stop_all()
        run.meta["wall_s"] = round(time.monotonic() - t0, 1)
        run.save_meta()
        shutil.rmtree(run.work, ignore_errors=True)
    latest = os.path.join(HERE, "results", "latest")
    if os.path.dirname(a.out) == os.path.join(HERE, "results"):
        if os.path.islink(latest) or not os.path.exists(latest):
            if os.path.islink(latest):
                os.remove(latest)
            os.symlink(os.path.basename(a.out), latest)
    import report
    report.render(a.out, publish=a.publish)
    if a.publish:
        log("published to bench/published/ and the README's performance section")
    log(f"done in {(time.monotonic() - t0) / 60:.1f} min: {a.out}/table.md")
    return 0


def machine():
    """What the numbers were measured on."""
    def read(path):
        try:
            return open(path).read()
        except OSError:
            return ""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in lscpu.splitlines() if ":" in ln)}
    mem = re.search(r"MemTotal:\s+(\d+)", read("/proc/meminfo"))
    osr = re.search(r'PRETTY_NAME="([^"]*)"', read("/etc/os-release"))
    return {"cpu": info.get("Model name"), "cpus": NCPU, "threads_per_core": info.get("Thread(s) per core"),
            "hypervisor": info.get("Hypervisor vendor"), "virtualization": info.get("Virtualization type"),
            "l3": info.get("L3 cache"), "memory_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
            "kernel": os.uname().release, "os": osr.group(1) if osr else None,
            "python": sys.version.split()[0], "load_at_start": read("/proc/loadavg").split()[:3]}


def idle_busy():
    """% of the machine busy with every system up and no load (the floor of 'other CPU')."""
    a = busy_ticks()
    time.sleep(1)
    return round(100.0 * (busy_ticks() - a) / (TCK * NCPU), 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
