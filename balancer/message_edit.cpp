#include "balancer/message_edit.hpp"

#include <cstring>

#include "dns/wire.hpp"

namespace dp::balancer {

bool question_end(const uint8_t* msg, size_t len, size_t& end) {
    if (len < dns::kHeaderSize) return false;
    const uint16_t qd = get_u16(msg + 4);
    size_t off = dns::kHeaderSize;
    if (qd == 0) {
        end = off;
        return true;
    }
    if (qd != 1) return false;
    // The worker echoes the question uncompressed; a pointer here would be someone else's message.
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
    // Folding the length octets too is harmless: a label length is at most 63, below 'A'.
    for (size_t i = 0; i + 4 < alen; ++i) {
        uint8_t x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x |= 0x20;
        if (y >= 'A' && y <= 'Z') y |= 0x20;
        if (x != y) return false;
    }
    return std::memcmp(a + alen - 4, b + blen - 4, 4) == 0;
}

size_t truncate_answer(const uint8_t* answer, size_t len, uint8_t* out, size_t cap) {
    size_t qend;
    if (!question_end(answer, len, qend)) return 0;
    // Walk answer, authority and additional to find the OPT record (RFC 6891 7: it stays).
    size_t off = qend, opt_at = 0, opt_len = 0;
    const uint32_t records = uint32_t(get_u16(answer + 6)) + get_u16(answer + 8) + get_u16(answer + 10);
    for (uint32_t i = 0; i < records; ++i) {
        const size_t start = off;
        if (!dns::skip_name(answer, len, off) || off + 10 > len) return 0;
        const uint16_t type = get_u16(answer + off);
        const size_t rdlen = get_u16(answer + off + 8);
        off += 10 + rdlen;
        if (off > len) return 0;
        if (type == dns::type::OPT && i >= uint32_t(get_u16(answer + 6)) + get_u16(answer + 8)) {
            opt_at = start;
            opt_len = off - start;
        }
    }
    if (qend + opt_len > cap) return 0;
    std::memcpy(out, answer, qend);
    dns::set_counts(out, get_u16(answer + 4), 0, 0, opt_len ? 1 : 0);
    dns::set_tc(out);
    if (opt_len) std::memcpy(out + qend, answer + opt_at, opt_len);
    return qend + opt_len;
}

size_t make_servfail(const uint8_t* query, size_t len, uint8_t* out, size_t cap) {
    dns::Query q;
    dns::Malformed why;
    if (dns::parse_query(query, len, q, why) == dns::ParseStatus::Drop) return 0;
    dns::Writer w(out, cap);
    dns::write_header(w, q, dns::HeaderFlags{false, false, dns::rcode::SERVFAIL});
    if (q.question_ok) w.bytes(query + dns::kHeaderSize, q.question_end - dns::kHeaderSize);
    if (q.edns) {
        // RFC 6891 7: a query with OPT gets an OPT back.
        w.u8(0);
        w.u16(dns::type::OPT);
        w.u16(dns::kUdpPayloadCap);
        w.u32(0);
        w.u16(0);
    }
    if (w.overflow()) return 0;
    dns::set_counts(out, q.question_ok ? 1 : 0, 0, 0, q.edns ? 1 : 0);
    return w.size();
}

}  // namespace dp::balancer
