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

namespace {

// Walks every record after the question; finds the OPT record in the additional section
// (opt_len 0 when there is none). False when the message cannot be walked.
bool find_opt(const uint8_t* msg, size_t len, size_t qend, size_t& opt_at, size_t& opt_len) {
    size_t off = qend;
    opt_at = opt_len = 0;
    const uint32_t before_additional = uint32_t(get_u16(msg + 6)) + get_u16(msg + 8);
    const uint32_t records = before_additional + get_u16(msg + 10);
    for (uint32_t i = 0; i < records; ++i) {
        RecordHead r;
        if (!next_record(msg, len, off, r)) return false;
        if (r.type == dns::type::OPT && i >= before_additional) {
            opt_at = r.owner;
            opt_len = off - r.owner;
        }
    }
    return true;
}

// Offset of EDNS option `code` (its code octets) in `msg`, and the offset of the OPT record's
// RDLENGTH; 0 when absent or the message cannot be walked.
size_t find_option(const uint8_t* msg, size_t len, uint16_t code, size_t& rdlen_at) {
    size_t qend, opt_at, opt_len;
    if (!question_end(msg, len, qend) || !find_opt(msg, len, qend, opt_at, opt_len) || opt_len == 0) return 0;
    size_t off = opt_at;
    if (!dns::skip_name(msg, len, off)) return 0;
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
    size_t rdlen_at = 0;
    const size_t at = find_option(msg, len, code, rdlen_at);
    if (at == 0) return len;
    const size_t cut = 4 + get_u16(msg + at + 2);
    std::memmove(msg + at, msg + at + cut, len - at - cut);
    put_u16(msg + rdlen_at, static_cast<uint16_t>(get_u16(msg + rdlen_at) - cut));
    return len - cut;
}

bool set_keepalive(uint8_t* msg, size_t len, uint16_t timeout_100ms) {
    size_t rdlen_at = 0;
    const size_t at = find_option(msg, len, dns::edns_opt::TCP_KEEPALIVE, rdlen_at);
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
