// dns/message: the response-side reading and edits front ends use (question matching, name
// walking through compression pointers, OPT edits, truncation, SERVFAIL, the cookie edits).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include "dns/message.hpp"
#include "dns/policy.hpp"
#include "net/sockets.hpp"
#include "tests/unit/park_settings.hpp"
#include "tests/unit/dns_test_util.hpp"

using namespace dp::dns;
using dptest::make_query;
using dptest::QueryOpts;

namespace {
// `q` with an extra EDNS option appended to its OPT record (the OPT must be the last record).
std::vector<uint8_t> with_option(std::vector<uint8_t> q, uint16_t code, std::vector<uint8_t> value) {
    // The query builder puts the OPT right after the question: owner root, type 41.
    size_t opt = 12;
    while (q[opt] != 0) opt += 1 + q[opt];
    opt += 5;  // root, qtype, qclass
    REQUIRE(q[opt] == 0);
    REQUIRE(get_u16(q.data() + opt + 1) == type::OPT);
    const size_t rdlen = opt + 9;
    dptest::put16(q, code);
    dptest::put16(q, static_cast<uint16_t>(value.size()));
    q.insert(q.end(), value.begin(), value.end());
    put_u16(q.data() + rdlen, static_cast<uint16_t>(get_u16(q.data() + rdlen) + 4 + value.size()));
    return q;
}

size_t count_option(const std::vector<uint8_t>& m, size_t len, uint16_t code) {
    Query q;
    Malformed why;
    REQUIRE(parse_query(m.data(), len, q, why) == ParseStatus::Ok);
    size_t opt_at, opt_len;
    REQUIRE(find_opt(m.data(), len, q.question_end, opt_at, opt_len));
    size_t n = 0;
    for (size_t o = opt_at + 11; o + 4 <= opt_at + opt_len; o += 4 + get_u16(m.data() + o + 2))
        if (get_u16(m.data() + o) == code) ++n;
    return n;
}
}  // namespace

TEST_CASE("remove_option takes out every copy of an option, and nothing else") {
    QueryOpts o;
    o.edns = true;
    o.keepalive = true;
    auto q = make_query("www.example.com", type::A, o);
    q = with_option(q, edns_opt::NSID, {});
    q = with_option(q, edns_opt::TCP_KEEPALIVE, {});
    q = with_option(q, edns_opt::TCP_KEEPALIVE, {0, 5});
    CHECK(count_option(q, q.size(), edns_opt::TCP_KEEPALIVE) == 3);
    const size_t n = remove_option(q.data(), q.size(), edns_opt::TCP_KEEPALIVE);
    CHECK(n == q.size() - 4 - 4 - 6);
    CHECK(count_option(q, n, edns_opt::TCP_KEEPALIVE) == 0);
    CHECK(count_option(q, n, edns_opt::NSID) == 1);
    // Absent: unchanged.
    CHECK(remove_option(q.data(), n, edns_opt::PADDING) == n);
}

TEST_CASE("read_name follows backward pointers, copies the name, refuses loops and forward jumps") {
    // Header, then "example.com" at 12, then "www" + pointer to 12 at 25.
    std::vector<uint8_t> m(12, 0);
    const auto ex = dptest::wire_name("Example.com");
    m.insert(m.end(), ex.begin(), ex.end());  // 12..24
    const size_t www = m.size();
    m.insert(m.end(), {3, 'w', 'w', 'w', 0xC0, 12});
    uint8_t out[kMaxNameWire];
    size_t out_len = 0, next = 0;
    REQUIRE(read_name(m.data(), m.size(), www, next, out, &out_len));
    CHECK(next == www + 6);
    CHECK(out_len == 4 + ex.size());
    CHECK(std::vector<uint8_t>(out, out + out_len) == dptest::wire_name("www.Example.com"));
    // Validation only.
    REQUIRE(read_name(m.data(), m.size(), 12, next));
    CHECK(next == 12 + ex.size());

    // A pointer to itself, forward, into the header, or a truncated pointer.
    for (const std::vector<uint8_t>& tail : std::vector<std::vector<uint8_t>>{
             {0xC0, 25}, {0xC0, 30, 0}, {0xC0, 2}, {0xC0}, {1, 'a', 0xC0, 25}, {0x40, 'x', 0}, {5, 'a'}}) {
        std::vector<uint8_t> bad(m.begin(), m.begin() + 25);
        bad.insert(bad.end(), tail.begin(), tail.end());
        CAPTURE(tail.size());
        CHECK_FALSE(read_name(bad.data(), bad.size(), 25, next, out, &out_len));
    }
    // A name that must end by a limit (RDATA) but runs past it.
    CHECK_FALSE(read_name(m.data(), 20, 12, next));
    // More than 255 octets once decompressed: 4 x 63-octet labels chained by pointers.
    std::vector<uint8_t> big(12, 0);
    big.push_back(63);
    big.insert(big.end(), 63, 'a');
    big.push_back(0);
    for (int i = 0; i < 4; ++i) {
        const size_t prev = big.size() == 77 ? 12 : big.size() - 66;
        big.push_back(63);
        big.insert(big.end(), 63, 'b');
        big.push_back(static_cast<uint8_t>(0xC0 | prev >> 8));
        big.push_back(static_cast<uint8_t>(prev));
    }
    CHECK_FALSE(read_name(big.data(), big.size(), big.size() - 66, next, out, &out_len));
}

