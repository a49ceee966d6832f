#include "balancer/answer_cache.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>

#include "dns/message.hpp"
#include "dns/hash.hpp"

namespace dp::balancer {

namespace {

constexpr size_t kNpos = static_cast<size_t>(-1);
constexpr size_t kMaxQuestion = dns::kMaxNameWire + 4;

// RFC 2181 8: a TTL with the top bit set is treated as zero.
inline uint32_t ttl_value(uint32_t t) { return (t & 0x80000000u) ? 0 : t; }

// The key's question: q's name lower-cased (length octets are below 'A', so folding them is
// harmless), then QTYPE and QCLASS as on the wire. Returns its length.
size_t key_question(const dns::Query& q, uint8_t* buf) {
    for (size_t i = 0; i < q.qname_len; ++i) buf[i] = dns::ascii_lower(q.qname[i]);
    dns::put_u16(buf + q.qname_len, q.qtype);
    dns::put_u16(buf + q.qname_len + 2, q.qclass);
    return q.qname_len + 4u;
}

// Validates the possibly compressed name at `off`, whose own octets must end by `limit`, and
// moves `off` past it (dns::read_name says what a valid pointer is).
inline bool check_name(const uint8_t* m, size_t limit, size_t& off) { return dns::read_name(m, limit, off, off); }

// RDATA holding names must be exactly those names (and fixed fields) so that nothing in the
// stored message points outside it.
bool check_rdata(const uint8_t* m, uint16_t type, size_t rd, size_t end) {
    size_t o = rd;
    switch (type) {
        case dns::type::NS:
        case dns::type::CNAME:
        case dns::type::PTR:
        case 39:  // DNAME
            return check_name(m, end, o) && o == end;
        case dns::type::MX:
            o += 2;
            return o <= end && check_name(m, end, o) && o == end;
        case dns::type::SRV:
            o += 6;
            return o <= end && check_name(m, end, o) && o == end;
        case dns::type::SOA:
            return check_name(m, end, o) && check_name(m, end, o) && o + 20 == end;
        default:
            return true;
    }
}

// What insert learns from walking an answer.
struct Walk {
    uint32_t ttl = 0;
    bool negative = false;
    size_t n_ttl = 0;
    uint16_t ttl_off[AnswerCache::kMaxRecords];
};

// Walks the worker's answer to the question `key` (lower-cased, qlen octets). False when it is
// not one to store: see AnswerCache::insert.
bool walk_answer(const uint8_t* a, size_t len, const uint8_t* key, size_t qlen, const CacheSettings& s, Walk& w) {
    if (len < dns::kHeaderSize || len > AnswerCache::kMaxAnswer) return false;
    const uint8_t f1 = a[2];
    if (!(f1 & 0x80) || ((f1 >> 3) & 0x0F) != 0 || (f1 & 0x02)) return false;  // QR, opcode, TC
    const uint8_t rc = a[3] & 0x0F;
    if (rc != dns::rcode::NOERROR && rc != dns::rcode::NXDOMAIN) return false;
    if (dns::get_u16(a + 4) != 1) return false;
    // The question must be the key's, uncompressed. Folding maps only 'A'-'Z', so an octet that
    // matches a length octet of the key (< 64) or the root is that very octet: same structure.
    const size_t qend = dns::kHeaderSize + qlen;
    if (qend > len) return false;
    const uint8_t* aq = a + dns::kHeaderSize;
    const size_t name_len = qlen - 4;
    for (size_t i = 0; i < name_len; ++i)
        if (dns::ascii_lower(aq[i]) != key[i]) return false;
    if (std::memcmp(aq + name_len, key + name_len, 4) != 0) return false;

    const uint32_t an = dns::get_u16(a + 6), ns = dns::get_u16(a + 8), ar = dns::get_u16(a + 10);
    const uint32_t records = an + ns + ar;
    uint32_t min_ttl = 0xFFFFFFFFu, soa_min = 0xFFFFFFFFu;
    bool has_soa = false, seen_opt = false;
    size_t off = qend;
    w.n_ttl = 0;
    for (uint32_t i = 0; i < records; ++i) {
        const size_t owner = off;
        if (!check_name(a, len, off) || off + 10 > len) return false;
        const uint16_t type = dns::get_u16(a + off);
        const uint32_t ttl = dns::get_u32(a + off + 4);
        const size_t rd = off + 10, end = rd + dns::get_u16(a + off + 8);
        if (end > len) return false;
        if (type == dns::type::OPT) {
            // RFC 6891 6.1.1: additional section only, root owner, at most one; no extended rcode.
            if (i < an + ns || a[owner] != 0 || seen_opt || (ttl >> 24) != 0) return false;
            seen_opt = true;
            for (size_t o = rd; o < end;) {  // options must tile RDATA exactly
                if (o + 4 > end) return false;
                o += 4u + dns::get_u16(a + o + 2);
                if (o > end) return false;
            }
        } else {
            if (w.n_ttl == AnswerCache::kMaxRecords) return false;
            w.ttl_off[w.n_ttl++] = static_cast<uint16_t>(off + 4);
            min_ttl = std::min(min_ttl, ttl_value(ttl));
            if (!check_rdata(a, type, rd, end)) return false;
            if (type == dns::type::SOA && i >= an && i < an + ns) {
                has_soa = true;
                soa_min = std::min(soa_min, ttl_value(dns::get_u32(a + end - 4)));
            }
        }
        off = end;
    }
    if (off != len) return false;

    w.negative = rc == dns::rcode::NXDOMAIN || an == 0;
    if (w.negative) {
        // RFC 2308 5: negative answers live min(SOA TTL, SOA MINIMUM); no SOA, no caching.
        if (!has_soa) return false;
        w.ttl = std::min({min_ttl, soa_min, s.max_negative_ttl});
    } else {
        w.ttl = std::min(min_ttl, s.max_ttl);
    }
    return w.ttl > 0;
}

}  // namespace

AnswerCache::AnswerCache(const CacheSettings& s) : s_(s) {
    std::random_device rd;
    seed_ = uint64_t(rd()) << 32 ^ rd();
}

AnswerCache::~AnswerCache() {
    for (Slot& s : slots_) std::free(s.data);
}

bool AnswerCache::key_query(const dns::Query& q) {
    return q.opcode == 0 && q.question_ok && q.qname != nullptr && q.qname_len >= 1 &&
           q.qname_len <= dns::kMaxNameWire && q.qclass == dns::klass::IN && (!q.edns || q.edns_version == 0) &&
           !q.edns_keepalive;
}

bool AnswerCache::cacheable_query(const dns::Query& q, dns::ParseStatus st) {
    return st == dns::ParseStatus::Ok && key_query(q);
}

uint8_t AnswerCache::key_flags(const dns::Query& q) {
    return static_cast<uint8_t>((q.edns ? 1 : 0) | (q.edns && q.edns_do ? 2 : 0) | (q.cd ? 4 : 0) |
                                (q.edns && q.edns_nsid ? 8 : 0));
}

uint32_t AnswerCache::hash(const uint8_t* p, size_t n, uint8_t kflags) const {
    return static_cast<uint32_t>(dns::word_hash(p, n, seed_ ^ (uint64_t(kflags) << 56)));
}

uint32_t AnswerCache::slot_tag(const Slot& s) const {
    // The stored question is already lower-case; its name was validated at insert.
    size_t o = dns::kHeaderSize;
    while (s.data[o] != 0) o += 1u + s.data[o];
    return hash(s.data + dns::kHeaderSize, o + 1 + 4 - dns::kHeaderSize, s.flags & kKeyMask);
}

size_t AnswerCache::find(uint32_t tag, const uint8_t* question, size_t qlen, uint8_t kflags) const {
    if (index_.empty()) return kNpos;
    const size_t mask = index_.size() - 1;
    for (size_t pos = tag & mask;; pos = (pos + 1) & mask) {
        const Bucket& b = index_[pos];
        if (b.slot1 == 0) return kNpos;
        if (b.tag != tag) continue;
        const Slot& s = slots_[b.slot1 - 1];
        // Wire names delimit themselves, so comparing qlen octets is exact once both are long enough.
        if ((s.flags & kKeyMask) == kflags && s.len >= dns::kHeaderSize + qlen &&
            std::memcmp(s.data + dns::kHeaderSize, question, qlen) == 0)
            return b.slot1 - 1;
    }
}

void AnswerCache::index_put(uint32_t tag, uint32_t slot) {
    const size_t mask = index_.size() - 1;
    size_t pos = tag & mask;
    while (index_[pos].slot1 != 0) pos = (pos + 1) & mask;
    index_[pos] = Bucket{slot + 1, tag};
}

void AnswerCache::index_erase(size_t pos) {
    // Backward-shift deletion: later buckets of the run move into the hole unless their home
    // position lies cyclically after it.
    const size_t mask = index_.size() - 1;
    size_t hole = pos;
    for (size_t j = (hole + 1) & mask; index_[j].slot1 != 0; j = (j + 1) & mask) {
        const size_t home = index_[j].tag & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            index_[hole] = index_[j];
            hole = j;
        }
    }
    index_[hole] = Bucket{0, 0};
}

