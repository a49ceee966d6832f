"""docs/CONTRACT.md "The answers", asked through stock CoreDNS with the repository's Corefile (cache,
any, forward force_tcp ...) in front of a real worker, over UDP and over TCP.

Rows CoreDNS passes through are checked as strictly as tests/e2e checks the worker itself.
Where CoreDNS changes an answer, the test asserts what CoreDNS does and says so in a comment
marked "CoreDNS DIFFERENCE"; those tests are gathered at the end of this file.

Every row uses a zone of its own (a counter in the name), so the first query of a name is a
cache miss that reaches the worker, as the contract rows need; cache hits are tested on
purpose where they matter (0x20, AA, TTL).
"""

import itertools

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

import e2e_helpers as h
from .coredns_stack import (NS1, NS1_ADDRS, NS2, NS2_ADDRS, RUA, RUF, Stack, scrape)

# The Corefile's cache: `success 100000 3600 30` and `denial 100000 3600 30` (capacity, max
# TTL, min TTL). CoreDNS DIFFERENCE: the cache rewrites every TTL of an answer it passes on to
# min(smallest TTL in the message, 3600), at least 30, and counts it down on later hits.
CACHE_MAX_TTL = 3600
CACHE_MIN_TTL = 30

TXT_TTL = 3600
NS_TTL = 86400
SOA_TTL = 3600
SOA_MINIMUM = 3600
NEG_TTL = min(SOA_TTL, SOA_MINIMUM)

SPF = "v=spf1 -all"
DMARC_FULL = f"v=DMARC1; p=reject; sp=reject; np=reject; adkim=s; aspf=s; rua=mailto:{RUA}; ruf=mailto:{RUF};"
DKIM = "v=DKIM1; p="

_counter = itertools.count(1)


def uniq(suffix="com", transport="x"):
    """A registrable domain no other test asks about, so its first query misses the cache."""
    return f"z{next(_counter)}-{transport}.{suffix}."


def via_cache(ttl):
    return max(min(ttl, CACHE_MAX_TTL), CACHE_MIN_TTL)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, coredns_bin):
    s = Stack(tmp_path_factory.mktemp("contract"), coredns_bin, n_workers=1)
    yield s
    s.stop()


@pytest.fixture(params=["udp", "tcp"])
def transport(request):
    return request.param


def ask(stack, transport, qname, qtype, rdclass="IN", **kw):
    q = h.make_query(qname, qtype, rdclass, **kw)
    r = h.query(stack.port, q, transport)
    assert len(r.question) == 1, f"question section {r.question}"
    # Compared as text, so the case of the name counts (0x20).
    assert r.question[0].name.to_text() == q.question[0].name.to_text()
    assert r.question[0].rdtype == q.question[0].rdtype
    assert r.question[0].rdclass == q.question[0].rdclass
    return r


def assert_flags(r, aa, rd=False, cd=False):
    assert r.flags & dns.flags.QR, "QR must be set"
    assert not r.flags & dns.flags.RA, "RA must be 0"
    assert not r.flags & dns.flags.AD, "AD must be 0"
    assert not r.flags & dns.flags.TC, "TC must be 0 for a small answer"
    assert bool(r.flags & dns.flags.AA) == aa, f"AA expected {int(aa)}, flags {dns.flags.to_text(r.flags)}"
    assert bool(r.flags & dns.flags.RD) == rd, "RD must be copied from the query"
    assert bool(r.flags & dns.flags.CD) == cd, "CD must be copied from the query"


def single_answer(r, qname, rdtype, ttl):
    assert r.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(r.rcode())
    assert_flags(r, aa=True)
    assert len(r.answer) == 1, f"expected one RRset, got {r.answer}"
    rrset = r.answer[0]
    assert rrset.name.to_text() == dns.name.from_text(qname).to_text(), "owner must echo the query name"
    assert rrset.rdtype == dns.rdatatype.RdataType.make(rdtype)
    assert rrset.rdclass == dns.rdataclass.IN
    assert rrset.ttl == via_cache(ttl), f"TTL {rrset.ttl} != {via_cache(ttl)} (worker {ttl}, cache-capped)"
    return rrset


