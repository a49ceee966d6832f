// Rate limiting in the balancer, for UDP clients only (a TCP client has completed a handshake,
// so its address is not spoofed; callers never call these for TCP):
//
//  * RequestLimiter: a token bucket per client network (IPv4 /24, IPv6 /56 by default). A query
//    over the limit is dropped before it reaches a worker.
//  * ResponseLimiter: response rate limiting after BIND's RRL (and deploy/coredns/plugin/rrl, our
//    CoreDNS plugin): responses per second per (client network, response kind, name[, type]);
//    excess responses are dropped, every `slip`th of them is sent as an empty TC=1 reply instead.
//
// Plain data structures: no sockets, no loop, no locks. One instance per query thread; the
// caller passes the time (uv_now()) in milliseconds. Memory is bounded by `max_entries` per
// table, allocated once (zeroed pages, touched as used); nothing is allocated per query.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dns/public_suffix.hpp"
#include "dns/wire.hpp"
#include "net/metrics.hpp"

namespace dp::balancer {

// A network: IPv4 (family 4, addr[0..3]) or IPv6 (family 6, addr[0..15]); host bits are zero.
struct Prefix {
    uint8_t family = 0;  // 4 or 6
    uint8_t length = 0;  // 0-32 or 0-128
    uint8_t addr[16] = {};

    // True when the address (same encoding as `addr`) lies in this network.
    bool contains(uint8_t addr_family, const uint8_t* address) const;
};

// "10.0.0.0/8", "2001:db8::/32", "192.0.2.1" (a host: /32 or /128). An IPv4-mapped IPv6
// network of length >= 96 ("::ffff:192.0.2.0/120") is stored as the IPv4 network (192.0.2.0/24),
// since clients are matched as IPv4 too. Host bits set ("10.0.0.1/8") are rejected, as BIND
// does, because they usually mean a typo. False with a one-line error naming the text.
bool parse_prefix(const std::string& text, Prefix& out, std::string& error);
// "10.0.0.0/8", "2001:db8::/32".
std::string to_string(const Prefix& p);

struct RateLimitSettings {
    uint32_t requests_per_second = 0;  // queries per client network; 0 = off
    uint32_t requests_burst = 0;       // bucket size; 0 = requests_per_second
    uint8_t ipv4_prefix = 24, ipv6_prefix = 56;  // client network lengths (clamped to 32 / 128)
    uint32_t responses_per_second = 0;  // RRL allowance of Answer responses; 0 = not limited
    // Allowances of the other kinds; 0 = responses_per_second's (as BIND). A kind whose allowance
    // ends up 0 is not limited. The response limiter is enabled when any kind is limited.
    uint32_t nodata_per_second = 0, nxdomains_per_second = 0, errors_per_second = 0;
    uint32_t window = 15;  // seconds of debt an RRL bucket may run up (clamped to 1-3600)
    uint32_t slip = 2;     // every slip-th suppressed response is a TC=1 reply; 0 never, 1 always
    bool log_only = false;        // count what would be dropped or slipped, send everything
    std::vector<Prefix> exempt;   // clients never limited (neither requests nor responses)
    size_t max_entries = 65536;   // buckets per table (rounded down to a multiple of 8 when >= 8;
                                  // clamped to 1 - 16,777,216)
};

// Counters written by the query thread only.
struct RateLimitStats {
    net::Counter requests_dropped;      // queries dropped by RequestLimiter
    net::Counter requests_would_drop;   // log_only: queries that would have been dropped
    net::Counter requests_exempt;       // queries from exempt networks (while requests are limited)
    net::Counter rrl_dropped[4];        // by ResponseKind
    net::Counter rrl_slipped[4];        // by ResponseKind
    net::Counter rrl_exempt;            // responses to exempt networks (for a limited kind)
    net::Counter rrl_would_drop, rrl_would_slip;  // log_only
    net::Counter table_evictions;       // live buckets replaced in a full set (both tables)
    net::Gauge request_entries, response_entries;  // buckets held
};

namespace detail {
class BucketTable;
struct TableDeleter {
    void operator()(BucketTable* t) const;
};
using TablePtr = std::unique_ptr<BucketTable, TableDeleter>;

}  // namespace detail

class RequestLimiter {
public:
    // `stats` must outlive the limiter. The hash key is random unless `seed` is given (tests).
    RequestLimiter(const RateLimitSettings& s, RateLimitStats& stats);
    RequestLimiter(const RateLimitSettings& s, RateLimitStats& stats, uint64_t seed);
    ~RequestLimiter();
    RequestLimiter(const RequestLimiter&) = delete;
    RequestLimiter& operator=(const RequestLimiter&) = delete;

