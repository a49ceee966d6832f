// DNS cookies (RFC 7873, RFC 9018) and the SipHash-2-4 they are made of.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>
#include <vector>

#include "dns/cookie.hpp"
#include "dns/policy.hpp"
#include "dns/siphash.hpp"
#include "net/sockets.hpp"
#include "dns_test_util.hpp"
#include "park_settings.hpp"

using namespace dp::dns;
using namespace dptest;

TEST_CASE("siphash24 matches the reference vectors") {
    uint8_t key[16];
    uint8_t msg[15];
    for (int i = 0; i < 16; ++i) key[i] = static_cast<uint8_t>(i);
    for (int i = 0; i < 15; ++i) msg[i] = static_cast<uint8_t>(i);
    CHECK(siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ull);
    CHECK(siphash24(key, msg, 15) == 0xa129ca6149be45e5ull);
    key[0] ^= 1;
    CHECK(siphash24(key, msg, 15) != 0xa129ca6149be45e5ull);
}

// ---------------------------------------------------------------------------------------------
// Server cookies: RFC 9018 appendix A, the verdicts of RFC 7873 5.2, the time window.

namespace {

std::vector<uint8_t> hex(const std::string& s) {
    std::vector<uint8_t> v;
    for (size_t i = 0; i + 1 < s.size(); i += 2) v.push_back(static_cast<uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
    return v;
}
std::string to_hex(const uint8_t* p, size_t n) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        s.push_back(d[p[i] >> 4]);
        s.push_back(d[p[i] & 15]);
    }
    return s;
}
CookieSecret secret(const std::string& h) {
    CookieSecret k;
    REQUIRE(parse_cookie_secret(h, k));
    return k;
}
// A client address as the transports record it (net::PeerAddress), seen by cookies as a view.
struct Addr {
    dp::net::PeerAddress p;
    operator ClientAddr() const { return ClientAddr{p.octets, p.len}; }
};
sockaddr_storage sockaddr_of(const char* text) {
    sockaddr_storage ss{};
    if (std::strchr(text, ':')) {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
        s6->sin6_family = AF_INET6;
        REQUIRE(inet_pton(AF_INET6, text, &s6->sin6_addr) == 1);
    } else {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
        s4->sin_family = AF_INET;
        REQUIRE(inet_pton(AF_INET, text, &s4->sin_addr) == 1);
    }
    return ss;
}
Addr addr(const char* text) {
    const sockaddr_storage ss = sockaddr_of(text);
    return Addr{dp::net::peer_address(reinterpret_cast<const sockaddr*>(&ss))};
}
// The COOKIE option value answered for `query` (hex), or "" when none.
std::string answered(const Cookies& c, const std::string& query, const ClientAddr& a, uint32_t now,
                     CookieVerdict* v = nullptr) {
    const auto q = hex(query);
    uint8_t out[kMaxCookie];
    const size_t n = c.answer(q.data(), q.size(), a, now, out, v);
    return to_hex(out, n);
}

// The client cookie 0102030405060708 with the server cookie `c` makes for `a` at `now`.
std::vector<uint8_t> cookie_for(const Cookies& c, const ClientAddr& a, uint32_t now) {
    std::vector<uint8_t> v = {1, 2, 3, 4, 5, 6, 7, 8};
    v.resize(24);
    c.make(v.data(), a, now, v.data() + 8);
    return v;
}

const std::string kSecret1 = "e5e973e5a6b2a43f48e7dc849e37bfcf";  // RFC 9018 A.1-A.3
const std::string kOld4 = "dd3bdf9344b678b185a6f5cb60fca715", kNew4 = "445536bcd2513298075a5d379663c962";  // A.4

}  // namespace

TEST_CASE("RFC 9018 A.1: a client learns a new server cookie") {
    const Cookies c(secret(kSecret1), nullptr);
    CookieVerdict v;
    CHECK(answered(c, "2464c4abcf10c957", addr("198.51.100.100"), 1559731985, &v) ==
          "2464c4abcf10c957010000005cf79f111f8130c3eee29480");
    CHECK(v == CookieVerdict::ClientOnly);
}