def assert_nodata(r, zone, mname=NS1):
    assert r.rcode() == dns.rcode.NOERROR, f"rcode {dns.rcode.to_text(r.rcode())}, expected NOERROR (NODATA)"
    assert_flags(r, aa=True)
    assert r.answer == [], f"NODATA must have an empty answer, got {r.answer}"
    soas = h.rrsets(r.authority, "SOA")
    assert len(soas) == 1, f"NODATA must carry the SOA of the zone in authority, got {r.authority}"
    soa = soas[0]
    assert soa.name == dns.name.from_text(zone), f"SOA owner {soa.name} != zone {zone}"
    assert len(soa) == 1
    assert soa[0].mname == dns.name.from_text(mname)
    assert soa[0].minimum == SOA_MINIMUM
    assert soa.ttl == via_cache(NEG_TTL), f"negative SOA TTL {soa.ttl}, expected {via_cache(NEG_TTL)}"


def assert_refused_not_aa(r):
    assert r.rcode() == dns.rcode.REFUSED, f"rcode {dns.rcode.to_text(r.rcode())}, expected REFUSED"
    assert r.flags & dns.flags.QR
    assert not r.flags & dns.flags.AA, "REFUSED must have AA=0"
    assert not r.flags & dns.flags.RA
    assert r.answer == []


# --- SOA / NS -----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix,upper", [("com", False), ("co.uk", False), ("org", True)])
def test_soa_at_apex(stack, transport, suffix, upper):
    zone = uniq(suffix, transport)
    zone = zone.upper() if upper else zone
    rrset = single_answer(ask(stack, transport, zone, "SOA"), zone, "SOA", SOA_TTL)
    assert len(rrset) == 1
    soa = rrset[0]
    assert soa.mname == dns.name.from_text(NS1), f"mname {soa.mname} must be the first name server"
    assert (soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum) == (1, 10800, 3600, 604800, 3600)
    assert soa.rname == dns.name.from_text("hostmaster.park.example.net.")


@pytest.mark.parametrize("suffix", ["com", "co.uk"])
def test_ns_with_glue(stack, transport, suffix):
    zone = uniq(suffix, transport)
    r = ask(stack, transport, zone, "NS")
    rrset = single_answer(r, zone, "NS", NS_TTL)
    assert sorted(rd.target.to_text() for rd in rrset) == sorted([NS1 + ".", NS2 + "."])
    glue = {}
    for rr in r.additional:
        assert rr.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA), f"unexpected additional {rr}"
        assert rr.ttl == via_cache(NS_TTL), f"glue TTL {rr.ttl}"
        glue.setdefault(rr.name.to_text().lower(), set()).update(rd.address for rd in rr)
    assert glue == {NS1 + ".": set(NS1_ADDRS), NS2 + ".": set(NS2_ADDRS)}


# --- mail and TLS policy records ----------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", "www.", "a.b.c."])
def test_spf_txt(stack, transport, prefix):
    qname = prefix + uniq("com", transport)
    rrset = single_answer(ask(stack, transport, qname, "TXT"), qname, "TXT", TXT_TTL)
    assert h.txt_strings(rrset) == [SPF]


@pytest.mark.parametrize("prefix,suffix", [("_dmarc.", "com"), ("_dmarc.www.", "com"), ("_dmarc.", "co.uk")])
def test_dmarc(stack, transport, prefix, suffix):
    qname = prefix + uniq(suffix, transport)
    rrset = single_answer(ask(stack, transport, qname, "TXT"), qname, "TXT", TXT_TTL)
    assert h.txt_strings(rrset) == [DMARC_FULL]


@pytest.mark.parametrize("prefix", ["default._domainkey.", "s1._domainkey.www.", "a.b._domainkey."])
def test_dkim_revoked(stack, transport, prefix):
    qname = prefix + uniq("com", transport)
    rrset = single_answer(ask(stack, transport, qname, "TXT"), qname, "TXT", TXT_TTL)
    assert h.txt_strings(rrset) == [DKIM]


@pytest.mark.parametrize("prefix", ["", "mail."])
def test_null_mx(stack, transport, prefix):
    qname = prefix + uniq("com", transport)
    rrset = single_answer(ask(stack, transport, qname, "MX"), qname, "MX", TXT_TTL)
    assert len(rrset) == 1
    assert (rrset[0].preference, rrset[0].exchange) == (0, dns.name.root)


@pytest.mark.parametrize("prefix", ["", "www."])
def test_caa_forbids_issue(stack, transport, prefix):
    qname = prefix + uniq("com", transport)
    rrset = single_answer(ask(stack, transport, qname, "CAA"), qname, "CAA", TXT_TTL)
    assert len(rrset) == 1
    assert (rrset[0].flags, rrset[0].tag, rrset[0].value) == (0, b"issue", b";")


