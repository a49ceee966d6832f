// DNS wire format (RFC 1035, RFC 6891): bounds-checked query parsing and a
// response writer with name compression. No sockets, no allocation, no exceptions:
// this is the hot path shared by every transport of the worker and the balancer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "dns/cookie.hpp"  // kMaxCookie, cookie_length_ok

namespace dp::dns {

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxNameWire = 255;   // RFC 1035 2.3.4
inline constexpr size_t kMaxLabel = 63;
inline constexpr size_t kMaxLabels = 128;      // 255 octets hold at most 127 labels + root
inline constexpr size_t kMaxMessage = 65535;
inline constexpr uint16_t kUdpPayloadCap = 1232;  // DNS flag day 2020: never answer bigger over UDP

namespace type {
inline constexpr uint16_t A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, MX = 15, TXT = 16, AAAA = 28,
                          SRV = 33, OPT = 41, DS = 43, DNSKEY = 48, SVCB = 64, HTTPS = 65, IXFR = 251,
                          AXFR = 252, ANY = 255, CAA = 257;
}
namespace klass {
inline constexpr uint16_t IN = 1, CH = 3, ANY = 255;
}
namespace rcode {
inline constexpr uint16_t NOERROR = 0, FORMERR = 1, SERVFAIL = 2, NXDOMAIN = 3, NOTIMP = 4, REFUSED = 5,
                          BADVERS = 16, BADCOOKIE = 23;
}
namespace edns_opt {
inline constexpr uint16_t NSID = 3, COOKIE = 10, TCP_KEEPALIVE = 11, PADDING = 12;
}

// Fixed-size fields in network order, and ASCII case folding (RFC 4343: DNS names compare
// ignoring ASCII case only). The one definition every part of the project uses.
inline uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t get_u32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline void put_u16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void put_u32(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}
// Label length octets (< 64) are below 'A', so folding a whole wire name octet by octet is safe.
constexpr uint8_t ascii_lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c + 32) : c; }

// Why a message could not be answered normally; each reason is a metric label.
enum class Malformed : uint8_t {
    None,
    TooShort,     // fewer than 12 octets: dropped
    IsResponse,   // QR=1: dropped (never answer a response, avoids loops)
    QdCount,      // QDCOUNT != 1: FORMERR
    Question,     // bad or truncated question name/type/class: FORMERR
    Record,       // truncated or bad resource record after the question: FORMERR
    Opt,          // bad OPT record: FORMERR
    MultipleOpt,  // more than one OPT: FORMERR
    Cookie,       // COOKIE option of a length other than 8 or 16-40 (RFC 7873 5.2.2): FORMERR
    Count
};
const char* malformed_name(Malformed m);

// A parsed query. Views point into the caller's packet, which must outlive it.
struct Query {
    uint16_t id = 0;
    uint8_t opcode = 0;
    bool rd = false;
    bool cd = false;
    bool question_ok = false;     // question parsed (echoed in any answer)
    const uint8_t* qname = nullptr;  // uncompressed wire name, case as sent
    uint16_t qname_len = 0;          // octets including the root label
    uint8_t label_count = 0;         // labels excluding the root
    uint8_t label_off[kMaxLabels];  // offset of each label's length octet within qname (set by parse_query)
    uint16_t qtype = 0;
    uint16_t qclass = 0;
    size_t question_end = 0;  // offset just after the question in the packet

    bool edns = false;  // an OPT record was present and well formed
    uint8_t edns_version = 0;
    bool edns_do = false;
    uint16_t edns_udp_size = 0;
    bool edns_nsid = false;
    bool edns_keepalive = false;
    // The first COOKIE option (RFC 7873), copied: an answer built in place overwrites the
    // query's OPT record. cookie_len 0: none; otherwise 8 or 16-40.
    uint8_t cookie_len = 0;
    uint8_t cookie[kMaxCookie];
};

enum class ParseStatus : uint8_t { Ok, Drop, FormErr, NotImp };

// Parses a query. On Drop/FormErr, `why` says what was wrong; on FormErr or
// NotImp the fields parsed so far (id, flags, question if question_ok, EDNS if
// edns) are still valid for building the error answer. A malformed COOKIE option is a
// FormErr with the OPT record's other facts (edns, size, DO) kept, as its answer carries OPT.
ParseStatus parse_query(const uint8_t* msg, size_t len, Query& q, Malformed& why);

