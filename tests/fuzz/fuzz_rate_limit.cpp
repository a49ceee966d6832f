// Fuzz target: the rate limiters' tables under adversarial keys. The input is a stream of
// responses and requests from client addresses of its choosing (IPv4, IPv6, mapped, other
// families), of every kind, with names and types and time steps of its choosing, against
// small tables with several settings (and reconfigurations between them). The tables never
// hold more than their bounds, verdicts are consistent (exempt networks always pass, a
// log-only limiter never drops), and nothing reads out of bounds.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "balancer/rate_limit.hpp"
#include "dns/policy.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using fuzz::check;
namespace bal = dp::balancer;

namespace {

const dp::dns::PublicSuffix& psl() {
    static auto p = dp::dns::load_suffix_list(dp::dns::SuffixListSettings{});
    return *p;
}

bal::RateLimitSettings settings(fuzz::Bytes& in) {
    bal::RateLimitSettings r;
    r.requests_per_second = in.u8() % 8;
    r.requests_burst = in.u8() % 8;
    r.ipv4_prefix = static_cast<uint8_t>(8 + in.u8() % 25);
    r.ipv6_prefix = static_cast<uint8_t>(16 + in.u8() % 113);
    r.responses_per_second = in.u8() % 6;
    r.nodata_per_second = in.u8() % 4;
    r.errors_per_second = in.u8() % 4;
    r.window = 1 + in.u8() % 20;
    r.slip = in.u8() % 4;
    r.log_only = in.u8() % 8 == 0;
    r.max_entries = 8 + in.u8() % 64;
    std::string err;
    bal::Prefix p;
    if (in.u8() % 2 && bal::parse_prefix("192.0.2.0/24", p, err)) r.exempt.push_back(p);
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Bytes in{data, size};
    bal::RateLimitStats stats;
    bal::RateLimitSettings s = settings(in);
    bal::RequestLimiter requests(s, stats, 1);
    bal::ResponseLimiter responses(s, stats, 2);
    if (in.u8() % 2) responses.set_suffix_list(&psl());
    uint64_t now = 1000;
    for (int step = 0; step < 2000 && !in.done(); ++step) {
        sockaddr_storage ss{};
        const uint8_t fam = in.u8() % 4;
        if (fam == 0 || fam == 3) {
            auto* a = reinterpret_cast<sockaddr_in*>(&ss);
            a->sin_family = fam == 0 ? AF_INET : AF_UNIX;  // an unknown family is never limited
            const uint32_t host = in.u8() % 2 ? 0xC0000200u | in.u8() : uint32_t(in.u16()) << 16 | in.u16();
            a->sin_addr.s_addr = htonl(host);
        } else {
            auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
            a->sin6_family = AF_INET6;
            for (int i = 0; i < 16; ++i) a->sin6_addr.s6_addr[i] = in.u8();
            if (fam == 2) {  // IPv4-mapped
                std::memset(a->sin6_addr.s6_addr, 0, 10);
                a->sin6_addr.s6_addr[10] = a->sin6_addr.s6_addr[11] = 0xFF;
            }
        }
        const auto* sa = reinterpret_cast<const sockaddr*>(&ss);
        now += in.u8() % 4 == 0 ? in.u16() : in.u8() % 8;
        const uint8_t op = in.u8();
        if (op % 8 == 0) {
            s = settings(in);
            requests.reconfigure(s);
            responses.reconfigure(s);
            continue;
        }
        if (op % 2) {
            const bool allowed = requests.allow(sa, now);
            if (s.log_only || !requests.enabled()) check(allowed, "a log-only or disabled request limiter dropped");
        } else {
            size_t got = 0;
            const uint8_t* name = in.take(in.u8() % 80, got);
            const auto kind = static_cast<bal::ResponseKind>(in.u8() % 5);  // Count too: taken as Error
            const bal::RrlVerdict v = responses.check(sa, kind, got ? name : nullptr, got, in.u16(), now);
            if (s.log_only) check(v == bal::RrlVerdict::Send, "a log-only response limiter held back");
        }
        check(stats.request_entries.value() <= static_cast<int64_t>(s.max_entries) &&
                  stats.response_entries.value() <= static_cast<int64_t>(s.max_entries),
              "a table holds more buckets than max_entries");
    }
    return 0;
}
