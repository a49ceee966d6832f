#include "balancer/rate_limit.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>

#include "config/settings.hpp"
#include "dns/message.hpp"
#include "dns/policy.hpp"
#include "dns/siphash.hpp"
#include "net/sockets.hpp"

namespace dp::balancer {

namespace {

// Balances are kept in thousandths of a response: a bucket allowed `rate` a second regains
// exactly `rate` of them per millisecond, so the arithmetic is exact for any rate.
constexpr int64_t kScale = 1000;
constexpr size_t kWays = 8;
constexpr size_t kMaxEntries = size_t{1} << 24;
constexpr uint32_t kMaxWindow = 3600;

// The client's address as family (4 or 6) and 16 zero-padded octets; false when unknown.
bool address_key(const sockaddr* sa, uint8_t& family, uint8_t* addr) {
    const net::PeerAddress a = net::peer_address(sa);
    if (a.len == 0) return false;
    family = a.len == 4 ? 4 : 6;
    std::memcpy(addr, a.octets, 16);
    return true;
}

// Zeroes the bits of `addr` (16 octets) beyond `len`.
void mask(uint8_t* addr, unsigned len) {
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned start = i * 8;
        if (len >= start + 8) continue;
        addr[i] = len <= start ? 0 : static_cast<uint8_t>(addr[i] & (0xFF00u >> (len - start)));
    }
}

bool exempted(const std::vector<Prefix>& list, uint8_t family, const uint8_t* addr) {
    for (const auto& p : list)
        if (p.contains(family, addr)) return true;
    return false;
}

uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void make_key(uint8_t key[16], uint64_t seed) {
    for (int half = 0; half < 2; ++half) {
        const uint64_t v = splitmix64(seed);
        std::memcpy(key + 8 * half, &v, 8);
    }
}

void random_key(uint8_t key[16]) {
    uint64_t seed = 0;
    try {
        std::random_device rd;
        for (int i = 0; i < 4; ++i) {
            const uint32_t w = rd();
            std::memcpy(key + 4 * i, &w, 4);
        }
        return;
    } catch (...) {
        // No entropy source: fall back to the clock and an address (not secret, but varies).
        seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
               static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) ^
               reinterpret_cast<uintptr_t>(key);
    }
    make_key(key, seed);
}

void table_geometry(size_t max_entries, size_t& sets, size_t& ways) {
    const size_t m = std::clamp<size_t>(max_entries, 1, kMaxEntries);
    ways = std::min(m, kWays);
    sets = m / ways;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Prefixes

bool Prefix::contains(uint8_t addr_family, const uint8_t* address) const {
    if (addr_family != family) return false;
    const unsigned full = length / 8u, rest = length % 8u;
    if (std::memcmp(addr, address, full) != 0) return false;
    if (rest == 0) return true;
    const uint8_t m = static_cast<uint8_t>(0xFF00u >> rest);
    return (address[full] & m) == addr[full];
}

bool parse_prefix(const std::string& text, Prefix& out, std::string& error) {
    auto fail = [&](const char* why) {
        error = "bad network " + config::quote(text) + ": " + why;
        return false;
    };
    if (text.find('\0') != std::string::npos) return fail("NUL in the text");
    const size_t slash = text.find('/');
    const std::string host = text.substr(0, slash);
    Prefix p;
    if (host.find(':') != std::string::npos) {
        if (inet_pton(AF_INET6, host.c_str(), p.addr) != 1) return fail("not an IPv6 address");
        p.family = 6;
    } else {
        if (inet_pton(AF_INET, host.c_str(), p.addr) != 1) return fail("not an IPv4 address");
        p.family = 4;
    }
    const unsigned max_len = p.family == 4 ? 32 : 128;
    unsigned len = max_len;
    if (slash != std::string::npos) {
        const std::string digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3 ||
            !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return fail(p.family == 4 ? "prefix length must be 0-32" : "prefix length must be 0-128");
        len = static_cast<unsigned>(std::stoul(digits));
        if (len > max_len) return fail(p.family == 4 ? "prefix length must be 0-32" : "prefix length must be 0-128");
    }
    uint8_t masked[16];
    std::memcpy(masked, p.addr, 16);
    mask(masked, len);
    if (std::memcmp(masked, p.addr, 16) != 0) return fail("host bits set beyond the prefix length");
    if (p.family == 6 && len >= 96 && net::is_v4_mapped(p.addr)) {
        std::memmove(p.addr, p.addr + 12, 4);
        std::memset(p.addr + 4, 0, 12);
        p.family = 4;
        len -= 96;
    }
    p.length = static_cast<uint8_t>(len);
    out = p;
    return true;
}

std::string to_string(const Prefix& p) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (p.family == 4)
        inet_ntop(AF_INET, p.addr, buf, sizeof buf);
    else if (p.family == 6)
        inet_ntop(AF_INET6, p.addr, buf, sizeof buf);
    else
        return "?";
    return std::string(buf) + "/" + std::to_string(p.length);
}

