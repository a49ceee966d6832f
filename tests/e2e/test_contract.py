"""Every row of docs/CONTRACT.md "The answers" against the real worker, over UDP and over TCP."""

import json
from pathlib import Path
import re
import shutil
import subprocess

import dns.edns
import dns.flags
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

import e2e_helpers as h
from conftest import (IDENTITY, NS1, NS1_ADDRS, NS2, NS2_ADDRS, RUA, RUF, assert_clean, start_worker)

TXT_TTL = 3600
NS_TTL = 86400
SOA_TTL = 3600
SOA_MINIMUM = 3600

SPF = "v=spf1 -all"
DMARC_TAGS = "v=DMARC1; p=reject; sp=reject; np=reject; adkim=s; aspf=s;"
DMARC_FULL = f"{DMARC_TAGS} rua=mailto:{RUA}; ruf=mailto:{RUF};"
DMARC_PLAIN = DMARC_TAGS
DMARC_ORIGINAL = "v=DMARC1; p=reject;"
DKIM = "v=DKIM1; p="


@pytest.fixture(params=["udp", "tcp"])
def transport(request):
    return request.param


def ask(worker, transport, qname, qtype, rdclass="IN", **kw):
    q = h.make_query(qname, qtype, rdclass, **kw)
    r = h.query(worker.port, q, transport)
    # Every answer echoes the question exactly.
    assert len(r.question) == 1, f"question section {r.question}"
    assert r.question[0].name.to_text() == q.question[0].name.to_text()
    assert r.question[0].rdtype == q.question[0].rdtype
    assert r.question[0].rdclass == q.question[0].rdclass
    return r


def assert_flags(r, aa):
    assert r.flags & dns.flags.QR, "QR must be set"
    assert not r.flags & dns.flags.RA, "RA must be 0"
    assert not r.flags & dns.flags.AD, "AD must be 0"
    assert not r.flags & dns.flags.TC, "TC must be 0 for a small answer"
    assert bool(r.flags & dns.flags.AA) == aa, f"AA expected {int(aa)}, flags {dns.flags.to_text(r.flags)}"


def single_answer(r, qname, rdtype, ttl):
    assert r.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(r.rcode())
    assert_flags(r, aa=True)
    assert len(r.answer) == 1, f"expected one RRset, got {r.answer}"
    rrset = r.answer[0]
    assert rrset.name.to_text() == dns.name.from_text(qname).to_text(), "owner must echo the query name"
    assert rrset.rdtype == dns.rdatatype.RdataType.make(rdtype)
    assert rrset.rdclass == dns.rdataclass.IN
    assert rrset.ttl == ttl, f"TTL {rrset.ttl} != {ttl}"
    return rrset


def assert_nodata(r, zone, mname=NS1, neg_ttl=min(SOA_TTL, SOA_MINIMUM)):
    assert r.rcode() == dns.rcode.NOERROR, f"rcode {dns.rcode.to_text(r.rcode())}, expected NOERROR (NODATA)"
    assert_flags(r, aa=True)
    assert r.answer == [], f"NODATA must have an empty answer, got {r.answer}"
    soas = h.rrsets(r.authority, "SOA")
    assert len(soas) == 1, f"NODATA must carry the SOA of the zone in authority, got {r.authority}"
    soa = soas[0]
    assert soa.name == dns.name.from_text(zone), f"SOA owner {soa.name} != zone {zone}"
    assert len(soa) == 1
    assert soa[0].mname == dns.name.from_text(mname)
    assert soa.ttl == neg_ttl, f"negative-answer SOA TTL {soa.ttl}, expected {neg_ttl} (RFC 2308: min of TTL and MINIMUM)"


def assert_refused_not_aa(r):
    assert r.rcode() == dns.rcode.REFUSED, f"rcode {dns.rcode.to_text(r.rcode())}, expected REFUSED"
    assert r.flags & dns.flags.QR
    assert not r.flags & dns.flags.AA, "REFUSED must have AA=0"
    assert not r.flags & dns.flags.RA
    assert r.answer == []


# --- SOA / NS -----------------------------------------------------------------------------------

@pytest.mark.parametrize("zone", ["example.com.", "example.co.uk.", "EXAMPLE.org."])
def test_soa_at_apex(std_worker, transport, zone):
    r = ask(std_worker, transport, zone, "SOA")
    rrset = single_answer(r, zone, "SOA", SOA_TTL)
    assert len(rrset) == 1
    soa = rrset[0]
    assert soa.mname == dns.name.from_text(NS1), f"mname {soa.mname} must be the first name server"
    assert soa.minimum == SOA_MINIMUM
    assert soa.rname.is_absolute() and len(soa.rname.labels) >= 3, f"rname {soa.rname}"
    assert soa.serial > 0 and soa.refresh > 0 and soa.retry > 0 and soa.expire > 0


def test_ns_with_glue(std_worker, transport):
    r = ask(std_worker, transport, "example.com.", "NS")
    rrset = single_answer(r, "example.com.", "NS", NS_TTL)
    assert sorted(rd.target.to_text() for rd in rrset) == sorted([NS1 + ".", NS2 + "."])
    glue = {}
    for rr in r.additional:
        assert rr.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA), f"unexpected additional {rr}"
        assert rr.ttl == NS_TTL, f"glue TTL {rr.ttl}"
        glue.setdefault(rr.name.to_text().lower(), set()).update(rd.address for rd in rr)
    assert glue == {NS1 + ".": set(NS1_ADDRS), NS2 + ".": set(NS2_ADDRS)}


