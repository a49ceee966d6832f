// SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF"): a keyed 64-bit hash
// for short inputs. The balancer's rate limiters key their tables with it (so a flood cannot
// aim at one set), and DNS cookies (RFC 9018) are made of it. The one copy in the tree.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dp::dns {

// SipHash-2-4 of `len` octets with a 16-octet key; the result is the 64-bit value whose
// little-endian octets are the reference implementation's output.
uint64_t siphash24(const uint8_t key[16], const void* data, size_t len);

}  // namespace dp::dns
