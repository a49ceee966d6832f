// The few message edits the balancer makes on its own (everything else is the worker's
// answer, passed through): matching an answer's question to its query, truncating an answer
// for a UDP client, and building SERVFAIL when no worker answers. Bounds-checked, no allocation.
// These live here rather than in dns/ because only the balancer needs them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dns/wire.hpp"

namespace dp::balancer {

// Offset just after the question section of `msg` (12 when QDCOUNT is 0); false when the
// section is malformed, compressed, or holds more than one question.
bool question_end(const uint8_t* msg, size_t len, size_t& end);

// True when two question sections (octets after the header) are the same question: name
// compared ignoring ASCII case (RFC 4343), type and class exactly.
bool same_question(const uint8_t* a, size_t alen, const uint8_t* b, size_t blen);

// An answer that does not fit a UDP client: header (TC=1), question and the OPT record of
// `answer`, nothing else. Returns its length, 0 when `answer` cannot be walked or `cap` is short.
size_t truncate_answer(const uint8_t* answer, size_t len, uint8_t* out, size_t cap);

// Removes EDNS option `code` from the OPT record of `msg` in place; returns the new length
// (`len` when the option is absent or the message cannot be walked).
size_t remove_option(uint8_t* msg, size_t len, uint16_t code);

// Sets the value of an answer's edns-tcp-keepalive option (RFC 7828, units of 100 ms) in
// place; false when the answer has none.
bool set_keepalive(uint8_t* msg, size_t len, uint16_t timeout_100ms);

// SERVFAIL for `query` (its ID, RD/CD, question, an OPT when it had one). 0 when the query
// is one that is never answered (a response or a runt).
size_t make_servfail(const uint8_t* query, size_t len, uint8_t* out, size_t cap);

inline uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline void put_u16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

// The fixed part of the resource record at `off`: where it starts (its owner, skipped, not
// read), its type and TTL, where its RDATA starts. next_record() moves `off` past the record;
// false when it runs past `len`. Inline, for the libraries that do not link this file.
struct RecordHead {
    size_t owner;
    uint16_t type;
    uint32_t ttl;
    size_t rdata;
};
inline bool next_record(const uint8_t* m, size_t len, size_t& off, RecordHead& r) {
    r.owner = off;
    if (!dns::skip_name(m, len, off) || off + 10 > len) return false;
    r.type = get_u16(m + off);
    r.ttl = uint32_t(get_u16(m + off + 4)) << 16 | get_u16(m + off + 6);
    r.rdata = off + 10;
    off = r.rdata + get_u16(m + off + 8);
    return off <= len;
}

}  // namespace dp::balancer