// ---------------------------------------------------------------------------------------------
// The bucket table

namespace detail {

// A set-associative table of buckets: the key's keyed hash picks one set of 8 ways; a key is
// identified by its 64-bit hash (tag). When the set is full, the bucket closest to being full
// again is replaced (the smallest full_at_ms): an expired one (full already, so nothing is lost)
// when there is one, otherwise the least indebted, so a flood of new keys replaces other
// one-response buckets before it replaces the bucket of a network that is being limited.
// Ties go to the least recently used, then the lowest way. O(8) per lookup, no allocation.
class BucketTable {
public:
    struct Entry {
        uint64_t tag;         // 0: free
        int64_t balance;      // thousandths of a response
        uint64_t last_ms;     // time of the last refill
        uint64_t full_at_ms;  // when the balance is back at its cap if nothing more is charged
        uint32_t suppressed;  // responses suppressed in a row
    };

    BucketTable(size_t sets, size_t ways) : sets_(sets), ways_(ways) {
        entries_ = static_cast<Entry*>(std::calloc(sets * ways, sizeof(Entry)));
        if (entries_ == nullptr) throw std::bad_alloc();
    }
    ~BucketTable() { std::free(entries_); }
    BucketTable(const BucketTable&) = delete;
    BucketTable& operator=(const BucketTable&) = delete;

    size_t sets() const { return sets_; }
    size_t ways() const { return ways_; }
    size_t size() const { return used_; }

    // The bucket of `hash`; `fresh` when it was just claimed (the caller initialises it),
    // `evicted` when claiming it replaced a bucket that still held state.
    Entry* get(uint64_t hash, uint64_t now_ms, bool& fresh, bool& evicted) {
        const uint64_t tag = hash == 0 ? 1 : hash;
        const size_t set = static_cast<size_t>(((tag >> 32) * static_cast<uint64_t>(sets_)) >> 32);
        Entry* ways = entries_ + set * ways_;
        Entry* victim = nullptr;
        for (size_t i = 0; i < ways_; ++i) {
            Entry* e = &ways[i];
            if (e->tag == tag) {
                fresh = evicted = false;
                return e;
            }
            if (victim != nullptr && victim->tag == 0) continue;
            if (victim == nullptr || e->tag == 0 || e->full_at_ms < victim->full_at_ms ||
                (e->full_at_ms == victim->full_at_ms && e->last_ms < victim->last_ms))
                victim = e;
        }
        fresh = true;
        evicted = false;
        if (victim->tag == 0)
            ++used_;
        else
            evicted = victim->full_at_ms > now_ms;
        *victim = Entry{tag, 0, now_ms, now_ms, 0};
        return victim;
    }

private:
    Entry* entries_ = nullptr;
    size_t sets_, ways_;
    size_t used_ = 0;
};

void TableDeleter::operator()(BucketTable* t) const { delete t; }

}  // namespace detail