// Moves `off` past the possibly compressed name at `off` (its labels up to the root or the
// first pointer). Only checks that it is well formed and in bounds; false otherwise.
bool skip_name(const uint8_t* msg, size_t len, size_t& off);

// An idle timeout in milliseconds as an edns-tcp-keepalive value (RFC 7828: units of 100 ms,
// 16 bits).
inline uint16_t keepalive_units(uint32_t idle_ms) { return static_cast<uint16_t>(std::min<uint32_t>(idle_ms / 100, 0xFFFF)); }

// Compares the wire names a and b (uncompressed) ignoring ASCII case.
bool name_equal_ci(const uint8_t* a, const uint8_t* b);

// Encodes a presentation-format name ("ns1.example.net", trailing dot optional,
// "." for the root) into uncompressed wire form. Returns false with `error` set
// when a label is empty or longer than 63 octets or the name exceeds 255 octets.
// Backslash escapes are not accepted: configuration names are host names.
bool encode_name(std::string_view text, std::string& wire, std::string& error);

// Response writer over a caller-provided buffer. Every write checks bounds;
// past the limit it sets overflow() and writes nothing more, so a caller can
// build optimistically and fall back to a truncated answer.
class Writer {
public:
    Writer(uint8_t* buf, size_t limit) : buf_(buf), limit_(limit) {}

    size_t size() const { return len_; }
    bool overflow() const { return overflow_; }
    uint8_t* data() { return buf_; }

    // Inline: these run several times per answer.
    void u8(uint8_t v) {
        if (room(1)) buf_[len_++] = v;
    }
    void u16(uint16_t v) {
        if (!room(2)) return;
        buf_[len_] = static_cast<uint8_t>(v >> 8);
        buf_[len_ + 1] = static_cast<uint8_t>(v);
        len_ += 2;
    }
    void u32(uint32_t v) {
        if (!room(4)) return;
        buf_[len_] = static_cast<uint8_t>(v >> 24);
        buf_[len_ + 1] = static_cast<uint8_t>(v >> 16);
        buf_[len_ + 2] = static_cast<uint8_t>(v >> 8);
        buf_[len_ + 3] = static_cast<uint8_t>(v);
        len_ += 4;
    }
    void bytes(const void* p, size_t n) {
        if (!room(n)) return;
        std::memcpy(buf_ + len_, p, n);
        len_ += n;
    }
    // Counts n octets already in the buffer at the current position as written.
    void keep(size_t n) {
        if (room(n)) len_ += n;
    }
    void put_u16_at(size_t off, uint16_t v) {
        buf_[off] = static_cast<uint8_t>(v >> 8);
        buf_[off + 1] = static_cast<uint8_t>(v);
    }

    // A compression pointer to a name already in the message (offset < 0x4000).
    void name_pointer(uint16_t offset) { u16(static_cast<uint16_t>(0xC000 | offset)); }
    // Writes an uncompressed wire name, compressing its longest suffix that matches a
    // name registered with remember_name(); registers the new labels too.
    void name(const uint8_t* wire);
    // Registers the name whose wire form starts at `offset` (and its suffixes) for compression.
    void remember_name(uint16_t offset);

    // Rewinds to an earlier size (used when an optional section does not fit).
    void rewind(size_t size);

private:
    bool room(size_t n) {
        if (overflow_ || len_ + n > limit_) {
            overflow_ = true;
            return false;
        }
        return true;
    }
    bool match_at(uint16_t offset, const uint8_t* wire) const;

    static constexpr int kMaxRemembered = 48;
    uint8_t* buf_;
    size_t limit_;
    size_t len_ = 0;
    bool overflow_ = false;
    int remembered_ = 0;
    uint16_t remembered_off_[kMaxRemembered];  // only [0, remembered_) is read; left unset (a zeroing costs a rep stos per answer)
};

// Header helpers for building answers.
struct HeaderFlags {
    bool aa = false;
    bool tc = false;
    uint16_t rcode = 0;  // low 4 bits go into the header, the rest into OPT
};
// Writes the 12-octet header for an answer to `q` with all counts zero.
void write_header(Writer& w, const Query& q, const HeaderFlags& f);
// Patches counts in a header written by write_header.
void set_counts(uint8_t* msg, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar);
void set_tc(uint8_t* msg);

}  // namespace dp::dns