void AnswerCache::index_resize(size_t buckets) {
    std::vector<Bucket> old;
    old.swap(index_);
    index_.assign(buckets, Bucket{0, 0});
    for (const Bucket& b : old)
        if (b.slot1 != 0) index_put(b.tag, b.slot1 - 1);
}

void AnswerCache::remove(uint32_t i) {
    Slot& s = slots_[i];
    if (s.data == nullptr) return;
    const uint32_t tag = slot_tag(s);
    const size_t mask = index_.size() - 1;
    for (size_t pos = tag & mask; index_[pos].slot1 != 0; pos = (pos + 1) & mask) {
        if (index_[pos].slot1 == i + 1) {
            index_erase(pos);
            break;
        }
    }
    bytes_ -= entry_cost(s.len, s.n_ttl);
    --count_;
    std::free(s.data);
    s = Slot{nullptr, free_head_, 0, 0, 0, 0};
    free_head_ = i;
}

bool AnswerCache::dead(const Slot& s, uint64_t now_ms) const {
    const uint64_t elapsed = now_ms > s.inserted_ms ? (now_ms - s.inserted_ms) / 1000 : 0;
    return elapsed >= uint64_t(s.ttl) + s_.max_stale;
}

bool AnswerCache::evict_one(uint64_t now_ms) {
    // CLOCK: an entry referenced since the hand last passed gets a second chance; an expired
    // entry (stale or past serving) never does.
    const size_t n = slots_.size();
    for (size_t steps = 0; steps < 2 * n + 1; ++steps) {
        if (hand_ >= n) hand_ = 0;
        const uint32_t i = static_cast<uint32_t>(hand_++);
        Slot& s = slots_[i];
        if (s.data == nullptr) continue;
        const uint64_t elapsed = now_ms > s.inserted_ms ? (now_ms - s.inserted_ms) / 1000 : 0;
        if (elapsed >= s.ttl) {
            if (dead(s, now_ms))
                stats_.expired_dropped.inc();
            else
                stats_.evictions_capacity.inc();
            remove(i);
            return true;
        }
        if (s.flags & kRef) {
            s.flags &= static_cast<uint8_t>(~kRef);
            continue;
        }
        stats_.evictions_capacity.inc();
        remove(i);
        return true;
    }
    return false;
}

