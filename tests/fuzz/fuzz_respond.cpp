// Fuzz target for everything untrusted input reaches: the query parser and answer builder
// (over UDP and TCP limits) and the TCP stream framing. Built as a libFuzzer target with
// clang (-DDP_FUZZ=ON), and always as a deterministic mutation driver run by ctest.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "dns/message.hpp"
#include "dns/policy.hpp"
#include "net/dns_stream.hpp"
#ifdef DP_FUZZ_BALANCER
#include "balancer/answer_cache.hpp"
#include "balancer/rate_limit.hpp"
#endif

namespace {

const dp::dns::Policy& policy() {
    static dp::dns::Policy* p = [] {
        dp::dns::PolicySettings s;
        s.nameservers.push_back(dp::dns::parse_nameserver("ns1.park.example:192.0.2.1,2001:db8::1"));
        s.nameservers.push_back(dp::dns::parse_nameserver("ns2.example.com:192.0.2.2"));
        s.rua = "r@park.example";
        s.identity = "fuzz";
        s.caa_iodef = "mailto:x@park.example";
        dp::dns::parse_address("192.0.2.80", s.landing_a, s.landing_aaaa);
        return new dp::dns::Policy(s);
    }();
    return *p;
}

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz invariant failed: %s\n", what);
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static std::vector<uint8_t> out(65535);
    dp::dns::Outcome o;
    for (bool tcp : {false, true}) {
        const size_t n = policy().respond(data, size, out.data(), out.size(), dp::dns::Transport{tcp, 300}, o);
        check(n == 0 || n >= 12, "answer shorter than a header");
        check(tcp || n <= dp::dns::kUdpPayloadCap, "UDP answer over 1232 octets");
        if (n) {
            check(out[0] == data[0] && out[1] == data[1], "ID not copied");
            check(out[2] & 0x80, "QR not set");
            check(!(out[3] & 0x80), "RA set");
        }
        // The worker answers UDP in place, over the query in its receive buffer: the same
        // answer, octet for octet.
        if (!tcp && size <= 4096) {
            static uint8_t in_place[4096];
            std::memcpy(in_place, data, size);
            dp::dns::Outcome o2;
            const size_t n2 = policy().respond(in_place, size, in_place, sizeof in_place, dp::dns::Transport{false, 300}, o2);
            check(n2 == n && std::memcmp(in_place, out.data(), n) == 0, "answer built in place differs");
        }
    }
    bool bad = false;
    size_t messages = 0;
    const size_t used = dp::net::scan_frames(data, size, bad, [&](const uint8_t* m, size_t len) {
        check(m >= data && m + len <= data + size, "frame out of bounds");
        ++messages;
        return true;
    });
    check(used <= size, "framing consumed more than given");
#ifdef DP_FUZZ_BALANCER
    // The balancer walks answers from workers and queries from clients with these.
    size_t qend = 0;
    if (dp::dns::question_end(data, size, qend)) check(qend >= 12 && qend <= size, "question end out of bounds");
    uint8_t small[600];
    const size_t t = dp::dns::truncate_answer(data, size, small, sizeof small);
    check(t == 0 || (t >= 12 && t <= sizeof small), "truncated answer size");
    const size_t f = dp::dns::make_servfail(data, size, small, sizeof small);
    check(f == 0 || (f >= 12 && f <= sizeof small), "SERVFAIL size");
    if (size > 24) dp::dns::same_question(data + 12, size / 2 - 12, data + size / 2, size - size / 2);
    if (size <= 4096) {
        static uint8_t copy[4096];
        std::memcpy(copy, data, size);
        dp::dns::set_keepalive(copy, size, 77);
        const size_t r = dp::dns::remove_option(copy, size, dp::dns::edns_opt::TCP_KEEPALIVE);
        check(r <= size, "option removal grew the message");
        dp::dns::remove_option(copy, r, dp::dns::edns_opt::NSID);
    }

    // The cache stores worker answers and serves them to later queries; RRL classifies every
    // answer. Feed both the policy's answer to this input and the input itself as an answer.
    static dp::balancer::AnswerCache cache([] {
        dp::balancer::CacheSettings cs;
        cs.max_entries = 512;  // small: eviction runs often
        cs.max_bytes = 64 * 1024;
        cs.max_stale = 60;
        return cs;
    }());
    static uint64_t now_ms = 0;
    now_ms += 700;
    dp::dns::Query q;
    dp::dns::Malformed why;
    const dp::dns::ParseStatus st = dp::dns::parse_query(data, size, q, why);
    if (dp::balancer::AnswerCache::cacheable_query(q, st)) {
        const size_t n = policy().respond(data, size, out.data(), out.size(), dp::dns::Transport{true, 300}, o);
        if (n) cache.insert(q, out.data(), n, now_ms);
        cache.insert(q, data, size, now_ms);  // arbitrary bytes as a worker's answer
        static uint8_t hit[dp::balancer::AnswerCache::kMaxAnswer];
        for (bool stale : {false, true}) {
            const size_t h = cache.lookup(q, now_ms + 1000 * (stale ? 400 : 1), stale, hit, sizeof hit);
            check(h == 0 || (h >= 12 && h <= sizeof hit), "cached answer size");
            if (h) check(hit[0] == data[0] && hit[1] == data[1], "cached answer without the client's ID");
        }
    }
    check(cache.size() <= 512 && cache.bytes() <= 64 * 1024, "cache over its bounds");
    dp::balancer::ResponseClass rc;
    dp::balancer::classify(data, size, rc);
    check(rc.name_len <= sizeof rc.name, "classified name length");
#endif
    return 0;
}

#ifndef DP_LIBFUZZER
// Deterministic driver: mutates well-formed seed queries (bit flips, truncation, splices,
// random lengths) and feeds them to the target. Usage: fuzz_respond [iterations] [seed]
#include "dns/wire.hpp"

int main(int argc, char** argv) {
    const long iterations = argc > 1 ? std::atol(argv[1]) : 200000;
    std::mt19937_64 rng(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 20261127);
    const uint8_t seeds[][64] = {
        // example.com TXT, EDNS with NSID
        {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
         0, 16, 0, 1, 0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 4, 0, 3, 0, 0},
        // _dmarc.a.co.uk NS
        {0xAB, 0xCD, 0x00, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 6, '_', 'd', 'm', 'a', 'r', 'c', 1, 'a', 2, 'c', 'o', 2,
         'u', 'k', 0, 0, 2, 0, 1},
    };
    const size_t seed_len[] = {44, 32};
    std::vector<uint8_t> buf;
    for (long i = 0; i < iterations; ++i) {
        const int s = static_cast<int>(rng() % 2);
        buf.assign(seeds[s], seeds[s] + seed_len[s]);
        const int mutations = 1 + static_cast<int>(rng() % 6);
        for (int m = 0; m < mutations; ++m) {
            switch (rng() % 5) {
                case 0: buf[rng() % buf.size()] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
                case 1: buf[rng() % buf.size()] = static_cast<uint8_t>(rng()); break;
                case 2: buf.resize(rng() % (buf.size() + 1)); break;
                case 3: buf.push_back(static_cast<uint8_t>(rng())); break;
                case 4: {  // random bytes appended: extra records, options, frames
                    const size_t extra = rng() % 64;
                    for (size_t k = 0; k < extra; ++k) buf.push_back(static_cast<uint8_t>(rng()));
                    break;
                }
            }
            if (buf.empty()) buf.push_back(0);
        }
        LLVMFuzzerTestOneInput(buf.data(), buf.size());
    }
    std::printf("fuzz_respond: %ld inputs, no invariant broken\n", iterations);
    return 0;
}
#endif
