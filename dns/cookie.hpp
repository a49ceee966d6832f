// DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018): a client sends a
// random 8-octet client cookie; the server answers with a 16-octet server cookie computed from
// it, the client's address, a timestamp and a secret; the client sends both back next time, so
// the server knows the source address is not spoofed without keeping any state. Every host of
// an anycast group configured with the same secret computes the same cookies (RFC 9018 2).
// No allocation, no exceptions: this runs on the answer path of the worker and the balancer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dp::dns {

inline constexpr size_t kClientCookie = 8;
inline constexpr size_t kMinServerCookie = 8, kMaxServerCookie = 32;  // RFC 7873 4
inline constexpr size_t kServerCookie = 16;  // ours: version 1 (RFC 9018 4)
inline constexpr size_t kMaxCookie = kClientCookie + kMaxServerCookie;
// RFC 9018 4.3: a server cookie is valid up to an hour after its timestamp and up to five
// minutes before it (clock skew within an anycast group); past half an hour it is renewed.
inline constexpr uint32_t kCookieLifetime = 3600, kCookieSkew = 300, kCookieRenew = 1800;

using CookieSecret = std::array<uint8_t, 16>;  // the SipHash-2-4 key

// Parses 32 hexadecimal digits; false for anything else.
bool parse_cookie_secret(std::string_view hex, CookieSecret& out);
// A random secret made once per process (std::random_device), used when none is configured:
// it outlives configuration reloads, so cookies handed out stay valid across a SIGHUP.
const CookieSecret& process_cookie_secret();

// The client's address octets a server cookie is bound to: 4 for IPv4 (an IPv4-mapped IPv6
// address counts as IPv4, so one client has one cookie whichever socket received it) or 16 for
// IPv6; len 0: unknown. A view: the transport keeps the octets (net::PeerAddress, per UDP
// datagram or per TCP connection).
struct ClientAddr {
    const uint8_t* octets = nullptr;
    uint8_t len = 0;
};

// Is a COOKIE option of `len` octets well formed (8, or 16 to 40: RFC 7873 5.2.2)?
inline bool cookie_length_ok(size_t len) {
    return len == kClientCookie || (len >= kClientCookie + kMinServerCookie && len <= kMaxCookie);
}

// What a query's COOKIE option proves (RFC 7873 5.2): nothing (no option), a client cookie
// only, a server cookie this server made for that client within its lifetime, or one it did
// not (another server's, expired, another address, an old secret past rotation).
enum class CookieVerdict : uint8_t { None, ClientOnly, Valid, Invalid };
// The `result` label of the cookie metrics (worker and balancer), by counter index: 0 a
// malformed option (FORMERR), then by CookieVerdict (None unused).
inline constexpr const char* kCookieResults[4] = {"malformed", "client_only", "valid", "invalid"};

class Cookies {
public:
    // Cookies off: every verdict is None and no option is answered.
    Cookies() = default;
    // `previous` (optional) is still accepted during a rotation; new cookies use `current`.
    Cookies(const CookieSecret& current, const CookieSecret* previous);

    bool enabled() const { return enabled_; }

    // The RFC 9018 version-1 server cookie for `client` (8 octets) seen from `a` at `now`
    // (seconds since the epoch, modulo 2^32): version, 3 reserved zero octets, timestamp,
    // SipHash-2-4 of client cookie | version | reserved | timestamp | address.
    void make(const uint8_t* client, const ClientAddr& a, uint32_t now, uint8_t out[kServerCookie]) const;

    // Judges a well-formed COOKIE option (`cookie`, `len` octets, cookie_length_ok).
    CookieVerdict check(const uint8_t* cookie, size_t len, const ClientAddr& a, uint32_t now) const;

    // The COOKIE option value to answer with: the client cookie, then the server cookie the
    // query carried when it is valid under the current secret and younger than half an hour,
    // else a new one. Writes into `out` (kMaxCookie octets) and returns the length; 0 when
    // cookies are off or the query carried none.
    size_t answer(const uint8_t* cookie, size_t len, const ClientAddr& a, uint32_t now, uint8_t out[kMaxCookie],
                  CookieVerdict* verdict = nullptr) const;

private:
    bool valid_with(const CookieSecret& k, const uint8_t* cookie, const ClientAddr& a) const;

    bool enabled_ = false;
    bool has_previous_ = false;
    CookieSecret current_{}, previous_{};
};

// The cookie settings of a server (the worker's policy, the balancer's fronts): the same keys
// and meaning in both, declared once (dns/policy_settings.hpp).
struct CookieSettings {
    bool enabled = true;   // answer DNS cookies
    std::string secret;    // 32 hex digits; empty: a random secret per process
    std::string previous;  // still accepted while a new secret is rolled out
};

// The cookie engine for `s`; throws config::ConfigError naming cookie_secret or
// cookie_secret_previous for a bad secret (or a previous one without a current one).
Cookies make_cookies(const CookieSettings& s);

// A query's cookie as a front keeps it until the answer goes out (the balancer strips the
// option before a query goes to a worker, so the front adds the client's cookie to whatever
// answer comes back, from a worker or the cache).
struct ClientCookie {
    uint8_t len = 0;  // 0: the query had none (or cookies are off)
    CookieVerdict verdict = CookieVerdict::None;
    uint8_t value[kMaxCookie];
    void clear() {
        len = 0;
        verdict = CookieVerdict::None;
    }
};

// Time for cookies: seconds since the epoch, modulo 2^32 (RFC 9018 4.3 serial arithmetic).
uint32_t cookie_clock();

}  // namespace dp::dns
