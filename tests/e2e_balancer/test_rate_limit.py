"""Rate limiting with real processes: the per-client request limit drops UDP queries over
the rate (TCP untouched); response rate limiting drops or slips (TC=1) answers as configured,
exempts TCP and listed networks, and in log-only mode only counts. Every outcome the client
sees is matched against the balancer's counters."""

import socket
import time

import dns.message
import dns.rcode

from .balancer_stack import addr, h, write_config

BURST = 40


def udp_burst(port, names, qtype="TXT", collect_for=1.0):
    """Sends one query per name from one socket at once, then collects replies for a while.
    Returns (full answers, TC=1 answers, unanswered)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sent = {}
        for i, name in enumerate(names):
            q = h.make_query(name, qtype, qid=0x100 + i)
            sent[q.id] = q
            s.sendto(q.to_wire(), (h.HOST, port))
        full = tc = 0
        deadline = time.monotonic() + collect_for
        got = set()
        while time.monotonic() < deadline and len(got) < len(sent):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                wire = s.recv(65535)
            except socket.timeout:
                break
            hdr = h.parse_header(wire)
            assert hdr["id"] in sent and hdr["id"] not in got
            got.add(hdr["id"])
            if hdr["tc"]:
                assert hdr["ancount"] == 0
                tc += 1
            else:
                full += 1
        return full, tc, len(sent) - len(got)


def rl_stack(procs, tmp_path, **rate_limit):
    w = procs.worker()
    cfg = write_config(tmp_path / "b.json", workers=[addr(w)], rate_limit=rate_limit)
    return procs.balancer(config=cfg)


def test_request_limit_drops_udp_over_the_rate(procs, tmp_path):
    b = rl_stack(procs, tmp_path, requests_per_second=5, requests_burst=5)
    time.sleep(1.1)  # the readiness probe's query took a token: let the bucket refill
    m0 = b.metrics()
    full, tc, lost = udp_burst(b.port, [f"rq-{i}.example.com." for i in range(BURST)])
    m1 = b.metrics()
    assert tc == 0
    assert 5 <= full <= 8, (full, lost)  # the burst, plus what refilled while sending
    dropped = m1.value("domain_park_balancer_request_limit_total", action="dropped") - \
        m0.value("domain_park_balancer_request_limit_total", action="dropped")
    assert dropped == lost == BURST - full
    # TCP is not limited by it (its source address is proven by the handshake).
    for i in range(20):
        assert h.query(b.port, h.make_query(f"rq-tcp-{i}.example.com.", "TXT"), "tcp").rcode() == dns.rcode.NOERROR


def rrl_counts(m, action):
    return sum(m.value("domain_park_balancer_rrl_total", action=action, kind=k)
               for k in ("answer", "nodata", "nxdomain", "error"))


def test_rrl_drops_and_slips_the_same_answer(procs, tmp_path):
    b = rl_stack(procs, tmp_path, responses_per_second=5, slip=2, window=5)
    m0 = b.metrics()
    full, tc, lost = udp_burst(b.port, ["rrl.example.com."] * BURST)
    m1 = b.metrics()
    assert 5 <= full <= 8, (full, tc, lost)
    suppressed = BURST - full
    # slip 2: every second suppressed answer goes out as an empty TC=1 answer.
    assert tc in (suppressed // 2, (suppressed + 1) // 2), (full, tc, lost)
    assert rrl_counts(m1, "slipped") - rrl_counts(m0, "slipped") == tc
    assert rrl_counts(m1, "dropped") - rrl_counts(m0, "dropped") == lost
    assert m1.value("domain_park_balancer_rrl_total", action="dropped", kind="answer") >= lost
    # Other registrable domains are other buckets; TCP is exempt.
    full2, _, _ = udp_burst(b.port, ["other.example.org."] * 3)
    assert full2 == 3
    for _ in range(20):
        r = h.query(b.port, h.make_query("rrl.example.com.", "TXT"), "tcp")
        assert r.rcode() == dns.rcode.NOERROR and r.answer


def test_rrl_keys_answers_on_the_registrable_domain_not_the_name(procs, tmp_path):
    # Every name under a parked domain is answered, like a wildcard: a flood of distinct names
    # must share one bucket (BIND keys wildcard answers on the wildcard), or RRL limits nothing.
    b = rl_stack(procs, tmp_path, responses_per_second=5, slip=0, window=5)
    full, tc, lost = udp_burst(b.port, [f"r{i}.example.com." for i in range(BURST)])
    assert tc == 0 and 5 <= full <= 8 and lost == BURST - full, (full, tc, lost)
    assert b.metrics().value("domain_park_balancer_rrl_total", action="dropped", kind="answer") == lost
    # Case and depth do not matter; another type is another bucket, and so is another domain.
    full_mx, _, _ = udp_burst(b.port, ["a.b.EXAMPLE.com."] * 3, qtype="MX")
    assert full_mx == 3
    full_uk, _, _ = udp_burst(b.port, [f"r{i}.example.co.uk." for i in range(3)])
    assert full_uk == 3


def test_rrl_slip_0_only_drops_and_nodata_is_keyed_on_the_zone(procs, tmp_path):
    b = rl_stack(procs, tmp_path, responses_per_second=5, slip=0)
    # Random names under one zone, NODATA each: one bucket (the zone), as BIND does.
    full, tc, lost = udp_burst(b.port, [f"r{i}.zone.example.com." for i in range(BURST)], qtype="HTTPS")
    assert tc == 0 and 5 <= full <= 8 and lost == BURST - full
    assert b.metrics().value("domain_park_balancer_rrl_total", action="dropped", kind="nodata") == lost


def test_rrl_exempt_networks(procs, tmp_path):
    b = rl_stack(procs, tmp_path, responses_per_second=2, exempt=["127.0.0.0/8"])
    full, tc, lost = udp_burst(b.port, ["exempt.example.com."] * 20)
    assert (full, tc, lost) == (20, 0, 0)
    assert b.metrics().value("domain_park_balancer_rrl_other_total", action="exempt") >= 20


def test_rrl_log_only_counts_but_sends(procs, tmp_path):
    b = rl_stack(procs, tmp_path, responses_per_second=2, slip=2, log_only=True)
    full, tc, lost = udp_burst(b.port, ["logonly.example.com."] * 20)
    assert (full, tc, lost) == (20, 0, 0)
    m = b.metrics()
    would = m.value("domain_park_balancer_rrl_other_total", action="would_drop") + \
        m.value("domain_park_balancer_rrl_other_total", action="would_slip")
    assert would >= 15
    assert rrl_counts(m, "dropped") == 0 and rrl_counts(m, "slipped") == 0


def test_bad_rate_limit_settings_exit_2(tmp_path):
    import subprocess
    from .balancer_stack import balancer_binary
    for settings, word in (({"slip": 11}, "rate_limit.slip"), ({"exempt": ["10.0.0.1/8"]}, "rate_limit.exempt"),
                           ({"nonsense": 1}, "rate_limit.nonsense")):
        cfg = write_config(tmp_path / "bad.json", workers=["127.0.0.1:5300"], rate_limit=settings)
        p = subprocess.run([balancer_binary(), "--config", str(cfg), "--check-config"], capture_output=True,
                           text=True, timeout=10)
        assert p.returncode == 2 and word in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_sighup_turns_rrl_on_and_off(procs, tmp_path):
    import signal
    w = procs.worker()
    cfg = write_config(tmp_path / "b.json", workers=[addr(w)])
    b = procs.balancer(config=cfg)

    def reload(n, **rate_limit):
        write_config(cfg, workers=[addr(w)], rate_limit=rate_limit)
        b.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while b.metrics().value("domain_park_balancer_config_reloads_total", result="success") < n:
            assert time.monotonic() < deadline, "reload not counted"
            time.sleep(0.05)
        time.sleep(0.2)  # applied on the query thread's loop

    assert udp_burst(b.port, ["hup.example.com."] * 20) == (20, 0, 0)
    reload(1, responses_per_second=2, slip=0)
    full, tc, lost = udp_burst(b.port, ["hup.example.com."] * 20)
    assert full <= 4 and lost == 20 - full and tc == 0, (full, tc, lost)
    reload(2)
    time.sleep(1.1)
    assert udp_burst(b.port, ["hup.example.com."] * 20) == (20, 0, 0)
