// DNS cookies (RFC 7873, RFC 9018) and the SipHash-2-4 they are made of.
#include <doctest/doctest.h>

#include "dns/siphash.hpp"

using namespace dp::dns;

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