TEST_CASE("RFC 9018 A.2: the same client, 40 minutes later, gets it renewed") {
    const Cookies c(secret(kSecret1), nullptr);
    CookieVerdict v;
    CHECK(answered(c, "2464c4abcf10c957010000005cf79f111f8130c3eee29480", addr("198.51.100.100"), 1559734385, &v) ==
          "2464c4abcf10c957010000005cf7a871d4a564a1442aca77");
    CHECK(v == CookieVerdict::Valid);
    // Within half an hour the cookie it holds comes back unchanged.
    CHECK(answered(c, "2464c4abcf10c957010000005cf79f111f8130c3eee29480", addr("198.51.100.100"), 1559731985 + 1800,
                   &v) == "2464c4abcf10c957010000005cf79f111f8130c3eee29480");
    CHECK(v == CookieVerdict::Valid);
}

TEST_CASE("RFC 9018 A.3: another server's cookie with reserved octets set is valid here") {
    const Cookies c(secret(kSecret1), nullptr);
    const auto q = hex("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5");
    // The example is 6,715 s after the timestamp: judged at the cookie's own time, the hash
    // (which covers the reserved octets) is ours; at the example's time it has expired.
    CHECK(c.check(q.data(), q.size(), addr("203.0.113.203"), 0x5cf78f71) == CookieVerdict::Valid);
    CHECK(c.check(q.data(), q.size(), addr("203.0.113.204"), 0x5cf78f71) == CookieVerdict::Invalid);
    CookieVerdict v;
    CHECK(answered(c, "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5", addr("203.0.113.203"), 1559734700, &v) ==
          "fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e");
    CHECK(v == CookieVerdict::Invalid);
}

TEST_CASE("RFC 9018 A.4: an IPv6 client after a secret rotation") {
    const CookieSecret old = secret(kOld4);
    const Cookies rolling(secret(kNew4), &old);
    const Cookies after(secret(kNew4), nullptr);
    const std::string q = "22681ab97d52c298010000005cf7c57926556bd0934c72f8";
    const Addr a = addr("2001:db8:220:1:59de:d0f4:8769:82b8");
    CookieVerdict v;
    // The old secret is still accepted while rolling; the answer is made with the new one.
    CHECK(answered(rolling, q, a, 1559741961, &v) == "22681ab97d52c298010000005cf7c609a6bb79d16625507a");
    CHECK(v == CookieVerdict::Valid);
    CHECK(answered(after, q, a, 1559741961, &v) == "22681ab97d52c298010000005cf7c609a6bb79d16625507a");
    CHECK(v == CookieVerdict::Invalid);
}

