"""DNS over TLS (853) and DNS over HTTPS (443) through CoreDNS: the Corefile's optional server
blocks (DP_DOT=on, DP_DOH=on) with a self-signed certificate made here, queried with
`kdig +tls` and `dig +https` (both verifying the certificate), give exactly the answers plain
DNS gives; with the variables unset or off there are no such listeners."""

import re
import socket
import subprocess

import pytest

import e2e_helpers as h
from .coredns_stack import RRL_COREFILE, ROOT_COREFILE, distinct_tcp_ports

# One question per answer kind of the contract (docs/CONTRACT.md), and a refusal.
QUESTIONS = [("example.com", "TXT"), ("_dmarc.example.com", "TXT"), ("s1._domainkey.example.com", "TXT"),
             ("example.com", "MX"), ("example.com", "CAA"), ("example.co.uk", "NS"), ("example.com", "SOA"),
             ("www.example.com", "A"), ("a._mta-sts.example.com", "TXT"), ("com", "SOA")]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=dns.park.test",
                    "-addext", "subjectAltName=DNS:dns.park.test,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def records(out):
    """(status, flags, sorted answer and authority records without TTL) from dig or kdig output."""
    status = re.search(r"status: (\w+)", out)
    flags = re.search(r";; flags: ([a-z ]*)[;:]", out, re.I)
    assert status and flags, f"no header in\n{out}"
    rrs, section = [], None
    for line in out.splitlines():
        m = re.match(r";; (\w+) SECTION:", line)
        if m:
            section = m.group(1)
            continue
        if not line.strip() or line.startswith(";") or section not in ("ANSWER", "AUTHORITY"):
            continue
        f = line.split()
        rrs.append((section, f[0].lower(), f[2], f[3], " ".join(f[4:])))
    return status.group(1), sorted(flags.group(1).split()), sorted(rrs)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


SHOW = ["+norec"]


@pytest.mark.parametrize("corefile", [ROOT_COREFILE, RRL_COREFILE], ids=["Corefile", "Corefile.rrl"])
def test_dot_and_doh_answer_as_plain_dns(request, stack_factory, certificate, corefile):
    binary = request.getfixturevalue("coredns_bin" if corefile == ROOT_COREFILE else "coredns_park_bin")
    cert, key = certificate
    dot, doh = distinct_tcp_ports(2)
    s = stack_factory(binary=binary, corefile=corefile, n_workers=1,
                      extra_env={"DP_DOT": "on", "DP_DOH": "on", "DP_DOT_PORT": str(dot), "DP_DOH_PORT": str(doh),
                                 "DP_TLS_CERT": str(cert), "DP_TLS_KEY": str(key)})
    verify = [f"+tls-ca={cert}", "+tls-hostname=dns.park.test"]
    for name, rtype in QUESTIONS:
        plain = records(run(["dig", "@127.0.0.1", "-p", str(s.port), name, rtype, *SHOW]))
        over_tls = records(run(["kdig", "@127.0.0.1", "-p", str(dot), "+tls", *verify, name, rtype, *SHOW]))
        over_https = records(run(["dig", "@127.0.0.1", "-p", str(doh), "+https", *verify, name, rtype, *SHOW]))
        assert plain[2] or plain[0] == "REFUSED", f"{name} {rtype}: empty plain answer {plain}"
        assert over_tls == plain, f"{name} {rtype}: DoT {over_tls} != plain {plain}"
        assert over_https == plain, f"{name} {rtype}: DoH {over_https} != plain {plain}"
    # The certificate is checked: a client expecting another name refuses the server.
    p = subprocess.run(["kdig", "@127.0.0.1", "-p", str(dot), "+tls", f"+tls-ca={cert}",
                        "+tls-hostname=other.park.test", "example.com", "TXT"],
                       capture_output=True, text=True, timeout=20)
    assert "NOERROR" not in p.stdout, p.stdout


@pytest.mark.parametrize("value", [None, "off"])
def test_no_encrypted_listeners_unless_turned_on(stack_factory, value):
    dot, doh = distinct_tcp_ports(2)
    env = {"DP_DOT_PORT": str(dot), "DP_DOH_PORT": str(doh)}
    if value:
        env.update(DP_DOT=value, DP_DOH=value)
    s = stack_factory(n_workers=1, extra_env=env)
    r = h.query(s.port, h.make_query("example.com.", "TXT"))
    assert h.txt_strings(r.answer[0]) == ["v=spf1 -all"]
    for port in (dot, doh):
        with socket.socket() as c:
            c.settimeout(2)
            assert c.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"
