#include "dns/siphash.hpp"

namespace dp::dns {

namespace {
inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
inline uint64_t load64le(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}
struct SipState {
    uint64_t v0, v1, v2, v3;
    void round() {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    }
    void compress(uint64_t m) {
        v3 ^= m;
        round();
        round();
        v0 ^= m;
    }
};
}  // namespace

uint64_t siphash24(const uint8_t key[16], const void* data, size_t len) {
    const uint64_t k0 = load64le(key), k1 = load64le(key + 8);
    SipState s{k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull, k0 ^ 0x6c7967656e657261ull,
               k1 ^ 0x7465646279746573ull};
    const auto* p = static_cast<const uint8_t*>(data);
    const size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) s.compress(load64le(p + i));
    uint64_t last = static_cast<uint64_t>(len & 0xFF) << 56;
    for (size_t i = 0; i < len % 8; ++i) last |= static_cast<uint64_t>(p[whole + i]) << (8 * i);
    s.compress(last);
    s.v2 ^= 0xFF;
    for (int i = 0; i < 4; ++i) s.round();
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

}  // namespace dp::dns
