#include "dns/cookie.hpp"

#include <cstring>
#include <ctime>
#include <random>

#include "config/error.hpp"
#include "dns/siphash.hpp"
#include "dns/wire.hpp"

namespace dp::dns {

namespace {
int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
// The hash input: client cookie, version, reserved, timestamp (the server cookie's first 8
// octets), client address.
uint64_t cookie_hash(const CookieSecret& k, const uint8_t* client, const uint8_t* head, const ClientAddr& a) {
    uint8_t in[kClientCookie + 8 + 16];
    std::memcpy(in, client, kClientCookie);
    std::memcpy(in + kClientCookie, head, 8);
    const size_t alen = a.octets && a.len <= 16 ? a.len : 0;
    if (alen) std::memcpy(in + kClientCookie + 8, a.octets, alen);
    return siphash24(k.data(), in, kClientCookie + 8 + alen);
}
void put_hash(uint64_t h, uint8_t* out) {  // the reference's output octets: little-endian
    for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(h >> (8 * i));
}
// Age of timestamp `ts` at `now` in serial-number arithmetic (RFC 1982): negative when ahead.
int64_t age(uint32_t ts, uint32_t now) { return static_cast<int32_t>(now - ts); }
}  // namespace

bool parse_cookie_secret(std::string_view hex, CookieSecret& out) {
    if (hex.size() != 2 * out.size()) return false;
    for (size_t i = 0; i < out.size(); ++i) {
        const int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
}

const CookieSecret& process_cookie_secret() {
    static const CookieSecret secret = [] {
        CookieSecret s;
        std::random_device rd;
        for (size_t i = 0; i < s.size(); i += 4) {
            const uint32_t v = rd();
            std::memcpy(s.data() + i, &v, 4);
        }
        return s;
    }();
    return secret;
}

Cookies make_cookies(const CookieSettings& s) {
    using config::ConfigError;
    if (!s.enabled) return Cookies{};
    CookieSecret cur = process_cookie_secret(), prev{};
    if (!s.secret.empty() && !parse_cookie_secret(s.secret, cur))
        throw ConfigError("cookie_secret: expected 32 hexadecimal digits (a 128-bit SipHash key)");
    if (!s.previous.empty() && !parse_cookie_secret(s.previous, prev))
        throw ConfigError("cookie_secret_previous: expected 32 hexadecimal digits (a 128-bit SipHash key)");
    if (!s.previous.empty() && s.secret.empty())
        throw ConfigError("cookie_secret_previous: set without cookie_secret (the secret it is rolled to)");
    return Cookies(cur, s.previous.empty() ? nullptr : &prev);
}

uint32_t cookie_clock() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return static_cast<uint32_t>(ts.tv_sec);
}

Cookies::Cookies(const CookieSecret& current, const CookieSecret* previous)
    : enabled_(true), has_previous_(previous != nullptr), current_(current) {
    if (previous) previous_ = *previous;
}

void Cookies::make(const uint8_t* client, const ClientAddr& a, uint32_t now, uint8_t out[kServerCookie]) const {
    out[0] = 1;  // version
    out[1] = out[2] = out[3] = 0;
    put_u32(out + 4, now);  // timestamp
    put_hash(cookie_hash(current_, client, out, a), out + 8);
}

bool Cookies::valid_with(const CookieSecret& k, const uint8_t* cookie, const ClientAddr& a) const {
    // Reserved octets another implementation set are part of the hash (RFC 9018 4.2).
    uint8_t h[8];
    put_hash(cookie_hash(k, cookie, cookie + kClientCookie, a), h);
    return std::memcmp(h, cookie + kClientCookie + 8, 8) == 0;
}

CookieVerdict Cookies::check(const uint8_t* cookie, size_t len, const ClientAddr& a, uint32_t now) const {
    if (!enabled_ || len < kClientCookie) return CookieVerdict::None;
    if (len == kClientCookie) return CookieVerdict::ClientOnly;
    // Only version 1 of our own length is ours to judge; anything else is another server's.
    if (len != kClientCookie + kServerCookie || cookie[kClientCookie] != 1) return CookieVerdict::Invalid;
    const int64_t old = age(get_u32(cookie + kClientCookie + 4), now);
    if (old > int64_t(kCookieLifetime) || old < -int64_t(kCookieSkew)) return CookieVerdict::Invalid;
    if (valid_with(current_, cookie, a) || (has_previous_ && valid_with(previous_, cookie, a)))
        return CookieVerdict::Valid;
    return CookieVerdict::Invalid;
}

size_t Cookies::answer(const uint8_t* cookie, size_t len, const ClientAddr& a, uint32_t now, uint8_t out[kMaxCookie],
                       CookieVerdict* verdict) const {
    const CookieVerdict v = check(cookie, len, a, now);
    if (verdict) *verdict = v;
    if (v == CookieVerdict::None) return 0;
    std::memcpy(out, cookie, kClientCookie);
    // Echo a valid cookie of the current secret while it is fresh: the client keeps one
    // cookie for half an hour rather than a new one per answer (RFC 9018 4.3).
    if (v == CookieVerdict::Valid && age(get_u32(cookie + kClientCookie + 4), now) <= int64_t(kCookieRenew) &&
        valid_with(current_, cookie, a)) {
        std::memcpy(out + kClientCookie, cookie + kClientCookie, kServerCookie);
    } else {
        make(cookie, a, now, out + kClientCookie);
    }
    return kClientCookie + kServerCookie;
}

}  // namespace dp::dns
