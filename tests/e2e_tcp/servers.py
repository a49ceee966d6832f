"""Both of our TCP servers behind one interface, so every TCP behaviour test runs against the
worker and against the balancer's client side: they share one connection engine
(net/tcp_engine) and one declaration of its settings (the same flags and JSON keys), and
these tests hold them to the same behaviour.

server_factory(kind, *flags, config=None, wrapper=()) starts:
  worker    a domain-park-worker with the standard test configuration plus `flags`;
  balancer  a standard worker and a domain-park-balancer in front of it with `flags`.
`config` (a dict of serving settings) goes into a JSON file given with --config; the
program's required keys are added. Both get a metrics endpoint (server.metrics()).
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.e2e_balancer.balancer_stack import (  # noqa: E402,F401
    Balancer, h, report_live_processes, scrape, start_worker, wc, free_tcp_ports, wait_metrics,
    STANDARD_ARGS)

KINDS = ["worker", "balancer"]
# Metric names differ by prefix only.
PREFIX = {"worker": "domain_park_", "balancer": "domain_park_balancer_"}


class Server:
    def __init__(self, kind, port, metrics_addr, proc, worker=None):
        self.kind = kind
        self.port = port
        self.metrics_addr = metrics_addr
        self.proc = proc          # the TCP server under test (worker or balancer object)
        self.worker = worker      # the worker behind a balancer
        self.pid = proc.pid

    def metrics(self):
        return scrape(self.metrics_addr)

    def metric(self, name, **labels):
        return self.metrics().value(PREFIX[self.kind] + name, **labels)

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def signal(self, sig):
        os.kill(self.pid, sig)


def write_json(tmp_path, name, obj):
    p = Path(tmp_path) / f"{name}-{time.monotonic_ns()}.json"
    p.write_text(json.dumps(obj))
    return p


def start(kind, tmp_path, started, *flags, config=None, wrapper=()):
    flags = [str(f) for f in flags]
    if kind == "worker":
        mport = free_tcp_ports(1)[0]
        args = list(STANDARD_ARGS) + ["--metrics", f"{h.HOST}:{mport}"] + flags
        if config is not None:
            args += ["--config", str(write_json(tmp_path, "worker", config))]
        w = wc.start_worker(tmp_path, *args, wrapper=wrapper)
        started.append(w)
        wait_metrics(f"{h.HOST}:{mport}")
        return Server(kind, w.port, f"{h.HOST}:{mport}", w)
    w = start_worker(tmp_path)
    started.append(w)
    extra = list(flags)
    cfg = None
    if config is not None:
        cfg = write_json(tmp_path, "balancer", dict(config, workers=[f"{h.HOST}:{w.port}"]))
    b = Balancer(tmp_path, workers=[f"{h.HOST}:{w.port}"], extra_args=extra, config=cfg, wrapper=wrapper)
    started.append(b)
    return Server(kind, b.port, b.metrics_addr, b, worker=w)


def close_all(socks):
    """Closes every socket of a test's crowd, whatever state each is in."""
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
