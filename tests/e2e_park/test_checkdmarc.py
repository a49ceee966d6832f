"""checkdmarc (the PyPI package domain owners run) judges parked domains through a real
recursive resolver: SPF valid with -all, DMARC valid with p=reject, the report destination
authorized by the report domain's wildcard record (RFC 7489 7.1), the null MX recognised, no
errors. It runs as a user would: `checkdmarc --parked -n RESOLVER DOMAIN`, JSON on stdout."""

import json
import subprocess

import pytest

import internet as net


def checkdmarc(domain):
    p = subprocess.run([net.CHECKDMARC, "--parked", "-n", net.RESOLVER, "-t", "3", domain],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"checkdmarc exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout)


@pytest.mark.parametrize("domain", ["parked.test", "parked2.test", "park.test"])
def test_checkdmarc_finds_a_parked_domain_parked_right(internet, domain):
    r = checkdmarc(domain)
    assert r["domain"] == domain
    spf = r["spf"]
    assert spf["valid"] is True, spf
    assert spf["record"] == "v=spf1 -all"
    assert spf["parsed"]["all"] == "fail"
    assert not spf.get("warnings"), spf
    dmarc = r["dmarc"]
    assert dmarc["valid"] is True, dmarc
    assert dmarc["record"] == ("v=DMARC1; p=reject; sp=reject; np=reject; adkim=s; aspf=s; "
                               f"rua=mailto:{net.RUA};")
    tags = dmarc["tags"]
    assert tags["p"]["value"] == "reject" and tags["sp"]["value"] == "reject"
    assert tags["adkim"]["value"] == "s" and tags["aspf"]["value"] == "s"
    # The report destination at another organization is authorized (its wildcard record);
    # an unauthorized one is an error ("... does not indicate that it accepts DMARC reports").
    assert [u["address"] for u in tags["rua"]["value"]] == [net.RUA]
    assert not dmarc.get("error"), dmarc
    assert not [w for w in dmarc.get("warnings", []) if "report" in w.lower() or "unrelated" in w.lower()], dmarc
    assert dmarc["warnings"] == [], dmarc
    mx = r["mx"]
    assert mx["hosts"] == [], mx
    assert any("null MX" in w for w in mx["warnings"]), mx
    assert not mx.get("error"), mx
    assert r["ns"]["hostnames"] and sorted(r["ns"]["hostnames"]) == net.PARKING_NS
    assert r["soa"]["values"]["primary_nameserver"] == "ns1.park.test"
    # The only errors: the records a parked domain has no use for are absent (and not, as
    # an SPF record at every name would make them, "unrelated" or invalid records).
    errors = {k: v["error"] for k, v in r.items() if isinstance(v, dict) and v.get("error")}
    assert set(errors) <= {"mta_sts", "smtp_tls_reporting", "bimi"}, errors
    assert all("does not exist" in e for e in errors.values()), errors


def test_checkdmarc_sees_reports_sent_to_a_parked_domain(internet):
    # The same parked answers, but reports go to park.test, itself parked: no authorization
    # there (an underscore name below D is NODATA, not an SPF record checkdmarc would call
    # "unrelated"), which checkdmarc reports.
    r = checkdmarc("badrua.test")
    dmarc = r["dmarc"]
    assert dmarc["record"].endswith("rua=mailto:dmarc@park.test;")
    assert any("park.test does not indicate that it accepts DMARC reports about badrua.test" in w
               for w in dmarc["warnings"]), dmarc
    assert "nrelated" not in json.dumps(r), r