size_t AnswerCache::sweep(uint64_t now_ms, size_t max_slots) {
    last_now_ms_ = std::max(last_now_ms_, now_ms);
    size_t dropped = 0;
    for (size_t k = 0; k < max_slots && !slots_.empty(); ++k) {
        if (sweep_hand_ >= slots_.size()) sweep_hand_ = 0;
        const uint32_t i = static_cast<uint32_t>(sweep_hand_++);
        if (slots_[i].data != nullptr && dead(slots_[i], now_ms)) {
            remove(i);
            stats_.expired_dropped.inc();
            ++dropped;
        }
    }
    if (dropped) update_gauges();
    return dropped;
}

void AnswerCache::update_gauges() {
    stats_.entries.set(static_cast<int64_t>(count_));
    stats_.bytes.set(static_cast<int64_t>(bytes_));
}

bool AnswerCache::prefetch_index(const dns::Query& q, uint32_t& tag) const {
    if (index_.empty() || !key_query(q)) return false;
    uint8_t key[kMaxQuestion];
    const size_t qlen = key_question(q, key);
    tag = hash(key, qlen, key_flags(q));
    __builtin_prefetch(&index_[tag & (index_.size() - 1)]);
    return true;
}

void AnswerCache::prefetch_entry(uint32_t tag, bool answer) const {
    if (index_.empty()) return;
    const size_t mask = index_.size() - 1;
    for (size_t pos = tag & mask, n = 0; n < 4; pos = (pos + 1) & mask, ++n) {  // the run's first few
        const Bucket& b = index_[pos];
        if (b.slot1 == 0) return;
        if (b.tag == tag) {
            const Slot& s = slots_[b.slot1 - 1];
            if (answer) __builtin_prefetch(s.data);
            else __builtin_prefetch(&s);
            return;
        }
    }
}

