// The balancer's answer cache, fed with the real worker policy's answers and checked with the
// independent decoder of dns_test_util.hpp.
#include <doctest/doctest.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "balancer/answer_cache.hpp"
#include "dns/policy.hpp"
#include "dns_test_util.hpp"
#include "park_settings.hpp"

using namespace dp::dns;
using dp::balancer::AnswerCache;
using dp::balancer::CacheSettings;
using namespace dptest;

namespace {

PolicySettings base_settings() {
    PolicySettings s = park_settings();
    s.ttl = 300;
    s.ns_ttl = 86400;
    s.soa_ttl = 3600;
    s.soa_minimum = 3600;
    return s;
}

const Policy& policy() {
    static Policy p(base_settings());
    return p;
}

// A query packet and its parse; Query points into the packet, so this is move-only (a moved
// vector keeps its buffer).
struct Ask {
    std::vector<uint8_t> pkt;
    Query q;
    ParseStatus st = ParseStatus::Drop;
    explicit Ask(std::vector<uint8_t> p) : pkt(std::move(p)) {
        Malformed why;
        st = parse_query(pkt.data(), pkt.size(), q, why);
    }
    Ask(const std::string& name, uint16_t t, const QueryOpts& o = {}) : Ask(make_query(name, t, o)) {}
    Ask(const Ask&) = delete;
    Ask(Ask&&) = default;
};

// The worker's answer as the balancer gets it (over TCP).
std::vector<uint8_t> answer(const Ask& a, const Policy& p = policy()) {
    std::vector<uint8_t> out(65535);
    Outcome o;
    size_t n = p.respond(a.pkt.data(), a.pkt.size(), out.data(), out.size(), Transport{true, 300}, o);
    REQUIRE(n > 0);
    out.resize(n);
    return out;
}

std::vector<uint8_t> get(AnswerCache& c, const Ask& a, uint64_t now_ms, bool allow_stale = false,
                         bool* stale = nullptr) {
    std::vector<uint8_t> out(8192);
    size_t n = c.lookup(a.q, now_ms, allow_stale, out.data(), out.size(), stale);
    out.resize(n);
    return out;
}

void put(AnswerCache& c, const Ask& a, uint64_t now_ms, const Policy& p = policy()) {
    auto ans = answer(a, p);
    c.insert(a.q, ans.data(), ans.size(), now_ms);
}

QueryOpts edns(bool do_bit = false, bool nsid = false, bool cd = false) {
    QueryOpts o;
    o.edns = true;
    o.do_bit = do_bit;
    o.nsid = nsid;
    o.cd = cd;
    return o;
}

std::vector<uint32_t> ttls(const Msg& m) {
    std::vector<uint32_t> v;
    for (auto* sec : {&m.an, &m.ns, &m.ar})
        for (auto& rr : *sec) v.push_back(rr.ttl);
    return v;
}

// Offset of the TTL field of each record (OPT included), in order, from the decoder.
std::vector<size_t> ttl_offsets(const std::vector<uint8_t>& m) {
    auto d = decode(m);
    std::vector<size_t> v;
    for (auto* sec : {&d.an, &d.ns, &d.ar})
        for (auto& rr : *sec) v.push_back(rr.rdata_off - 6);
    return v;
}

void set32(std::vector<uint8_t>& m, size_t off, uint32_t v) {
    m[off] = uint8_t(v >> 24);
    m[off + 1] = uint8_t(v >> 16);
    m[off + 2] = uint8_t(v >> 8);
    m[off + 3] = uint8_t(v);
}

CacheSettings settings() { return CacheSettings{}; }

}  // namespace

TEST_CASE("cacheable queries") {
    CHECK(AnswerCache::cacheable_query(Ask("example.com", type::A).q, ParseStatus::Ok));
    CHECK(AnswerCache::cacheable_query(Ask("example.com", type::A, edns(true, true, true)).q, ParseStatus::Ok));
    CHECK_FALSE(AnswerCache::cacheable_query(Ask("example.com", type::A).q, ParseStatus::FormErr));
    QueryOpts o;
    o.qclass = klass::CH;
    CHECK_FALSE(AnswerCache::cacheable_query(Ask("id.server", type::TXT, o).q, ParseStatus::Ok));
    o = edns();
    o.version = 1;
    Ask badvers("example.com", type::A, o);
    CHECK_FALSE(AnswerCache::cacheable_query(badvers.q, badvers.st));
    o = edns();
    o.keepalive = true;
    Ask ka("example.com", type::A, o);
    CHECK_FALSE(AnswerCache::cacheable_query(ka.q, ka.st));
    o = {};
    o.opcode = 2;
    Ask status("example.com", type::A, o);
    CHECK_FALSE(AnswerCache::cacheable_query(status.q, status.st));
    o = {};
    o.qdcount = 0;
    Ask noq("example.com", type::A, o);
    CHECK_FALSE(AnswerCache::cacheable_query(noq.q, noq.st));

    // Not-cacheable queries are refused by insert (counted) and never looked up.
    AnswerCache c(settings());
    put(c, ka, 0);
    put(c, badvers, 0);
    CHECK(c.size() == 0);
    CHECK(c.stats().not_cacheable.value() == 2);
    CHECK(get(c, ka, 0).empty());
    CHECK(c.stats().misses.value() == 0);
}

