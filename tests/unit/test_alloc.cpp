// The answer path allocates nothing once warm (DESIGN.md conventions). malloc is interposed
// in this test binary so allocations by libpsl or the C++ runtime are counted too.
// Sanitizer builds bring their own allocator, so there the check is compiled out.
#include <doctest/doctest.h>

#include "dns/policy.hpp"
#include "dns_test_util.hpp"

#if !defined(DP_SANITIZE_BUILD)
#include <cstddef>

extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void __libc_free(void*);

namespace {
thread_local bool g_counting = false;
thread_local size_t g_allocations = 0;
}  // namespace

extern "C" void* malloc(size_t n) {
    if (g_counting) ++g_allocations;
    return __libc_malloc(n);
}
extern "C" void* calloc(size_t a, size_t b) {
    if (g_counting) ++g_allocations;
    return __libc_calloc(a, b);
}
extern "C" void* realloc(void* p, size_t n) {
    if (g_counting) ++g_allocations;
    return __libc_realloc(p, n);
}
extern "C" void free(void* p) { __libc_free(p); }

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
    g_allocations = 0;
    g_counting = true;
    size_t answered = 0;
    for (int round = 0; round < 10; ++round)
        for (auto& q : queries)
            answered += p.respond(q.data(), q.size(), out.data(), out.size(), Transport{round % 2 == 1, 300}, o) > 0;
    g_counting = false;
    CHECK(answered == queries.size() * 10);
    CHECK(g_allocations == 0);

    // The counter itself works: an allocation while counting is seen.
    g_counting = true;
    std::vector<uint8_t> probe(1000);
    g_counting = false;
    CHECK(g_allocations == 1);
}
#endif
