// Every row of docs/CONTRACT.md's answer table, through Policy::respond, decoded independently.
#include <doctest/doctest.h>

#include <libpsl.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "dns/policy.hpp"
#include "dns_test_util.hpp"
#include "park_settings.hpp"

using namespace dp::dns;
using namespace dptest;

namespace {

PolicySettings base_settings() { return park_settings(); }

struct Ask {
    explicit Ask(const Policy& pol, bool over_tcp = false) : p(pol), tcp(over_tcp) {}
    const Policy& p;
    bool tcp;
    size_t cap = 65535;
    Outcome last{};
    Msg operator()(const std::vector<uint8_t>& q) {
        std::vector<uint8_t> out(cap);
        size_t n = p.respond(q.data(), q.size(), out.data(), out.size(), Transport{tcp, 300}, last);
        REQUIRE(n > 0);
        out.resize(n);
        return decode(out);
    }
    Msg operator()(const std::string& name, uint16_t t, const QueryOpts& o = {}) { return (*this)(make_query(name, t, o)); }
};

const Policy& policy() {
    static Policy p(base_settings());
    return p;
}

void check_soa_authority(const Msg& m, const std::string& zone) {
    REQUIRE(m.ns.size() == 1);
    CHECK(m.ns[0].type == type::SOA);
    CHECK(m.ns[0].name == zone);
    CHECK(m.ns[0].ttl == 3600);
}

void check_flags(const Msg& m, const QueryOpts& o = {}) {
    CHECK(m.qr);
    CHECK_FALSE(m.ra);
    CHECK_FALSE(m.ad);
    CHECK_FALSE(m.z);
    CHECK(m.rd == o.rd);
    CHECK(m.cd == o.cd);
    CHECK(m.id == o.id);
}

}  // namespace

TEST_CASE("SOA at D: mname is the first name server") {
    Ask ask{policy()};
    Msg m = ask("example.com", type::SOA);
    check_flags(m);
    CHECK(m.aa);
    CHECK(m.rcode == rcode::NOERROR);
    REQUIRE(m.an.size() == 1);
    CHECK(m.an[0].name == "example.com.");
    size_t off = m.an[0].rdata_off;
    CHECK(read_name(m.raw, off) == "ns1.park.example.");
    CHECK(read_name(m.raw, off) == "hostmaster.park.example.");
    CHECK(rd16(m.raw, off) == 0);
    CHECK(rd16(m.raw, off + 2) == 1);  // serial 1
    CHECK(m.ns.empty());
}

TEST_CASE("NS at D with glue in the additional section") {
    Ask ask{policy()};
    Msg m = ask("example.org", type::NS);
    CHECK(m.aa);
    REQUIRE(m.an.size() == 2);
    std::vector<std::string> targets;
    for (auto& rr : m.an) {
        size_t o = rr.rdata_off;
        targets.push_back(read_name(m.raw, o));
        CHECK(rr.ttl == 86400);
    }
    CHECK(targets == std::vector<std::string>{"ns1.park.example.", "ns2.park.example."});
    REQUIRE(m.ar.size() == 3);
    CHECK(m.ar[0].name == "ns1.park.example.");
    CHECK(m.ar[0].type == type::A);
    CHECK(m.ar[0].rdata == std::vector<uint8_t>{192, 0, 2, 53});
    CHECK(m.ar[1].type == type::AAAA);
    CHECK(m.ar[2].name == "ns2.park.example.");
}

TEST_CASE("TXT SPF at D and below, with 0x20 case echoed") {
    Ask ask{policy()};
    for (std::string name : {"eXample.COM", "www.Example.com", "a.b.c.example.com"}) {
        Msg m = ask(name, type::TXT);
        CHECK(m.aa);
        CHECK(m.qname == name + ".");
        REQUIRE(m.an.size() == 1);
        CHECK(m.an[0].name == name + ".");
        CHECK(txt(m.an[0]) == "v=spf1 -all");
        CHECK(m.an[0].ttl == 3600);
    }
}

TEST_CASE("DMARC at _dmarc.D and _dmarc.X, with rua and ruf") {
    Ask ask{policy()};
    const std::string tags = "v=DMARC1; p=reject; sp=reject; np=reject; adkim=s; aspf=s;";
    Msg m = ask("_dmarc.example.com", type::TXT);
    REQUIRE(m.an.size() == 1);
    CHECK(txt(m.an[0]) == tags + " rua=mailto:agg@park.example;");
    m = ask("_DMARC.mail.example.com", type::TXT);
    REQUIRE(m.an.size() == 1);
    CHECK(txt(m.an[0]) == tags + " rua=mailto:agg@park.example;");

    PolicySettings s = base_settings();
    s.rua.clear();
    Policy bare(s);
    Ask ask2{bare};
    CHECK(txt(ask2("_dmarc.example.com", type::TXT).an.at(0)) == tags);
    s.rua = "a@x.example";
    s.ruf = "f@x.example";
    Policy both(s);
    Ask ask3{both};
    CHECK(txt(ask3("_dmarc.example.com", type::TXT).an.at(0)) ==
          tags + " rua=mailto:a@x.example; ruf=mailto:f@x.example;");
}