def test_rd_cd_copied(stack, transport):
    qname = uniq("com", transport)
    r = ask(stack, transport, qname, "TXT", rd=True, cd=True)
    assert_flags(r, aa=True, rd=True, cd=True)
    assert h.txt_strings(r.answer[0]) == [SPF]


# --- NODATA ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", "www."])
@pytest.mark.parametrize("qtype", ["A", "AAAA", "DS", "HTTPS", "DNSKEY", 65400])
def test_nodata_with_soa(stack, transport, prefix, qtype):
    zone = uniq("com", transport)
    assert_nodata(ask(stack, transport, prefix + zone, qtype), zone)


def test_nodata_ns_below_apex(stack, transport):
    zone = uniq("co.uk", transport)
    assert_nodata(ask(stack, transport, "sub." + zone, "NS"), zone)


# --- name-server hosts ----------------------------------------------------------------------------
# The host names are fixed, so the second transport's query is a cache hit: its TTL is the
# cached one counting down from 3600 (a few seconds at most in this module).

@pytest.mark.parametrize("qname,qtype,expected", [
    (NS1 + ".", "A", [NS1_ADDRS[0]]),
    (NS1 + ".", "AAAA", [NS1_ADDRS[1]]),
    (NS2 + ".", "A", NS2_ADDRS),
])
def test_nameserver_host_addresses(stack, transport, qname, qtype, expected):
    r = ask(stack, transport, qname, qtype)
    assert r.rcode() == dns.rcode.NOERROR
    assert_flags(r, aa=True)
    assert len(r.answer) == 1
    rrset = r.answer[0]
    assert rrset.name == dns.name.from_text(qname)
    assert sorted(rd.address for rd in rrset) == sorted(expected)
    assert via_cache(NS_TTL) - 120 < rrset.ttl <= via_cache(NS_TTL)


# --- REFUSED ----------------------------------------------------------------------------------

@pytest.mark.parametrize("qname,qtype", [("com.", "SOA"), ("co.uk.", "NS"), ("co.uk.", "TXT"),
                                         (".", "NS"), ("uk.", "A")])
def test_refused_without_registrable_domain(stack, transport, qname, qtype):
    r = ask(stack, transport, qname, qtype)
    assert_refused_not_aa(r)


def test_refused_is_not_cached(stack, transport):
    """Errors are never cached by CoreDNS: each REFUSED reaches the worker."""
    w = stack.workers[0]
    before = scrape(w.metrics_addr).value("domain_park_queries_total", qtype="SOA", rcode="REFUSED")
    for _ in range(3):
        assert_refused_not_aa(ask(stack, transport, "com.", "SOA"))
    after = scrape(w.metrics_addr).value("domain_park_queries_total", qtype="SOA", rcode="REFUSED")
    assert after - before == 3


# --- 0x20 -------------------------------------------------------------------------------------------

def test_0x20_echo_on_cache_miss(stack, transport):
    qname = "wWw." + uniq("com", transport).replace("z", "Z").upper().replace("COM", "cOm")
    r = ask(stack, transport, qname, "TXT")
    rrset = single_answer(r, qname, "TXT", TXT_TTL)
    assert rrset.name.to_text() == qname, "owner must echo the query name case (0x20)"


def test_0x20_cache_hit_keeps_first_case(stack, transport):
    """CoreDNS DIFFERENCE: a cache hit echoes the question exactly, but the answer's owner
    name keeps the case of the query that filled the cache (the cache key folds case and the
    cached RRs are sent as stored). The contract says answers echo the query name as sent."""
    zone = uniq("com", transport)
    first = "MiXeD." + zone
    second = "mIxEd." + zone.upper()
    r1 = ask(stack, transport, first, "TXT")
    assert r1.answer[0].name.to_text() == first
    r2 = ask(stack, transport, second, "TXT")  # the question is echoed exactly (checked in ask)
    assert r2.answer[0].name == dns.name.from_text(second), "same name, case-insensitively"
    assert r2.answer[0].name.to_text() == first, "cache hit: owner in the first query's case"
    assert h.txt_strings(r2.answer[0]) == [SPF]
    assert r2.flags & dns.flags.AA


# --- truncation -----------------------------------------------------------------------------------

