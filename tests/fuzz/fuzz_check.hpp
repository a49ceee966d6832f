// What every fuzz target uses: an invariant that must hold for any input (a broken one aborts,
// so libFuzzer and the driver both report it as a crash with the input that caused it), and
// a reader that takes the fuzzer's bytes apart into decisions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace fuzz {

inline void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz invariant failed: %s\n", what);
        std::abort();
    }
}

// Consumes the input front to back; past its end every read gives zeros.
struct Bytes {
    const uint8_t* p;
    size_t n;
    size_t off = 0;
    bool done() const { return off >= n; }
    uint8_t u8() { return off < n ? p[off++] : 0; }
    uint16_t u16() { return static_cast<uint16_t>(u8() << 8 | u8()); }
    // Up to `max` octets (fewer at the end): a view into the input.
    const uint8_t* take(size_t want, size_t& got) {
        got = off + want <= n ? want : n - off;
        const uint8_t* r = p + off;
        off += got;
        return r;
    }
    const uint8_t* rest(size_t& got) { return take(n - off, got); }
};

}  // namespace fuzz