size_t AnswerCache::lookup(const dns::Query& q, uint64_t now_ms, bool allow_stale, uint8_t* out, size_t cap,
                           bool* stale) {
    if (stale) *stale = false;
    if (s_.max_entries == 0 || !key_query(q)) return 0;
    last_now_ms_ = std::max(last_now_ms_, now_ms);
    uint8_t key[kMaxQuestion];
    const size_t qlen = key_question(q, key);
    const uint8_t kflags = key_flags(q);
    const size_t i = find(hash(key, qlen, kflags), key, qlen, kflags);
    if (i == kNpos) {
        stats_.misses.inc();
        return 0;
    }
    Slot& s = slots_[i];
    const uint64_t elapsed = now_ms > s.inserted_ms ? (now_ms - s.inserted_ms) / 1000 : 0;
    const bool is_stale = elapsed >= s.ttl;
    if (is_stale) {
        if (dead(s, now_ms)) {
            remove(static_cast<uint32_t>(i));
            stats_.expired_dropped.inc();
            stats_.misses.inc();
            update_gauges();
            return 0;
        }
        if (!allow_stale) {
            stats_.misses.inc();
            return 0;
        }
    }
    if (s.len > cap) {
        stats_.misses.inc();
        return 0;
    }

    std::memcpy(out, s.data, s.len);
    dns::put_u16(out, q.id);
    out[2] = static_cast<uint8_t>((out[2] & ~0x01) | (q.rd ? 0x01 : 0));
    std::memcpy(out + dns::kHeaderSize, q.qname, q.qname_len);  // the client's case (0x20)
    const uint8_t* offs = s.data + s.len;
    for (size_t k = 0; k < s.n_ttl; ++k) {
        uint16_t off;
        std::memcpy(&off, offs + 2 * k, 2);
        uint8_t* p = out + off;
        if (is_stale) {
            dns::put_u32(p, s_.stale_ttl);
        } else {
            const uint32_t t = ttl_value(dns::get_u32(p));
            dns::put_u32(p, t > elapsed ? static_cast<uint32_t>(t - elapsed) : 0);
        }
    }
    s.flags |= kRef;
    if (is_stale) {
        stats_.stale_hits.inc();
        if (stale) *stale = true;
    } else {
        stats_.hits.inc();
    }
    return s.len;
}

