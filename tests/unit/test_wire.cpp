#include <doctest/doctest.h>

#include <cstring>

#include "dns/wire.hpp"
#include "dns_test_util.hpp"

using namespace dp::dns;
using namespace dptest;

TEST_CASE("parse a plain query") {
    auto m = make_query("Www.Example.com", type::AAAA);
    Query q;
    Malformed why;
    REQUIRE(parse_query(m.data(), m.size(), q, why) == ParseStatus::Ok);
    CHECK(q.id == 0x1234);
    CHECK(q.rd);
    CHECK(q.qtype == type::AAAA);
    CHECK(q.qclass == klass::IN);
    CHECK(q.label_count == 3);
    CHECK(q.qname_len == 17);
    CHECK(q.label_off[1] == 4);
    CHECK(q.qname[1] == 'W');  // case kept
    CHECK_FALSE(q.edns);
}

TEST_CASE("parse EDNS: size floor, version, DO, NSID and keepalive") {
    QueryOpts o;
    o.edns = true;
    o.udp_size = 100;
    o.version = 2;
    o.do_bit = true;
    o.nsid = true;
    o.keepalive = true;
    auto m = make_query("example.com", type::A, o);
    Query q;
    Malformed why;
    REQUIRE(parse_query(m.data(), m.size(), q, why) == ParseStatus::Ok);
    CHECK(q.edns);
    CHECK(q.edns_udp_size == 512);
    CHECK(q.edns_version == 2);
    CHECK(q.edns_do);
    CHECK(q.edns_nsid);
    CHECK(q.edns_keepalive);
}

TEST_CASE("rejections carry the right status and reason") {
    Query q;
    Malformed why;
    auto m = make_query("example.com", type::A);
    CHECK(parse_query(m.data(), 5, q, why) == ParseStatus::Drop);
    CHECK(why == Malformed::TooShort);

    auto r = m;
    r[2] |= 0x80;
    CHECK(parse_query(r.data(), r.size(), q, why) == ParseStatus::Drop);
    CHECK(why == Malformed::IsResponse);

    auto bad_label = m;
    bad_label[12] = 0x47;  // 0x40 label type
    CHECK(parse_query(bad_label.data(), bad_label.size(), q, why) == ParseStatus::FormErr);
    CHECK(why == Malformed::Question);

    auto ptr = m;
    ptr[12] = 0xC0;  // compression pointer in the question
    CHECK(parse_query(ptr.data(), ptr.size(), q, why) == ParseStatus::FormErr);

    auto no_type = m;
    no_type.resize(no_type.size() - 2);
    CHECK(parse_query(no_type.data(), no_type.size(), q, why) == ParseStatus::FormErr);

    // OPT owner must be the root; OPT only in the additional section.
    QueryOpts e;
    e.edns = true;
    auto opt = make_query("example.com", type::A, e);
    auto owner = make_query("example.com", type::A);
    owner[11] = 1;  // ARCOUNT
    for (int b : {1, int('x'), 0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0}) owner.push_back(static_cast<uint8_t>(b));  // OPT owned by "x."
    CHECK(parse_query(owner.data(), owner.size(), q, why) == ParseStatus::FormErr);
    auto in_answer = opt;
    in_answer[7] = 1;
    in_answer[11] = 0;
    CHECK(parse_query(in_answer.data(), in_answer.size(), q, why) == ParseStatus::FormErr);
    CHECK(why == Malformed::Opt);

    auto cut_opt = opt;
    cut_opt[cut_opt.size() - 1] = 4;  // RDLENGTH 4 with no data
    CHECK(parse_query(cut_opt.data(), cut_opt.size(), q, why) == ParseStatus::FormErr);
    CHECK(why == Malformed::Record);
}

TEST_CASE("opcode other than QUERY parses the question for the NOTIMP answer") {
    QueryOpts o;
    o.opcode = 5;
    auto m = make_query("example.com", type::SOA, o);
    Query q;
    Malformed why;
    CHECK(parse_query(m.data(), m.size(), q, why) == ParseStatus::NotImp);
    CHECK(q.question_ok);
}

TEST_CASE("names: 63-octet labels accepted, 64 rejected, 255-octet limit") {
    Query q;
    Malformed why;
    auto ok = make_query(std::string(63, 'x') + ".com", type::A);
    CHECK(parse_query(ok.data(), ok.size(), q, why) == ParseStatus::Ok);
    auto long_label = make_query(std::string(64, 'x') + ".com", type::A);
    CHECK(parse_query(long_label.data(), long_label.size(), q, why) == ParseStatus::FormErr);

    std::string wire, err;
    CHECK(encode_name("ns1.Example.net.", wire, err));
    CHECK(wire == std::string("\3ns1\7Example\3net\0", 17));
    CHECK(encode_name(".", wire, err));
    CHECK(wire == std::string(1, '\0'));
    CHECK_FALSE(encode_name("a..b", wire, err));
    CHECK_FALSE(encode_name(std::string(64, 'a') + ".b", wire, err));
    std::string l63(63, 'a');
    CHECK_FALSE(encode_name(l63 + "." + l63 + "." + l63 + "." + l63, wire, err));
    CHECK(encode_name(l63 + "." + l63 + "." + l63 + "." + std::string(61, 'a'), wire, err));
    CHECK(wire.size() == 255);
}

TEST_CASE("case-insensitive name comparison") {
    auto a = wire_name("ExAmple.COM");
    auto b = wire_name("example.com");
    auto c = wire_name("example.org");
    CHECK(name_equal_ci(a.data(), b.data()));
    CHECK_FALSE(name_equal_ci(a.data(), c.data()));
}

TEST_CASE("writer compresses suffixes and stops at its limit") {
    uint8_t buf[128];
    Writer w(buf, sizeof buf);
    auto n1 = wire_name("ns1.park.example");
    auto n2 = wire_name("ns2.park.example");
    w.name(n1.data());
    CHECK(w.size() == n1.size());
    w.name(n2.data());
    // "ns2" label then a pointer to "park.example" at offset 4.
    CHECK(w.size() == n1.size() + 4 + 2);
    CHECK(buf[n1.size() + 4] == 0xC0);
    CHECK(buf[n1.size() + 5] == 4);
    w.name(n1.data());
    CHECK(w.size() == n1.size() + 6 + 2);  // the whole name is a pointer

    Writer small(buf, 4);
    small.u32(1);
    CHECK_FALSE(small.overflow());
    small.u8(1);
    CHECK(small.overflow());
    CHECK(small.size() == 4);
    small.rewind(2);
    CHECK_FALSE(small.overflow());
}
