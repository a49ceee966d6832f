"""Booted test hosts for the deployment test: Debian 12 containers under systemd-nspawn, each
in a network namespace of its own, joined by a bridge in one more namespace (the "controller"
side), from which Ansible logs in over SSH and the test's clients query them.

Nothing here touches the machine's own network: the namespaces, veth pairs, bridge, overlay
mounts and containers are all made by the Lab, named with its run id, and removed by name and
PID at the end (also when a step fails). The test process itself enters the controller
namespace (setns), so every socket it and its children (ansible, ssh) open is inside it.

The root file system is tests/e2e_hosts/make_root.sh's cached Debian root, shared read-only
by the hosts through overlayfs; each host's changes live in its own upper layer.
"""

import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLONE_NEWNET = 0x40000000
BOOT_TIMEOUT = 90
STOP_TIMEOUT = 30
SUBNET = "198.18.53"  # RFC 2544 benchmarking range, only ever inside the lab's namespaces
SUBNET6 = "fd53:53:53:"  # a unique-local /64, likewise
NAME = re.compile(r"dpl[0-9a-f]{4}-(ctl|ns[0-9]+)")  # the lab's network namespaces


class LabError(Exception):
    pass


def sh(*cmd, check=True, timeout=120, **kw):
    r = subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(map(str, cmd))} exited {r.returncode}\nstdout: {r.stdout[-2000:]}\n"
                       f"stderr: {r.stderr[-2000:]}")
    return r