void AnswerCache::insert(const dns::Query& q, const uint8_t* answer, size_t len, uint64_t now_ms) {
    if (s_.max_entries == 0) return;
    last_now_ms_ = std::max(last_now_ms_, now_ms);
    if (!key_query(q) || answer == nullptr) {
        stats_.not_cacheable.inc();
        return;
    }
    uint8_t key[kMaxQuestion];
    const size_t qlen = key_question(q, key);
    Walk w;
    if (!walk_answer(answer, len, key, qlen, s_, w)) {
        stats_.not_cacheable.inc();
        return;
    }
    const size_t cost = entry_cost(len, w.n_ttl);
    if (cost > s_.max_bytes) {
        stats_.not_cacheable.inc();
        return;
    }
    const uint8_t kflags = key_flags(q);
    const uint32_t tag = hash(key, qlen, kflags);
    const size_t existing = find(tag, key, qlen, kflags);
    if (existing != kNpos) remove(static_cast<uint32_t>(existing));

    sweep(now_ms, 2);
    while (count_ >= s_.max_entries || bytes_ + cost > s_.max_bytes)
        if (!evict_one(now_ms)) break;
    if (count_ >= s_.max_entries || bytes_ + cost > s_.max_bytes) {
        update_gauges();
        return;
    }

    auto* data = static_cast<uint8_t*>(std::malloc(len + 2 * w.n_ttl));
    if (data == nullptr) {
        update_gauges();
        return;
    }
    std::memcpy(data, answer, len);
    std::memcpy(data + dns::kHeaderSize, key, q.qname_len);  // stored lower-case: the key
    std::memcpy(data + len, w.ttl_off, 2 * w.n_ttl);

    uint32_t i;
    if (free_head_ != kNoSlot) {
        i = free_head_;
        free_head_ = static_cast<uint32_t>(slots_[i].inserted_ms);
    } else {
        i = static_cast<uint32_t>(slots_.size());
        slots_.push_back(Slot{});
    }
    slots_[i] = Slot{data, now_ms, w.ttl, static_cast<uint16_t>(len), static_cast<uint8_t>(w.n_ttl),
                     static_cast<uint8_t>(kflags | (w.negative ? kNegative : 0))};
    if ((count_ + 1) * 4 > index_.size() * 3) index_resize(std::max<size_t>(64, index_.size() * 2));
    index_put(tag, i);
    ++count_;
    bytes_ += cost;
    stats_.inserts.inc();
    update_gauges();
}

void AnswerCache::clear() {
    for (Slot& s : slots_) std::free(s.data);
    std::vector<Slot>().swap(slots_);
    std::vector<Bucket>().swap(index_);
    free_head_ = kNoSlot;
    count_ = 0;
    bytes_ = 0;
    hand_ = 0;
    sweep_hand_ = 0;
    update_gauges();
}

void AnswerCache::compact() {
    std::vector<Slot> live;
    live.reserve(count_);
    for (const Slot& s : slots_)
        if (s.data != nullptr) live.push_back(s);
    slots_.swap(live);
    free_head_ = kNoSlot;
    hand_ = 0;
    sweep_hand_ = 0;
    size_t buckets = 64;
    while (buckets * 3 < count_ * 4 + 4) buckets *= 2;
    std::vector<Bucket>(buckets, Bucket{0, 0}).swap(index_);
    for (uint32_t i = 0; i < slots_.size(); ++i) index_put(slot_tag(slots_[i]), i);
}

void AnswerCache::reconfigure(const CacheSettings& s) {
    s_ = s;
    if (s_.max_entries == 0) {
        clear();
        return;
    }
    for (Slot& e : slots_) {
        if (e.data == nullptr) continue;
        e.ttl = std::min(e.ttl, (e.flags & kNegative) ? s_.max_negative_ttl : s_.max_ttl);
    }
    while (count_ > s_.max_entries || bytes_ > s_.max_bytes)
        if (!evict_one(last_now_ms_)) break;
    if (slots_.size() > s_.max_entries || slots_.size() > 2 * count_ + 64) compact();
    update_gauges();
}

}  // namespace dp::balancer
