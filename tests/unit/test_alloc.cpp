// The answer path allocates nothing once warm (dns/README.md: no allocation on the answer path). malloc is interposed
// in this test binary so allocations by libpsl or the C++ runtime are counted too.
// Sanitizer builds bring their own allocator, so there the check is compiled out.
#include <doctest/doctest.h>

#include "dns/policy.hpp"
#include "dns_test_util.hpp"

#include "count_allocations.hpp"

#ifdef DPTEST_COUNT_ALLOCATIONS
#include <vector>

TEST_CASE("answering allocates nothing") {
    using namespace dp::dns;
    PolicySettings s;
    s.nameservers.push_back(parse_nameserver("ns1.park.example:192.0.2.1,2001:db8::1"));
    s.nameservers.push_back(parse_nameserver("ns2.park.example:192.0.2.2"));
    s.rua = "r@park.example";
    s.identity = "w1";
    s.deny = {"denied.example"};
    parse_address("192.0.2.80", s.landing_a, s.landing_aaaa);
    Policy p(s);
    std::vector<std::vector<uint8_t>> queries;
    dptest::QueryOpts e;
    e.edns = true;
    e.nsid = true;
    e.keepalive = true;
    for (const char* name : {"example.com", "a.b.Example.co.uk", "_dmarc.example.org", "s._domainkey.example.net",
                             "co.uk", "www.denied.example", "ns1.park.example", "shop.example.xn--p1ai"})
        for (uint16_t t : {type::A, type::AAAA, type::TXT, type::MX, type::CAA, type::NS, type::SOA, type::DS,
                           type::ANY, type::AXFR}) {
            queries.push_back(dptest::make_query(name, t));
            queries.push_back(dptest::make_query(name, t, e));
        }
    std::vector<uint8_t> out(65535);
    Outcome o;
    for (auto& q : queries) p.respond(q.data(), q.size(), out.data(), out.size(), Transport{}, o);  // warm up
    dptest::alloc::start();
    size_t answered = 0;
    for (int round = 0; round < 10; ++round)
        for (auto& q : queries)
            answered += p.respond(q.data(), q.size(), out.data(), out.size(), Transport{round % 2 == 1, 300}, o) > 0;
    const size_t allocations = dptest::alloc::stop();
    CHECK(answered == queries.size() * 10);
    CHECK(allocations == 0);

    // The counter itself works: an allocation while counting is seen.
    dptest::alloc::start();
    std::vector<uint8_t> probe(1000);
    asm volatile("" : : "g"(probe.data()) : "memory");  // escapes: clang may not elide the allocation
    CHECK(dptest::alloc::stop() == 1);
}
#endif