def test_ns_at_subdomain_zone_co_uk(std_worker, transport):
    r = ask(std_worker, transport, "example.co.uk.", "NS")
    rrset = single_answer(r, "example.co.uk.", "NS", NS_TTL)
    assert sorted(rd.target.to_text() for rd in rrset) == sorted([NS1 + ".", NS2 + "."])


# --- mail and TLS policy records ----------------------------------------------------------------

@pytest.mark.parametrize("qname", ["example.com.", "www.example.com.", "a.b.c.example.com.",
                                   "x.example.co.uk."])
def test_spf_txt(std_worker, transport, qname):
    rrset = single_answer(ask(std_worker, transport, qname, "TXT"), qname, "TXT", TXT_TTL)
    assert h.txt_strings(rrset) == [SPF]


@pytest.mark.parametrize("qname", ["_dmarc.example.com.", "_dmarc.www.example.com.",
                                   "_dmarc.example.co.uk."])
def test_dmarc_with_rua_ruf(std_worker, transport, qname):
    rrset = single_answer(ask(std_worker, transport, qname, "TXT"), qname, "TXT", TXT_TTL)
    assert h.txt_strings(rrset) == [DMARC_FULL]


def test_dmarc_without_reporting(plain_worker, transport):
    rrset = single_answer(ask(plain_worker, transport, "_dmarc.example.com.", "TXT"),
                          "_dmarc.example.com.", "TXT", TXT_TTL)
    assert h.txt_strings(rrset) == [DMARC_PLAIN]


def test_dmarc_original_record_one_setting_away(tmp_path, transport):
    w = start_worker(tmp_path, "-n", f"{NS1}:{NS1_ADDRS[0]}", "--rua", RUA, "--dmarc-tags", "p=reject;")
    try:
        rrset = single_answer(ask(w, transport, "_dmarc.example.com.", "TXT"), "_dmarc.example.com.", "TXT", TXT_TTL)
        assert h.txt_strings(rrset) == [f"{DMARC_ORIGINAL} rua=mailto:{RUA};"]
    finally:
        w.stop()
    assert_clean(w)


@pytest.mark.parametrize("qname", ["default._domainkey.example.com.", "s1._domainkey.www.example.com.",
                                   "google._domainkey.example.co.uk.", "a.b._domainkey.example.com."])
def test_dkim_revoked(std_worker, transport, qname):
    rrset = single_answer(ask(std_worker, transport, qname, "TXT"), qname, "TXT", TXT_TTL)
    assert h.txt_strings(rrset) == [DKIM]


@pytest.mark.parametrize("qname", ["example.com.", "mail.example.com."])
def test_null_mx(std_worker, transport, qname):
    rrset = single_answer(ask(std_worker, transport, qname, "MX"), qname, "MX", TXT_TTL)
    assert len(rrset) == 1
    assert rrset[0].preference == 0
    assert rrset[0].exchange == dns.name.root


@pytest.mark.parametrize("qname", ["example.com.", "www.example.com."])
def test_caa_forbids_issue(std_worker, transport, qname):
    rrset = single_answer(ask(std_worker, transport, qname, "CAA"), qname, "CAA", TXT_TTL)
    assert len(rrset) == 1, f"no iodef configured, expected only the issue record: {rrset}"
    caa = rrset[0]
    assert (caa.flags, caa.tag, caa.value) == (0, b"issue", b";")


# --- addresses ------------------------------------------------------------------------------------

@pytest.mark.parametrize("qname", ["example.com.", "www.example.com.", "a.b.example.com."])
@pytest.mark.parametrize("qtype", ["A", "AAAA"])
def test_address_nodata(std_worker, transport, qname, qtype):
    assert_nodata(ask(std_worker, transport, qname, qtype), "example.com.")


@pytest.mark.parametrize("qname,qtype,expected", [
    (NS1 + ".", "A", [NS1_ADDRS[0]]),
    (NS1 + ".", "AAAA", [NS1_ADDRS[1]]),
    (NS2 + ".", "A", NS2_ADDRS),
    (NS1.upper() + ".", "A", [NS1_ADDRS[0]]),
])
def test_nameserver_host_addresses(std_worker, transport, qname, qtype, expected):
    rrset = single_answer(ask(std_worker, transport, qname, qtype), qname, qtype, NS_TTL)
    assert sorted(rd.address for rd in rrset) == sorted(expected)


def test_nameserver_host_without_ipv6_is_nodata(std_worker, transport):
    assert_nodata(ask(std_worker, transport, NS2 + ".", "AAAA"), "example.net.")


# --- NODATA for everything else --------------------------------------------------------------------

