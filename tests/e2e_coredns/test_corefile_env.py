"""The Corefile's deployment variables as documented (Corefile header, deploy/coredns/coredns.env):
DP_WORKERS holds one address (shared by the workers with --reuseport), and /ready's meaning."""

import itertools
import time

import dns.rcode

import e2e_helpers as h
from .coredns_stack import ROOT_COREFILE, STANDARD_ARGS, CoreDNS, http_get, scrape, wc

_n = itertools.count(1)


def test_dp_workers_list_is_rejected(tmp_path, coredns_bin):
    """Why DP_WORKERS is one address: CoreDNS substitutes {$VAR} within a single token, so a
    space-separated list reaches forward as one upstream and CoreDNS refuses to start. This
    guards the Corefile's documentation of the variable."""
    c = CoreDNS(coredns_bin, ROOT_COREFILE, [f"{h.HOST}:{wc.free_port()}", f"{h.HOST}:{wc.free_port()}"],
                tmp_path, name="coredns-envlist")
    try:
        c.proc.wait(timeout=10)
        assert c.proc.returncode != 0
        assert "failed to resolve" in c.output()
    finally:
        c.stop()


def test_ready_does_not_track_workers(tmp_path, coredns_bin):
    """What /ready means with stock CoreDNS 1.14.7: the forward plugin has no readiness hook
    (only kubernetes, erratic and nomad implement ready.Readiness), so /ready is 200 as soon as
    CoreDNS has started, even when no worker is listening; the Corefile's comment
    "(forward: an upstream is healthy)" does not hold. Queries then fail with SERVFAIL."""
    dead = f"{h.HOST}:{wc.free_port()}"  # nothing listens there
    c = CoreDNS(coredns_bin, ROOT_COREFILE, [dead], tmp_path, name="coredns-noworker")
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and status != 200:
            assert c.proc.poll() is None, c.describe()
            status, _ = http_get(f"http://{c.ready_addr}/ready", timeout=0.5)
            time.sleep(0.1)
        assert status == 200, "/ready should turn 200 although no worker is up"
        r = h.query(c.port, h.make_query(f"env{next(_n)}.com.", "TXT"), timeout=5.0)
        assert r.rcode() == dns.rcode.SERVFAIL
    finally:
        c.stop()