TEST_CASE("question matching ignores case of the name only") {
    auto a = make_query("WWW.Example.COM", type::TXT);
    auto b = make_query("www.example.com", type::TXT);
    auto c = make_query("www.example.com", type::MX);
    size_t ea, eb, ec;
    REQUIRE(question_end(a.data(), a.size(), ea));
    REQUIRE(question_end(b.data(), b.size(), eb));
    REQUIRE(question_end(c.data(), c.size(), ec));
    CHECK(same_question(a.data() + 12, ea - 12, b.data() + 12, eb - 12));
    CHECK_FALSE(same_question(a.data() + 12, ea - 12, c.data() + 12, ec - 12));
    // A compressed question is not ours.
    std::vector<uint8_t> ptr(a.begin(), a.begin() + 12);
    ptr.insert(ptr.end(), {0xC0, 12, 0, 16, 0, 1});
    size_t e;
    CHECK_FALSE(question_end(ptr.data(), ptr.size(), e));
}

TEST_CASE("SERVFAIL keeps ID, question and OPT; responses and runts get none") {
    QueryOpts o;
    o.edns = true;
    o.id = 0xBEEF;
    auto q = make_query("a.example.org", type::A, o);
    uint8_t out[512];
    const size_t n = make_servfail(q.data(), q.size(), out, sizeof out);
    REQUIRE(n > 0);
    const auto m = dptest::decode(std::vector<uint8_t>(out, out + n));
    CHECK(m.id == 0xBEEF);
    CHECK(m.rcode == rcode::SERVFAIL);
    CHECK(m.qname == "a.example.org.");
    CHECK(m.has_opt);
    o.qr = true;
    auto r = make_query("a.example.org", type::A, o);
    CHECK(make_servfail(r.data(), r.size(), out, sizeof out) == 0);
    CHECK(make_servfail(q.data(), 11, out, sizeof out) == 0);
}

// ---------------------------------------------------------------------------------------------
// The fronts' edits for DNS cookies: an option appended to an answer's OPT record, a truncated
// answer turned into BADCOOKIE, the client's cookie added to a worker's answer.

namespace {

// A real worker answer (the policy's) to a query for `name`/`type` with EDNS.
std::vector<uint8_t> policy_answer(const std::string& name, uint16_t type, bool nsid = false) {
    static const Policy p(dptest::park_settings());
    QueryOpts o;
    o.edns = true;
    o.nsid = nsid;
    const auto q = make_query(name, type, o);
    std::vector<uint8_t> out(4096);
    Outcome oc;
    out.resize(p.respond(q.data(), q.size(), out.data(), out.size(), Transport{true, 0, 0, {}}, oc));
    return out;
}

std::vector<uint8_t> cookie_of(const dptest::Msg& m) {
    for (const auto& [code, v] : m.opt_options)
        if (code == edns_opt::COOKIE) return v;
    return {};
}

}  // namespace

TEST_CASE("append_option: the option goes at the end of OPT's RDATA; the message stays well formed") {
    for (bool nsid : {false, true}) {
        auto a = policy_answer("example.com", type::TXT, nsid);
        const size_t len = a.size();
        a.resize(len + 64);
        const uint8_t v[5] = {1, 2, 3, 4, 5};
        const size_t n = append_option(a.data(), len, a.size(), 65001, v, sizeof v);
        REQUIRE(n == len + 9);
        a.resize(n);
        const dptest::Msg m = dptest::decode(a);
        REQUIRE(m.an.size() == 1);
        CHECK(dptest::txt(m.an[0]) == "v=spf1 -all");
        REQUIRE(m.opt_options.size() == (nsid ? 2u : 1u));
        CHECK(m.opt_options.back().first == 65001);
        CHECK(m.opt_options.back().second == std::vector<uint8_t>(v, v + 5));
        // Out again, the message is what it was.
        CHECK(remove_option(a.data(), n, 65001) == len);
    }
    // No room, or no OPT: nothing appended.
    auto a = policy_answer("example.com", type::TXT);
    CHECK(append_option(a.data(), a.size(), a.size() + 3, 65001, nullptr, 0) == 0);
    auto plain = make_query("example.com", type::TXT);
    plain.resize(plain.size() + 64);
    CHECK(append_option(plain.data(), plain.size() - 64, plain.size(), 65001, nullptr, 0) == 0);
}