TEST_CASE("server cookies: the time window of RFC 9018 4.3, across the 2^32 wrap") {
    const Cookies c(secret(kSecret1), nullptr);
    const Addr a = addr("192.0.2.1");
    const uint8_t client[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (uint32_t issued : {1559731985u, 4294967000u}) {
        uint8_t cookie[24];
        std::memcpy(cookie, client, 8);
        c.make(client, a, issued, cookie + 8);
        CAPTURE(issued);
        CHECK(c.check(cookie, 24, a, issued) == CookieVerdict::Valid);
        CHECK(c.check(cookie, 24, a, issued + 3600) == CookieVerdict::Valid);
        CHECK(c.check(cookie, 24, a, issued + 3601) == CookieVerdict::Invalid);
        CHECK(c.check(cookie, 24, a, issued - 300) == CookieVerdict::Valid);
        CHECK(c.check(cookie, 24, a, issued - 301) == CookieVerdict::Invalid);
        // Any change of the cookie, the address or the length is someone else's cookie.
        cookie[23] ^= 1;
        CHECK(c.check(cookie, 24, a, issued) == CookieVerdict::Invalid);
        cookie[23] ^= 1;
        cookie[0] ^= 1;
        CHECK(c.check(cookie, 24, a, issued) == CookieVerdict::Invalid);
        cookie[0] ^= 1;
        CHECK(c.check(cookie, 24, addr("192.0.2.2"), issued) == CookieVerdict::Invalid);
        CHECK(c.check(cookie, 16, a, issued) == CookieVerdict::Invalid);
        CHECK(c.check(cookie, 8, a, issued) == CookieVerdict::ClientOnly);
        cookie[8] = 2;  // a version we do not know
        CHECK(c.check(cookie, 24, a, issued) == CookieVerdict::Invalid);
    }
    // IPv4-mapped IPv6 is the IPv4 client, over a copy (TCP) and over a view into the sender's
    // address (UDP) alike.
    CHECK(addr("::ffff:192.0.2.1").p.len == 4);
    CHECK(std::memcmp(addr("::ffff:192.0.2.1").p.octets, a.p.octets, 4) == 0);
    CHECK(addr("2001:db8::1").p.len == 16);
    CHECK(dp::net::peer_address(nullptr).len == 0);
    for (const char* text : {"192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1"}) {
        CAPTURE(text);
        const sockaddr_storage ss = sockaddr_of(text);
        uint8_t len = 99;
        const uint8_t* view = dp::net::address_octets(reinterpret_cast<const sockaddr*>(&ss), len);
        const Addr copy = addr(text);
        REQUIRE(len == copy.p.len);
        CHECK(std::memcmp(view, copy.p.octets, len) == 0);
        CHECK(c.check(cookie_for(c, copy, 1559731985).data(), 24, ClientAddr{view, len}, 1559731985) ==
              CookieVerdict::Valid);
    }
    sockaddr_storage unix_family{};
    unix_family.ss_family = AF_UNIX;
    uint8_t len = 99;
    CHECK(dp::net::address_octets(reinterpret_cast<const sockaddr*>(&unix_family), len) == nullptr);
    CHECK(len == 0);
}

TEST_CASE("cookie secrets and lengths") {
    CookieSecret k;
    CHECK(parse_cookie_secret("E5E973E5A6B2A43F48E7DC849E37BFCF", k));
    CHECK(k[0] == 0xe5);
    CHECK_FALSE(parse_cookie_secret("e5e973e5a6b2a43f48e7dc849e37bfc", k));
    CHECK_FALSE(parse_cookie_secret("e5e973e5a6b2a43f48e7dc849e37bfcf0", k));
    CHECK_FALSE(parse_cookie_secret("g5e973e5a6b2a43f48e7dc849e37bfcf", k));
    CHECK(process_cookie_secret() == process_cookie_secret());
    for (size_t n = 0; n <= 48; ++n) {
        CAPTURE(n);
        CHECK(cookie_length_ok(n) == (n == 8 || (n >= 16 && n <= 40)));
    }
    CHECK_FALSE(Cookies{}.enabled());
    const uint8_t c8[8] = {};
    uint8_t out[kMaxCookie];
    CHECK(Cookies{}.answer(c8, 8, ClientAddr{}, 0, out) == 0);
    CHECK_THROWS_AS(make_cookies({true, "xyz", ""}), ConfigError);
    CHECK_THROWS_AS(make_cookies({true, kSecret1, "short"}), ConfigError);
    CHECK_THROWS_AS(make_cookies({true, "", kSecret1}), ConfigError);
    CHECK(make_cookies({true, kSecret1, kOld4}).enabled());
    CHECK_FALSE(make_cookies({false, "", ""}).enabled());
}

// ---------------------------------------------------------------------------------------------
// Cookies in the worker's answers (Policy::respond).

namespace {
struct CookieAsk {
    const Policy& p;
    sockaddr_in peer{};
    uint32_t now = 1559731985;
    Outcome last{};
    explicit CookieAsk(const Policy& pol) : p(pol) {
        peer.sin_family = AF_INET;
        inet_pton(AF_INET, "198.51.100.100", &peer.sin_addr);
    }
    Msg operator()(const std::string& name, uint16_t t, const QueryOpts& o, bool tcp = false) {
        const auto q = make_query(name, t, o);
        std::vector<uint8_t> out(65535);
        Transport tr{tcp, 300, now, ClientAddr{reinterpret_cast<const uint8_t*>(&peer.sin_addr), 4}};
        const size_t n = p.respond(q.data(), q.size(), out.data(), out.size(), tr, last);
        REQUIRE(n > 0);
        out.resize(n);
        // Built in place over the query, the answer is the same.
        std::vector<uint8_t> in_place(q);
        in_place.resize(4096);
        Outcome o2;
        const size_t n2 = p.respond(in_place.data(), q.size(), in_place.data(), in_place.size(), tr, o2);
        in_place.resize(n2);
        CHECK(in_place == out);
        return decode(out);
    }
};
std::vector<uint8_t> cookie_option(const Msg& m) {
    for (const auto& [code, value] : m.opt_options)
        if (code == edns_opt::COOKIE) return value;
    return {};
}
PolicySettings cookie_settings() {
    PolicySettings s = park_settings();
    s.cookies.secret = kSecret1;
    return s;
}
}  // namespace

TEST_CASE("worker answers: a client cookie gets our server cookie, over UDP and TCP, in every answer kind") {
    const Policy p(cookie_settings());
    CookieAsk ask{p};
    QueryOpts o;
    o.edns = true;
    o.cookie = hex("2464c4abcf10c957");
    for (bool tcp : {false, true}) {
        for (const auto& question : std::vector<std::pair<std::string, uint16_t>>{
                 {"example.com", type::TXT}, {"example.com", type::A}, {"com", type::SOA}, {"_dmarc.example.com", type::TXT}}) {
            const std::string& name = question.first;  // not a structured binding: CAPTURE takes it in a lambda
            CAPTURE(name);
            Msg m = ask(name, question.second, o, tcp);
            CHECK(to_hex(cookie_option(m).data(), cookie_option(m).size()) ==
                  "2464c4abcf10c957010000005cf79f111f8130c3eee29480");
            CHECK(ask.last.cookie == CookieVerdict::ClientOnly);
        }
    }
    // The server cookie it handed out is valid next time, and comes back unchanged.
    o.cookie = hex("2464c4abcf10c957010000005cf79f111f8130c3eee29480");
    ask.now += 60;
    Msg m = ask("example.com", type::MX, o);
    CHECK(ask.last.cookie == CookieVerdict::Valid);
    CHECK(cookie_option(m) == o.cookie);
    CHECK(m.rcode == rcode::NOERROR);
    // From another address it is not ours: a normal answer with a new cookie (never BADCOOKIE
    // from the worker: RFC 7873 5.2.3 leaves that to server policy, which here is rate limiting).
    inet_pton(AF_INET, "198.51.100.101", &ask.peer.sin_addr);
    m = ask("example.com", type::MX, o);
    CHECK(ask.last.cookie == CookieVerdict::Invalid);
    CHECK(m.rcode == rcode::NOERROR);
    CHECK(m.an.size() == 1);
    REQUIRE(cookie_option(m).size() == 24);
    CHECK(cookie_option(m) != o.cookie);
    // BADVERS keeps the cookie too.
    o.version = 1;
    m = ask("example.com", type::MX, o);
    CHECK(m.rcode == rcode::BADVERS);
    CHECK(cookie_option(m).size() == 24);
}

TEST_CASE("worker answers: a malformed cookie is FORMERR with OPT and no cookie; cookies off ignores them") {
    const Policy p(cookie_settings());
    CookieAsk ask{p};
    QueryOpts o;
    o.edns = true;
    for (size_t n : {1u, 7u, 9u, 15u, 41u, 48u}) {
        CAPTURE(n);
        o.cookie.assign(n, 0xAB);
        Msg m = ask("example.com", type::TXT, o);
        CHECK(m.rcode == rcode::FORMERR);
        CHECK(m.has_opt);
        CHECK(m.an.empty());
        CHECK(cookie_option(m).empty());
        CHECK(ask.last.malformed == Malformed::Cookie);
    }
    for (size_t n : {8u, 16u, 24u, 40u}) {
        CAPTURE(n);
        o.cookie.assign(n, 0xAB);
        Msg m = ask("example.com", type::TXT, o);
        CHECK(m.rcode == rcode::NOERROR);
        CHECK(cookie_option(m).size() == 24);
    }
    PolicySettings s = cookie_settings();
    s.cookies.enabled = false;
    const Policy off(s);
    CookieAsk ask_off{off};
    o.cookie = hex("2464c4abcf10c957");
    Msg m = ask_off("example.com", type::TXT, o);
    CHECK(m.rcode == rcode::NOERROR);
    CHECK(cookie_option(m).empty());
    CHECK(ask_off.last.cookie == CookieVerdict::None);
    // Without a configured secret, the process's random one is used: still valid next time.
    const Policy random_secret(park_settings());
    CookieAsk ask_r{random_secret};
    m = ask_r("example.com", type::TXT, o);
    o.cookie = cookie_option(m);
    REQUIRE(o.cookie.size() == 24);
    ask_r("example.com", type::TXT, o);
    CHECK(ask_r.last.cookie == CookieVerdict::Valid);
}

TEST_CASE("worker answers: a cookie never makes an answer overflow the client's size") {
    // The OPT record's room (cookie included) is reserved: a truncated answer still has it.
    PolicySettings s = cookie_settings();
    s.nameservers.clear();
    for (int i = 0; i < 13; ++i)
        s.nameservers.push_back(parse_nameserver("ns" + std::to_string(i) + ".a-long-name-server-label.park.example:192.0.2." +
                                                 std::to_string(i + 1)));
    const Policy p(s);
    CookieAsk ask{p};
    QueryOpts o;
    o.edns = true;
    o.udp_size = 512;
    o.cookie = hex("2464c4abcf10c957");
    Msg m = ask("park.example", type::NS, o);
    CHECK(m.raw.size() <= 512);
    CHECK(m.tc);
    CHECK(cookie_option(m).size() == 24);
}
