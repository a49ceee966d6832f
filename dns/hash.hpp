// A word-at-a-time 64-bit hash for the short keys of the lookup tables (name suffixes in the
// worker, questions in the balancer's cache). Not cryptographic: every table using it either
// compares whole keys (a collision costs a probe, never a wrong answer) or seeds it randomly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dp::dns {

inline uint64_t word_hash(const void* data, size_t n, uint64_t seed) {
    constexpr uint64_t k = 0x9E3779B97F4A7C15ull;
    const auto* p = static_cast<const uint8_t*>(data);
    uint64_t h = seed ^ (n * k);
    while (n >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * k;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n > 0) {  // the tail without reading past it
        uint64_t w;
        if (n >= 4) {  // two 4-octet reads, overlapping when n < 8
            uint32_t a, b;
            std::memcpy(&a, p, 4);
            std::memcpy(&b, p + n - 4, 4);
            w = uint64_t(a) << 32 | b;
        } else {  // first, middle and last octet
            w = uint64_t(p[0]) << 16 | uint64_t(p[n / 2]) << 8 | p[n - 1];
        }
        h = (h ^ w) * k;
    }
    // MurmurHash3's 64-bit finalizer: every input bit reaches the low (index) bits.
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

}  // namespace dp::dns
