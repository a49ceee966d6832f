#include "dns/message.hpp"

#include <cstring>

namespace dp::dns {

bool question_end(const uint8_t* msg, size_t len, size_t& end) {
    if (len < kHeaderSize) return false;
    const uint16_t qd = get_u16(msg + 4);
    size_t off = kHeaderSize;
    if (qd == 0) {
        end = off;
        return true;
    }
    if (qd != 1) return false;
    // Our servers echo the question uncompressed; a pointer here would be someone else's message.
    while (off < len && msg[off] != 0) {
        if (msg[off] & 0xC0) return false;
        off += 1 + msg[off];
    }
    if (off >= len) return false;
    off += 1 + 4;
    if (off > len) return false;
    end = off;
    return true;
}

bool same_question(const uint8_t* a, size_t alen, const uint8_t* b, size_t blen) {
    if (alen != blen) return false;
    if (alen == 0) return true;
    if (alen < 5) return false;
    for (size_t i = 0; i + 4 < alen; ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return std::memcmp(a + alen - 4, b + blen - 4, 4) == 0;
}

bool read_name(const uint8_t* m, size_t limit, size_t off, size_t& next, uint8_t* out, size_t* out_len) {
    size_t o = off, bound = limit, total = 0;
    bool jumped = false;
    for (int hops = 0;;) {
        if (o >= bound) return false;
        const uint8_t l = m[o];
        if ((l & 0xC0) == 0xC0) {
            if (o + 2 > bound || ++hops > int(kMaxLabels)) return false;
            const size_t target = size_t(l & 0x3F) << 8 | m[o + 1];
            if (target < kHeaderSize || target >= o) return false;
            if (!jumped) next = o + 2;
            jumped = true;
            bound = o;
            o = target;
            continue;
        }
        if (l & 0xC0) return false;  // 0x40 / 0x80 label types
        if (total + 1u + l > kMaxNameWire || o + 1u + l > bound) return false;
        if (out) std::memcpy(out + total, m + o, 1u + l);
        total += 1u + l;
        if (l == 0) {
            if (!jumped) next = o + 1;
            if (out_len) *out_len = total;
            return true;
        }
        o += 1u + l;
    }
}

bool find_opt(const uint8_t* msg, size_t len, size_t qend, size_t& opt_at, size_t& opt_len) {
    size_t off = qend;
    opt_at = opt_len = 0;
    const uint32_t before_additional = uint32_t(get_u16(msg + 6)) + get_u16(msg + 8);
    const uint32_t records = before_additional + get_u16(msg + 10);
    for (uint32_t i = 0; i < records; ++i) {
        RecordHead r;
        if (!next_record(msg, len, off, r)) return false;
        if (r.type == type::OPT && i >= before_additional) {
            opt_at = r.owner;
            opt_len = off - r.owner;
        }
    }
    return true;
}

namespace {

// The OPT record of `msg`: where it starts, its length, and where its fixed fields (type,
// class, TTL, RDLENGTH) begin after the owner; false when there is none or the message cannot
// be walked.
bool opt_record(const uint8_t* msg, size_t len, size_t& opt_at, size_t& opt_len, size_t& fixed) {
    size_t qend;
    if (!question_end(msg, len, qend) || !find_opt(msg, len, qend, opt_at, opt_len) || opt_len == 0) return false;
    fixed = opt_at;
    return skip_name(msg, len, fixed);
}

// Offset of the first EDNS option `code` (its code octets) in `msg`, and the offset of the OPT
// record's RDLENGTH; 0 when absent or the message cannot be walked.
size_t find_option(const uint8_t* msg, size_t len, uint16_t code, size_t& rdlen_at) {
    size_t opt_at, opt_len, off;
    if (!opt_record(msg, len, opt_at, opt_len, off)) return 0;
    rdlen_at = off + 8;
    const size_t end = opt_at + opt_len;
    for (off += 10; off + 4 <= end;) {
        const size_t olen = get_u16(msg + off + 2);
        if (off + 4 + olen > end) return 0;
        if (get_u16(msg + off) == code) return off;
        off += 4 + olen;
    }
    return 0;
}

}  // namespace

size_t remove_option(uint8_t* msg, size_t len, uint16_t code) {
    // A query may carry an option more than once; every copy goes (each pass removes one and
    // shortens the message, so this ends).
    for (;;) {
        size_t rdlen_at = 0;
        const size_t at = find_option(msg, len, code, rdlen_at);
        if (at == 0) return len;
        const size_t cut = 4 + get_u16(msg + at + 2);
        std::memmove(msg + at, msg + at + cut, len - at - cut);
        put_u16(msg + rdlen_at, static_cast<uint16_t>(get_u16(msg + rdlen_at) - cut));
        len -= cut;
    }
}

bool set_keepalive(uint8_t* msg, size_t len, uint16_t timeout_100ms) {
    size_t rdlen_at = 0;
    const size_t at = find_option(msg, len, edns_opt::TCP_KEEPALIVE, rdlen_at);
    if (at == 0 || get_u16(msg + at + 2) != 2) return false;
    put_u16(msg + at + 4, timeout_100ms);
    return true;
}

size_t truncate_answer(const uint8_t* answer, size_t len, uint8_t* out, size_t cap) {
    size_t qend, opt_at, opt_len;
    // The OPT record stays (RFC 6891 7).
    if (!question_end(answer, len, qend) || !find_opt(answer, len, qend, opt_at, opt_len)) return 0;
    if (qend + opt_len > cap) return 0;
    std::memcpy(out, answer, qend);
    set_counts(out, get_u16(answer + 4), 0, 0, opt_len ? 1 : 0);
    set_tc(out);
    if (opt_len) std::memcpy(out + qend, answer + opt_at, opt_len);
    return qend + opt_len;
}

size_t make_servfail(const uint8_t* query, size_t len, uint8_t* out, size_t cap) {
    Query q;
    Malformed why;
    if (parse_query(query, len, q, why) == ParseStatus::Drop) return 0;
    Writer w(out, cap);
    write_header(w, q, HeaderFlags{false, false, rcode::SERVFAIL});
    if (q.question_ok) w.bytes(query + kHeaderSize, q.question_end - kHeaderSize);
    if (q.edns) {
        // RFC 6891 7: a query with OPT gets an OPT back.
        w.u8(0);
        w.u16(type::OPT);
        w.u16(kUdpPayloadCap);
        w.u32(0);
        w.u16(0);
    }
    if (w.overflow()) return 0;
    set_counts(out, q.question_ok ? 1 : 0, 0, 0, q.edns ? 1 : 0);
    return w.size();
}

size_t append_option(uint8_t* msg, size_t len, size_t cap, uint16_t code, const uint8_t* data, uint16_t n) {
    size_t opt_at, opt_len, fixed;
    if (!opt_record(msg, len, opt_at, opt_len, fixed)) return 0;
    const size_t add = 4 + size_t(n);
    if (len + add > cap) return 0;
    const size_t rdlen_at = fixed + 8;  // after type, class, TTL
    if (get_u16(msg + rdlen_at) + add > 0xFFFF) return 0;
    const size_t at = opt_at + opt_len;  // just after the OPT record's RDATA
    std::memmove(msg + at + add, msg + at, len - at);
    put_u16(msg + at, code);
    put_u16(msg + at + 2, n);
    if (n) std::memcpy(msg + at + 4, data, n);
    put_u16(msg + rdlen_at, static_cast<uint16_t>(get_u16(msg + rdlen_at) + add));
    return len + add;
}

size_t add_cookie(const Cookies& cookies, const ClientCookie& c, const ClientAddr& from, uint8_t* msg, size_t len,
                  size_t cap) {
    if (c.len == 0 || !cookies.enabled()) return len;
    uint8_t value[kMaxCookie];
    const size_t n = cookies.answer(c.value, c.len, from, cookie_clock(), value);
    if (n == 0) return len;
    const size_t r = append_option(msg, len, cap, edns_opt::COOKIE, value, static_cast<uint16_t>(n));
    return r ? r : len;
}

bool make_badcookie(uint8_t* msg, size_t len) {
    size_t opt_at, opt_len, fixed;
    if (!opt_record(msg, len, opt_at, opt_len, fixed)) return false;
    const size_t ttl_at = fixed + 4;  // after type, class
    msg[2] &= static_cast<uint8_t>(~(0x04 | 0x02));  // AA, TC
    msg[3] = static_cast<uint8_t>((msg[3] & 0xF0) | (rcode::BADCOOKIE & 0x0F));
    msg[ttl_at] = static_cast<uint8_t>(rcode::BADCOOKIE >> 4);  // extended rcode, upper 8 bits
    return true;
}

}  // namespace dp::dns
