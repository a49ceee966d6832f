"""Shared by the end-to-end suites (tests/e2e_coredns, tests/e2e_balancer): HTTP GETs to
loopback endpoints, Prometheus scrapes parsed with prometheus_client's text parser, and
distinct free TCP ports for metrics/health endpoints."""

import socket
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

HTTP_TIMEOUT = 3.0


def http_get(url, timeout=HTTP_TIMEOUT):
    """(status, body) of a GET to a loopback URL; status None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return None, ""


class Metrics:
    """A parsed Prometheus scrape: samples looked up by sample name and a label subset."""

    def __init__(self, text):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def names(self):
        return {s.name for s in self.samples}

    def has(self, name):
        return any(s.name == name for s in self.samples)

    def value(self, name, **labels):
        """Sum of the samples called name whose labels include labels (0 when none)."""
        return sum(s.value for s in self.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def series(self, name):
        return [(dict(s.labels), s.value) for s in self.samples if s.name == name]


def scrape(addr):
    status, body = http_get(f"http://{addr}/metrics")
    assert status == 200, f"GET http://{addr}/metrics -> {status}"
    return Metrics(body)


def wait_metrics(addr, timeout=5.0):
    deadline = time.monotonic() + timeout
    while http_get(f"http://{addr}/metrics", timeout=0.5)[0] != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics endpoint {addr} not answering within {timeout}s")
        time.sleep(0.05)


def free_tcp_ports(n, taken=()):
    """n distinct TCP ports free on 127.0.0.1 now, none of them in taken."""
    ports = set()
    while len(ports) < n:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p not in taken:
            ports.add(p)
    return sorted(ports)
