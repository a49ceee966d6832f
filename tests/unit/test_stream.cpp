#include <doctest/doctest.h>

#include <vector>

#include "net/dns_stream.hpp"

using dp::net::scan_frames;
using dp::net::StreamBuffer;

namespace {
std::vector<uint8_t> framed(size_t len, uint8_t fill) {
    std::vector<uint8_t> v(2 + len, fill);
    v[0] = static_cast<uint8_t>(len >> 8);
    v[1] = static_cast<uint8_t>(len);
    return v;
}
}  // namespace

TEST_CASE("scan_frames: several messages, a split one, a stop request") {
    auto a = framed(12, 1), b = framed(20, 2), c = framed(300, 3);
    std::vector<uint8_t> s;
    s.insert(s.end(), a.begin(), a.end());
    s.insert(s.end(), b.begin(), b.end());
    s.insert(s.end(), c.begin(), c.begin() + 100);  // split
    std::vector<size_t> seen;
    bool bad = true;
    size_t used = scan_frames(s.data(), s.size(), bad, [&](const uint8_t* m, size_t n) {
        seen.push_back(n);
        CHECK(m[0] == (n == 12 ? 1 : 2));
        return true;
    });
    CHECK_FALSE(bad);
    CHECK(seen == std::vector<size_t>{12, 20});
    CHECK(used == a.size() + b.size());

    seen.clear();
    used = scan_frames(s.data(), s.size(), bad, [&](const uint8_t*, size_t n) {
        seen.push_back(n);
        return false;
    });
    CHECK(seen.size() == 1);
    CHECK(used == a.size());

    // One octet of a length prefix is not a message yet.
    CHECK(scan_frames(s.data(), 1, bad, [](const uint8_t*, size_t) { return true; }) == 0);
}

TEST_CASE("scan_frames: a length below 12 marks the stream bad") {
    std::vector<uint8_t> s = framed(12, 0);
    s.resize(s.size() + 7, 0);
    s[15] = 5;  // second prefix: 0x0005
    bool bad = false;
    int n = 0;
    size_t used = scan_frames(s.data(), s.size(), bad, [&](const uint8_t*, size_t) { return ++n, true; });
    CHECK(bad);
    CHECK(n == 1);
    CHECK(used == 14);
}

TEST_CASE("StreamBuffer holds nothing when empty and respects its bound") {
    StreamBuffer b;
    CHECK(b.data() == nullptr);
    uint8_t x[100] = {1, 2, 3};
    CHECK(b.append(x, 100, 150));
    CHECK_FALSE(b.append(x, 51, 150));
    CHECK(b.size() == 100);
    b.consume(1);
    CHECK(b.data()[0] == 2);
    b.consume(99);
    CHECK(b.empty());
    CHECK(b.data() == nullptr);
}