TEST_CASE("DMARC tags: the original's record one setting away, others validated") {
    PolicySettings s = base_settings();
    s.dmarc_tags = "p=reject;";
    Policy original(s);
    Ask ask{original};
    CHECK(txt(ask("_dmarc.example.com", type::TXT).an.at(0)) == "v=DMARC1; p=reject; rua=mailto:agg@park.example;");

    CHECK(dmarc_record("p=quarantine;pct=50; fo=0:1:d ;ri=3600; t=y", "", "") ==
          "v=DMARC1; p=quarantine; pct=50; fo=0:1:d; ri=3600; t=y;");
    CHECK(dmarc_record(" P=reject ; psd=n ", "r@x.example", "") == "v=DMARC1; p=reject; psd=n; rua=mailto:r@x.example;");
    for (const char* bad : {"", ";", "sp=reject; p=reject", "p=reject; p=none", "p=deny", "p=reject; adkim=x",
                            "p=reject; pct=101", "p=reject; rua=mailto:a@b.example", "v=DMARC1; p=reject",
                            "p=reject; bogus=1", "p=reject; fo=2", "p=reject; sp", "p=reject; ri=99999999999"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(dmarc_record(bad, "", ""), ConfigError);
        s.dmarc_tags = bad;
        CHECK_THROWS_AS(Policy{s}, ConfigError);
    }
}

TEST_CASE("DKIM revoked key for any selector") {
    Ask ask{policy()};
    for (std::string name : {"s1._domainkey.example.com", "x.y._domainkey.sub.example.com", "_z._domainkey.example.com"}) {
        Msg m = ask(name, type::TXT);
        REQUIRE(m.an.size() == 1);
        CHECK(txt(m.an[0]) == "v=DKIM1; p=");
    }
    // _domainkey.D itself has no selector: no TXT there.
    Msg m = ask("_domainkey.example.com", type::TXT);
    CHECK(m.an.empty());
    check_soa_authority(m, "example.com.");
}

TEST_CASE("null MX and CAA at X; none at underscore names") {
    Ask ask{policy()};
    Msg m = ask("example.net", type::MX);
    REQUIRE(m.an.size() == 1);
    CHECK(m.an[0].rdata == std::vector<uint8_t>{0, 0, 0});
    m = ask("shop.example.net", type::CAA);
    REQUIRE(m.an.size() == 1);
    CHECK(m.an[0].rdata == std::vector<uint8_t>{0, 5, 'i', 's', 's', 'u', 'e', ';'});
    m = ask("_srv.example.net", type::MX);
    CHECK(m.an.empty());
    check_soa_authority(m, "example.net.");

    PolicySettings s = base_settings();
    s.caa_iodef = "mailto:sec@park.example";
    Policy p(s);
    Ask ask2{p};
    m = ask2("example.net", type::CAA);
    REQUIRE(m.an.size() == 2);
    CHECK(std::string(m.an[1].rdata.begin() + 2, m.an[1].rdata.end()) == "iodefmailto:sec@park.example");
}

TEST_CASE("RFC 8552 scoped names: an underscore label anywhere below D means no SPF, MX or CAA") {
    Ask ask{policy()};
    // The report authorization name of RFC 7489 7.1, MTA-STS, TLS reporting, SRV-style names.
    for (std::string name : {"example.org._report._dmarc.example.net", "a._mta-sts.example.net",
                             "_mta-sts.example.net", "_smtp._tls.example.net", "x._tcp.example.net",
                             "deep.er._a.example.net", "_dmarc._x.example.net", "s._domainkey._x.example.net",
                             "_domainkey._x.example.net", "_X.mail.example.net"}) {
        for (uint16_t t : {type::TXT, type::MX, type::CAA, type::ANY}) {
            CAPTURE(name);
            CAPTURE(t);
            Msg m = ask(name, t);
            CHECK(m.rcode == rcode::NOERROR);
            CHECK(m.aa);
            CHECK(m.an.empty());
            check_soa_authority(m, "example.net.");
        }
    }
    // The contract's own underscore rows keep working, at D and at any X.
    CHECK(txt(ask("_dmarc.example.net", type::TXT).an.at(0)).rfind("v=DMARC1;", 0) == 0);
    CHECK(txt(ask("_dmarc.a.b.example.net", type::TXT).an.at(0)).rfind("v=DMARC1;", 0) == 0);
    CHECK(txt(ask("s._domainkey.a.example.net", type::TXT).an.at(0)) == "v=DKIM1; p=");
    CHECK(txt(ask("_s.x._domainkey.example.net", type::TXT).an.at(0)) == "v=DKIM1; p=");
    // An underscore inside a label (not at its start) is an ordinary label.
    CHECK(txt(ask("a_b.example.net", type::TXT).an.at(0)) == "v=spf1 -all");
    CHECK(ask("a_b.example.net", type::MX).an.size() == 1);
}

TEST_CASE("A/AAAA: NODATA unless a landing page is configured") {
    Ask ask{policy()};
    for (uint16_t t : {type::A, type::AAAA}) {
        Msg m = ask("example.com", t);
        CHECK(m.aa);
        CHECK(m.rcode == rcode::NOERROR);
        CHECK(m.an.empty());
        check_soa_authority(m, "example.com.");
    }
    PolicySettings s = base_settings();
    parse_address("198.51.100.7", s.landing_a, s.landing_aaaa);
    parse_address("2001:db8::7", s.landing_a, s.landing_aaaa);
    Policy p(s);
    Ask ask2{p};
    CHECK(ask2("example.com", type::A).an.at(0).rdata == std::vector<uint8_t>{198, 51, 100, 7});
    CHECK(ask2("WWW.example.com", type::AAAA).an.size() == 1);
    CHECK(ask2("other.example.com", type::A).an.empty());
}

TEST_CASE("name-server host names answer their configured addresses") {
    Ask ask{policy()};
    Msg m = ask("NS1.park.example", type::A);
    REQUIRE(m.an.size() == 1);
    CHECK(m.an[0].rdata == std::vector<uint8_t>{192, 0, 2, 53});
    CHECK(m.an[0].ttl == 86400);
    m = ask("ns2.park.example", type::AAAA);  // no IPv6 configured: NODATA, not a contradiction
    CHECK(m.an.empty());
    check_soa_authority(m, "park.example.");
}

TEST_CASE("NODATA with the SOA of D for every other type and below D") {
    Ask ask{policy()};
    for (uint16_t t : {type::DS, type::DNSKEY, type::HTTPS, type::SVCB, type::PTR, type::SRV, type::CNAME,
                       uint16_t(65400)}) {
        Msg m = ask("a.example.co.uk", t);
        CHECK(m.aa);
        CHECK(m.rcode == rcode::NOERROR);
        CHECK(m.an.empty());
        check_soa_authority(m, "example.co.uk.");
    }
    CHECK(ask("sub.example.com", type::NS).an.empty());
    CHECK(ask("sub.example.com", type::SOA).an.empty());
    check_soa_authority(ask("sub.example.com", type::NS), "example.com.");
    // The SOA owner keeps the query's case (it points into the question).
    check_soa_authority(ask("X.ExAmple.com", type::DS), "ExAmple.com.");
}

TEST_CASE("ANY gets one small RRset (RFC 8482)") {
    Ask ask{policy()};
    Msg m = ask("example.com", type::ANY);
    REQUIRE(m.an.size() == 1);
    CHECK(m.an[0].type == type::TXT);
    m = ask("_other.example.com", type::ANY);
    CHECK(m.an.empty());
    check_soa_authority(m, "example.com.");
}

TEST_CASE("AXFR and IXFR are refused") {
    Ask ask{policy(), true};
    for (uint16_t t : {type::AXFR, type::IXFR}) {
        Msg m = ask("example.com", t);
        CHECK(m.rcode == rcode::REFUSED);
        CHECK_FALSE(m.aa);
    }
}

TEST_CASE("no registrable domain: REFUSED without AA") {
    Ask ask{policy()};
    for (std::string name : {"com", "co.uk", ".", "uk"}) {
        Msg m = ask(name, type::SOA);
        CHECK(m.rcode == rcode::REFUSED);
        CHECK_FALSE(m.aa);
        CHECK(m.an.empty());
        CHECK(m.qdcount == 1);
    }
}

TEST_CASE("allow and deny lists") {
    PolicySettings s = base_settings();
    s.deny = {"bad.example"};
    Policy p(s);
    Ask ask{p};
    CHECK(ask("www.bad.example", type::TXT).rcode == rcode::REFUSED);
    CHECK(ask("good.example", type::TXT).rcode == rcode::NOERROR);
    s.deny.clear();
    s.allow = {"good.example"};
    Policy p2(s);
    Ask ask2{p2};
    CHECK(ask2("bad.example", type::TXT).rcode == rcode::REFUSED);
    CHECK(ask2("x.good.example", type::TXT).rcode == rcode::NOERROR);
    s.allow = {"sub.good.example"};
    CHECK_THROWS_AS(Policy{s}, ConfigError);
}

TEST_CASE("opcode other than QUERY: NOTIMP") {
    Ask ask{policy()};
    QueryOpts o;
    o.opcode = 4;  // NOTIFY
    Msg m = ask("example.com", type::SOA, o);
    CHECK(m.rcode == rcode::NOTIMP);
    CHECK(m.opcode == 4);
    CHECK_FALSE(m.aa);
    // RD and CD are defined only for QUERY: cleared in the NOTIMP answer (ISC genreport's
    // opcodeflg test), as is every other flag the query set.
    o.opcode = 15;
    o.rd = o.cd = true;
    m = ask("example.com", type::SOA, o);
    CHECK(m.rcode == rcode::NOTIMP);
    CHECK(m.opcode == 15);
    CHECK_FALSE(m.rd);
    CHECK_FALSE(m.cd);
    CHECK_FALSE(m.aa);
    CHECK_FALSE(m.ra);
    CHECK_FALSE(m.ad);
    CHECK_FALSE(m.z);
    CHECK_FALSE(m.tc);
    // For QUERY they are copied.
    o.opcode = 0;
    m = ask("example.com", type::SOA, o);
    CHECK(m.rd);
    CHECK(m.cd);
}

TEST_CASE("FORMERR: QDCOUNT != 1, malformed question, several OPT") {
    Ask ask{policy()};
    QueryOpts o;
    o.qdcount = 0;
    Msg m = ask("example.com", type::A, o);
    CHECK(m.rcode == rcode::FORMERR);
    CHECK(ask.last.malformed == Malformed::QdCount);

    auto q = make_query("example.com", type::A);
    q[5] = 2;  // QDCOUNT 2 with one question
    CHECK(ask(q).rcode == rcode::FORMERR);

    auto bad = make_query("example.com", type::A);
    bad.resize(bad.size() - 3);  // question cut short
    m = ask(bad);
    CHECK(m.rcode == rcode::FORMERR);
    CHECK(m.qdcount == 0);

    QueryOpts e;
    e.edns = true;
    auto two = make_query("example.com", type::A, e);
    const std::vector<uint8_t> opt(two.end() - 11, two.end());
    two.insert(two.end(), opt.begin(), opt.end());
    two[11] = 2;
    m = ask(two);
    CHECK(m.rcode == rcode::FORMERR);
    CHECK(ask.last.malformed == Malformed::MultipleOpt);
}

TEST_CASE("responses and runts are dropped") {
    std::vector<uint8_t> out(512);
    Outcome o;
    QueryOpts r;
    r.qr = true;
    auto q = make_query("example.com", type::A, r);
    CHECK(policy().respond(q.data(), q.size(), out.data(), out.size(), Transport{}, o) == 0);
    CHECK(o.malformed == Malformed::IsResponse);
    CHECK(policy().respond(q.data(), 11, out.data(), out.size(), Transport{}, o) == 0);
    CHECK(o.malformed == Malformed::TooShort);
}

TEST_CASE("class other than IN: REFUSED; CHAOS identity") {
    Ask ask{policy()};
    QueryOpts ch;
    ch.qclass = klass::CH;
    Msg m = ask("id.server", type::TXT, ch);
    CHECK(m.rcode == rcode::NOERROR);
    REQUIRE(m.an.size() == 1);
    CHECK(m.an[0].klass == klass::CH);
    CHECK(txt(m.an[0]) == "worker-7");
    CHECK(ask("HOSTNAME.BIND", type::TXT, ch).an.size() == 1);
    CHECK(ask("version.bind", type::TXT, ch).rcode == rcode::REFUSED);
    QueryOpts hs;
    hs.qclass = 4;
    CHECK(ask("example.com", type::TXT, hs).rcode == rcode::REFUSED);

    PolicySettings s = base_settings();
    s.identity.clear();
    Policy anon(s);
    Ask ask2{anon};
    CHECK(ask2("id.server", type::TXT, ch).rcode == rcode::REFUSED);
}

TEST_CASE("EDNS: BADVERS, NSID, keepalive over TCP only, DO copied, unknown options ignored") {
    Ask ask{policy()};
    QueryOpts v1;
    v1.edns = true;
    v1.version = 1;
    Msg m = ask("example.com", type::TXT, v1);
    CHECK(m.rcode == rcode::BADVERS);
    CHECK(m.has_opt);
    CHECK(m.opt_version == 0);
    CHECK(m.an.empty());

    QueryOpts e;
    e.edns = true;
    e.nsid = true;
    e.keepalive = true;
    e.do_bit = true;
    m = ask("example.com", type::TXT, e);
    CHECK(m.has_opt);
    CHECK(m.opt_do);
    CHECK(m.opt_udp == 1232);
    REQUIRE(m.opt_options.size() == 1);  // UDP: no keepalive
    CHECK(m.opt_options[0].first == edns_opt::NSID);
    CHECK(std::string(m.opt_options[0].second.begin(), m.opt_options[0].second.end()) == "worker-7");

    Ask tcp{policy(), true};
    m = tcp("example.com", type::TXT, e);
    REQUIRE(m.opt_options.size() == 2);
    CHECK(m.opt_options[1].first == edns_opt::TCP_KEEPALIVE);
    CHECK(m.opt_options[1].second == std::vector<uint8_t>{0x01, 0x2C});  // 300 x 100 ms

    // An unknown option (code 65001) is ignored.
    auto q = make_query("example.com", type::TXT, QueryOpts{.edns = true});
    q.insert(q.end(), {0xFD, 0xE9, 0, 1, 0x42});
    q[q.size() - 6] = 5;  // OPT RDLENGTH
    m = ask(q);
    CHECK(m.rcode == rcode::NOERROR);
    CHECK(m.an.size() == 1);
    CHECK(m.opt_options.empty());
}

TEST_CASE("TC over UDP when the answer does not fit the client's size") {
    PolicySettings s;
    for (int i = 0; i < 13; ++i) {
        std::string name = "ns" + std::to_string(i) + ".a-rather-long-name-server-label-for-testing.park.example";
        s.nameservers.push_back(parse_nameserver(name + ":192.0.2." + std::to_string(i + 1) + ",2001:db8::" +
                                                 std::to_string(i + 1)));
    }
    Policy p(s);
    Ask udp{p};
    Msg m = udp("example.com", type::NS);
    // Out-of-zone glue is optional (RFC 9471 3): the NS set goes out whole without TC, with
    // the glue of as many servers as fit after it, each server's glue whole.
    CHECK_FALSE(m.tc);
    CHECK(m.an.size() == 13);
    CHECK(m.raw.size() <= 512);
    CHECK(m.ar.size() > 0);
    CHECK(m.ar.size() % 2 == 0);
    CHECK(m.ar.size() < 26);
    for (size_t i = 0; i < m.ar.size(); ++i) {
        CHECK(m.ar[i].name == "ns" + std::to_string(i / 2) + ".a-rather-long-name-server-label-for-testing.park.example.");
        CHECK(m.ar[i].type == (i % 2 == 0 ? type::A : type::AAAA));
    }

    Ask tcp{p, true};
    m = tcp("example.com", type::NS);
    CHECK(m.an.size() == 13);
    CHECK(m.ar.size() == 26);
    CHECK(m.raw.size() > 512);

    QueryOpts e;
    e.edns = true;
    e.udp_size = 4096;  // capped at 1232
    m = udp("example.com", type::NS, e);
    CHECK(m.raw.size() <= 1232);

    // Glue for servers inside D is required: if it does not fit, TC=1.
    m = udp("park.example", type::NS);
    CHECK(m.tc);
    CHECK(m.an.empty());
    CHECK(m.qdcount == 1);
    CHECK(udp.last.truncated);
    e.udp_size = 512;
    m = udp("park.example", type::NS, e);
    CHECK(m.tc);
    CHECK(m.has_opt);
}

TEST_CASE("registrable domains by the Public Suffix List") {
    const Policy& p = policy();
    CHECK(p.registrable_domain("a.b.example.co.uk") == "example.co.uk");
    CHECK(p.registrable_domain("co.uk").empty());
    CHECK(p.registrable_domain("com").empty());
    CHECK(p.registrable_domain(".").empty());
    CHECK(p.registrable_domain("WWW.Example.COM") == "example.com");
    CHECK(p.registrable_domain("shop.example.xn--p1ai") == "example.xn--p1ai");  // .рф in punycode
    CHECK(p.registrable_domain("foo.bar.blogspot.com") == "blogspot.com");      // ICANN section only
    CHECK(p.registrable_domain("a.b.c.d.e.f.g.h.i.j.example.co.uk") == "example.co.uk");
    CHECK(p.registrable_domain("x.city.kawasaki.jp") == "city.kawasaki.jp");  // exception rule
    CHECK(p.registrable_domain("a.b.kawasaki.jp") == "a.b.kawasaki.jp");      // wildcard rule
    // Asked twice: the memo in front of libpsl gives the same answers, and so does no memo.
    CHECK(p.registrable_domain("a.b.kawasaki.jp") == "a.b.kawasaki.jp");
    PolicySettings no_memo = base_settings();
    no_memo.psl.memo_entries = 0;
    Policy direct(no_memo);
    for (const char* n : {"a.b.example.co.uk", "x.city.kawasaki.jp", "a.b.kawasaki.jp", "co.uk", "shop.example.xn--p1ai"})
        CHECK(direct.registrable_domain(n) == p.registrable_domain(n));

    PolicySettings s = base_settings();
    s.psl.private_section = true;
    Policy priv(s);
    CHECK(priv.registrable_domain("foo.bar.blogspot.com") == "bar.blogspot.com");

    const std::string l63(63, 'a');
    CHECK(p.registrable_domain(l63 + ".example.com") == "example.com");
    CHECK(p.registrable_domain(l63 + ".com") == l63 + ".com");
    // 255 octets on the wire: 4 labels of 63 (with their length octets 256) is too long,
    // 3 x 63 + 61 + root is exactly 255.
    const std::string l61(61, 'b');
    Ask ask{p};
    Msg m = ask(l63 + "." + l63 + "." + l63 + "." + l61, type::TXT);
    CHECK(m.rcode == rcode::NOERROR);
    CHECK(m.an.size() == 1);
    auto q = make_query(l63 + "." + l63 + "." + l63 + "." + l63, type::TXT);
    CHECK(ask(q).rcode == rcode::FORMERR);
}

TEST_CASE("binary labels: allowed below D, never in D or its suffix") {
    Ask ask{policy()};
    auto q = make_query("ab.example.com", type::TXT);
    for (uint8_t c : {uint8_t('.'), uint8_t(0xC3), uint8_t(0), uint8_t(' ')}) {
        q[12 + 2] = c;  // first label below D holds an odd octet (RFC 2181 11)
        Msg m = ask(q);
        CHECK(m.rcode == rcode::NOERROR);
        REQUIRE(m.an.size() == 1);
        CHECK(txt(m.an[0]) == "v=spf1 -all");
        check_soa_authority(ask(make_query("x.example.com", type::DS)), "example.com.");
    }
    auto in_d = make_query("ab.example.com", type::TXT);
    in_d[12 + 3 + 3] = 0xC3;  // inside "example"
    CHECK(ask(in_d).rcode == rcode::REFUSED);
    auto in_tld = make_query("ab.example.com", type::TXT);
    in_tld[12 + 3 + 8 + 2] = '.';  // inside "com"
    CHECK(ask(in_tld).rcode == rcode::REFUSED);
    // A name-server host name is never matched through a binary label.
    auto host = make_query("x.ns1.park.example", type::A);
    host[13] = 0xFF;
    CHECK(ask(host).an.empty());
}

TEST_CASE("name compression: owners point into the question") {
    Ask ask{policy()};
    Msg m = ask("www.example.com", type::DS);
    // SOA owner example.com is a pointer to offset 12 + 4.
    const size_t rr = 12 + 17 + 4;
    CHECK(m.raw[rr] == 0xC0);
    CHECK(m.raw[rr + 1] == 16);
}

namespace {
// The registrable domain by asking libpsl about every suffix, longest first (the definition,
// without the memo or the rule-depth shortcut).
std::string reference_registrable(psl_ctx_st* ctx, const std::string& name, int type) {
    std::vector<std::string> labels;
    for (size_t at = 0;;) {
        const size_t dot = name.find('.', at);
        labels.push_back(name.substr(at, dot - at));
        if (dot == std::string::npos) break;
        at = dot + 1;
    }
    const int n = static_cast<int>(labels.size());
    auto join = [&](int from) {
        std::string s;
        for (int i = from; i < n; ++i) s += (i == from ? "" : ".") + labels[i];
        return s;
    };
    for (int i = std::max(0, n - PublicSuffix::kMaxSuffixLabels); i < n; ++i)
        if (psl_is_public_suffix2(ctx, join(i).c_str(), type)) return i == 0 ? "" : join(i - 1);
    return "";
}
}  // namespace

TEST_CASE("the public-suffix rule table agrees with libpsl for every rule of the list") {
    for (bool priv : {false, true}) {
        PolicySettings s = base_settings();
        s.psl.private_section = priv;
        Policy p(s);
        const std::string& file = p.psl().source();
        std::ifstream in(file);
        if (!in) {
            MESSAGE("no text list readable at " << file << "; the shortcut is off there");
            return;
        }
        psl_ctx_st* ctx = psl_load_file(file.c_str());
        REQUIRE(ctx);
        const int type = priv ? PSL_TYPE_ANY : PSL_TYPE_ICANN;
        size_t rules = 0, checked = 0, idn_rules = 0;
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty() || line.rfind("//", 0) == 0) continue;
            std::string rule = line.substr(0, line.find_first_of(" \t\r"));
            if (std::any_of(rule.begin(), rule.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
                // IDN rules: queries spell them in ACE form, and libpsl knows them that way too
                // (so a wrong conversion would show as a disagreement below).
                std::string in_ace;
                REQUIRE(PublicSuffix::ace_name(rule, in_ace));
                rule = in_ace;
                ++idn_rules;
            }
            ++rules;
            if (rule[0] == '!') rule.erase(0, 1);
            if (rule.rfind("*.", 0) == 0) rule.replace(0, 1, "wild");
            for (const std::string& prefix : {std::string(), std::string("a."), std::string("b.a."),
                                              std::string("d.c.b.a.")}) {
                const std::string name = prefix + rule;
                INFO(name);
                CHECK(p.registrable_domain(name) == reference_registrable(ctx, name, type));
                ++checked;
            }
        }
        // Rules the list spells in UTF-8 (queries spell them in ACE), and names no rule covers.
        for (const char* name : {"a.b.xn--55qx5d.cn", "b.xn--55qx5d.cn", "x.y.xn--fiqs8s", "a.xn--55qx5d.xn--fiqs8s",
                                 "a.b.xn--5rtp49c.jp", "a.b.xn--4it168d.jp", "z.y.xn--p1ai", "q.w.xn--zz-unknown",
                                 "a.b.c.notatld", "a.b.sch.uk", "a.b.c.sch.uk", "www.park-1.co.uk", "x.city.kawasaki.jp"}) {
            INFO(name);
            CHECK(p.registrable_domain(name) == reference_registrable(ctx, name, type));
        }
        // The binary (DAFSA) form of the same list has no readable rules: no shortcut, same answers.
        const std::string dafsa = file.substr(0, file.rfind('.')) + ".dafsa";
        if (std::ifstream(dafsa)) {
            PolicySettings ds = s;
            ds.psl.file = dafsa;
            Policy pd(ds);
            for (const char* name : {"www.park-1.co.uk", "a.b.sch.uk", "x.city.kawasaki.jp", "a.b.kawasaki.jp",
                                     "a.b.xn--55qx5d.cn", "foo.bar.blogspot.com", "a.b.c.notatld"}) {
                INFO(name);
                CHECK(pd.registrable_domain(name) == reference_registrable(ctx, name, type));
            }
        }
        psl_free(ctx);
        CHECK(rules > 5000);
        CHECK(idn_rules > 200);
        MESSAGE(checked << " names checked against libpsl (" << (priv ? std::string("all sections") : std::string("ICANN")) << ")");
    }
}