namespace {

using Entry = detail::BucketTable::Entry;

// Brings `e` up to `now_ms`: `rate` thousandths of a response per millisecond, up to `cap`.
void refill(Entry& e, uint64_t now_ms, uint32_t rate, int64_t cap) {
    if (now_ms > e.last_ms) {
        if (e.balance < cap) {
            const uint64_t elapsed = now_ms - e.last_ms;
            const uint64_t deficit = static_cast<uint64_t>(cap - e.balance);
            if (elapsed >= (deficit + rate - 1) / rate)
                e.balance = cap;
            else
                e.balance += static_cast<int64_t>(elapsed * rate);
        }
        e.last_ms = now_ms;
    }
    if (e.balance > cap) e.balance = cap;  // the cap was lowered by reconfigure
}

void set_full_at(Entry& e, uint32_t rate, int64_t cap) {
    const uint64_t deficit = e.balance >= cap ? 0 : static_cast<uint64_t>(cap - e.balance);
    e.full_at_ms = e.last_ms + (deficit + rate - 1) / rate;
}

// Keeps the table in step with the settings: allocated (zeroed, lazily touched) while enabled
// with the geometry `max_entries` asks for, freed when disabled.
void resize_table(detail::TablePtr& table, bool enabled, size_t max_entries, net::Gauge& gauge) {
    if (!enabled) {
        table.reset();
        gauge.set(0);
        return;
    }
    size_t sets = 0, ways = 0;
    table_geometry(max_entries, sets, ways);
    if (table && table->sets() == sets && table->ways() == ways) return;
    table.reset(new detail::BucketTable(sets, ways));
    gauge.set(0);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Requests

RequestLimiter::RequestLimiter(const RateLimitSettings& s, RateLimitStats& stats) : stats_(stats) {
    random_key(key_);
    reconfigure(s);
}

RequestLimiter::RequestLimiter(const RateLimitSettings& s, RateLimitStats& stats, uint64_t seed) : stats_(stats) {
    make_key(key_, seed);
    reconfigure(s);
}

RequestLimiter::~RequestLimiter() = default;

void RequestLimiter::reconfigure(const RateLimitSettings& s) {
    // The table first: when allocating it throws, the limiter keeps its previous settings.
    resize_table(table_, s.requests_per_second != 0, s.max_entries, stats_.request_entries);
    rate_ = s.requests_per_second;
    burst_ = s.requests_burst != 0 ? s.requests_burst : s.requests_per_second;
    v4_len_ = std::min<uint8_t>(s.ipv4_prefix, 32);
    v6_len_ = std::min<uint8_t>(s.ipv6_prefix, 128);
    log_only_ = s.log_only;
    exempt_ = s.exempt;
    max_entries_ = s.max_entries;
}

bool RequestLimiter::allow(const sockaddr* client, uint64_t now_ms) {
    if (rate_ == 0) return true;
    uint8_t key[18];
    uint8_t family = 0;
    if (!address_key(client, family, key + 2)) return true;
    if (!exempt_.empty() && exempted(exempt_, family, key + 2)) {
        stats_.requests_exempt.inc();
        return true;
    }
    key[0] = family;
    key[1] = family == 4 ? v4_len_ : v6_len_;
    mask(key + 2, key[1]);
    bool fresh = false, evicted = false;
    Entry* e = table_->get(dns::siphash24(key_, key, sizeof key), now_ms, fresh, evicted);
    const int64_t cap = static_cast<int64_t>(burst_) * kScale;
    if (fresh) {
        e->balance = cap;
        stats_.request_entries.set(static_cast<int64_t>(table_->size()));
    }
    if (evicted) stats_.table_evictions.inc();
    refill(*e, now_ms, rate_, cap);
    bool ok = true;
    if (e->balance >= kScale) {
        e->balance -= kScale;  // a dropped query costs nothing: the bucket passes `rate` a second
    } else if (log_only_) {
        stats_.requests_would_drop.inc();
    } else {
        stats_.requests_dropped.inc();
        ok = false;
    }
    set_full_at(*e, rate_, cap);
    return ok;
}

// ---------------------------------------------------------------------------------------------
// Responses

ResponseLimiter::ResponseLimiter(const RateLimitSettings& s, RateLimitStats& stats) : stats_(stats) {
    random_key(key_);
    reconfigure(s);
}

ResponseLimiter::ResponseLimiter(const RateLimitSettings& s, RateLimitStats& stats, uint64_t seed)
    : stats_(stats) {
    make_key(key_, seed);
    reconfigure(s);
}

ResponseLimiter::~ResponseLimiter() = default;

void ResponseLimiter::reconfigure(const RateLimitSettings& s) {
    const uint32_t r = s.responses_per_second;
    const uint32_t rates[4] = {r, s.nodata_per_second != 0 ? s.nodata_per_second : r,
                               s.nxdomains_per_second != 0 ? s.nxdomains_per_second : r,
                               s.errors_per_second != 0 ? s.errors_per_second : r};
    const bool on = std::any_of(std::begin(rates), std::end(rates), [](uint32_t x) { return x != 0; });
    // The table first: when allocating it throws, the limiter keeps its previous settings.
    resize_table(table_, on, s.max_entries, stats_.response_entries);
    std::copy(std::begin(rates), std::end(rates), rates_);
    enabled_ = on;
    window_ = std::clamp<uint32_t>(s.window, 1, kMaxWindow);
    slip_ = s.slip;
    v4_len_ = std::min<uint8_t>(s.ipv4_prefix, 32);
    v6_len_ = std::min<uint8_t>(s.ipv6_prefix, 128);
    log_only_ = s.log_only;
    exempt_ = s.exempt;
    max_entries_ = s.max_entries;
}

RrlVerdict ResponseLimiter::check(const sockaddr* client, ResponseKind kind, const uint8_t* name, size_t name_len,
                                  uint16_t qtype, uint64_t now_ms) {
    if (kind >= ResponseKind::Count) kind = ResponseKind::Error;
    const int k = static_cast<int>(kind);
    const uint32_t rate = rates_[k];
    if (rate == 0) return RrlVerdict::Send;

    // Key: family, prefix length, network (16), kind, qtype (Answer only), lower-cased name
    // (not for Error: one error bucket per network, as BIND).
    uint8_t key[2 + 16 + 3 + dns::kMaxNameWire];
    uint8_t family = 0;
    if (!address_key(client, family, key + 2)) return RrlVerdict::Send;
    if (!exempt_.empty() && exempted(exempt_, family, key + 2)) {
        stats_.rrl_exempt.inc();
        return RrlVerdict::Send;
    }
    key[0] = family;
    key[1] = family == 4 ? v4_len_ : v6_len_;
    mask(key + 2, key[1]);
    if (kind != ResponseKind::Answer) qtype = 0;
    key[18] = static_cast<uint8_t>(k);
    key[19] = static_cast<uint8_t>(qtype >> 8);
    key[20] = static_cast<uint8_t>(qtype);
    size_t key_len = 21;
    if (kind == ResponseKind::Answer && psl_ && name != nullptr) {
        const size_t d = dns::registrable_suffix(*psl_, name, name_len);
        if (d < name_len) {
            name += d;
            name_len -= d;
        }
    }
    if (kind != ResponseKind::Error && name != nullptr) {
        const size_t n = std::min(name_len, dns::kMaxNameWire);
        for (size_t i = 0; i < n; ++i) key[key_len + i] = dns::ascii_lower(name[i]);
        key_len += n;
    }

    bool fresh = false, evicted = false;
    Entry* e = table_->get(dns::siphash24(key_, key, key_len), now_ms, fresh, evicted);
    const int64_t cap = static_cast<int64_t>(rate) * kScale;
    const int64_t floor = -static_cast<int64_t>(window_) * cap;
    if (fresh) {
        e->balance = cap;
        stats_.response_entries.set(static_cast<int64_t>(table_->size()));
    }
    if (evicted) stats_.table_evictions.inc();
    refill(*e, now_ms, rate, cap);
    // Every response costs 1, sent or not; the debt is bounded by `window` seconds' worth.
    e->balance = std::max(e->balance - kScale, floor);
    set_full_at(*e, rate, cap);
    if (e->balance >= 0) {
        e->suppressed = 0;
        return RrlVerdict::Send;
    }
    if (e->suppressed < UINT32_MAX) ++e->suppressed;
    const bool slip = slip_ != 0 && e->suppressed % slip_ == 0;
    if (log_only_) {
        (slip ? stats_.rrl_would_slip : stats_.rrl_would_drop).inc();
        return RrlVerdict::Send;
    }
    (slip ? stats_.rrl_slipped[k] : stats_.rrl_dropped[k]).inc();
    return slip ? RrlVerdict::Slip : RrlVerdict::Drop;
}

// ---------------------------------------------------------------------------------------------
// Classifying answers

namespace {

ResponseKind as_error(ResponseClass& out) {
    out.kind = ResponseKind::Error;
    out.name_len = 0;
    return out.kind;
}

}  // namespace

ResponseKind classify(const uint8_t* answer, size_t len, ResponseClass& out) {
    out.kind = ResponseKind::Error;
    out.qtype = 0;
    out.name_len = 0;
    if (answer == nullptr || len < dns::kHeaderSize) return as_error(out);
    const uint8_t* m = answer;
    if ((m[2] & 0x80) == 0) return as_error(out);  // not an answer
    const uint16_t rcode = m[3] & 0x0F;
    const uint16_t qd = dns::get_u16(m + 4), an = dns::get_u16(m + 6), ns = dns::get_u16(m + 8), ar = dns::get_u16(m + 10);
    if (qd != 1) return as_error(out);
    size_t off = dns::kHeaderSize;
    if (!dns::read_name(m, len, off, off, out.name, &out.name_len) || off + 4 > len) return as_error(out);
    out.qtype = dns::get_u16(m + off);
    off += 4;
    if (rcode != dns::rcode::NOERROR && rcode != dns::rcode::NXDOMAIN) return as_error(out);
    if (rcode == dns::rcode::NOERROR && an > 0) {
        out.kind = ResponseKind::Answer;
        return out.kind;
    }
    const bool nx = rcode == dns::rcode::NXDOMAIN;
    dns::RecordHead r;
    for (unsigned i = 0; i < an; ++i)
        if (!dns::next_record(m, len, off, r)) return as_error(out);
    bool have_zone = false;
    for (unsigned i = 0; i < ns; ++i) {
        if (!dns::next_record(m, len, off, r)) return as_error(out);
        if (r.type == dns::type::SOA && !have_zone) {
            uint8_t zone[dns::kMaxNameWire];
            size_t zone_len = 0, after = 0;
            if (!dns::read_name(m, len, r.owner, after, zone, &zone_len)) return as_error(out);
            std::memcpy(out.name, zone, zone_len);
            out.name_len = zone_len;
            have_zone = true;
            if (nx) break;
        }
    }
    if (!nx) {
        // An extended rcode (e.g. BADVERS) leaves 0 in the header: look for the OPT record.
        for (unsigned i = 0; i < ar; ++i) {
            if (!dns::next_record(m, len, off, r)) return as_error(out);
            if (r.type == dns::type::OPT && (r.ttl >> 24) != 0) return as_error(out);
        }
    }
    out.kind = nx ? ResponseKind::Nxdomain : ResponseKind::Nodata;
    return out.kind;
}

}  // namespace dp::balancer
