// The balancer's answer cache: repeated queries are answered from memory instead of asking a
// worker. One cache per query thread (no locking). Keyed on the lower-cased question and the
// query facts the worker's answer depends on; stores the worker's answer once, with the offsets
// of its TTL fields so a hit only copies and patches. Bounded by entries and by bytes, CLOCK
// eviction (a hit sets one bit), expired entries evicted first. No allocation on a hit; answers
// are walked with bounds checks at insert and a malformed one is simply not stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dns/wire.hpp"
#include "net/metrics.hpp"

namespace dp::balancer {

struct CacheSettings {
    size_t max_entries = 100000;       // 0 disables the cache
    size_t max_bytes = 64u << 20;      // answers + per-entry overhead (AnswerCache::entry_cost)
    uint32_t max_ttl = 3600;           // cap on a positive answer's lifetime in the cache (seconds)
    uint32_t max_negative_ttl = 3600;  // cap on NXDOMAIN/NODATA lifetime
    uint32_t stale_ttl = 30;           // TTL written into a stale answer (RFC 8767 suggests 30)
    uint32_t max_stale = 0;            // seconds past expiry an entry may still be served stale; 0 = off
};

struct CacheStats {
    net::Counter hits;                // fresh answers served
    net::Counter misses;              // lookups of cacheable queries that found nothing servable
    net::Counter stale_hits;          // stale answers served (not counted in hits)
    net::Counter inserts;             // answers stored (a replacement counts too)
    net::Counter not_cacheable;       // inserts refused: query or answer not cacheable, TTL 0, too big
    net::Counter evictions_capacity;  // entries evicted to respect max_entries / max_bytes
    net::Counter expired_dropped;     // entries dropped when met past expiry + max_stale
    net::Gauge entries;
    net::Gauge bytes;                 // sum of entry_cost over the entries
};

class AnswerCache {
public:
    // Answers longer than this are not stored (the workers' answers are far smaller).
    static constexpr size_t kMaxAnswer = 4096;
    // Answers with more records than this (OPT aside) are not stored.
    static constexpr size_t kMaxRecords = 255;

    explicit AnswerCache(const CacheSettings& s);
    ~AnswerCache();
    AnswerCache(const AnswerCache&) = delete;
    AnswerCache& operator=(const AnswerCache&) = delete;

    // Applies new limits. Shrinking evicts down to them (expired entries first) and compacts;
    // lower TTL caps also shorten the entries already stored; max_entries 0 empties the cache.
    void reconfigure(const CacheSettings& s);

    // True when a query may be looked up or stored at all: parsed without error (`st` Ok),
    // opcode QUERY, class IN (the workers' answers to other classes are REFUSED or the TTL-0
    // CHAOS identity: never cacheable), EDNS version 0 when EDNS is present, and no
    // edns-tcp-keepalive option (its answer carries a transport-specific option).
    static bool cacheable_query(const dns::Query& q, dns::ParseStatus st);

    // Writes into `out` the stored answer for `q`: header ID = q.id, the question name in the
    // client's exact case (0x20), RD copied from the query, every record TTL but OPT's lowered
    // by the whole seconds since insertion. An entry is fresh while elapsed < its TTL; after
    // that, when `allow_stale` and elapsed < TTL + max_stale, it is written with every TTL set
    // to stale_ttl and *stale = true. Returns the length, or 0 on a miss (counted), when `cap`
    // is short (counted as a miss), or for a query cacheable_query rejects (not counted).
    // `out` must not overlap the query's bytes (q.qname is read after the copy).
    size_t lookup(const dns::Query& q, uint64_t now_ms, bool allow_stale, uint8_t* out, size_t cap,
                  bool* stale = nullptr);

    // Cache-miss hiding for a batch of queries: a lookup waits on three dependent loads (the
    // index bucket, the slot, the stored answer), each usually a miss after the kernel's work.
    // The UDP front calls prefetch_index() for every query of a batch, then prefetch_entry()
    // for every one (slot), then again (answer), then looks them up, so the misses of the
    // batch overlap. prefetch_index() returns false when there is nothing to fetch; `tag`
    // carries the hash between the steps. None of them changes anything.
    bool prefetch_index(const dns::Query& q, uint32_t& tag) const;
    void prefetch_entry(uint32_t tag, bool answer) const;