TEST_CASE("registrable domain of names with any octet and any case: per-octet reference agrees") {
    // The policy lower-cases and checks labels eight octets at a time; this compares it with
    // the plain definition, one octet at a time, over random wire names full of the octets
    // next to every boundary those word tricks test (A-1, Z+1, '!' - 1, DEL, 8-bit, '.', '_').
    // D shows as the owner of the SOA in a DS (NODATA) answer: a pointer to D's first label.
    Policy p(base_settings());
    Ask ask{p};
    psl_ctx_st* ctx = psl_load_file(p.psl().source().c_str());
    if (!ctx) ctx = psl_latest(nullptr);
    REQUIRE(ctx);
    auto host_octet = [](unsigned char c) { return c > 0x20 && c < 0x7F && c != '.'; };
    // The definition: from the right, labels of host-name octets only (an underscore label is
    // the last one looked at), at most kMaxSuffixLabels of them; the longest public suffix
    // plus one host-name label. Returns D's first label, or -1.
    auto reference = [&](const std::vector<std::string>& labels) {
        const int n = static_cast<int>(labels.size());
        auto host = [&](int i) { return std::all_of(labels[i].begin(), labels[i].end(), [&](char c) { return host_octet(static_cast<unsigned char>(c)); }); };
        auto join = [&](int from) {
            std::string s;
            for (int i = from; i < n; ++i) {
                if (i > from) s += '.';
                for (char c : labels[i]) s += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
            }
            return s;
        };
        int first = n;
        for (int i = n - 1; i >= std::max(0, n - PublicSuffix::kMaxSuffixLabels); --i) {
            if (!host(i)) break;
            if (labels[i].find('_') != std::string::npos) break;
            first = i;
        }
        for (int i = first; i < n; ++i) {
            if (!psl_is_public_suffix2(ctx, join(i).c_str(), PSL_TYPE_ICANN)) continue;
            return i == 0 || !host(i - 1) ? -1 : i - 1;
        }
        return -1;
    };
    const std::vector<std::vector<std::string>> tails = {
        {"com"}, {"CoM"}, {"co", "UK"}, {"UK"}, {"kawasaki", "JP"}, {"City", "Kawasaki", "jp"}, {"xn--P1AI"},
        {"Blogspot", "com"}, {"notatld"}, {"SCH", "uk"}, {"DE"}, {"github", "IO"}, {"c_m"}, {"co.", "uk"}, {"CO", "ZA"}, {"Ac", "zA"}};
    static const char kOdd[] = "@[`{AZaz09-_.!~ \x7f\x80\xff\x01";
    const std::string odd = std::string(kOdd, sizeof kOdd);  // with the NUL: a zero octet
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    auto rnd = [&] {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        return seed;
    };
    size_t checked = 0, found = 0;
    for (int round = 0; round < 20000; ++round) {
        std::vector<std::string> labels;
        const int extra = static_cast<int>(rnd() % 6);
        for (int i = 0; i < extra; ++i) {
            std::string l;
            const int len = 1 + static_cast<int>(rnd() % (rnd() % 4 == 0 ? 63 : 12));
            for (int j = 0; j < len; ++j) {
                const uint64_t r = rnd();
                l += r % 8 == 0 ? odd[(r >> 8) % odd.size()] : static_cast<char>(((r >> 8) % 2 ? 'a' : 'A') + (r >> 16) % 26);
            }
            labels.push_back(l);
        }
        for (const auto& l : tails[rnd() % tails.size()]) labels.push_back(l);
        size_t wire_len = 1;
        for (const auto& l : labels) wire_len += 1 + l.size();
        if (wire_len > kMaxNameWire) continue;
        // The query for a placeholder name of the same shape, then the labels' octets put in.
        std::string shape;
        for (const auto& l : labels) {
            if (!shape.empty()) shape.push_back('.');
            shape.append(l.size(), 'x');
        }
        auto q = make_query(shape, type::DS);
        std::vector<size_t> at;  // offset of each label's length octet in the message
        size_t o = kHeaderSize;
        for (const auto& l : labels) {
            at.push_back(o);
            std::memcpy(q.data() + o + 1, l.data(), l.size());
            o += 1 + l.size();
        }
        const int d = reference(labels);
        Msg m = ask(q);
        std::string shown;
        for (const auto& l : labels) {
            shown.push_back('[');
            shown.append(l);
            shown.push_back(']');
        }
        INFO(shown);
        if (d < 0) {
            CHECK(m.rcode == rcode::REFUSED);
        } else {
            CHECK(m.rcode == rcode::NOERROR);
            const size_t soa = kHeaderSize + wire_len + 4;  // first record after the question
            REQUIRE(m.raw.size() > soa + 1);
            CHECK(((m.raw[soa] & 0x3F) << 8 | m.raw[soa + 1]) == static_cast<int>(at[d]));
            ++found;
        }
        ++checked;
    }
    psl_free(ctx);
    CHECK(checked > 15000);
    CHECK(found > 3000);
    MESSAGE(checked << " names, " << found << " with a registrable domain");
}