    // Applies new settings. Buckets are kept unless the table size changes (then they restart
    // full); turning the limiter off frees the table.
    void reconfigure(const RateLimitSettings& s);
    bool enabled() const { return rate_ != 0; }
    // true: let it through. false: drop (counted in stats.requests_dropped). Unknown address
    // families are let through.
    bool allow(const sockaddr* client, uint64_t now_ms);

private:
    RateLimitStats& stats_;
    uint8_t key_[16];
    uint32_t rate_ = 0, burst_ = 0;
    uint8_t v4_len_ = 24, v6_len_ = 56;
    bool log_only_ = false;
    std::vector<Prefix> exempt_;
    size_t max_entries_ = 0;
    detail::TablePtr table_;
    const dns::PublicSuffix* psl_ = nullptr;
};

enum class ResponseKind : uint8_t { Answer, Nodata, Nxdomain, Error, Count };
enum class RrlVerdict : uint8_t { Send, Drop, Slip };

// What classify() found in an answer: the kind, and the name and type its bucket is keyed by.
struct ResponseClass {
    ResponseKind kind = ResponseKind::Error;
    uint16_t qtype = 0;                // the question's type (0 when unknown)
    size_t name_len = 0;               // 0: no name (Error)
    uint8_t name[dns::kMaxNameWire];   // uncompressed wire name, case as in the message; only the
                                       // first name_len octets are set (no zeroing per answer)
};

// Classifies an answer message:
//  * NOERROR with ANCOUNT > 0: Answer, name = the query name.
//  * NOERROR, ANCOUNT 0: Nodata; NXDOMAIN: Nxdomain (answers, e.g. a CNAME chain, allowed);
//    name = the owner of the first SOA in AUTHORITY (decompressed), or the query name when
//    AUTHORITY has no SOA.
//  * any other rcode (header, or extended by OPT on a NOERROR/NODATA answer): Error, no name.
//  * not an answer (runt, QR=0, QDCOUNT != 1) or malformed where it had to be read: Error.
// Bounds-checked; compression pointers must point backwards. Returns out.kind.
ResponseKind classify(const uint8_t* answer, size_t len, ResponseClass& out);

class ResponseLimiter {
public:
    ResponseLimiter(const RateLimitSettings& s, RateLimitStats& stats);
    ResponseLimiter(const RateLimitSettings& s, RateLimitStats& stats, uint64_t seed);
    ~ResponseLimiter();
    ResponseLimiter(const ResponseLimiter&) = delete;
    ResponseLimiter& operator=(const ResponseLimiter&) = delete;

    void reconfigure(const RateLimitSettings& s);
    bool enabled() const { return enabled_; }
    // Whether settings `s` limit any kind of response.
    static bool enabled_by(const RateLimitSettings& s) {
        return s.responses_per_second || s.nodata_per_second || s.nxdomains_per_second || s.errors_per_second;
    }
    uint32_t rate(ResponseKind k) const { return k < ResponseKind::Count ? rates_[static_cast<int>(k)] : 0; }

    // Every name under a parked domain is answered, like a wildcard, so answers are keyed on the
    // name's registrable domain when `psl` is given (BIND keys answers synthesized from a
    // wildcard on the wildcard): r1.example.com and r2.example.com share one bucket. Null: the
    // whole name. The list must outlive the limiter (or be replaced first).
    void set_suffix_list(const dns::PublicSuffix* psl) { psl_ = psl; }

    // `name` is an uncompressed wire name (any case; hashed case-insensitively; octets beyond 255
    // ignored): for Answer the query name (reduced to its registrable domain, see above), for
    // Nodata/Nxdomain the zone (the SOA owner in the authority section), for Error ignored (may
    // be null, len 0). `qtype` keys Answer buckets only. UDP only. Unknown address families get Send.
    RrlVerdict check(const sockaddr* client, ResponseKind kind, const uint8_t* name, size_t name_len,
                     uint16_t qtype, uint64_t now_ms);
    RrlVerdict check(const sockaddr* client, const ResponseClass& c, uint64_t now_ms) {
        return check(client, c.kind, c.name, c.name_len, c.qtype, now_ms);
    }

private:
    RateLimitStats& stats_;
    uint8_t key_[16];
    uint32_t rates_[4] = {};
    uint32_t window_ = 15, slip_ = 2;
    uint8_t v4_len_ = 24, v6_len_ = 56;
    bool log_only_ = false;
    bool enabled_ = false;
    std::vector<Prefix> exempt_;
    size_t max_entries_ = 0;
    detail::TablePtr table_;
    const dns::PublicSuffix* psl_ = nullptr;
};

}  // namespace dp::balancer