BIG_NS = [f"ns{i}.park.example.net" for i in range(1, 14)]
BIG_ARGS = [a for i, n in enumerate(BIG_NS, 1)
            for a in ("-n", f"{n}:192.0.2.{i}," + ",".join(f"2001:db8::{i}:{j}" for j in range(1, 8)))]


@pytest.fixture(scope="module")
def big_stack(tmp_path_factory, coredns_bin):
    """13 name servers with 8 addresses each: NS with glue is ~3 KB."""
    s = Stack(tmp_path_factory.mktemp("big"), coredns_bin, n_workers=1, worker_args=BIG_ARGS)
    yield s
    s.stop()


@pytest.mark.parametrize("suffix", ["net", "com"])
def test_big_answer_tc_over_udp_without_edns(big_stack, suffix):
    """TC=1 over UDP without EDNS (512 octets).

    CoreDNS DIFFERENCE: CoreDNS fetched the whole answer over TCP (force_tcp) and truncates it
    itself with miekg/dns Msg.Truncate: the reply keeps the NS records and as much glue as fit,
    with TC=1. The worker alone answers TC=1 with empty sections when the name servers are in
    the zone (example.net), and leaves the optional glue out without TC when they are not
    (example.com; RFC 9471)."""
    zone = f"example.{suffix}."
    if suffix == "com":
        zone = uniq("com")
    q = h.make_query(zone, "NS")
    wire = h.udp_exchange(big_stack.port, q.to_wire())
    assert wire is not None
    assert len(wire) <= 512
    r = dns.message.from_wire(wire)
    assert r.flags & dns.flags.TC, "an answer over 512 octets must come back with TC=1 over UDP"
    assert r.rcode() == dns.rcode.NOERROR
    # What CoreDNS keeps: the NS RRset (fits) and part of the glue.
    assert len(r.answer) == 1 and len(r.answer[0]) == 13
    assert 0 < sum(len(rr) for rr in r.additional) < 13 * 8


@pytest.mark.parametrize("suffix", ["net", "com"])
def test_big_answer_complete_over_tcp(big_stack, suffix):
    zone = f"example.{suffix}." if suffix == "net" else uniq("com")
    r = h.query(big_stack.port, h.make_query(zone, "NS"), "tcp")
    assert not r.flags & dns.flags.TC
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert sorted(rd.target.to_text() for rd in r.answer[0]) == sorted(n + "." for n in BIG_NS)
    assert sum(len(rr) for rr in r.additional) == 13 * 8


def test_big_answer_edns_size_capped_at_1232(big_stack):
    """The contract caps the EDNS UDP size at 1232. Stock CoreDNS would honour a client's
    4096 (a ~3 KB UDP answer without TC); the Corefile's `bufsize 1232` restores the cap, so
    the answer is truncated to 1232 with TC=1, as the worker alone does."""
    zone = uniq("com")
    for payload in (4096, 1232):
        wire = h.udp_exchange(big_stack.port, h.make_query(zone, "NS", edns=0, payload=payload).to_wire())
        r = dns.message.from_wire(wire)
        assert len(wire) <= 1232, f"EDNS {payload}: {len(wire)}-octet UDP answer"
        assert r.flags & dns.flags.TC, f"EDNS {payload}: a 3 KB answer must come back truncated"


# --- rows where CoreDNS answers differently ---------------------------------------------------------

def test_any_answered_by_coredns_with_hinfo(stack, transport):
    """CoreDNS DIFFERENCE: the `any` plugin answers ANY itself (RFC 8482 section 4.2: a
    synthesized HINFO "ANY obsoleted" "See RFC 8482", TTL 8482) with AA=0, for every name,
    before the cache and the workers. The worker would answer the name's TXT with AA=1. Still
    a minimal answer per RFC 8482; the worker never sees the query."""
    w = stack.workers[0]
    before = scrape(w.metrics_addr).value("domain_park_queries_total", qtype="ANY")
    for qname in (uniq("com", transport), "_dmarc." + uniq("com", transport), "com."):
        r = ask(stack, transport, qname, "ANY")
        assert r.rcode() == dns.rcode.NOERROR
        assert not r.flags & dns.flags.AA, "CoreDNS's any plugin does not set AA"
        assert not r.flags & dns.flags.RA
        assert len(r.answer) == 1
        rr = r.answer[0]
        assert rr.rdtype == dns.rdatatype.HINFO and rr.ttl == 8482
        assert (rr[0].cpu, rr[0].os) == (b"ANY obsoleted", b"See RFC 8482")
    assert scrape(w.metrics_addr).value("domain_park_queries_total", qtype="ANY") == before