TEST_CASE("ACE form of UTF-8 labels (RFC 3492)") {
    // Expected values from an independent encoder (Python's punycode codec) and RFC 3492 7.1.
    const std::pair<const char*, const char*> cases[] = {
        {"b\xC3\xBC" "cher", "xn--bcher-kva"},
        {"m\xC3\xBC" "nchen", "xn--mnchen-3ya"},
        {"\xE5\x8C\x97\xE6\xB5\xB7\xE9\x81\x93", "xn--djrs72d6uy"},  // 北海道
        {"3\xE5\xB9\xB4" "B\xE7\xB5\x84\xE9\x87\x91\xE5\x85\xAB\xE5\x85\x88\xE7\x94\x9F", "xn--3B-ww4c5e180e575a65lsy2b"},
        {"\xCE\xB5\xCE\xBB", "xn--qxam"},  // ελ
        {"\xC3\xA5" "lesund", "xn--lesund-hua"},
        {"\xE5\xB2\xA9\xE6\x89\x8B", "xn--djty4k"},  // 岩手
    };
    for (const auto& row : cases) {  // not a structured binding: clang 14 cannot capture one in INFO
        const auto& in = row.first;
        const auto& want = row.second;
        std::string out;
        INFO(want);
        REQUIRE(PublicSuffix::ace_label(in, out));
        CHECK(out == want);
    }
    std::string out;
    CHECK_FALSE(PublicSuffix::ace_label("\xC3", out));      // cut short
    CHECK_FALSE(PublicSuffix::ace_label("a\x80" "b", out));  // continuation octet first
    CHECK_FALSE(PublicSuffix::ace_label("\xE5\x8C" "x", out));
}