_libc = ctypes.CDLL(None, use_errno=True)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise LabError(f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Host:
    def __init__(self, lab, index, name):
        self.lab = lab
        self.name = name
        self.index = index
        self.address = f"{SUBNET}.{10 + index}"
        self.address6 = f"{SUBNET6}:{10 + index}"
        self.netns = f"dpl{lab.id}-{name}"
        self.dir = lab.dir / name
        self.root = self.dir / "root"
        self.console = self.dir / "console.log"
        self.proc = None
        self.mounted = False

    # --- set-up ---------------------------------------------------------------------------------
    def make_network(self):
        lab = self.lab
        sh("ip", "netns", "add", self.netns)
        veth = f"dpl{lab.id}h{self.index}"
        sh("ip", "-n", lab.ctl, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        sh("ip", "-n", lab.ctl, "link", "set", veth, "master", "br0", "up")
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        sh("ip", "-n", self.netns, "addr", "add", f"{self.address}/24", "dev", "eth0")
        sh("ip", "-n", self.netns, "addr", "add", f"{self.address6}/64", "dev", "eth0", "nodad")
        sh("ip", "-n", self.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.netns, "route", "add", "default", "via", f"{SUBNET}.1")

    def make_root(self, base_root, authorized_key):
        upper, work = self.dir / "upper", self.dir / "work"
        for d in (upper, work, self.root):
            d.mkdir(parents=True)
        sh("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={base_root},upperdir={upper},workdir={work}", self.root)
        self.mounted = True
        (self.root / "etc/hostname").write_text(self.name + "\n")
        (self.root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{self.address} {self.name}\n")
        sh("ssh-keygen", "-q", "-A", "-f", self.root)
        ssh_dir = self.root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(authorized_key)
        os.chmod(ssh_dir / "authorized_keys", 0o600)
        pub = (self.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
        return f"{self.address} {pub[0]} {pub[1]}\n"

    def boot(self):
        self._console = open(self.console, "wb")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(self.root), "--boot", "--register=no", "--keep-unit",
             f"--machine={self.netns}", f"--network-namespace-path=/run/netns/{self.netns}", "--console=read-only",
             # nftables and sysctl inside the container act on its own network namespace only.
             "--capability=CAP_NET_ADMIN"],
            stdin=subprocess.DEVNULL, stdout=self._console, stderr=subprocess.STDOUT, start_new_session=True)

    def leader(self):
        """The container's PID 1 as seen from here (the child of systemd-nspawn)."""
        r = sh("pgrep", "-P", str(self.proc.pid), check=False)
        pids = r.stdout.split()
        return int(pids[0]) if pids else None

    def wait_booted(self):
        deadline = time.monotonic() + BOOT_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"{self.name}: systemd-nspawn exited {self.proc.returncode}\n{self.console_tail()}")
            leader = self.leader()
            if leader:
                r = self.nsenter("systemctl", "is-system-running", check=False, timeout=10)
                state = r.stdout.strip()
                if state in ("running", "degraded"):
                    return state
            time.sleep(0.5)
        raise LabError(f"{self.name}: not booted within {BOOT_TIMEOUT}s (state {state!r})\n{self.console_tail()}")

    def nsenter(self, *cmd, check=True, timeout=60):
        """A command inside the container, entered from outside (for set-up and diagnostics)."""
        return sh("nsenter", "-t", self.leader(), "-a", *cmd, check=check, timeout=timeout)

    def console_tail(self, n=4000):
        try:
            return self.console.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # --- tear-down -----------------------------------------------------------------------------
    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        if self.proc is not None:
            self._console.close()
        if self.mounted:
            sh("umount", self.root, check=False)
            self.mounted = False
        sh("ip", "netns", "del", self.netns, check=False)


class Lab:
    """Hosts named `names`, booted and reachable over SSH from the controller namespace."""

    def __init__(self, workdir, names):
        self.id = secrets.token_hex(2)
        self.dir = Path(workdir)
        self.ctl = f"dpl{self.id}-ctl"
        self.hosts = [Host(self, i + 1, n) for i, n in enumerate(names)]
        self.key = self.dir / "id_ed25519"
        self.known_hosts = self.dir / "known_hosts"
        self.control_dir = self.dir / "cp"
        self._own_ns = None
        self._mounted_nspawn_tmpfs = False

    @staticmethod
    def remove_stale():
        """Network namespaces an earlier lab left behind (its process killed before it could
        clean up): recognised by their names, and removed only when no process is in them and
        they are over two hours old (a lab never lives that long; one starting now is young)."""
        for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if not NAME.fullmatch(name):
                continue
            try:
                age = time.time() - os.stat(f"/run/netns/{name}").st_mtime
            except OSError:
                continue
            if age > 7200 and not sh("ip", "netns", "pids", name, check=False).stdout.strip():
                sh("ip", "netns", "del", name, check=False)

    def start(self, base_root):
        for tool in ("systemd-nspawn", "ip", "nsenter", "ssh", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise LabError(f"{tool} not found (scripts/setup.sh installs it)")
        self.remove_stale()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.control_dir.mkdir()
        # systemd-nspawn keeps its propagation directories here; on a machine without systemd
        # as PID 1 it is not a tmpfs, and nspawn needs one.
        nspawn_run = Path("/run/systemd/nspawn")
        nspawn_run.mkdir(parents=True, exist_ok=True)
        if sh("mountpoint", "-q", nspawn_run, check=False).returncode != 0:
            sh("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", nspawn_run)
            self._mounted_nspawn_tmpfs = True
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"dp-lab-{self.id}", "-f", self.key)
        pub = self.key.with_suffix(".pub").read_text()
        sh("ip", "netns", "add", self.ctl)
        sh("ip", "-n", self.ctl, "link", "set", "lo", "up")
        sh("ip", "-n", self.ctl, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.ctl, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        sh("ip", "-n", self.ctl, "addr", "add", f"{SUBNET6}:1/64", "dev", "br0", "nodad")
        sh("ip", "-n", self.ctl, "link", "set", "br0", "up")
        known = ""
        for h in self.hosts:
            h.make_network()
            known += h.make_root(base_root, pub)
        self.known_hosts.write_text(known)
        for h in self.hosts:
            h.boot()
        for h in self.hosts:
            h.wait_booted()
        # From here on this process (and what it starts) lives in the controller namespace.
        self._own_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
        setns(f"/run/netns/{self.ctl}")
        for h in self.hosts:
            self.wait_ssh(h)

    def ssh_args(self):
        return ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5", "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self.control_dir}/%h", "-o", "ControlPersist=60s"]

    def ssh(self, host, command, check=True, timeout=120):
        return sh("ssh", *self.ssh_args(), "-i", self.key, f"root@{host.address}", command, check=check,
                  timeout=timeout)

    def wait_ssh(self, host, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.ssh(host, "true", check=False, timeout=15)
            if last.returncode == 0:
                return
            time.sleep(0.5)
        raise LabError(f"{host.name}: no SSH within {timeout}s: {last.stderr if last else ''}\n{host.console_tail()}")

    def stop(self):
        if self._own_ns is not None:
            for h in self.hosts:
                sh("ssh", "-o", f"ControlPath={self.control_dir}/%h", "-O", "exit", h.address, check=False, timeout=10)
            setns(f"/proc/self/fd/{self._own_ns}")
            os.close(self._own_ns)
            self._own_ns = None
        for h in self.hosts:
            h.stop()
        sh("ip", "netns", "del", self.ctl, check=False)
        if self._mounted_nspawn_tmpfs:
            sh("umount", "/run/systemd/nspawn", check=False)