@pytest.mark.parametrize("qtype", ["AXFR", "IXFR"])
def test_zone_transfer_refused(stack, transport, qtype):
    """Passes through: forward sends AXFR/IXFR to the worker, which REFUSES it (AA=0)."""
    assert_refused_not_aa(ask(stack, transport, uniq("com", transport), qtype))


def test_notify_passes_through_notimp(stack, transport):
    """Opcode NOTIFY is forwarded; the worker's NOTIMP (question echoed) comes back."""
    q = h.make_query(uniq("com", transport), "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    r = h.query(stack.port, q, transport)
    assert r.rcode() == dns.rcode.NOTIMP
    assert r.opcode() == dns.opcode.NOTIFY
    assert not r.flags & dns.flags.AA
    assert len(r.question) == 1


@pytest.mark.parametrize("opcode", [dns.opcode.UPDATE, dns.opcode.STATUS])
def test_other_opcodes_notimp_from_coredns(stack, transport, opcode):
    """CoreDNS DIFFERENCE (small): UPDATE and STATUS are answered NOTIMP by CoreDNS itself
    (the worker's counters do not move) and without the question section; the worker echoes
    the question."""
    w = stack.workers[0]
    before = scrape(w.metrics_addr).value("domain_park_queries_total", rcode="NOTIMP")
    q = h.make_query(uniq("com", transport), "SOA")
    q.set_opcode(opcode)
    r = h.query(stack.port, q, transport)
    assert r.rcode() == dns.rcode.NOTIMP
    assert not r.flags & dns.flags.AA
    assert len(r.question) == 0
    assert scrape(w.metrics_addr).value("domain_park_queries_total", rcode="NOTIMP") == before


@pytest.mark.parametrize("qname", ["id.server.", "hostname.bind."])
def test_chaos_identity(stack, transport, qname):
    """CHAOS id.server/hostname.bind TXT: the worker's identity, passed through.

    CoreDNS DIFFERENCE: TTL 30, not the worker's 0 (the cache's minimum TTL raises it, and
    the answer is cached for 30 s, so behind several workers it names only one of them)."""
    r = ask(stack, transport, qname, "TXT", "CH")
    assert r.rcode() == dns.rcode.NOERROR
    assert len(r.answer) == 1 and r.answer[0].rdclass == dns.rdataclass.CH
    assert h.txt_strings(r.answer[0]) == [stack.workers[0].identity]
    assert 0 < r.answer[0].ttl <= CACHE_MIN_TTL


@pytest.mark.parametrize("rdclass,qtype", [("CH", "SOA"), ("CH", "TXT"), ("HS", "TXT")])
def test_other_class_refused(stack, transport, rdclass, qtype):
    qname = uniq("com", transport) if qtype == "SOA" else "version.bind."
    r = ask(stack, transport, qname, qtype, rdclass)
    assert_refused_not_aa(r)


def test_nsid_identity_lost(stack, transport):
    """CoreDNS DIFFERENCE: NSID (RFC 5001) does not carry the worker's identity through
    CoreDNS. The cache plugin drops the upstream's OPT record and CoreDNS re-attaches the
    client's own OPT, so the NSID option comes back empty (the client's request echoed)."""
    r = ask(stack, transport, uniq("com", transport), "TXT", edns=0,
            options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
    assert r.rcode() == dns.rcode.NOERROR and h.txt_strings(r.answer[0]) == [SPF]
    opt = h.edns_option(r, dns.edns.NSID)
    assert opt is not None, "CoreDNS echoes the NSID option"
    assert h.option_data(opt) == b"", "identity lost: the option comes back empty"


def test_badvers_passes_through(stack, transport):
    r = ask(stack, transport, uniq("com", transport), "TXT", edns=1)
    assert r.rcode() == dns.rcode.BADVERS
    assert r.answer == [] and not r.flags & dns.flags.AA


def test_cached_answer_keeps_aa_and_soa(stack, transport):
    """AA on cached answers: CoreDNS's cache always sets AA=1 on a hit; here that matches the
    contract (only in-zone answers are cached; errors never are). The negative answer keeps
    its SOA, TTL counting down from the first."""
    zone = uniq("com", transport)
    r1 = ask(stack, transport, "www." + zone, "A")
    assert_nodata(r1, zone)
    r2 = ask(stack, transport, "www." + zone, "A")
    assert r2.rcode() == dns.rcode.NOERROR and r2.answer == []
    assert r2.flags & dns.flags.AA and not r2.flags & dns.flags.RA
    soa = h.rrsets(r2.authority, "SOA")
    assert len(soa) == 1 and soa[0].name == dns.name.from_text(zone)
    assert 0 < soa[0].ttl <= h.rrsets(r1.authority, "SOA")[0].ttl


# --- malformed input --------------------------------------------------------------------------------

def _raw(stack, transport, wire):
    if transport == "udp":
        return h.udp_exchange(stack.port, wire, timeout=1.0)
    return h.tcp_exchange(stack.port, wire)


@pytest.mark.parametrize("case", ["qdcount0", "qdcount2", "cut_question"])
def test_formerr_from_coredns(stack, transport, case):
    """FORMERR, as the contract says; CoreDNS (miekg/dns) answers these itself without
    forwarding (the worker's FORMERR counter does not move), with an empty question section."""
    wire = {
        "qdcount0": h.raw_header(0x1234, 0, qd=0),
        "qdcount2": h.raw_header(0x1235, 0, qd=2) + h.raw_question("a.example.com.", 16)
        + h.raw_question("b.example.com.", 16),
        "cut_question": h.raw_header(0x1236, 0) + b"\x07exam",
    }[case]
    w = stack.workers[0]
    before = scrape(w.metrics_addr).value("domain_park_queries_total", rcode="FORMERR")
    reply = _raw(stack, transport, wire)
    assert reply is not None, "FORMERR expected, got no answer"
    hdr = h.parse_header(reply)
    assert hdr["qr"] and hdr["rcode"] == dns.rcode.FORMERR and not hdr["aa"]
    assert hdr["id"] == int.from_bytes(wire[:2], "big")
    assert scrape(w.metrics_addr).value("domain_park_queries_total", rcode="FORMERR") == before


def test_two_opt_records_formerr(stack, transport):
    """Several OPT records: forwarded, the worker answers FORMERR (its multiple_opt counter
    moves). CoreDNS adds an OPT record of its own to that FORMERR (the worker sends none)."""
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    wire = h.raw_header(0x2345, 0, ar=2) + h.raw_question(uniq("com", transport), 16) + opt + opt
    w = stack.workers[0]
    before = scrape(w.metrics_addr).value("domain_park_malformed_total", reason="multiple_opt")
    reply = _raw(stack, transport, wire)
    assert reply is not None
    r = dns.message.from_wire(reply)
    assert r.rcode() == dns.rcode.FORMERR and not r.flags & dns.flags.AA
    assert scrape(w.metrics_addr).value("domain_park_malformed_total", reason="multiple_opt") == before + 1


@pytest.mark.parametrize("case", ["response", "runt"])
def test_dropped_over_udp(stack, case):
    """QR=1 and messages shorter than a header are never answered (CoreDNS drops them too)."""
    wire = (h.raw_header(0x3456, 0x8000) + h.raw_question(uniq("com"), 16)) if case == "response" \
        else b"\x12\x34\x00"
    assert h.udp_exchange(stack.port, wire, timeout=h.NO_ANSWER_TIMEOUT) is None
    # And CoreDNS still answers afterwards.
    r = h.query(stack.port, h.make_query(uniq("com"), "TXT"))
    assert h.txt_strings(r.answer[0]) == [SPF]


# --- DNS cookies: a CoreDNS DIFFERENCE ---------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1])
def test_cookies_via_coredns_are_echoed_without_a_server_cookie(stack, transport, n):
    """CoreDNS DIFFERENCE: CoreDNS does not do cookies; it copies the query's options into its
    answer, so a client cookie comes back alone, on a miss and on a cache hit, for each client
    its own (never another client's: the worker's server cookie for CoreDNS never reaches a
    client). Clients treat that as a server without cookie support (RFC 7873 5.3)."""
    name = f"cookie-{n}-{transport}.example.com."
    for client in (b"\x01" * 8, b"\x02" * 8):  # the second is a cache hit
        q = h.make_query(name, "TXT", edns=0, options=[dns.edns.GenericOption(10, client)])
        r = h.query(stack.port, q, transport)
        assert h.txt_strings(r.answer[0]) == [SPF]
        opt = h.edns_option(r, 10)
        assert opt is not None and opt.client == client and opt.server == b""
