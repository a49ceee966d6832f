// dns/message: the response-side reading and edits front ends use (question matching, name
// walking through compression pointers, OPT edits, truncation, SERVFAIL).
#include <doctest/doctest.h>

#include <vector>

#include "dns/message.hpp"
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