@pytest.mark.parametrize("qname,qtype,zone", [
    ("example.com.", "DS", "example.com."),
    ("example.com.", "DNSKEY", "example.com."),
    ("example.com.", "HTTPS", "example.com."),
    ("www.example.com.", "HTTPS", "example.com."),
    ("example.com.", 65400, "example.com."),
    ("example.com.", "PTR", "example.com."),
    ("example.com.", "SRV", "example.com."),
    ("example.com.", "RRSIG", "example.com."),
    ("www.example.com.", "NS", "example.com."),
    ("www.example.com.", "SOA", "example.com."),
    ("a.b.example.co.uk.", "NS", "example.co.uk."),
    ("a.b.example.co.uk.", "SOA", "example.co.uk."),
    ("a.b.example.co.uk.", "A", "example.co.uk."),
    ("_foo.example.com.", "TXT", "example.com."),
    ("_foo.example.com.", "MX", "example.com."),
    ("_dmarc.example.com.", "MX", "example.com."),
    ("_dmarc.example.com.", "CAA", "example.com."),
    ("_domainkey.example.com.", "MX", "example.com."),
    # RFC 8552 scoped names: an underscore label anywhere below D (RFC 7489 7.1 report
    # authorization, MTA-STS, TLS reporting) has no SPF, MX or CAA.
    ("example.org._report._dmarc.example.com.", "TXT", "example.com."),
    ("example.org._report._dmarc.example.com.", "MX", "example.com."),
    ("a._mta-sts.example.com.", "TXT", "example.com."),
    ("a._mta-sts.example.com.", "CAA", "example.com."),
    ("_smtp._tls.example.com.", "TXT", "example.com."),
    ("x._tcp.www.example.co.uk.", "MX", "example.co.uk."),
])
def test_other_types_nodata(std_worker, transport, qname, qtype, zone):
    assert_nodata(ask(std_worker, transport, qname, qtype), zone)


def test_private_psl_section_off_by_default(std_worker, transport):
    # github.io is in the PSL private section: without --psl-private the zone is github.io.
    assert_nodata(ask(std_worker, transport, "foo.github.io.", "A"), "github.io.")


# --- ANY, zone transfers ---------------------------------------------------------------------------

@pytest.mark.parametrize("qname", ["example.com.", "www.example.com."])
def test_any_is_minimal(std_worker, transport, qname):
    r = ask(std_worker, transport, qname, "ANY")
    assert r.rcode() == dns.rcode.NOERROR
    assert_flags(r, aa=True)
    # RFC 8482: one RRset (a subset or a synthesized HINFO), not every record at the name.
    assert len(r.answer) == 1, f"ANY must get one small RRset, got {r.answer}"
    assert r.answer[0].name.to_text() == qname
    assert len(r.answer[0]) <= 2, f"ANY answer too large: {r.answer[0]}"
    assert r.answer[0].rdtype != dns.rdatatype.ANY


def test_axfr_refused_tcp(std_worker):
    r = ask(std_worker, "tcp", "example.com.", "AXFR")
    assert r.rcode() == dns.rcode.REFUSED, dns.rcode.to_text(r.rcode())
    assert r.answer == []


def test_ixfr_and_udp_axfr_refused(std_worker, transport):
    for qtype in ("IXFR", "AXFR"):
        r = ask(std_worker, transport, "example.com.", qtype)
        assert r.rcode() == dns.rcode.REFUSED, f"{qtype}: {dns.rcode.to_text(r.rcode())}"
        assert r.answer == []


# --- no registrable domain, classes ----------------------------------------------------------------

@pytest.mark.parametrize("qname", ["com.", "co.uk.", ".", "uk."])
@pytest.mark.parametrize("qtype", ["SOA", "A", "NS", "TXT"])
def test_no_registrable_domain_refused(std_worker, transport, qname, qtype):
    assert_refused_not_aa(ask(std_worker, transport, qname, qtype))


@pytest.mark.parametrize("rdclass,qname,qtype", [
    ("CH", "example.com.", "TXT"),
    ("HS", "example.com.", "A"),
    (254, "example.com.", "A"),      # class NONE
    (255, "example.com.", "TXT"),    # class ANY
    (3, "version.bind.", "TXT"),     # CHAOS, but not an identity name
    (3, "id.server.", "A"),          # CHAOS identity name, wrong type
])
def test_other_class_refused(std_worker, transport, rdclass, qname, qtype):
    assert_refused_not_aa(ask(std_worker, transport, qname, qtype, rdclass=rdclass))


@pytest.mark.parametrize("qname", ["id.server.", "hostname.bind.", "ID.Server."])
def test_chaos_identity(std_worker, transport, qname):
    r = ask(std_worker, transport, qname, "TXT", rdclass="CH")
    assert r.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(r.rcode())
    assert r.flags & dns.flags.QR and not r.flags & dns.flags.RA
    assert len(r.answer) == 1
    rrset = r.answer[0]
    assert rrset.rdclass == dns.rdataclass.CH and rrset.rdtype == dns.rdatatype.TXT
    assert rrset.name.to_text() == qname
    assert h.txt_strings(rrset) == [IDENTITY]


def test_chaos_identity_refused_without_identity(plain_worker, transport):
    assert_refused_not_aa(ask(plain_worker, transport, "id.server.", "TXT", rdclass="CH"))


# --- malformed and unusual messages ----------------------------------------------------------------

def raw_exchange(worker, transport, wire):
    if transport == "udp":
        reply = h.udp_exchange(worker.port, wire)
        assert reply is not None, "no UDP answer"
        return reply
    return h.tcp_exchange(worker.port, wire)