    // Stores the worker's answer to `q`, replacing an entry for the same key. Only QR=1, TC=0,
    // opcode QUERY, rcode NOERROR or NXDOMAIN (extended rcode 0), question equal to q's, every
    // record well formed and the message ending exactly after the last one. Lifetime: positive
    // answers the minimum TTL over all records but OPT, capped by max_ttl; NXDOMAIN and NODATA
    // (NOERROR, no answer records) need an SOA in the authority section and live
    // min(record TTLs, SOA MINIMUM) (RFC 2308 5), capped by max_negative_ttl. A lifetime of 0
    // is not stored. Refusals are counted in not_cacheable.
    void insert(const dns::Query& q, const uint8_t* answer, size_t len, uint64_t now_ms);

    // Drops entries past expiry + max_stale among the next `max_slots` slots (a second hand;
    // insert runs it on two slots). The balancer may call it from a timer.
    size_t sweep(uint64_t now_ms, size_t max_slots);

    // Forgets every entry (counters keep their values).
    void clear();

    const CacheStats& stats() const { return stats_; }
    const CacheSettings& settings() const { return s_; }
    size_t size() const { return count_; }
    size_t bytes() const { return bytes_; }

    // What an entry is charged against max_bytes: the answer, 2 octets per TTL offset, and a
    // fixed overhead for the slot, the index and the allocator.
    static size_t entry_cost(size_t answer_len, size_t ttl_count) {
        return answer_len + 2 * ttl_count + kEntryOverhead;
    }

private:
    // 24 octets. A free slot has data == nullptr and keeps the next free slot in `inserted_ms`.
    struct Slot {
        uint8_t* data;         // malloc'd: the answer (question name lower-cased), then n_ttl offsets
        uint64_t inserted_ms;  // time of insert
        uint32_t ttl;          // lifetime in seconds
        uint16_t len;          // answer octets
        uint8_t n_ttl;         // TTL fields to patch
        uint8_t flags;         // kKeyMask: the query flags of the key; kNegative; kRef (CLOCK)
    };
    // Open addressing, linear probing: slot number + 1 (0 = empty) and 32 bits of the hash.
    struct Bucket {
        uint32_t slot1;
        uint32_t tag;
    };
    static constexpr uint8_t kKeyMask = 0x0F, kNegative = 0x10, kRef = 0x20;
    static constexpr uint32_t kNoSlot = 0xFFFFFFFFu;
    static constexpr size_t kEntryOverhead = sizeof(Slot) + 16 /* allocator */ + 16 /* index share */;

    static bool key_query(const dns::Query& q);
    static uint8_t key_flags(const dns::Query& q);
    uint32_t hash(const uint8_t* question, size_t qlen, uint8_t kflags) const;
    size_t find(uint32_t tag, const uint8_t* question, size_t qlen, uint8_t kflags) const;
    void index_put(uint32_t tag, uint32_t slot);
    void index_erase(size_t pos);
    void index_resize(size_t buckets);
    uint32_t slot_tag(const Slot& s) const;
    // Removes slot i from the index and frees it.
    void remove(uint32_t i);
    bool evict_one(uint64_t now_ms);
    bool dead(const Slot& s, uint64_t now_ms) const;  // past expiry + max_stale
    void compact();
    void update_gauges();

    CacheSettings s_;
    CacheStats stats_;
    std::vector<Slot> slots_;
    std::vector<Bucket> index_;  // size is 0 or a power of two
    uint32_t free_head_ = kNoSlot;
    size_t count_ = 0;
    size_t bytes_ = 0;
    size_t hand_ = 0;        // CLOCK hand over slots_
    size_t sweep_hand_ = 0;  // expiry sweep hand over slots_
    uint64_t last_now_ms_ = 0;
    uint64_t seed_;
};

}  // namespace dp::balancer