TEST_CASE("a hit is the worker's answer with the client's ID, RD and case") {
    AnswerCache c(settings());
    QueryOpts o1 = edns();
    o1.id = 1;
    o1.rd = true;
    Ask first("Example.COM", type::TXT, o1);
    Ask same_case_other_id("Example.COM", type::TXT, [] {
        QueryOpts o = edns();
        o.id = 0xBEEF;
        o.rd = false;
        return o;
    }());
    CHECK(get(c, first, 0).empty());
    CHECK(c.stats().misses.value() == 1);
    put(c, first, 0);
    REQUIRE(c.size() == 1);

    // At elapsed 0, byte for byte what the worker would have said to the new query.
    auto hit = get(c, same_case_other_id, 0);
    CHECK(hit == answer(same_case_other_id));
    CHECK(c.stats().hits.value() == 1);

    // Another case: question and compressed owner names follow the client's case.
    QueryOpts o2 = edns();
    o2.id = 0x4242;
    o2.rd = false;
    Ask other_case("eXaMpLe.com", type::TXT, o2);
    auto m = decode(get(c, other_case, 0));
    CHECK(m.id == 0x4242);
    CHECK_FALSE(m.rd);
    CHECK(m.qr);
    CHECK(m.qname == "eXaMpLe.com.");
    REQUIRE(m.an.size() == 1);
    CHECK(m.an[0].name == "eXaMpLe.com.");
    CHECK(txt(m.an[0]) == "v=spf1 -all");
    auto fresh = decode(answer(other_case));
    CHECK(fresh.an[0].name == m.an[0].name);
    CHECK(fresh.an[0].rdata == m.an[0].rdata);
    CHECK(m.has_opt);

    // Several answer shapes, looked up with different case, ID and RD.
    // (Not a structured binding: clang 14 cannot capture one in CAPTURE's lambda.)
    for (const auto& row : std::vector<std::pair<std::string, uint16_t>>{{"example.org", type::NS},
                                                                       {"www.example.net", type::MX},
                                                                       {"_dmarc.example.net", type::TXT},
                                                                       {"example.net", type::A},
                                                                       {"ns1.park.example", type::AAAA},
                                                                       {"x.y.example.co.uk", type::CAA}}) {
        const std::string& name = row.first;
        const uint16_t t = row.second;
        CAPTURE(name);
        put(c, Ask(name, t, edns()), 1000);
        std::string upper = name;
        for (char& ch : upper) ch = static_cast<char>(std::toupper(ch));
        QueryOpts o = edns();
        o.id = 77;
        o.rd = false;
        Ask again(upper, t, o);
        auto got = get(c, again, 1500);
        REQUIRE(!got.empty());
        auto g = decode(got);
        auto w = decode(answer(again));
        CHECK(g.id == 77);
        CHECK(g.qname == w.qname);
        CHECK(g.rcode == w.rcode);
        CHECK(g.aa == w.aa);
        CHECK(g.rd == false);
        REQUIRE(g.an.size() == w.an.size());
        REQUIRE(g.ns.size() == w.ns.size());
        REQUIRE(g.ar.size() == w.ar.size());
        for (size_t i = 0; i < g.an.size(); ++i) CHECK(g.an[i].name == w.an[i].name);
        for (size_t i = 0; i < g.ns.size(); ++i) CHECK(g.ns[i].name == w.ns[i].name);
        CHECK(ttls(g) == ttls(w));
    }
}

TEST_CASE("EDNS, DO, CD and NSID are part of the key") {
    AnswerCache c(settings());
    std::vector<QueryOpts> variants;
    variants.push_back(QueryOpts{});
    QueryOpts cd;
    cd.cd = true;
    variants.push_back(cd);
    variants.push_back(edns());
    variants.push_back(edns(true));
    variants.push_back(edns(false, true));
    variants.push_back(edns(false, false, true));
    variants.push_back(edns(true, true, true));
    for (size_t i = 0; i < variants.size(); ++i) {
        Ask a("example.com", type::TXT, variants[i]);
        put(c, a, 0);
        REQUIRE(c.size() == i + 1);
        for (size_t j = i + 1; j < variants.size(); ++j)
            CHECK(get(c, Ask("example.com", type::TXT, variants[j]), 0).empty());
    }
    for (auto& v : variants) {
        Ask a("EXAMPLE.com", type::TXT, v);
        auto got = get(c, a, 0);
        REQUIRE(!got.empty());
        auto g = decode(got);
        auto w = decode(answer(a));
        CHECK(g.has_opt == w.has_opt);
        CHECK(g.opt_do == w.opt_do);
        CHECK(g.cd == w.cd);
        CHECK(g.opt_options == w.opt_options);  // NSID only when asked for
    }
    // The type and the name are in the key too.
    CHECK(get(c, Ask("example.com", type::MX), 0).empty());
    CHECK(get(c, Ask("example.co", type::TXT), 0).empty());
    CHECK(get(c, Ask("www.example.com", type::TXT), 0).empty());
}