TEST_CASE("append_option: records after the OPT record move up") {
    // OPT first in the additional section, an A record after it.
    auto a = policy_answer("example.com", type::NS);  // NS, then glue A/AAAA, then OPT
    const dptest::Msg before = dptest::decode(a);
    REQUIRE(before.ar.size() == 3);
    // Rebuild with OPT moved in front of the glue: header..authority, OPT, glue.
    // Simpler equivalent: walk to the glue start and rotate the tail so OPT comes first.
    size_t glue_at = before.ar[0].rdata_off - 10;  // owner is a 2-octet pointer: the record starts 12 before RDATA
    glue_at -= 2;
    const size_t opt_len = 11;  // root owner, type, class, ttl, rdlength 0
    std::vector<uint8_t> moved(a.begin(), a.begin() + static_cast<long>(glue_at));
    moved.insert(moved.end(), a.end() - opt_len, a.end());
    moved.insert(moved.end(), a.begin() + static_cast<long>(glue_at), a.end() - opt_len);
    REQUIRE(dptest::decode(moved).ar.size() == 3);
    const size_t len = moved.size();
    moved.resize(len + 64);
    const uint8_t v[3] = {9, 9, 9};
    const size_t n = append_option(moved.data(), len, moved.size(), 65002, v, 3);
    REQUIRE(n == len + 7);
    moved.resize(n);
    const dptest::Msg m = dptest::decode(moved);
    CHECK(m.ar.size() == 3);
    REQUIRE(m.opt_options.size() == 1);
    CHECK(m.opt_options[0].second == std::vector<uint8_t>(v, v + 3));
}

TEST_CASE("make_badcookie: a truncated answer becomes BADCOOKIE (23) with AA and TC cleared") {
    const auto a = policy_answer("example.com", type::TXT);
    uint8_t out[512];
    const size_t t = truncate_answer(a.data(), a.size(), out, sizeof out);
    REQUIRE(t > 0);
    REQUIRE(make_badcookie(out, t));
    const dptest::Msg m = dptest::decode(std::vector<uint8_t>(out, out + t));
    CHECK(m.rcode == rcode::BADCOOKIE);
    CHECK_FALSE(m.aa);
    CHECK_FALSE(m.tc);
    CHECK(m.an.empty());
    CHECK(m.qname == "example.com.");
    auto no_opt = make_query("example.com", type::TXT);
    no_opt[2] |= 0x80;
    CHECK_FALSE(make_badcookie(no_opt.data(), no_opt.size()));
}

TEST_CASE("add_cookie: the client's cookie and our server cookie, computed for that client") {
    CookieSecret k;
    REQUIRE(parse_cookie_secret("e5e973e5a6b2a43f48e7dc849e37bfcf", k));
    const Cookies cookies(k, nullptr);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, "198.51.100.100", &sin.sin_addr);
    const dp::net::PeerAddress peer = dp::net::peer_address(reinterpret_cast<const sockaddr*>(&sin));
    const ClientAddr from{peer.octets, peer.len};
    ClientCookie c;
    c.len = 8;
    const uint8_t client[8] = {0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57};
    std::memcpy(c.value, client, 8);
    auto a = policy_answer("example.com", type::MX);
    const size_t len = a.size();
    a.resize(len + 64);
    const size_t n = add_cookie(cookies, c, from, a.data(), len, a.size());
    REQUIRE(n == len + 28);
    a.resize(n);
    const auto v = cookie_of(dptest::decode(a));
    REQUIRE(v.size() == 24);
    CHECK(std::equal(client, client + 8, v.begin()));
    CHECK(cookies.check(v.data(), v.size(), from, cookie_clock()) == CookieVerdict::Valid);
    sin.sin_addr.s_addr ^= htonl(1);
    const dp::net::PeerAddress other = dp::net::peer_address(reinterpret_cast<const sockaddr*>(&sin));
    CHECK(cookies.check(v.data(), v.size(), ClientAddr{other.octets, other.len}, cookie_clock()) ==
          CookieVerdict::Invalid);
    // No cookie in the query, or cookies off: the answer is left as it is.
    ClientCookie none;
    CHECK(add_cookie(cookies, none, from, a.data(), n, a.size()) == n);
    CHECK(add_cookie(Cookies{}, c, from, a.data(), n, a.size()) == n);
}
