#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "balancer/rate_limit.hpp"
#include "dns_test_util.hpp"

using namespace dp::balancer;
using dptest::put16;
using dptest::wire_name;

namespace {

constexpr uint64_t T0 = 1'000'000;  // an arbitrary start time (ms)

// A client address, IPv4 or IPv6 by its text.
struct Addr {
    sockaddr_storage ss{};
    explicit Addr(const char* text) {
        if (std::strchr(text, ':') != nullptr) {
            auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(5353);
            REQUIRE(inet_pton(AF_INET6, text, &s6->sin6_addr) == 1);
        } else {
            auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
            s4->sin_family = AF_INET;
            s4->sin_port = htons(5353);
            REQUIRE(inet_pton(AF_INET, text, &s4->sin_addr) == 1);
        }
    }
    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

Addr v4_host(unsigned i) {  // 10.x.y.1: a different /24 for each i < 65536
    std::string t = "10." + std::to_string((i >> 8) & 0xFF) + "." + std::to_string(i & 0xFF) + ".1";
    return Addr(t.c_str());
}

Prefix prefix(const std::string& text) {
    Prefix p;
    std::string err;
    REQUIRE_MESSAGE(parse_prefix(text, p, err), err);
    return p;
}

// Verdicts of `n` identical responses at `now` as "S" (send), "D" (drop), "T" (slip, TC=1).
std::string burst(ResponseLimiter& rl, const Addr& a, ResponseKind kind, const std::string& name, uint16_t qtype,
                  uint64_t now, int n) {
    const auto w = wire_name(name);
    std::string out;
    for (int i = 0; i < n; ++i) {
        switch (rl.check(a.sa(), kind, w.data(), w.size(), qtype, now)) {
        case RrlVerdict::Send: out += 'S'; break;
        case RrlVerdict::Drop: out += 'D'; break;
        case RrlVerdict::Slip: out += 'T'; break;
        }
    }
    return out;
}

std::string answers(ResponseLimiter& rl, const Addr& a, const std::string& name, uint64_t now, int n,
                    uint16_t qtype = 16) {
    return burst(rl, a, ResponseKind::Answer, name, qtype, now, n);
}

int allowed(RequestLimiter& rl, const Addr& a, uint64_t now, int n) {
    int ok = 0;
    for (int i = 0; i < n; ++i) ok += rl.allow(a.sa(), now) ? 1 : 0;
    return ok;
}

RateLimitSettings rrl(uint32_t rate) {
    RateLimitSettings s;
    s.responses_per_second = rate;
    return s;
}

RateLimitSettings requests(uint32_t rate, uint32_t burst_size = 0) {
    RateLimitSettings s;
    s.requests_per_second = rate;
    s.requests_burst = burst_size;
    return s;
}

// An answer message built by hand (RFC 1035 4.1): header, one question, then records appended.
struct Answer {
    std::vector<uint8_t> m;
    Answer(const std::string& qname, uint16_t qtype, uint16_t rcode, uint16_t an, uint16_t ns, uint16_t ar = 0) {
        put16(m, 0xBEEF);
        m.push_back(0x84);  // QR, AA
        m.push_back(static_cast<uint8_t>(rcode & 0x0F));
        put16(m, 1);
        put16(m, an);
        put16(m, ns);
        put16(m, ar);
        auto q = wire_name(qname);
        m.insert(m.end(), q.begin(), q.end());
        put16(m, qtype);
        put16(m, 1);
    }
    void rr(const std::vector<uint8_t>& owner, uint16_t type, uint32_t ttl, const std::vector<uint8_t>& rdata) {
        m.insert(m.end(), owner.begin(), owner.end());
        put16(m, type);
        put16(m, type == 41 ? 1232 : 1);
        put16(m, static_cast<uint16_t>(ttl >> 16));
        put16(m, static_cast<uint16_t>(ttl));
        put16(m, static_cast<uint16_t>(rdata.size()));
        m.insert(m.end(), rdata.begin(), rdata.end());
    }
    void soa(const std::vector<uint8_t>& owner) {
        std::vector<uint8_t> rd = wire_name("ns1.example.org");
        auto rname = wire_name("hostmaster.example.org");
        rd.insert(rd.end(), rname.begin(), rname.end());
        for (uint32_t v : {1u, 10800u, 3600u, 604800u, 3600u}) {
            put16(rd, static_cast<uint16_t>(v >> 16));
            put16(rd, static_cast<uint16_t>(v));
        }
        rr(owner, 6, 3600, rd);
    }
};

std::vector<uint8_t> ptr(size_t off) { return {static_cast<uint8_t>(0xC0 | (off >> 8)), static_cast<uint8_t>(off)}; }

std::vector<uint8_t> name_of(const ResponseClass& c) { return {c.name, c.name + c.name_len}; }

// NXDOMAIN for `qname` under example.org, its SOA owner compressed to the qname's suffix.
Answer nxdomain_under_example_org(const std::string& label) {
    Answer a(label + ".example.org", 1, 3, 0, 1);
    a.soa(ptr(12 + 1 + label.size()));
    return a;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("parse_prefix: valid networks") {
    Prefix p = prefix("10.0.0.0/8");
    CHECK(p.family == 4);
    CHECK(p.length == 8);
    CHECK(p.addr[0] == 10);
    CHECK(to_string(p) == "10.0.0.0/8");

    p = prefix("192.0.2.1");
    CHECK(p.length == 32);
    CHECK(to_string(p) == "192.0.2.1/32");

    p = prefix("2001:db8::/32");
    CHECK(p.family == 6);
    CHECK(p.length == 32);
    CHECK(to_string(p) == "2001:db8::/32");

    CHECK(to_string(prefix("::1")) == "::1/128");
    CHECK(to_string(prefix("0.0.0.0/0")) == "0.0.0.0/0");
    CHECK(to_string(prefix("::/0")) == "::/0");
    CHECK(to_string(prefix("10.0.0.0/008")) == "10.0.0.0/8");
    // IPv4-mapped IPv6 networks become IPv4 (clients are matched as IPv4).
    p = prefix("::ffff:192.0.2.0/120");
    CHECK(p.family == 4);
    CHECK(to_string(p) == "192.0.2.0/24");

    const uint8_t in[4] = {10, 200, 1, 2}, out[4] = {11, 0, 0, 1};
    CHECK(prefix("10.0.0.0/8").contains(4, in));
    CHECK_FALSE(prefix("10.0.0.0/8").contains(4, out));
    CHECK(prefix("10.192.0.0/10").contains(4, in));
    CHECK_FALSE(prefix("10.128.0.0/10").contains(4, in));
    CHECK_FALSE(prefix("::/0").contains(4, in));  // families never match each other
    CHECK(prefix("0.0.0.0/0").contains(4, out));
}

TEST_CASE("parse_prefix: invalid text is rejected with one line naming it") {
    for (const char* bad : {"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8x",
                            "10.0.0.0/8/8", "10.0.0.0/1000", "300.0.0.0/8", "10.0.0/8", "abc", " 10.0.0.0/8",
                            "10.0.0.0 /8", "2001:db8::/129", "2001:db8::/", "fe80::1%eth0", "2001:db8:::1/64",
                            "10.0.0.1/8", "192.0.2.128/24", "2001:db8::1/64"}) {
        Prefix p;
        p.length = 77;
        std::string err;
        CHECK_MESSAGE(!parse_prefix(bad, p, err), bad);
        CHECK(err.find(std::string("'") + bad + "'") != std::string::npos);
        CHECK(err.find('\n') == std::string::npos);
        CHECK(p.length == 77);  // untouched on failure
    }
    Prefix p;
    std::string err;
    CHECK_FALSE(parse_prefix(std::string("10.0.0.0\0/8", 11), p, err));
    REQUIRE_FALSE(parse_prefix("10.0.0.1/8", p, err));
    CHECK(err.find("host bits") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Requests

TEST_CASE("requests: the burst passes, then the bucket limits, then refills over time") {
    RateLimitStats st;
    RequestLimiter rl(requests(10, 20), st, 1);
    REQUIRE(rl.enabled());
    Addr a("192.0.2.1");
    CHECK(allowed(rl, a, T0, 25) == 20);
    CHECK(st.requests_dropped.value() == 5);
    CHECK(allowed(rl, a, T0 + 99, 5) == 0);   // 0.99 of a token
    CHECK(allowed(rl, a, T0 + 100, 5) == 1);  // 10 a second: one per 100 ms
    CHECK(allowed(rl, a, T0 + 350, 5) == 2);
    CHECK(allowed(rl, a, T0 + 60'000, 100) == 20);  // refilled up to the burst, no further
    // Sustained traffic at the rate passes entirely; dropped queries cost nothing.
    uint64_t t = T0 + 120'000;
    int ok = 0;
    for (int i = 0; i < 100; ++i, t += 100) ok += allowed(rl, a, t, 3);
    CHECK(ok == 119);  // the full bucket (20), then one per 100 ms (99)
    CHECK(st.requests_dropped.value() == 5 + 5 + 4 + 3 + 80 + 300 - 119);
    CHECK(st.request_entries.value() == 1);
}

TEST_CASE("requests: burst defaults to the rate; off when the rate is 0") {
    RateLimitStats st;
    RequestLimiter rl(requests(3), st, 1);
    CHECK(allowed(rl, Addr("192.0.2.1"), T0, 10) == 3);

    RequestLimiter off(RateLimitSettings{}, st, 1);
    CHECK_FALSE(off.enabled());
    CHECK(allowed(off, Addr("192.0.2.1"), T0, 1000) == 1000);
    CHECK(st.requests_dropped.value() == 7);
}

TEST_CASE("requests: IPv4 clients are aggregated by /24, IPv6 by /56, lengths configurable") {
    RateLimitStats st;
    RequestLimiter rl(requests(2), st, 1);
    CHECK(allowed(rl, Addr("192.0.2.1"), T0, 1) == 1);
    CHECK(allowed(rl, Addr("192.0.2.200"), T0, 5) == 1);  // same /24: one left
    CHECK(allowed(rl, Addr("192.0.3.1"), T0, 5) == 2);    // another /24

    CHECK(allowed(rl, Addr("2001:db8:0:ff::1"), T0, 1) == 1);
    CHECK(allowed(rl, Addr("2001:db8:0:1:ffff::9"), T0, 5) == 1);  // same /56
    CHECK(allowed(rl, Addr("2001:db8:0:100::1"), T0, 5) == 2);    // next /56

    auto s = requests(2);
    s.ipv4_prefix = 32;
    s.ipv6_prefix = 64;
    RequestLimiter fine(s, st, 1);
    CHECK(allowed(fine, Addr("192.0.2.1"), T0, 5) == 2);
    CHECK(allowed(fine, Addr("192.0.2.2"), T0, 5) == 2);
    CHECK(allowed(fine, Addr("2001:db8:0:ff::1"), T0, 5) == 2);
    CHECK(allowed(fine, Addr("2001:db8:0:fe::1"), T0, 5) == 2);
    CHECK(allowed(fine, Addr("2001:db8:0:fe:1::1"), T0, 5) == 0);  // same /64
}

TEST_CASE("requests: IPv4-mapped IPv6 clients count as IPv4") {
    RateLimitStats st;
    RequestLimiter rl(requests(2), st, 1);
    CHECK(allowed(rl, Addr("192.0.2.1"), T0, 1) == 1);
    CHECK(allowed(rl, Addr("::ffff:192.0.2.77"), T0, 5) == 1);
    CHECK(allowed(rl, Addr("::ffff:192.0.3.77"), T0, 5) == 2);
    CHECK(allowed(rl, Addr("192.0.3.1"), T0, 5) == 0);
}

TEST_CASE("requests: exempt networks, log-only, unknown families") {
    RateLimitStats st;
    auto s = requests(1);
    s.exempt = {prefix("192.0.2.0/24"), prefix("2001:db8::/32")};
    RequestLimiter rl(s, st, 1);
    CHECK(allowed(rl, Addr("192.0.2.9"), T0, 50) == 50);
    CHECK(allowed(rl, Addr("::ffff:192.0.2.10"), T0, 50) == 50);
    CHECK(allowed(rl, Addr("2001:db8:1::1"), T0, 50) == 50);
    CHECK(st.requests_exempt.value() == 150);
    CHECK(allowed(rl, Addr("192.0.3.9"), T0, 50) == 1);
    CHECK(st.requests_dropped.value() == 49);

    s.exempt.clear();
    s.log_only = true;
    rl.reconfigure(s);
    CHECK(allowed(rl, Addr("192.0.4.9"), T0, 10) == 10);
    CHECK(st.requests_would_drop.value() == 9);
    CHECK(st.requests_dropped.value() == 49);

    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    CHECK(rl.allow(reinterpret_cast<const sockaddr*>(&un), T0));
    CHECK(rl.allow(nullptr, T0));
}

// ---------------------------------------------------------------------------------------------
// Responses

TEST_CASE("rrl: rate R sends R responses a second per bucket") {
    RateLimitStats st;
    auto s = rrl(5);
    s.slip = 0;
    ResponseLimiter rl(s, st, 1);
    REQUIRE(rl.enabled());
    Addr a("192.0.2.1");
    CHECK(answers(rl, a, "example.org", T0, 8) == "SSSSSDDD");
    CHECK(st.rrl_dropped[0].value() == 3);
    // Sustained at the rate after a quiet spell: everything is sent.
    uint64_t t = T0 + 60'000;
    std::string got;
    for (int i = 0; i < 50; ++i, t += 200) got += answers(rl, a, "example.org", t, 1);
    CHECK(got == std::string(50, 'S'));
    // Exactly R in any one second once the bucket is full again.
    CHECK(answers(rl, a, "example.org", T0 + 120'000, 6) == "SSSSSD");
}

TEST_CASE("rrl: names (case-insensitively), types and kinds are separate buckets") {
    RateLimitStats st;
    auto s = rrl(1);
    s.slip = 0;
    ResponseLimiter rl(s, st, 1);
    Addr a("192.0.2.1");
    CHECK(answers(rl, a, "example.org", T0, 2) == "SD");
    CHECK(answers(rl, a, "EXAMPLE.Org", T0, 1) == "D");  // same name
    CHECK(answers(rl, a, "www.example.org", T0, 2) == "SD");
    CHECK(answers(rl, a, "example.org", T0, 2, 28) == "SD");  // another qtype
    CHECK(burst(rl, a, ResponseKind::Nodata, "example.org", 16, T0, 2) == "SD");
    CHECK(burst(rl, a, ResponseKind::Nodata, "example.org", 28, T0, 1) == "D");  // NODATA: any qtype
    CHECK(burst(rl, a, ResponseKind::Nxdomain, "example.org", 1, T0, 2) == "SD");
    CHECK(burst(rl, a, ResponseKind::Nxdomain, "example.net", 1, T0, 2) == "SD");
    // Errors: one bucket per network whatever the name.
    CHECK(burst(rl, a, ResponseKind::Error, "a.example", 1, T0, 2) == "SD");
    CHECK(burst(rl, a, ResponseKind::Error, "b.example", 2, T0, 1) == "D");
    CHECK(rl.check(a.sa(), ResponseKind::Error, nullptr, 0, 0, T0) == RrlVerdict::Drop);
    // Another network has its own buckets; the same /24 shares them.
    CHECK(answers(rl, Addr("192.0.3.1"), "example.org", T0, 2) == "SD");
    CHECK(answers(rl, Addr("192.0.2.250"), "example.org", T0, 1) == "D");
    CHECK(answers(rl, Addr("2001:db8::1"), "example.org", T0, 2) == "SD");
    CHECK(answers(rl, Addr("2001:db8:0:ff::2"), "example.org", T0, 1) == "D");  // same /56
    CHECK(answers(rl, Addr("::ffff:192.0.2.9"), "example.org", T0, 1) == "D");  // mapped = IPv4
    CHECK(st.response_entries.value() == 9);
}

TEST_CASE("rrl: NXDOMAIN for random names of one zone shares the zone's bucket") {
    RateLimitStats st;
    auto s = rrl(3);
    s.slip = 0;
    ResponseLimiter rl(s, st, 1);
    Addr a("198.51.100.7");
    std::string got;
    for (int i = 0; i < 10; ++i) {
        std::string label = "r";  // (not "r" + ...: g++ 12 -O3 warns falsely, -Wrestrict)
        label += std::to_string(i * 7919);
        Answer m = nxdomain_under_example_org(label);
        ResponseClass c;
        REQUIRE(classify(m.m.data(), m.m.size(), c) == ResponseKind::Nxdomain);
        CHECK(name_of(c) == wire_name("example.org"));
        got += rl.check(a.sa(), c, T0) == RrlVerdict::Send ? 'S' : 'D';
    }
    CHECK(got == "SSSDDDDDDD");
    CHECK(st.rrl_dropped[static_cast<int>(ResponseKind::Nxdomain)].value() == 7);
    // Another zone is not affected.
    Answer other("x.example.net", 1, 3, 0, 1);
    other.soa(wire_name("Example.NET"));
    ResponseClass c;
    REQUIRE(classify(other.m.data(), other.m.size(), c) == ResponseKind::Nxdomain);
    CHECK(rl.check(a.sa(), c, T0) == RrlVerdict::Send);
}

TEST_CASE("rrl: slip ratio") {
    Addr a("192.0.2.1");
    CHECK(rrl(1).slip == 2);  // the default
    struct Case {
        uint32_t slip;
        const char* pattern;  // S sent, D dropped, T slipped (TC=1)
        uint64_t dropped, slipped;
    };
    for (const Case& c : {Case{2, "SDTDTDT", 3, 3},    // alternates drop and slip
                          Case{0, "SDDDDDD", 6, 0},    // only drops
                          Case{1, "STTTTTT", 0, 6}}) { // only slips
        CAPTURE(c.slip);
        RateLimitStats st;
        auto s = rrl(1);
        s.slip = c.slip;
        ResponseLimiter rl(s, st, 1);
        CHECK(answers(rl, a, "example.org", T0, 7) == c.pattern);
        CHECK(st.rrl_dropped[0].value() == c.dropped);
        CHECK(st.rrl_slipped[0].value() == c.slipped);
    }
    SUBCASE("slip 3; the count restarts after a sent response") {
        RateLimitStats st;
        auto s = rrl(1);
        s.slip = 3;
        ResponseLimiter rl(s, st, 1);
        CHECK(answers(rl, a, "example.org", T0, 5) == "SDDTD");
        CHECK(answers(rl, a, "example.org", T0 + 600'000, 5) == "SDDTD");
    }
}

TEST_CASE("rrl: the balance runs into debt of up to `window` seconds") {
    Addr a("192.0.2.1");
    SUBCASE("as the CoreDNS plugin's test") {
        RateLimitStats st;
        auto s = rrl(2);
        s.window = 5;
        ResponseLimiter rl(s, st, 1);
        CHECK(answers(rl, a, "example.org", T0, 7) == "SSDTDTD");
        CHECK(answers(rl, a, "example.org", T0 + 1000, 1) == "T");  // still 2.5 s in debt
        CHECK(answers(rl, a, "example.org", T0 + 3'600'000, 3) == "SSD");
    }
    SUBCASE("a flooder stays limited until its debt is repaid") {
        auto s = rrl(10);
        s.window = 3;
        s.slip = 0;
        for (uint64_t quiet : {3000u, 3100u}) {
            RateLimitStats st;
            ResponseLimiter rl(s, st, 1);
            // 100 a second for 10 s: the full bucket (10) and what accrues meanwhile (1) at the
            // start, none afterwards.
            uint64_t t = T0;
            std::string got;
            for (int i = 0; i < 1000; ++i, t += 10) got += answers(rl, a, "example.org", t, 1);
            CHECK(got == std::string(11, 'S') + std::string(989, 'D'));
            // The debt is capped at window x rate = 30 responses: repaid 3 s after the flood;
            // one more response's worth (100 ms) is needed to send again.
            const uint64_t last = t - 10;
            CHECK(answers(rl, a, "example.org", last + quiet, 1) == (quiet == 3000 ? "D" : "S"));
        }
        // A shorter window forgives sooner.
        s.window = 1;
        RateLimitStats st;
        ResponseLimiter rl(s, st, 1);
        CHECK(answers(rl, a, "example.org", T0, 500).substr(0, 11) == "SSSSSSSSSSD");
        CHECK(answers(rl, a, "example.org", T0 + 1100, 1) == "S");
    }
    SUBCASE("window is clamped to at least 1 s") {
        RateLimitStats st;
        auto s = rrl(1);
        s.window = 0;
        s.slip = 0;
        ResponseLimiter rl(s, st, 1);
        CHECK(answers(rl, a, "example.org", T0, 3) == "SDD");
        CHECK(answers(rl, a, "example.org", T0 + 1999, 1) == "D");
        CHECK(answers(rl, a, "example.org", T0 + 4000, 1) == "S");
    }
}

TEST_CASE("rrl: per-kind allowances default to responses_per_second") {
    Addr a("192.0.2.1");
    RateLimitStats st;
    auto s = rrl(3);
    s.errors_per_second = 1;
    s.slip = 0;
    ResponseLimiter rl(s, st, 1);
    CHECK(rl.rate(ResponseKind::Nodata) == 3);
    CHECK(rl.rate(ResponseKind::Nxdomain) == 3);
    CHECK(rl.rate(ResponseKind::Error) == 1);
    CHECK(burst(rl, a, ResponseKind::Nodata, "example.org", 1, T0, 4) == "SSSD");
    CHECK(burst(rl, a, ResponseKind::Error, "", 0, T0, 2) == "SD");
    CHECK(st.rrl_dropped[static_cast<int>(ResponseKind::Error)].value() == 1);

    // Answers unlimited, NXDOMAIN limited.
    RateLimitSettings nx;
    nx.nxdomains_per_second = 2;
    nx.slip = 0;
    rl.reconfigure(nx);
    CHECK(rl.enabled());
    CHECK(answers(rl, a, "example.org", T0, 100) == std::string(100, 'S'));
    CHECK(burst(rl, a, ResponseKind::Nxdomain, "example.org", 1, T0, 3) == "SSD");
    CHECK(burst(rl, a, ResponseKind::Error, "", 0, T0, 50) == std::string(50, 'S'));

    rl.reconfigure(RateLimitSettings{});
    CHECK_FALSE(rl.enabled());
    CHECK(st.response_entries.value() == 0);
    CHECK(burst(rl, a, ResponseKind::Nxdomain, "example.org", 1, T0, 10) == std::string(10, 'S'));
}

TEST_CASE("rrl: exempt networks are never limited, and counted") {
    RateLimitStats st;
    auto s = rrl(1);
    s.exempt = {prefix("192.0.2.0/24"), prefix("2001:db8::/32")};
    ResponseLimiter rl(s, st, 1);
    CHECK(answers(rl, Addr("192.0.2.77"), "example.org", T0, 20) == std::string(20, 'S'));
    CHECK(answers(rl, Addr("::ffff:192.0.2.78"), "example.org", T0, 5) == std::string(5, 'S'));
    CHECK(answers(rl, Addr("2001:db8:ffff::1"), "example.org", T0, 5) == std::string(5, 'S'));
    CHECK(st.rrl_exempt.value() == 30);
    CHECK(answers(rl, Addr("192.0.3.1"), "example.org", T0, 3) == "SDT");
    CHECK(answers(rl, Addr("2001:db9::1"), "example.org", T0, 3) == "SDT");
    CHECK(st.rrl_exempt.value() == 30);
    CHECK(st.response_entries.value() == 2);
}

TEST_CASE("rrl: log-only counts what it would do and sends everything") {
    RateLimitStats st;
    auto s = rrl(1);
    s.log_only = true;
    ResponseLimiter rl(s, st, 1);
    Addr a("192.0.2.1");
    CHECK(answers(rl, a, "example.org", T0, 5) == "SSSSS");
    CHECK(st.rrl_would_drop.value() == 2);
    CHECK(st.rrl_would_slip.value() == 2);
    CHECK(st.rrl_dropped[0].value() == 0);
    CHECK(st.rrl_slipped[0].value() == 0);
    // Turning log-only off enforces the same buckets.
    s.log_only = false;
    rl.reconfigure(s);
    CHECK(answers(rl, a, "example.org", T0, 2) == "DT");
}

TEST_CASE("rrl: unknown families and out-of-range kinds") {
    RateLimitStats st;
    auto s = rrl(1);
    s.slip = 0;
    ResponseLimiter rl(s, st, 1);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    for (int i = 0; i < 5; ++i) {
        CHECK(rl.check(reinterpret_cast<const sockaddr*>(&un), ResponseKind::Answer, nullptr, 0, 1, T0) ==
              RrlVerdict::Send);
        CHECK(rl.check(nullptr, ResponseKind::Answer, nullptr, 0, 1, T0) == RrlVerdict::Send);
    }
    Addr a("192.0.2.1");
    CHECK(rl.check(a.sa(), ResponseKind::Count, nullptr, 0, 1, T0) == RrlVerdict::Send);  // as Error
    CHECK(rl.check(a.sa(), ResponseKind::Error, nullptr, 0, 1, T0) == RrlVerdict::Drop);
    // An over-long name is cut at 255 octets, not read beyond.
    std::vector<uint8_t> huge(1000, 'a');
    CHECK(rl.check(a.sa(), ResponseKind::Answer, huge.data(), huge.size(), 1, T0) == RrlVerdict::Send);
    huge[500] = 'b';
    CHECK(rl.check(a.sa(), ResponseKind::Answer, huge.data(), huge.size(), 1, T0) == RrlVerdict::Drop);
}

// ---------------------------------------------------------------------------------------------
// Tables

TEST_CASE("tables stay within max_entries; replacing live buckets is counted") {
    for (size_t max : {size_t{64}, size_t{100}, size_t{5}, size_t{1}}) {
        CAPTURE(max);
        RateLimitStats st;
        auto s = rrl(10);
        s.requests_per_second = 10;
        s.max_entries = max;
        ResponseLimiter rl(s, st, 7);
        RequestLimiter req(s, st, 7);
        const unsigned n = static_cast<unsigned>(10 * max);
        for (unsigned i = 0; i < n; ++i) {
            const Addr a = v4_host(i);
            CHECK(rl.check(a.sa(), ResponseKind::Error, nullptr, 0, 0, T0) == RrlVerdict::Send);
            CHECK(req.allow(a.sa(), T0));
            CHECK(st.response_entries.value() <= static_cast<int64_t>(max));
            CHECK(st.request_entries.value() <= static_cast<int64_t>(max));
        }
        CHECK(st.response_entries.value() > 0);
        // Every claim either took a free slot or replaced a live bucket.
        CHECK(st.table_evictions.value() + st.response_entries.value() + st.request_entries.value() == 2 * n);
        CHECK(st.table_evictions.value() >= 2 * (n - max));
    }
}

TEST_CASE("tables: expired buckets are reused silently; limited buckets outlive a flood of new keys") {
    RateLimitStats st;
    auto s = rrl(1);
    s.window = 10;
    s.slip = 0;
    s.max_entries = 8;  // one set of 8
    ResponseLimiter rl(s, st, 3);
    for (unsigned i = 0; i < 8; ++i) CHECK(answers(rl, v4_host(i), "example.org", T0, 1) == "S");
    CHECK(st.response_entries.value() == 8);
    // One second later they are all full again: new keys take their places without an eviction.
    for (unsigned i = 100; i < 108; ++i) CHECK(answers(rl, v4_host(i), "example.org", T0 + 1000, 1) == "S");
    CHECK(st.table_evictions.value() == 0);
    CHECK(answers(rl, v4_host(200), "example.org", T0 + 1000, 1) == "S");
    CHECK(st.table_evictions.value() == 1);

    // A network deep in debt keeps its bucket while 100 new keys churn through the set.
    const Addr flooder("203.0.113.1");
    CHECK(answers(rl, flooder, "example.org", T0 + 2000, 20) == "S" + std::string(19, 'D'));
    for (unsigned i = 300; i < 400; ++i) answers(rl, v4_host(i), "example.org", T0 + 2000, 1);
    CHECK(st.table_evictions.value() > 90);
    CHECK(answers(rl, flooder, "example.org", T0 + 2000, 1) == "D");
    CHECK(answers(rl, flooder, "example.org", T0 + 9000, 1) == "D");
    CHECK(st.response_entries.value() == 8);
}

TEST_CASE("reconfigure keeps buckets unless the table size changes") {
    RateLimitStats st;
    auto s = requests(2);
    RequestLimiter rl(s, st, 1);
    Addr a("192.0.2.1");
    CHECK(allowed(rl, a, T0, 5) == 2);
    s.requests_per_second = 4;  // same table: the empty bucket stays empty
    rl.reconfigure(s);
    CHECK(allowed(rl, a, T0, 5) == 0);
    CHECK(allowed(rl, a, T0 + 250, 5) == 1);
    s.max_entries = 1024;  // new table: buckets restart full
    rl.reconfigure(s);
    CHECK(st.request_entries.value() == 0);
    CHECK(allowed(rl, a, T0 + 250, 5) == 4);
    CHECK(st.request_entries.value() == 1);
    rl.reconfigure(RateLimitSettings{});
    CHECK_FALSE(rl.enabled());
    CHECK(st.request_entries.value() == 0);
    CHECK(allowed(rl, a, T0, 50) == 50);
    // Time going backwards neither refills nor breaks anything.
    rl.reconfigure(requests(1));
    CHECK(allowed(rl, a, T0 + 5000, 3) == 1);
    CHECK(allowed(rl, a, T0, 3) == 0);
    CHECK(allowed(rl, a, T0 + 6000, 3) == 1);
}

// ---------------------------------------------------------------------------------------------
// classify

TEST_CASE("classify: answers, NODATA, NXDOMAIN") {
    ResponseClass c;
    SUBCASE("NOERROR with answers: keyed by the query name and type") {
        Answer a("Www.Example.org", 28, 0, 1, 0);
        a.rr(ptr(12), 28, 300, std::vector<uint8_t>(16, 1));
        REQUIRE(classify(a.m.data(), a.m.size(), c) == ResponseKind::Answer);
        CHECK(c.kind == ResponseKind::Answer);
        CHECK(c.qtype == 28);
        CHECK(name_of(c) == wire_name("Www.Example.org"));
    }
    SUBCASE("NODATA with an uncompressed SOA owner: keyed by the zone") {
        Answer a("www.example.org", 28, 0, 0, 1);
        a.soa(wire_name("Example.org"));
        REQUIRE(classify(a.m.data(), a.m.size(), c) == ResponseKind::Nodata);
        CHECK(name_of(c) == wire_name("Example.org"));
        CHECK(c.qtype == 28);
    }
    SUBCASE("NODATA without SOA: keyed by the query name") {
        Answer a("www.example.org", 28, 0, 0, 1);
        a.rr(wire_name("example.org"), 2, 3600, wire_name("ns1.example.org"));
        REQUIRE(classify(a.m.data(), a.m.size(), c) == ResponseKind::Nodata);
        CHECK(name_of(c) == wire_name("www.example.org"));
    }
    SUBCASE("NXDOMAIN with a compressed SOA owner") {
        Answer a = nxdomain_under_example_org("nope");
        REQUIRE(classify(a.m.data(), a.m.size(), c) == ResponseKind::Nxdomain);
        CHECK(name_of(c) == wire_name("example.org"));
        CHECK(c.qtype == 1);
    }
    SUBCASE("NXDOMAIN: owner of labels then a pointer, after a CNAME answer and an NS record") {
        Answer a("a.b.example.org", 1, 3, 1, 2);
        a.rr(ptr(12), 5, 300, wire_name("x.b.example.org"));
        a.rr(ptr(12 + 2 + 2), 2, 300, wire_name("ns"));  // NS owned by example.org (compressed)
        std::vector<uint8_t> owner = {1, 'b'};
        auto p = ptr(12 + 2 + 2);
        owner.insert(owner.end(), p.begin(), p.end());
        a.soa(owner);
        REQUIRE(classify(a.m.data(), a.m.size(), c) == ResponseKind::Nxdomain);
        CHECK(name_of(c) == wire_name("b.example.org"));
    }
    SUBCASE("NXDOMAIN without SOA: keyed by the query name") {
        Answer a("nope.example.org", 1, 3, 0, 0);
        REQUIRE(classify(a.m.data(), a.m.size(), c) == ResponseKind::Nxdomain);
        CHECK(name_of(c) == wire_name("nope.example.org"));
    }
    SUBCASE("the first SOA wins; records after it need not be walked for NXDOMAIN") {
        Answer a("x.example.org", 1, 3, 0, 2);
        a.soa(ptr(14));
        a.soa(wire_name("other.org"));
        a.m.push_back(0xFF);  // junk after the records
        REQUIRE(classify(a.m.data(), a.m.size(), c) == ResponseKind::Nxdomain);
        CHECK(name_of(c) == wire_name("example.org"));
    }
}

TEST_CASE("classify: error rcodes and malformed answers are Error, without a name") {
    ResponseClass c;
    for (uint16_t rcode : {1, 2, 4, 5, 9, 15}) {
        Answer a("example.org", 1, rcode, 0, 0);
        CHECK(classify(a.m.data(), a.m.size(), c) == ResponseKind::Error);
        CHECK(c.name_len == 0);
    }
    // BADVERS: 0 in the header, 1 in the OPT's extended rcode.
    Answer badvers("example.org", 1, 0, 0, 0, 1);
    badvers.rr({0}, 41, 0x01000000, {});
    CHECK(classify(badvers.m.data(), badvers.m.size(), c) == ResponseKind::Error);
    Answer plain_opt("example.org", 1, 0, 0, 0, 1);
    plain_opt.rr({0}, 41, 0x00008000, {});
    CHECK(classify(plain_opt.m.data(), plain_opt.m.size(), c) == ResponseKind::Nodata);

    Answer ok("www.example.org", 1, 0, 0, 1);
    ok.soa(ptr(16));
    REQUIRE(classify(ok.m.data(), ok.m.size(), c) == ResponseKind::Nodata);

    auto expect_error = [&](std::vector<uint8_t> m, const char* what) {
        CAPTURE(what);
        c.name_len = 99;
        CHECK(classify(m.data(), m.size(), c) == ResponseKind::Error);
        CHECK(c.kind == ResponseKind::Error);
        CHECK(c.name_len == 0);
    };
    expect_error({}, "empty");
    expect_error({ok.m.begin(), ok.m.begin() + 11}, "runt");
    auto q = ok.m;
    q[2] &= 0x7F;
    expect_error(q, "QR=0");
    auto qd = ok.m;
    qd[5] = 0;
    expect_error(qd, "QDCOUNT 0");
    qd[5] = 2;
    expect_error(qd, "QDCOUNT 2");
    for (size_t cut = 12; cut < ok.m.size(); ++cut) expect_error({ok.m.begin(), ok.m.begin() + cut}, "truncated");
    // A pointer to itself, and a pointer forward, as the SOA owner.
    Answer self("www.example.org", 1, 0, 0, 1);
    self.soa(ptr(self.m.size()));
    expect_error(self.m, "pointer loop");
    Answer fwd("www.example.org", 1, 0, 0, 1);
    fwd.soa(ptr(fwd.m.size() + 20));
    expect_error(fwd.m, "forward pointer");
    // A label then a pointer back to that label: a loop.
    Answer cyc("www.example.org", 1, 0, 0, 1);
    const size_t at = cyc.m.size();
    cyc.soa({1, 'x', static_cast<uint8_t>(0xC0 | (at >> 8)), static_cast<uint8_t>(at)});
    expect_error(cyc.m, "pointer into its own labels");
    Answer bad_label("www.example.org", 1, 0, 0, 1);
    bad_label.soa({0x41, 'x', 0});
    expect_error(bad_label.m, "0x40 label type");
    Answer too_long("www.example.org", 1, 0, 0, 1);
    std::vector<uint8_t> long_owner;
    for (int i = 0; i < 5; ++i) {
        long_owner.push_back(63);
        long_owner.insert(long_owner.end(), 63, 'a');
    }
    long_owner.push_back(0);
    too_long.soa(long_owner);
    expect_error(too_long.m, "owner over 255 octets");
}

TEST_CASE("classify: random and mutated input never crashes and keeps its promises") {
    std::mt19937_64 rng(20240601);
    std::vector<std::vector<uint8_t>> seeds;
    {
        Answer a("www.example.org", 1, 0, 1, 0, 1);
        a.rr(ptr(12), 1, 300, {192, 0, 2, 1});
        a.rr({0}, 41, 0, {});
        seeds.push_back(a.m);
        seeds.push_back(nxdomain_under_example_org("abc").m);
        Answer n("a.b.example.org", 1, 3, 1, 2);
        n.rr(ptr(12), 5, 300, wire_name("x.b.example.org"));
        n.rr(ptr(16), 2, 300, wire_name("ns"));
        n.soa({1, 'b', 0xC0, 16});
        seeds.push_back(n.m);
        Answer d("www.example.org", 28, 0, 0, 1, 1);
        d.soa(ptr(16));
        d.rr({0}, 41, 0, {});
        seeds.push_back(d.m);
    }
    int kinds[5] = {};
    for (int iter = 0; iter < 200'000; ++iter) {
        std::vector<uint8_t> m;
        if (iter % 2 == 0) {
            m.resize(rng() % 300);
            for (auto& b : m) b = static_cast<uint8_t>(rng());
            if (m.size() >= 12 && rng() % 2) {
                m[2] |= 0x80;
                m[4] = 0;
                m[5] = 1;
                m[3] &= static_cast<uint8_t>(rng() % 2 ? 0xF0 : 0xF3);
            }
        } else {
            m = seeds[rng() % seeds.size()];
            const int edits = 1 + static_cast<int>(rng() % 4);
            for (int e = 0; e < edits; ++e) {
                switch (rng() % 4) {
                case 0: m[rng() % m.size()] = static_cast<uint8_t>(rng()); break;
                case 1: m[rng() % m.size()] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
                case 2: m.resize(rng() % (m.size() + 1)); break;
                case 3: m.push_back(static_cast<uint8_t>(rng())); break;
                }
                if (m.empty()) break;
            }
        }
        // Exact-size heap copy so that ASan sees any read past the end.
        std::unique_ptr<uint8_t[]> buf(new uint8_t[m.size() + 1]);
        if (!m.empty()) std::memcpy(buf.get(), m.data(), m.size());
        ResponseClass c;
        const ResponseKind k = classify(m.empty() ? nullptr : buf.get(), m.size(), c);
        REQUIRE(k == c.kind);
        REQUIRE(k < ResponseKind::Count);
        ++kinds[static_cast<int>(k)];
        REQUIRE(c.name_len <= 255);
        if (k == ResponseKind::Error) {
            REQUIRE(c.name_len == 0);
            continue;
        }
        // The name is a well-formed uncompressed wire name of exactly name_len octets.
        size_t o = 0;
        while (o < c.name_len && c.name[o] != 0) {
            REQUIRE(c.name[o] <= 63);
            o += 1 + c.name[o];
        }
        REQUIRE(o + 1 == c.name_len);
    }
    // The mutations reach every kind.
    CHECK(kinds[0] > 0);
    CHECK(kinds[1] > 0);
    CHECK(kinds[2] > 0);
    CHECK(kinds[3] > 0);
}