TEST_CASE("TTLs count down in whole seconds; OPT untouched; expiry at the TTL") {
    AnswerCache c(settings());
    Ask a("example.com", type::NS, edns(true));
    put(c, a, 0);
    auto w = decode(answer(a));
    REQUIRE(w.an.size() == 2);
    CHECK(w.an[0].ttl == 86400);
    for (auto& rr : w.ar) CHECK(rr.ttl == 86400);

    Ask t("example.com", type::TXT, edns(true));
    put(c, t, 0);
    auto m = decode(get(c, t, 10'000));
    REQUIRE(m.an.size() == 1);
    CHECK(m.an[0].ttl == 290);
    CHECK(m.has_opt);
    CHECK(m.opt_do);
    CHECK(m.opt_version == 0);
    CHECK(m.rcode == 0);
    CHECK(decode(get(c, t, 10'999)).an[0].ttl == 290);
    CHECK(decode(get(c, t, 11'000)).an[0].ttl == 289);
    CHECK(decode(get(c, t, 299'999)).an[0].ttl == 1);
    CHECK(c.stats().expired_dropped.value() == 0);
    CHECK(get(c, t, 300'000).empty());
    CHECK(c.stats().expired_dropped.value() == 1);
    CHECK(c.size() == 1);

    // Positive lifetime is the smallest TTL: NS and glue at 86400 all count down together.
    auto n = decode(get(c, a, 3'600'000 - 1));
    for (auto x : ttls(n)) CHECK(x == 86400 - 3599);
    // ...but max_ttl (3600) caps it.
    CHECK(get(c, a, 3'600'000).empty());

    // A clock going backwards never raises a TTL.
    put(c, t, 50'000);
    CHECK(decode(get(c, t, 40'000)).an[0].ttl == 300);
}

TEST_CASE("max_ttl caps the lifetime of a positive answer") {
    CacheSettings s;
    s.max_ttl = 60;
    AnswerCache c(s);
    Ask a("example.com", type::TXT);
    put(c, a, 0);
    CHECK(decode(get(c, a, 59'999)).an[0].ttl == 300 - 59);
    CHECK(get(c, a, 60'000).empty());
    s.max_ttl = 0;
    c.reconfigure(s);
    put(c, a, 0);
    CHECK(c.size() == 0);
}

TEST_CASE("negative answers: min(SOA TTL, SOA MINIMUM), capped by max_negative_ttl") {
    struct Case {
        uint32_t soa_ttl, minimum, cap, expect;
    };
    for (auto cs : {Case{900, 300, 3600, 300}, Case{200, 600, 3600, 200}, Case{900, 600, 100, 100}}) {
        CAPTURE(cs.soa_ttl);
        CAPTURE(cs.minimum);
        CacheSettings s;
        s.max_negative_ttl = cs.cap;
        s.max_ttl = 1;  // must not matter for negative answers
        AnswerCache c(s);
        Ask nodata("example.com", type::A);  // no landing page: NODATA with the SOA
        auto ans = answer(nodata);
        auto d = decode(ans);
        REQUIRE(d.an.empty());
        REQUIRE(d.ns.size() == 1);
        REQUIRE(d.ns[0].type == type::SOA);
        // The worker already sends the SOA with TTL min(TTL, MINIMUM); set both by hand so the
        // cache's own rule is what is tested.
        set32(ans, d.ns[0].rdata_off - 6, cs.soa_ttl);
        set32(ans, d.ns[0].rdata_off + d.ns[0].rdata.size() - 4, cs.minimum);
        c.insert(nodata.q, ans.data(), ans.size(), 0);
        REQUIRE(c.size() == 1);
        auto m = decode(get(c, nodata, uint64_t(cs.expect) * 1000 - 1));
        CHECK(m.ns[0].ttl == cs.soa_ttl - (cs.expect - 1));
        CHECK(get(c, nodata, uint64_t(cs.expect) * 1000).empty());

        // NXDOMAIN follows the same rule (the policy never says NXDOMAIN; make one).
        auto nx = ans;
        nx[3] = static_cast<uint8_t>((nx[3] & 0xF0) | rcode::NXDOMAIN);
        c.insert(nodata.q, nx.data(), nx.size(), 0);
        REQUIRE(c.size() == 1);
        auto g = decode(get(c, nodata, 0));
        CHECK(g.rcode == rcode::NXDOMAIN);
        CHECK(!get(c, nodata, uint64_t(cs.expect) * 1000 - 1).empty());
        CHECK(get(c, nodata, uint64_t(cs.expect) * 1000).empty());
    }

    // Without an SOA in the authority section a negative answer is not cached.
    AnswerCache c(settings());
    Ask nodata("example.com", type::A);
    auto ans = answer(nodata);
    auto d = decode(ans);
    REQUIRE(d.ns.size() == 1);
    std::vector<uint8_t> bare(ans.begin(), ans.begin() + nodata.q.question_end);
    bare[6] = bare[7] = bare[8] = bare[9] = bare[10] = bare[11] = 0;
    c.insert(nodata.q, bare.data(), bare.size(), 0);
    CHECK(c.size() == 0);
    CHECK(c.stats().not_cacheable.value() == 1);
}

TEST_CASE("only NOERROR and NXDOMAIN answers with QR=1, TC=0 are stored") {
    AnswerCache c(settings());
    Ask a("example.com", type::TXT, edns());
    auto good = answer(a);
    for (uint8_t rc : {rcode::SERVFAIL, rcode::REFUSED, rcode::FORMERR, rcode::NOTIMP, uint16_t(6), uint16_t(15)}) {
        auto m = good;
        m[3] = static_cast<uint8_t>((m[3] & 0xF0) | rc);
        c.insert(a.q, m.data(), m.size(), 0);
    }
    auto tc = good;
    tc[2] |= 0x02;
    c.insert(a.q, tc.data(), tc.size(), 0);
    auto qr0 = good;
    qr0[2] &= 0x7F;
    c.insert(a.q, qr0.data(), qr0.size(), 0);
    auto opcode = good;
    opcode[2] |= 2 << 3;
    c.insert(a.q, opcode.data(), opcode.size(), 0);
    // Extended rcode in OPT (BADVERS is 16: header 0, OPT 1).
    auto ext = good;
    REQUIRE(ext[ext.size() - 11 + 2] == 41);  // OPT last, no options
    ext[ext.size() - 6] = 1;
    c.insert(a.q, ext.data(), ext.size(), 0);
    CHECK(c.size() == 0);
    CHECK(c.stats().not_cacheable.value() == 10);

    // The policy's own refusals.
    Ask refused("com", type::A);
    put(c, refused, 0);
    Ask axfr("example.com", type::AXFR);
    put(c, axfr, 0);
    QueryOpts o;
    o.qclass = klass::CH;
    Ask chaos("id.server", type::TXT, o);
    put(c, chaos, 0);
    CHECK(c.size() == 0);
    CHECK(c.stats().inserts.value() == 0);

    c.insert(a.q, good.data(), good.size(), 0);
    CHECK(c.size() == 1);
    CHECK(c.stats().inserts.value() == 1);
}

TEST_CASE("TTL 0 or with the top bit set is not cached; an answer to another question is not cached") {
    AnswerCache c(settings());
    Ask a("example.com", type::NS);
    auto good = answer(a);
    auto offs = ttl_offsets(good);
    REQUIRE(offs.size() >= 3);
    for (uint32_t v : {0u, 0x80000000u, 0xFFFFFFFFu}) {
        auto m = good;
        set32(m, offs[2], v);  // one glue record
        c.insert(a.q, m.data(), m.size(), 0);
    }
    CHECK(c.size() == 0);
    auto m = good;
    set32(m, offs[2], 7);
    c.insert(a.q, m.data(), m.size(), 0);
    CHECK(c.size() == 1);
    CHECK(!get(c, a, 6'999).empty());
    CHECK(get(c, a, 7'000).empty());

    Ask other("example.org", type::NS);
    c.insert(other.q, good.data(), good.size(), 0);
    Ask other_type("example.com", type::MX);
    c.insert(other_type.q, good.data(), good.size(), 0);
    CHECK(c.size() == 0);
}

TEST_CASE("replacing an entry") {
    AnswerCache c(settings());
    Ask a("example.com", type::TXT);
    put(c, a, 0);
    auto ans = answer(a);
    auto offs = ttl_offsets(ans);
    set32(ans, offs[0], 1000);
    c.insert(a.q, ans.data(), ans.size(), 5'000);
    CHECK(c.size() == 1);
    CHECK(c.stats().inserts.value() == 2);
    CHECK(decode(get(c, a, 6'000)).an[0].ttl == 999);
    CHECK(c.bytes() == AnswerCache::entry_cost(ans.size(), 1));
    CHECK(c.stats().bytes.value() == int64_t(c.bytes()));
    CHECK(c.stats().entries.value() == 1);
}

TEST_CASE("serve-stale") {
    CacheSettings s;
    s.max_stale = 60;
    s.stale_ttl = 30;
    AnswerCache c(s);
    Ask a("example.com", type::NS, edns(true));
    Ask t("example.com", type::TXT, edns(true));
    put(c, t, 0);
    bool stale = true;
    CHECK(!get(c, t, 299'999, true, &stale).empty());
    CHECK_FALSE(stale);
    CHECK(get(c, t, 310'000, false, &stale).empty());
    CHECK_FALSE(stale);
    CHECK(c.size() == 1);  // kept: it may still be served stale
    auto g = get(c, t, 310'000, true, &stale);
    REQUIRE(!g.empty());
    CHECK(stale);
    auto m = decode(g);
    for (auto x : ttls(m)) CHECK(x == 30);
    CHECK(m.opt_do);  // OPT's TTL field is flags, not a TTL
    CHECK(m.opt_version == 0);
    CHECK(m.rcode == 0);
    CHECK(c.stats().stale_hits.value() == 1);
    CHECK(c.stats().hits.value() == 1);
    CHECK(!get(c, t, 359'999, true, &stale).empty());
    CHECK(get(c, t, 360'000, true, &stale).empty());
    CHECK_FALSE(stale);
    CHECK(c.size() == 0);
    CHECK(c.stats().expired_dropped.value() == 1);

    // Off: an expired entry is gone, allow_stale or not.
    s.max_stale = 0;
    c.reconfigure(s);
    put(c, t, 0);
    CHECK(get(c, t, 300'000, true, &stale).empty());
    CHECK(c.size() == 0);
}

TEST_CASE("the entry cap evicts, CLOCK keeps hot entries, expired entries go first") {
    CacheSettings s;
    s.max_entries = 100;
    AnswerCache c(s);
    for (int i = 0; i < 1000; ++i) {
        put(c, Ask("d" + std::to_string(i) + ".example.com", type::TXT), 0);
        REQUIRE(c.size() <= 100);
    }
    CHECK(c.size() == 100);
    CHECK(c.stats().evictions_capacity.value() == 900);
    CHECK(c.stats().inserts.value() == 1000);
    CHECK(c.stats().entries.value() == 100);

    s.max_entries = 50;
    AnswerCache hot(s);
    Ask h("hot.example.com", type::TXT);
    put(hot, h, 0);
    for (int i = 0; i < 500; ++i) {
        CHECK(!get(hot, h, 0).empty());
        put(hot, Ask("cold" + std::to_string(i) + ".example.com", type::TXT), 0);
    }
    CHECK(!get(hot, h, 0).empty());

    // All three referenced, one expired (but still servable stale): that one is evicted.
    PolicySettings ps = base_settings();
    ps.ttl = 10;
    Policy short_ttl(ps);
    s.max_entries = 3;
    s.max_stale = 60;
    AnswerCache c3(s);
    Ask x("x.example.org", type::NS), y("y.example.com", type::TXT), z("z.example.org", type::NS);
    put(c3, x, 0);
    put(c3, y, 0, short_ttl);
    put(c3, z, 0);
    for (auto* a : {&x, &y, &z}) CHECK(!get(c3, *a, 5'000).empty());
    put(c3, Ask("w.example.org", type::NS), 20'000);
    CHECK(c3.size() == 3);
    CHECK(!get(c3, x, 20'000).empty());
    CHECK(!get(c3, z, 20'000).empty());
    CHECK(get(c3, y, 20'000, true).empty());
    CHECK(c3.stats().evictions_capacity.value() == 1);
}

TEST_CASE("the byte cap evicts and is never exceeded") {
    CacheSettings s;
    s.max_bytes = 10000;
    AnswerCache c(s);
    for (int i = 0; i < 2000; ++i) {
        put(c, Ask("host" + std::to_string(i) + ".example.com", i % 2 ? type::TXT : type::A, edns()), 0);
        REQUIRE(c.bytes() <= 10000);
        REQUIRE(c.stats().bytes.value() <= 10000);
    }
    CHECK(c.size() > 10);
    CHECK(c.stats().evictions_capacity.value() == 2000 - c.size());

    // An answer bigger than the whole budget is refused, not stored by emptying the cache.
    s.max_bytes = 100;
    AnswerCache tiny(s);
    put(tiny, Ask("example.com", type::NS), 0);
    CHECK(tiny.size() == 0);
    CHECK(tiny.stats().not_cacheable.value() == 1);
}

TEST_CASE("reconfigure: shrinking evicts and compacts; lower caps shorten entries; 0 disables") {
    CacheSettings s;
    AnswerCache c(s);
    std::vector<Ask> asks;
    for (int i = 0; i < 1000; ++i) asks.emplace_back("r" + std::to_string(i) + ".example.com", type::TXT);
    for (auto& a : asks) put(c, a, 0);
    CHECK(c.size() == 1000);
    s.max_entries = 10;
    c.reconfigure(s);
    CHECK(c.size() == 10);
    CHECK(c.stats().evictions_capacity.value() == 990);
    size_t hits = 0;
    for (auto& a : asks) hits += get(c, a, 0).empty() ? 0 : 1;
    CHECK(hits == 10);  // the index was rebuilt consistently
    for (int i = 0; i < 100; ++i) put(c, Ask("again" + std::to_string(i) + ".example.com", type::TXT), 0);
    CHECK(c.size() == 10);

    s.max_bytes = 3 * AnswerCache::entry_cost(answer(asks[0]).size(), 1);
    c.reconfigure(s);
    CHECK(c.size() <= 3);
    CHECK(c.bytes() <= s.max_bytes);

    s.max_ttl = 100;
    c.reconfigure(s);
    put(c, asks[0], 0);
    s.max_ttl = 20;
    c.reconfigure(s);
    CHECK(!get(c, asks[0], 19'999).empty());
    CHECK(get(c, asks[0], 20'000).empty());

    s.max_entries = 0;
    c.reconfigure(s);
    CHECK(c.size() == 0);
    CHECK(c.bytes() == 0);
    put(c, asks[0], 0);
    CHECK(c.size() == 0);
    CHECK(get(c, asks[0], 0).empty());

    s.max_entries = 5;
    c.reconfigure(s);
    put(c, asks[0], 0);
    CHECK(!get(c, asks[0], 0).empty());
}

TEST_CASE("sweep drops entries past serving") {
    CacheSettings s;
    s.max_stale = 10;
    AnswerCache c(s);
    PolicySettings ps = base_settings();
    ps.ttl = 5;
    Policy p(ps);
    for (int i = 0; i < 100; ++i) put(c, Ask("s" + std::to_string(i) + ".example.com", type::TXT), 0, p);
    for (int i = 0; i < 100; ++i) put(c, Ask("l" + std::to_string(i) + ".example.com", type::TXT), 0);
    CHECK(c.stats().expired_dropped.value() == 0);
    CHECK(c.sweep(14'999, 1000) == 0);
    CHECK(c.sweep(15'000, 1000) == 100);
    CHECK(c.size() == 100);
    CHECK(c.stats().expired_dropped.value() == 100);
    for (int i = 0; i < 100; ++i)
        CHECK(!get(c, Ask("l" + std::to_string(i) + ".example.com", type::TXT), 15'000).empty());

    // Inserts sweep a little too: dead entries go without being looked up or pushed out.
    AnswerCache d(s);
    for (int i = 0; i < 10; ++i) put(d, Ask("s" + std::to_string(i) + ".example.com", type::TXT), 0, p);
    for (int i = 0; i < 10; ++i) put(d, Ask("l" + std::to_string(i) + ".example.com", type::TXT), 100'000);
    CHECK(d.size() == 10);
    CHECK(d.stats().expired_dropped.value() == 10);
    CHECK(d.stats().evictions_capacity.value() == 0);
}

TEST_CASE("the index stays consistent under churn") {
    CacheSettings s;
    s.max_entries = 5000;
    AnswerCache c(s);
    std::vector<std::string> names;
    for (int i = 0; i < 20000; ++i) names.push_back("c" + std::to_string(i * 7919 % 100003) + ".example.com");
    for (size_t i = 0; i < names.size(); ++i) {
        Ask a(names[i], type::TXT);
        put(c, a, 0);
        if (i % 3 == 0) REQUIRE(!get(c, a, 0).empty());
    }
    size_t hits = 0;
    for (auto& n : names) {
        Ask a(n, type::TXT);
        auto g = get(c, a, 0);
        if (g.empty()) continue;
        ++hits;
        CHECK(decode(g).qname == n + ".");
    }
    CHECK(hits == c.size());
    CHECK(c.size() == 5000);
}

TEST_CASE("prefetching a batch changes nothing and stays in bounds, hits and misses alike") {
    CacheSettings s;
    s.max_entries = 3000;
    AnswerCache c(s);
    uint32_t tag = 0;
    Ask first("p0.example.com", type::TXT);
    CHECK_FALSE(c.prefetch_index(first.q, tag));  // nothing stored yet: nothing to fetch
    for (int i = 0; i < 6000; ++i) {              // churn: evictions and backward-shift deletes
        Ask a("p" + std::to_string(i) + ".example.com", type::TXT);
        put(c, a, 0);
    }
    const size_t size = c.size();
    size_t hits = 0;
    for (int i = 0; i < 6000; ++i) {
        Ask a("P" + std::to_string(i) + ".Example.COM", type::TXT);  // any case: same key
        REQUIRE(c.prefetch_index(a.q, tag));
        c.prefetch_entry(tag, false);
        c.prefetch_entry(tag, true);
        hits += !get(c, a, 0).empty();
    }
    CHECK(hits == size);  // every entry still there, none added
    CHECK(c.size() == size);
    CacheSettings off;
    off.max_entries = 0;
    AnswerCache disabled(off);
    CHECK_FALSE(disabled.prefetch_index(first.q, tag));
}

TEST_CASE("a short output buffer is a miss") {
    AnswerCache c(settings());
    Ask a("example.com", type::NS);
    put(c, a, 0);
    auto full = answer(a);
    std::vector<uint8_t> out(full.size());
    CHECK(c.lookup(a.q, 0, false, out.data(), full.size() - 1) == 0);
    CHECK(c.lookup(a.q, 0, false, out.data(), full.size()) == full.size());
    CHECK(out == full);
}

TEST_CASE("malformed answers are not cached") {
    AnswerCache c(settings());
    Ask a("example.com", type::TXT, edns());
    const auto good = answer(a);
    const size_t qend = a.q.question_end;
    REQUIRE(good[qend] == 0xC0);  // the TXT owner points at the question
    size_t refused = 0;
    auto try_insert = [&](const std::vector<uint8_t>& m) {
        c.insert(a.q, m.data(), m.size(), 0);
        ++refused;
        CHECK(c.size() == 0);
        CHECK(c.stats().not_cacheable.value() == refused);
    };

    for (size_t n = 0; n < good.size(); ++n) try_insert(std::vector<uint8_t>(good.begin(), good.begin() + n));
    c.insert(a.q, nullptr, 0, 0);
    ++refused;

    auto with = [&](size_t off, std::initializer_list<uint8_t> bytes) {
        auto m = good;
        for (uint8_t b : bytes) m[off++] = b;
        return m;
    };
    try_insert(with(qend, {0xC0, 0x02}));                                  // into the header
    try_insert(with(qend, {0xC0, uint8_t(qend)}));                         // to itself
    try_insert(with(qend, {0xC0, uint8_t(good.size() - 2)}));              // forward
    try_insert(with(qend, {0xFF, 0xFF}));                                  // past the end
    try_insert(with(qend, {0x80, 0x0C}));                                  // 0x80 label type
    try_insert(with(qend, {0x40, 0x0C}));                                  // 0x40 label type
    try_insert(with(qend, {0xC0, 0x0D}));                                  // into a label's text
    try_insert(with(12, {0xC0, 0x0C}));                                    // compressed question
    try_insert(with(6, {0x00, 0x02}));                                     // ANCOUNT too big
    try_insert(with(6, {0x00, 0x00}));                                     // ANCOUNT too small: OPT left over
    try_insert(with(10, {0x00, 0x00}));                                    // trailing octets
    try_insert(with(4, {0x00, 0x02}));                                     // QDCOUNT 2
    try_insert(with(4, {0x00, 0x00}));                                     // QDCOUNT 0
    try_insert(with(qend + 10, {0xFF, 0xFF}));                             // RDLENGTH past the end
    auto extra = good;
    extra.push_back(0);
    try_insert(extra);

    // OPT: non-root owner, in the wrong section, twice, options not tiling RDATA.
    const size_t opt = good.size() - 11;
    REQUIRE(good[opt] == 0);
    REQUIRE(good[opt + 2] == 41);
    auto owned = good;
    owned[opt] = 0xC0;
    owned.insert(owned.begin() + long(opt) + 1, uint8_t(12));
    try_insert(owned);
    auto twice = good;
    twice.insert(twice.end(), good.begin() + long(opt), good.end());
    twice[11] = 2;
    try_insert(twice);
    auto opt_in_answer = good;
    opt_in_answer[7] = 2;
    opt_in_answer[11] = 0;
    try_insert(opt_in_answer);
    auto bad_options = good;
    bad_options[opt + 10] = 3;
    bad_options.insert(bad_options.end(), {0, 3, 0});
    try_insert(bad_options);

    // Names inside RDATA: an NS target running past RDLENGTH, an SOA short of its numbers.
    Ask ns("example.com", type::NS);
    auto nsa = answer(ns);
    auto d = decode(nsa);
    auto rdo = d.an[0].rdata_off;
    auto bad_ns = nsa;
    bad_ns[rdo - 1] = static_cast<uint8_t>(bad_ns[rdo - 1] - 1);
    c.insert(ns.q, bad_ns.data(), bad_ns.size(), 0);
    ++refused;
    Ask nd("example.com", type::A);
    auto nda = answer(nd);
    auto dd = decode(nda);
    REQUIRE(dd.ns.size() == 1);
    auto short_soa = nda;
    const size_t soa_rdlen = dd.ns[0].rdata_off - 2;
    short_soa[soa_rdlen + 1] = static_cast<uint8_t>(short_soa[soa_rdlen + 1] - 4);
    short_soa.erase(short_soa.begin() + long(dd.ns[0].rdata_off + dd.ns[0].rdata.size() - 4),
                    short_soa.begin() + long(dd.ns[0].rdata_off + dd.ns[0].rdata.size()));
    c.insert(nd.q, short_soa.data(), short_soa.size(), 0);
    ++refused;
    CHECK(c.size() == 0);
    CHECK(c.stats().not_cacheable.value() == refused);

    // And the intact ones are.
    c.insert(a.q, good.data(), good.size(), 0);
    c.insert(ns.q, nsa.data(), nsa.size(), 0);
    c.insert(nd.q, nda.data(), nda.size(), 0);
    CHECK(c.size() == 3);
}

TEST_CASE("random and mutated answers: no crash, whatever is stored decodes") {
    AnswerCache c(settings());
    std::mt19937_64 rng(12345);
    std::vector<Ask> asks;
    std::vector<std::vector<uint8_t>> answers;
    for (auto [name, t] : std::vector<std::pair<std::string, uint16_t>>{{"example.com", type::NS},
                                                                       {"example.com", type::TXT},
                                                                       {"example.com", type::A},
                                                                       {"www.example.org", type::MX},
                                                                       {"_dmarc.example.net", type::TXT},
                                                                       {"example.net", type::SOA},
                                                                       {"ns1.park.example", type::A},
                                                                       {"example.com", type::ANY}}) {
        asks.emplace_back(name, t, edns());
        answers.push_back(answer(asks.back()));
    }
    std::vector<uint8_t> out(8192);
    size_t served = 0;
    for (int iter = 0; iter < 100000; ++iter) {
        const size_t k = rng() % asks.size();
        auto m = answers[k];
        switch (rng() % 4) {
            case 0:  // flip a few octets
                for (int f = 1 + int(rng() % 4); f > 0; --f) m[rng() % m.size()] = static_cast<uint8_t>(rng());
                break;
            case 1:  // flip octets after the question only
                for (int f = 1 + int(rng() % 3); f > 0; --f) {
                    size_t at = asks[k].q.question_end + rng() % (m.size() - asks[k].q.question_end);
                    m[at] = static_cast<uint8_t>(rng());
                }
                break;
            case 2:  // random tail after the question
                m.resize(asks[k].q.question_end + rng() % 200);
                for (size_t i = asks[k].q.question_end; i < m.size(); ++i) m[i] = static_cast<uint8_t>(rng());
                m[6] = 0;
                m[7] = static_cast<uint8_t>(rng() % 4);
                m[9] = static_cast<uint8_t>(rng() % 3);
                m[11] = static_cast<uint8_t>(rng() % 3);
                break;
            default:  // resize
                m.resize(rng() % (m.size() + 40), static_cast<uint8_t>(rng()));
                break;
        }
        c.insert(asks[k].q, m.data(), m.size(), uint64_t(iter));
        size_t n = c.lookup(asks[k].q, uint64_t(iter) + 500, true, out.data(), out.size());
        if (n) {
            ++served;
            std::vector<uint8_t> got(out.begin(), out.begin() + long(n));
            CHECK_NOTHROW(decode(got));
        }
    }
    CHECK(served > 0);
    MESSAGE("mutated answers accepted: " << c.stats().inserts.value() << " of 100000");
    // Pure noise as the answer to random queries.
    for (int iter = 0; iter < 20000; ++iter) {
        std::vector<uint8_t> qb(12 + rng() % 40), ab(rng() % 300);
        for (auto& b : qb) b = static_cast<uint8_t>(rng());
        for (auto& b : ab) b = static_cast<uint8_t>(rng());
        qb[2] &= 0x07;  // a query, opcode 0
        qb[4] = 0;
        qb[5] = 1;
        qb[6] = qb[7] = qb[8] = qb[9] = qb[10] = qb[11] = 0;
        Ask a(qb);
        if (a.st != ParseStatus::Ok) continue;
        c.insert(a.q, ab.data(), ab.size(), 0);
        c.lookup(a.q, 0, true, out.data(), out.size());
    }
}

#include "count_allocations.hpp"

#ifdef DPTEST_COUNT_ALLOCATIONS
TEST_CASE("a hit allocates nothing") {
    CacheSettings s;
    s.max_stale = 100;
    AnswerCache c(s);
    std::vector<Ask> asks;
    for (int i = 0; i < 200; ++i)
        asks.emplace_back("a" + std::to_string(i) + ".Example.com", i % 2 ? type::NS : type::A, edns());
    for (auto& a : asks) put(c, a, 0);
    std::vector<uint8_t> out(4096);
    size_t served = 0;
    dptest::alloc::start();
    for (int round = 0; round < 5; ++round)
        for (auto& a : asks) served += c.lookup(a.q, uint64_t(round) * 100'000, true, out.data(), out.size()) ? 1 : 0;
    const size_t allocations = dptest::alloc::stop();
    CHECK(served == 1000);
    CHECK(allocations == 0);
}
#endif

namespace {
size_t rss_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int got = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    return got == 2 ? resident * 4096 : 0;
}
}  // namespace

TEST_CASE("memory per entry with 100k typical answers") {
    CacheSettings s;
    s.max_entries = 100000;
    std::vector<uint8_t> buf(4096);
    std::vector<uint8_t> ans(65535);
    size_t answer_octets = 0;
    {
        Ask warm("warm-up.com", type::A, edns());  // loads the policy (and its PSL) before measuring
        (void)answer(warm);
    }
    const size_t before = rss_bytes();
    auto c = std::make_unique<AnswerCache>(s);
    const uint16_t types[] = {type::A, type::AAAA, type::TXT, type::MX};
    for (int i = 0; i < 25000; ++i) {
        const std::string name = "parked-" + std::to_string(i) + ".com";
        for (uint16_t t : types) {
            Ask a(name, t, edns());
            Outcome o;
            size_t n = policy().respond(a.pkt.data(), a.pkt.size(), ans.data(), ans.size(), Transport{true, 300}, o);
            answer_octets += n;
            c->insert(a.q, ans.data(), n, 0);
        }
    }
    const size_t after = rss_bytes();
    REQUIRE(c->size() == 100000);
    const double per_entry = double(c->stats().bytes.value()) / double(c->size());
    const double answers = double(answer_octets) / 100000.0;
    std::printf("answer cache: 100000 entries, mean answer %.1f B, charged %.1f B/entry (overhead %.1f), "
                "RSS delta %.1f B/entry\n",
                answers, per_entry, per_entry - answers, (double(after) - double(before)) / 100000.0);
    CHECK(per_entry - answers < 80);
    // Every one of them is found.
    size_t hits = 0;
    for (int i = 0; i < 25000; i += 97)
        for (uint16_t t : types) {
            Ask a("PARKED-" + std::to_string(i) + ".com", t, edns());
            hits += c->lookup(a.q, 1000, false, buf.data(), buf.size()) ? 1 : 0;
        }
    CHECK(hits == 4 * ((25000 + 96) / 97));
}