@pytest.mark.parametrize("opcode", [dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.STATUS, 3, 15])
@pytest.mark.parametrize("flags", [0, 0x0100 | 0x0010, 0x0100 | 0x0010 | 0x0020 | 0x0080 | 0x0040 | 0x0200])
def test_other_opcode_notimp(std_worker, transport, opcode, flags):
    # flags: none; RD and CD; RD, CD, AD, RA, Z and TC (ISC genreport's opcodeflg query).
    wire = h.raw_header(0x1234, (int(opcode) << 11) | flags) + h.raw_question("example.com.", 6)
    hdr = h.parse_header(raw_exchange(std_worker, transport, wire))
    assert hdr["id"] == 0x1234
    assert hdr["qr"]
    assert hdr["rcode"] == dns.rcode.NOTIMP, f"rcode {hdr['rcode']}"
    assert hdr["opcode"] == int(opcode), "opcode must be copied into the answer"
    assert not hdr["aa"] and not hdr["ra"] and not hdr["ad"] and not hdr["z"] and not hdr["tc"]
    # RD and CD are defined only for QUERY: cleared outside it.
    assert not hdr["rd"] and not hdr["cd"], f"flags {hdr['flags']:#06x}"
    assert hdr["ancount"] == 0


FORMERR_CASES = {
    "qdcount0": h.raw_header(0x4242, 0),
    "qdcount0_qd_present": h.raw_header(0x4242, 0, qd=0) + h.raw_question("example.com.", 16),
    "qdcount2": h.raw_header(0x4242, 0, qd=2) + h.raw_question("example.com.", 16)
    + h.raw_question("example.net.", 16),
    "qdcount1_missing": h.raw_header(0x4242, 0, qd=1),
    "truncated_name": h.raw_header(0x4242, 0) + b"\x07exam",
    "truncated_type": h.raw_header(0x4242, 0) + b"\x07example\x03com\x00\x00",
    "label_past_end": h.raw_header(0x4242, 0) + b"\x3fexample\x00\x00\x01\x00\x01",
    "compression_loop": h.raw_header(0x4242, 0) + b"\xc0\x0c\x00\x01\x00\x01",
    "opt_option_overflows_rdata": h.raw_header(0x4242, 0, ar=1) + h.raw_question("example.com.", 16)
    + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x04" + b"\x00\x03\x00\x09",
    "opt_rdlen_past_end": h.raw_header(0x4242, 0, ar=1) + h.raw_question("example.com.", 16)
    + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x10",
    "opt_owner_not_root": h.raw_header(0x4242, 0, ar=1) + h.raw_question("example.com.", 16)
    + b"\x01a\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",
    "arcount1_missing": h.raw_header(0x4242, 0, ar=1) + h.raw_question("example.com.", 16),
    "two_opt": h.raw_header(0x4242, 0, ar=2) + h.raw_question("example.com.", 16)
    + (b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00") * 2,
}


@pytest.mark.parametrize("case", sorted(FORMERR_CASES))
def test_formerr(std_worker, transport, case):
    reply = raw_exchange(std_worker, transport, FORMERR_CASES[case])
    hdr = h.parse_header(reply)
    assert hdr["id"] == 0x4242
    assert hdr["qr"]
    assert hdr["rcode"] == dns.rcode.FORMERR, f"rcode {hdr['rcode']} for {case}"
    assert not hdr["aa"], "FORMERR must have AA=0"
    assert not hdr["ra"]
    assert hdr["ancount"] == 0


def test_badvers(std_worker, transport):
    r = ask(std_worker, transport, "example.com.", "TXT", edns=1)
    assert r.rcode() == dns.rcode.BADVERS, dns.rcode.to_text(r.rcode())
    assert r.edns == 0, "BADVERS answer must carry an OPT of version 0"
    assert r.answer == []
    assert r.flags & dns.flags.QR and not r.flags & dns.flags.RA


def test_edns0_answer_has_opt_and_ignores_unknown_option(std_worker, transport):
    unknown = dns.edns.GenericOption(65001, b"xyz")
    r = ask(std_worker, transport, "example.com.", "TXT", edns=0, options=[unknown])
    rrset = single_answer(r, "example.com.", "TXT", TXT_TTL)
    assert h.txt_strings(rrset) == [SPF]
    assert r.edns == 0, "an EDNS query gets an OPT record back"
    assert h.edns_option(r, 65001) is None, "unknown options must not be echoed"


def test_do_bit_copied(std_worker, transport):
    # RFC 3225 3: the DO bit of the query is copied into the response.
    q = h.make_query("example.com.", "TXT", edns=0)
    q.want_dnssec(True)
    r = h.query(std_worker.port, q, transport)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.ednsflags & dns.flags.DO, "DO bit not copied"
    r = ask(std_worker, transport, "example.com.", "TXT", edns=0)
    assert not r.ednsflags & dns.flags.DO


def test_longest_name(std_worker, transport):
    labels = ["a" * 63, "b" * 63, "c" * 63, "d" * 49, "example", "com"]  # 255 octets on the wire
    qname = ".".join(labels) + "."
    assert len(dns.name.from_text(qname).to_wire()) == 255
    rrset = single_answer(ask(std_worker, transport, qname, "TXT"), qname, "TXT", TXT_TTL)
    assert h.txt_strings(rrset) == [SPF]


def test_binary_label_below_domain_answered(std_worker, transport):
    # RFC 2181 11: a label may hold any octets. Only the labels of D and above matter for the
    # Public Suffix List; a name under example.com is in the zone example.com whatever its
    # lower labels hold (docs/CONTRACT.md: "Every name at or under D exists in the zone D").
    name = dns.name.Name([b"A\x00b.c\xff", b"ExAmple", b"com", b""])
    q = h.make_query(name, "TXT", qid=0x7777)
    reply = raw_exchange(std_worker, transport, q.to_wire())
    qbytes = q.to_wire()[12:]
    assert reply[12:12 + len(qbytes)] == qbytes
    r = dns.message.from_wire(reply)
    assert r.rcode() == dns.rcode.NOERROR, (
        f"{name} TXT (zone example.com) got {dns.rcode.to_text(r.rcode())}: the zone is decided by the labels "
        "of D and above; odd octets in a label below D must not make the name 'without registrable domain'")
    assert r.answer[0].name.labels == name.labels, "answer owner must be the query name byte for byte"
    assert h.txt_strings(r.answer[0]) == [SPF]


@pytest.mark.parametrize("labels,rcode", [
    # The README's examples: below D any octet is fine (RFC 2181 11)...
    ([b"a.b", b"example", b"com"], dns.rcode.NOERROR),
    ([b"b\xc3\xbccher", b"example", b"com"], dns.rcode.NOERROR),
    # ...in the registrable or public-suffix part it leaves no registrable domain.
    ([b"example", b"a.b"], dns.rcode.REFUSED),
    ([b"b\xc3\xbccher", b"com"], dns.rcode.REFUSED),
    ([b"www", b"example", b"c\x01m"], dns.rcode.REFUSED),
])
def test_odd_octets_matter_only_in_d_and_above(std_worker, transport, labels, rcode):
    name = dns.name.Name([*labels, b""])
    r = dns.message.from_wire(raw_exchange(std_worker, transport, h.make_query(name, "TXT").to_wire()))
    assert r.rcode() == rcode, f"{name}: {dns.rcode.to_text(r.rcode())}"
    assert bool(r.flags & dns.flags.AA) == (rcode == dns.rcode.NOERROR)


def test_nsid_when_requested(std_worker, transport):
    r = ask(std_worker, transport, "example.com.", "TXT", edns=0,
            options=[dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")])
    assert r.rcode() == dns.rcode.NOERROR
    opt = h.edns_option(r, 3)
    assert opt is not None, f"no NSID option in {r.options}"
    assert h.option_data(opt) == IDENTITY.encode()


def test_nsid_not_sent_unless_requested(std_worker, transport):
    r = ask(std_worker, transport, "example.com.", "TXT", edns=0)
    assert h.edns_option(r, 3) is None


def test_nsid_without_identity(plain_worker, transport):
    r = ask(plain_worker, transport, "example.com.", "TXT", edns=0,
            options=[dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")])
    assert r.rcode() == dns.rcode.NOERROR
    opt = h.edns_option(r, 3)
    assert opt is None or h.option_data(opt) == b"", f"NSID without identity: {opt}"


def test_response_is_dropped_udp(std_worker):
    wire = bytearray(h.make_query("example.com.", "SOA").to_wire())
    wire[2] |= 0x80  # QR=1
    assert h.udp_exchange(std_worker.port, bytes(wire), timeout=h.NO_ANSWER_TIMEOUT) is None, \
        "a message with QR=1 must never be answered"
    # The worker is still alive.
    h.query(std_worker.port, h.make_query("example.com.", "SOA"), "udp")


def test_response_is_dropped_tcp(std_worker):
    bad = bytearray(h.make_query("example.com.", "SOA", qid=0x1111).to_wire())
    bad[2] |= 0x80
    good = h.make_query("example.com.", "SOA", qid=0x2222)
    with h.tcp_connect(std_worker.port) as s:
        h.tcp_send(s, bytes(bad))
        h.tcp_send(s, good.to_wire())
        try:
            reply = h.tcp_recv(s)
        except EOFError:
            return  # closing the connection is acceptable; answering the response is not
        assert h.parse_header(reply)["id"] == 0x2222, "the QR=1 message was answered"


@pytest.mark.parametrize("size", [0, 1, 5, 11])
def test_short_datagram_dropped(std_worker, size):
    assert h.udp_exchange(std_worker.port, b"\x12\x34\x01\x00\x00"[:size] + b"\x00" * max(0, size - 5),
                          timeout=h.NO_ANSWER_TIMEOUT) is None
    h.query(std_worker.port, h.make_query("example.com.", "SOA"), "udp")


# --- 0x20, header flags ----------------------------------------------------------------------------

@pytest.mark.parametrize("qname,qtype", [
    ("wWw.ExAmPlE.CoM.", "TXT"),
    ("_DmArC.eXaMpLe.Co.Uk.", "TXT"),
    ("ExAmPlE.cOm.", "MX"),
    ("ExAmPlE.cOm.", "SOA"),
])
def test_0x20_case_echoed(std_worker, transport, qname, qtype):
    r = ask(std_worker, transport, qname, qtype)
    assert r.question[0].name.to_text() == qname
    assert len(r.answer) == 1
    assert r.answer[0].name.to_text() == qname, f"answer owner {r.answer[0].name} != {qname}"


def test_0x20_in_raw_bytes(std_worker, transport):
    q = h.make_query("wWw.ExAmPlE.CoM.", "TXT", qid=0x0AB0)
    reply = raw_exchange(std_worker, transport, q.to_wire())
    qbytes = q.to_wire()[12:]
    assert reply[12:12 + len(qbytes)] == qbytes, "question must be copied byte for byte"


@pytest.mark.parametrize("rd", [False, True])
@pytest.mark.parametrize("cd", [False, True])
@pytest.mark.parametrize("qname,qtype", [("example.com.", "TXT"), ("com.", "SOA"), ("example.com.", "A")])
def test_header_flags(std_worker, transport, rd, cd, qname, qtype):
    q = h.make_query(qname, qtype, rd=rd, cd=cd, ad=True)
    hdr = h.parse_header(raw_exchange(std_worker, transport, q.to_wire()))
    assert hdr["id"] == q.id
    assert hdr["qr"] is True
    assert hdr["opcode"] == 0
    assert hdr["ra"] is False
    assert hdr["ad"] is False
    assert hdr["z"] is False
    assert hdr["tc"] is False
    assert hdr["rd"] is rd
    assert hdr["cd"] is cd


# --- truncation --------------------------------------------------------------------------------------

BIG_NS = [f"ns{i}-{'a' * 50}.parking-provider.example.net" for i in range(10)]
BIG_ADDRS = {ns: [f"192.0.2.{10 + i}", f"198.51.100.{10 + i}", f"2001:db8::{i + 1:x}", f"2001:db8:1::{i + 1:x}"]
             for i, ns in enumerate(BIG_NS)}


@pytest.fixture(scope="module")
def big_worker(tmp_path_factory):
    args = []
    for ns in BIG_NS:
        args += ["-n", f"{ns}:{','.join(BIG_ADDRS[ns])}"]
    w = start_worker(tmp_path_factory.mktemp("big"), *args)
    yield w
    w.stop()
    assert_clean(w)


def test_udp_truncated_without_edns(big_worker):
    q = h.make_query("example.com.", "NS")
    reply = h.udp_exchange(big_worker.port, q.to_wire())
    assert reply is not None
    assert len(reply) <= 512, f"UDP answer without EDNS is {len(reply)} bytes"
    hdr = h.parse_header(reply)
    assert hdr["id"] == q.id and hdr["qr"]
    assert hdr["tc"], "answer larger than 512 bytes must come back with TC=1"
    assert hdr["rcode"] == 0
    assert hdr["aa"]
    assert hdr["qdcount"] == 1
    qbytes = q.to_wire()[12:]
    assert reply[12:12 + len(qbytes)] == qbytes, "a truncated answer still echoes the question"


@pytest.mark.parametrize("payload", [512, 600, 1000])
def test_udp_edns_small_payload_respected(big_worker, payload):
    q = h.make_query("example.com.", "NS", edns=0, payload=payload)
    reply = h.udp_exchange(big_worker.port, q.to_wire())
    assert reply is not None
    assert len(reply) <= payload, f"UDP answer is {len(reply)} bytes, client said {payload}"
    assert_complete_or_truncated(reply)


def assert_complete_or_truncated(reply):
    """Either TC=1, or the whole NS RRset is there; glue for servers outside the zone may be
    left out without TC (RFC 9471 3), but any glue RRset present is complete."""
    r = dns.message.from_wire(reply)
    if r.flags & dns.flags.TC:
        return
    assert len(r.answer) == 1 and len(r.answer[0]) == len(BIG_NS), "TC=0 but the NS RRset is incomplete"
    for rr in r.additional:
        if rr.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            want = {a for a in BIG_ADDRS[rr.name.to_text().rstrip(".").lower()]
                    if (":" in a) == (rr.rdtype == dns.rdatatype.AAAA)}
            assert {rd.address for rd in rr} == want, f"partial glue RRset {rr}"


def test_edns_payload_below_512_treated_as_512(std_worker):
    # RFC 6891 6.2.3: a requestor's payload size below 512 is treated as 512.
    q = h.make_query("example.com.", "NS", edns=0, payload=100)
    reply = h.udp_exchange(std_worker.port, q.to_wire())
    assert reply is not None
    assert 100 < len(reply) <= 512, f"reply of {len(reply)} bytes"
    r = dns.message.from_wire(reply)
    assert not r.flags & dns.flags.TC, "an answer that fits 512 bytes must not be truncated for payload 100"
    assert len(r.answer) == 1 and len(r.answer[0]) == 2


def test_udp_edns_size_respected(big_worker):
    q = h.make_query("example.com.", "NS", edns=0, payload=4096)
    reply = h.udp_exchange(big_worker.port, q.to_wire())
    assert reply is not None
    assert len(reply) <= 1232, f"UDP answer is {len(reply)} bytes, above the 1232 cap"
    assert_complete_or_truncated(reply)


def test_tcp_not_truncated(big_worker):
    q = h.make_query("example.com.", "NS")
    reply = h.tcp_exchange(big_worker.port, q.to_wire())
    assert len(reply) > 512
    r = dns.message.from_wire(reply)
    assert not r.flags & dns.flags.TC
    assert sorted(rd.target.to_text() for rd in r.answer[0]) == sorted(ns + "." for ns in BIG_NS)
    glue = {}
    for rr in r.additional:
        glue.setdefault(rr.name.to_text().lower(), set()).update(rd.address for rd in rr)
    assert glue == {ns + ".": set(a) for ns, a in BIG_ADDRS.items()}


def test_optional_glue_kept_as_far_as_it_fits(tmp_path):
    # 13 name servers outside the zone, 2 addresses each, no EDNS: the NS RRset fits 512
    # octets, all 26 glue records do not. The answer keeps the glue of as many servers as fit
    # (each server's whole), without TC (RFC 9471 3).
    names = [f"ns{i}.parking-provider.example.net" for i in range(13)]
    args = []
    for i, ns in enumerate(names):
        args += ["-n", f"{ns}:192.0.2.{i + 1},2001:db8::{i + 1:x}"]
    w = start_worker(tmp_path, *args)
    try:
        reply = h.udp_exchange(w.port, h.make_query("example.com.", "NS").to_wire())
        assert reply is not None and len(reply) <= 512
        r = dns.message.from_wire(reply)
        assert not r.flags & dns.flags.TC
        assert len(r.answer[0]) == 13
        kept = {rr.name.to_text().rstrip(".") for rr in r.additional}
        assert 0 < len(kept) < 13, f"glue of {len(kept)} servers"
        assert kept == set(names[:len(kept)]), "glue follows the NS order"
        for rr in r.additional:
            assert len(rr) == 1  # one A and one AAAA per server: each RRset whole
        assert len(r.additional) == 2 * len(kept)
    finally:
        w.stop()
    assert_clean(w)


def test_small_answer_not_truncated_on_big_worker(big_worker):
    r = h.query(big_worker.port, h.make_query("example.com.", "TXT"), "udp")
    assert not r.flags & dns.flags.TC
    assert h.txt_strings(r.answer[0]) == [SPF]


# --- independent clients: dig and kdig --------------------------------------------------------------

def run_client(tool, worker, *args):
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} not installed")
    cmd = [exe, f"@{worker.host}", "-p", str(worker.port), *args]
    if tool == "dig":
        cmd += ["+time=2", "+tries=1"]
    else:
        cmd += ["+time=2", "+retry=0"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}: {p.stdout} {p.stderr}"
    return p.stdout


@pytest.mark.parametrize("tool", ["dig", "kdig"])
@pytest.mark.parametrize("tcp", [False, True])
def test_clients_short_answers(std_worker, tool, tcp):
    extra = ["+tcp"] if tcp else []
    short = lambda *a: run_client(tool, std_worker, *extra, "+short", *a).strip()  # noqa: E731
    assert short("example.com", "TXT") == f'"{SPF}"'
    assert short("_dmarc.example.com", "TXT") == f'"{DMARC_FULL}"'
    assert short("sel._domainkey.example.com", "TXT") == f'"{DKIM}"'
    assert short("example.com", "MX") == "0 ."
    assert short("example.com", "CAA") == '0 issue ";"'
    assert sorted(short("example.com", "NS").split()) == sorted([NS1 + ".", NS2 + "."])
    assert short("example.com", "A") == ""
    assert short(NS1, "A") == NS1_ADDRS[0]
    assert short("id.server", "CH", "TXT") == f'"{IDENTITY}"'


def header_of(output):
    status = re.search(r"status: (\w+)", output)
    flags = re.search(r"flags: ([a-z ]*);", output, re.IGNORECASE)
    assert status and flags, f"cannot parse client output:\n{output}"
    return status.group(1), set(flags.group(1).split())


@pytest.mark.parametrize("tool", ["dig", "kdig"])
def test_clients_full_output(std_worker, tool):
    out = run_client(tool, std_worker, "+norecurse", "example.com", "SOA")
    status, flags = header_of(out)
    assert status == "NOERROR"
    assert flags == {"qr", "aa"}, f"flags {flags}"
    assert re.search(rf"example\.com\.\s+3600\s+IN\s+SOA\s+{re.escape(NS1)}\.\s", out), out

    out = run_client(tool, std_worker, "+norecurse", "com", "SOA")
    status, flags = header_of(out)
    assert status == "REFUSED"
    assert flags == {"qr"}, f"flags {flags}"

    out = run_client(tool, std_worker, "+recurse", "www.example.com", "AAAA")
    status, flags = header_of(out)
    assert status == "NOERROR"
    assert flags == {"qr", "aa", "rd"}, f"flags {flags}"
    assert re.search(r"example\.com\.\s+3600\s+IN\s+SOA\s", out), out


@pytest.mark.parametrize("tool", ["dig", "kdig"])
def test_clients_nsid(std_worker, tool):
    out = run_client(tool, std_worker, "+nsid", "example.com", "TXT")
    line = [ln for ln in out.splitlines() if "NSID" in ln]
    assert line and IDENTITY in line[0], f"no NSID {IDENTITY!r} in:\n{out}"


# --- settings only the configuration file has ---------------------------------------------------------

LANDING = ["192.0.2.80", "2001:db8::80"]
IODEF = "mailto:security@park.example.net"
CFG_SOA = {"rname": "admin.park.example.net", "serial": 2024010101, "refresh": 1000, "retry": 200,
           "expire": 100000, "minimum": 300, "ttl": 900}


@pytest.fixture(scope="module")
def config_worker(tmp_path_factory):
    d = tmp_path_factory.mktemp("cfg")
    cfg = d / "config.json"
    cfg.write_text(json.dumps({
        "nameservers": [f"{NS1}:{','.join(NS1_ADDRS)}", f"{NS2}:{','.join(NS2_ADDRS)}"],
        "landing": LANDING,
        "deny": ["blocked.com"],
        "caa_iodef": IODEF,
        "ttl": 600,
        "ns_ttl": 7200,
        "soa": CFG_SOA,
    }))
    w = start_worker(d, "-c", str(cfg))
    yield w
    w.stop()
    assert_clean(w)


@pytest.mark.parametrize("qname", ["example.com.", "www.example.com.", "WwW.example.co.uk."])
def test_landing_addresses(config_worker, transport, qname):
    a = single_answer(ask(config_worker, transport, qname, "A"), qname, "A", 600)
    assert [rd.address for rd in a] == [LANDING[0]]
    aaaa = single_answer(ask(config_worker, transport, qname, "AAAA"), qname, "AAAA", 600)
    assert [rd.address for rd in aaaa] == [LANDING[1]]


@pytest.mark.parametrize("qname", ["mail.example.com.", "a.www.example.com."])
def test_landing_only_at_apex_and_www(config_worker, transport, qname):
    assert_nodata(ask(config_worker, transport, qname, "A"), "example.com.", neg_ttl=300)


def test_configured_soa(config_worker, transport):
    rrset = single_answer(ask(config_worker, transport, "example.com.", "SOA"), "example.com.", "SOA", 900)
    soa = rrset[0]
    assert soa.mname == dns.name.from_text(NS1)
    assert soa.rname == dns.name.from_text(CFG_SOA["rname"])
    assert (soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum) == (
        CFG_SOA["serial"], CFG_SOA["refresh"], CFG_SOA["retry"], CFG_SOA["expire"], CFG_SOA["minimum"])


def test_soa_rname_in_mailbox_form(worker_factory, tmp_path, transport):
    cfg = tmp_path / "rname.json"
    cfg.write_text(json.dumps({"nameservers": [f"{NS1}:{NS1_ADDRS[0]}"], "soa": {"rname": "Hostmaster@Park.example.net"}}))
    w = worker_factory("-c", str(cfg))
    rrset = single_answer(ask(w, transport, "example.com.", "SOA"), "example.com.", "SOA", 3600)
    assert rrset[0].rname == dns.name.from_text("hostmaster.park.example.net.")


def test_configured_ttls(config_worker, transport):
    single_answer(ask(config_worker, transport, "example.com.", "TXT"), "example.com.", "TXT", 600)
    single_answer(ask(config_worker, transport, "example.com.", "MX"), "example.com.", "MX", 600)
    single_answer(ask(config_worker, transport, "example.com.", "NS"), "example.com.", "NS", 7200)
    single_answer(ask(config_worker, transport, NS1 + ".", "A"), NS1 + ".", "A", 7200)


def test_caa_with_iodef(config_worker, transport):
    rrset = single_answer(ask(config_worker, transport, "example.com.", "CAA"), "example.com.", "CAA", 600)
    assert sorted((rd.flags, rd.tag, rd.value) for rd in rrset) == [
        (0, b"iodef", IODEF.encode()), (0, b"issue", b";")]


@pytest.mark.parametrize("qname,qtype", [("blocked.com.", "TXT"), ("www.blocked.com.", "A"),
                                         ("BLOCKED.com.", "SOA"), ("_dmarc.blocked.com.", "TXT")])
def test_denied_domain_refused(config_worker, transport, qname, qtype):
    assert_refused_not_aa(ask(config_worker, transport, qname, qtype))


# --- Public Suffix List selection ---------------------------------------------------------------------

def test_psl_private_section(worker_factory, transport):
    w = worker_factory("-n", f"{NS1}:{NS1_ADDRS[0]}", "--psl-private")
    assert_nodata(ask(w, transport, "a.foo.github.io.", "A"), "foo.github.io.")
    assert_refused_not_aa(ask(w, transport, "github.io.", "SOA"))
    assert_nodata(ask(w, transport, "www.example.co.uk.", "A"), "example.co.uk.")


def test_psl_file(worker_factory, tmp_path, transport):
    # The system's list with one more rule: an operator's own copy. (A file far smaller than a
    # real list is refused: see test_lifecycle's psl_file_not_a_list.)
    system = Path("/usr/share/publicsuffix/public_suffix_list.dat").read_text()
    psl = tmp_path / "psl.dat"
    psl.write_text(system.replace("// ===END ICANN DOMAINS===", "foo.com\n// ===END ICANN DOMAINS===", 1))
    w = worker_factory("-n", f"{NS1}:{NS1_ADDRS[0]}", "--psl-file", str(psl))
    assert_nodata(ask(w, transport, "a.b.foo.com.", "A"), "b.foo.com.")
    assert_refused_not_aa(ask(w, transport, "foo.com.", "SOA"))
    assert_nodata(ask(w, transport, "www.example.com.", "A"), "example.com.")
