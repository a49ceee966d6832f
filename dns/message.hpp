// Reading and editing whole DNS messages, answers included: what a front end needs to pass a
// server's answer on (match it to its query, walk its records, follow compressed names, edit
// EDNS options, truncate it for a UDP client) and the one answer it makes itself (SERVFAIL).
// Every read is bounds-checked; nothing allocates; a message that cannot be walked is
// reported, never trusted. Parsing queries (parse_query) and writing answers (Writer) are in
// wire.hpp; this is the rest of the wire library.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dns/cookie.hpp"
#include "dns/wire.hpp"

namespace dp::dns {

// Offset just after the question section of `msg` (12 when QDCOUNT is 0); false when the
// section is malformed, compressed, or holds more than one question.
bool question_end(const uint8_t* msg, size_t len, size_t& end);

// True when two question sections (octets after the header) are the same question: name
// compared ignoring ASCII case (RFC 4343), type and class exactly.
bool same_question(const uint8_t* a, size_t alen, const uint8_t* b, size_t blen);

// Walks the possibly compressed name at `off`, whose own octets (up to the root label or the
// first pointer) must end by `limit`, and sets `next` just past them. Every pointer must go
// strictly backwards, not into the header, and the name it leads to must lie wholly before
// the pointer, so the walk always ends; at most 255 octets uncompressed (RFC 1035 2.3.4);
// the obsolete 0x40/0x80 label types are refused. When `out` is given (kMaxNameWire octets)
// the name is copied there uncompressed, its length in `out_len`. False when malformed.
bool read_name(const uint8_t* msg, size_t limit, size_t off, size_t& next, uint8_t* out = nullptr,
               size_t* out_len = nullptr);

// The fixed part of the resource record at `off`: where it starts (its owner, skipped, not
// read), its type and TTL, where its RDATA starts. next_record() moves `off` past the record;
// false when it runs past `len`.
struct RecordHead {
    size_t owner;
    uint16_t type;
    uint32_t ttl;
    size_t rdata;
};
inline bool next_record(const uint8_t* m, size_t len, size_t& off, RecordHead& r) {
    r.owner = off;
    if (!skip_name(m, len, off) || off + 10 > len) return false;
    r.type = get_u16(m + off);
    r.ttl = get_u32(m + off + 4);
    r.rdata = off + 10;
    off = r.rdata + get_u16(m + off + 8);
    return off <= len;
}

// The OPT record of `msg`, whose question ends at `qend`: its offset and length (opt_len 0
// when there is none). Walks every record; false when the message cannot be walked.
bool find_opt(const uint8_t* msg, size_t len, size_t qend, size_t& opt_at, size_t& opt_len);

// Removes every EDNS option `code` from the OPT record of `msg` in place; returns the new
// length (`len` when the option is absent or the message cannot be walked).
size_t remove_option(uint8_t* msg, size_t len, uint16_t code);

// Sets the value of an answer's edns-tcp-keepalive option (RFC 7828, units of 100 ms) in
// place; false when the answer has none.
bool set_keepalive(uint8_t* msg, size_t len, uint16_t timeout_100ms);

// An answer that does not fit a UDP client: header (TC=1), question and the OPT record of
// `answer`, nothing else. Returns its length, 0 when `answer` cannot be walked or `cap` is short.
size_t truncate_answer(const uint8_t* answer, size_t len, uint8_t* out, size_t cap);

// Appends EDNS option (code, data) to the OPT record of `msg` in place (the records after OPT,
// if any, move up). Returns the new length; 0 when `msg` has no OPT, cannot be walked, or the
// option does not fit `cap`.
size_t append_option(uint8_t* msg, size_t len, size_t cap, uint16_t code, const uint8_t* data, uint16_t n);

// DNS cookies at a front (RFC 7873): the answer to a query that carried cookie `c`, from a
// client at `from`, gets the client cookie and our server cookie (Cookies::answer, now)
// added to its OPT record. Returns the new length, or `len` unchanged when there is no cookie
// to add or no room.
size_t add_cookie(const Cookies& cookies, const ClientCookie& c, const ClientAddr& from, uint8_t* msg, size_t len,
                  size_t cap);

// Turns a truncated answer (header, question, OPT: truncate_answer's output) into BADCOOKIE
// (RFC 7873 5.2.3, extended rcode 23: 7 in the header, 1 in OPT), AA and TC cleared. False
// when it has no OPT.
bool make_badcookie(uint8_t* msg, size_t len);

// SERVFAIL for `query` (its ID, RD/CD, question, an OPT when it had one). 0 when the query
// is one that is never answered (a response or a runt).
size_t make_servfail(const uint8_t* query, size_t len, uint8_t* out, size_t cap);

}  // namespace dp::dns
