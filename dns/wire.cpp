#include "dns/wire.hpp"

#include <cstring>

#include "config/settings.hpp"

namespace dp::dns {

bool skip_name(const uint8_t* msg, size_t len, size_t& off) {
    size_t total = 0;
    while (off < len) {
        uint8_t l = msg[off];
        if (l == 0) {
            off += 1;
            return true;
        }
        if ((l & 0xC0) == 0xC0) {
            if (off + 2 > len) return false;
            off += 2;
            return true;
        }
        if (l & 0xC0) return false;  // 0x40/0x80 label types are obsolete (RFC 6891 5)
        total += l + 1;
        if (total > kMaxNameWire) return false;
        off += 1 + l;
    }
    return false;
}

const char* malformed_name(Malformed m) {
    switch (m) {
        case Malformed::None: return "none";
        case Malformed::TooShort: return "too_short";
        case Malformed::IsResponse: return "is_response";
        case Malformed::QdCount: return "qdcount";
        case Malformed::Question: return "question";
        case Malformed::Record: return "record";
        case Malformed::Opt: return "opt";
        case Malformed::MultipleOpt: return "multiple_opt";
        case Malformed::Cookie: return "cookie";
        case Malformed::Count: break;
    }
    return "unknown";
}

ParseStatus parse_query(const uint8_t* msg, size_t len, Query& q, Malformed& why) {
    why = Malformed::None;
    q.question_ok = false;
    q.edns = false;
    q.edns_version = 0;
    q.edns_do = false;
    q.edns_udp_size = 0;
    q.edns_nsid = false;
    q.edns_keepalive = false;
    q.cookie_len = 0;
    if (len < kHeaderSize) {
        why = Malformed::TooShort;
        return ParseStatus::Drop;
    }
    q.id = get_u16(msg);
    const uint8_t f1 = msg[2], f2 = msg[3];
    if (f1 & 0x80) {
        why = Malformed::IsResponse;
        return ParseStatus::Drop;
    }
    q.opcode = (f1 >> 3) & 0x0F;
    q.rd = f1 & 0x01;
    q.cd = f2 & 0x10;
    const uint16_t qd = get_u16(msg + 4), an = get_u16(msg + 6), ns = get_u16(msg + 8), ar = get_u16(msg + 10);

    if (qd != 1) {
        why = Malformed::QdCount;
        return q.opcode != 0 ? ParseStatus::NotImp : ParseStatus::FormErr;
    }

    // Question: an uncompressed name (nothing precedes it to point at).
    size_t off = kHeaderSize;
    uint8_t labels = 0;
    size_t name_len = 0;
    bool ok = false;
    while (off < len) {
        uint8_t l = msg[off];
        if (l == 0) {
            name_len += 1;
            off += 1;
            ok = true;
            break;
        }
        if (l > kMaxLabel || labels >= kMaxLabels - 1) break;
        if (name_len + 1 + l + 1 > kMaxNameWire) break;
        if (off + 1 + l > len) break;
        q.label_off[labels++] = static_cast<uint8_t>(name_len);
        name_len += 1 + l;
        off += 1 + l;
    }
    if (!ok || off + 4 > len) {
        why = Malformed::Question;
        return q.opcode != 0 ? ParseStatus::NotImp : ParseStatus::FormErr;
    }
    q.qname = msg + kHeaderSize;
    q.qname_len = static_cast<uint16_t>(name_len);
    q.label_count = labels;
    q.qtype = get_u16(msg + off);
    q.qclass = get_u16(msg + off + 2);
    off += 4;
    q.question_end = off;
    q.question_ok = true;

    if (q.opcode != 0) return ParseStatus::NotImp;

    // Walk the remaining records only to find OPT and to reject garbage.
    const unsigned records = unsigned(an) + ns + ar;
    bool seen_opt = false;
    for (unsigned i = 0; i < records; ++i) {
        const bool additional = i >= unsigned(an) + ns;
        const size_t owner = off;
        if (!skip_name(msg, len, off) || off + 10 > len) {
            why = Malformed::Record;
            return ParseStatus::FormErr;
        }
        const uint16_t rtype = get_u16(msg + off);
        const uint16_t rclass = get_u16(msg + off + 2);
        const uint32_t ttl = uint32_t(get_u16(msg + off + 4)) << 16 | get_u16(msg + off + 6);
        const uint16_t rdlen = get_u16(msg + off + 8);
        off += 10;
        if (off + rdlen > len) {
            why = Malformed::Record;
            return ParseStatus::FormErr;
        }
        if (rtype == type::OPT) {
            // RFC 6891 6.1.1: only in the additional section, owner is the root, at most one.
            if (!additional || msg[owner] != 0) {
                why = Malformed::Opt;
                return ParseStatus::FormErr;
            }
            if (seen_opt) {
                why = Malformed::MultipleOpt;
                q.edns = false;
                return ParseStatus::FormErr;
            }
            seen_opt = true;
            // Options must tile RDATA exactly.
            size_t o = off, end = off + rdlen;
            bool nsid = false, keepalive = false, bad_cookie = false;
            while (o < end) {
                if (o + 4 > end) {
                    why = Malformed::Opt;
                    return ParseStatus::FormErr;
                }
                const uint16_t code = get_u16(msg + o), olen = get_u16(msg + o + 2);
                o += 4;
                if (o + olen > end) {
                    why = Malformed::Opt;
                    return ParseStatus::FormErr;
                }
                if (code == edns_opt::NSID) nsid = true;
                if (code == edns_opt::TCP_KEEPALIVE) keepalive = true;
                if (code == edns_opt::COOKIE && q.cookie_len == 0 && !bad_cookie) {  // the first one counts
                    if (cookie_length_ok(olen)) {
                        std::memcpy(q.cookie, msg + o, olen);
                        q.cookie_len = static_cast<uint8_t>(olen);
                    } else {
                        bad_cookie = true;
                    }
                }
                o += olen;
            }
            q.edns = true;
            q.edns_udp_size = rclass < 512 ? 512 : rclass;  // RFC 6891 6.2.5
            q.edns_version = static_cast<uint8_t>(ttl >> 16);
            q.edns_do = ttl & 0x8000;
            q.edns_nsid = nsid;
            q.edns_keepalive = keepalive;
            if (bad_cookie) {
                why = Malformed::Cookie;
                return ParseStatus::FormErr;
            }
        }
        off += rdlen;
    }
    return ParseStatus::Ok;
}

bool name_equal_ci(const uint8_t* a, const uint8_t* b) {
    for (;;) {
        const uint8_t la = *a, lb = *b;
        if (la != lb) return false;
        if (la == 0) return true;
        for (uint8_t i = 1; i <= la; ++i)
            if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
        a += la + 1;
        b += lb + 1;
    }
}

bool encode_name(std::string_view text, std::string& wire, std::string& error) {
    wire.clear();
    if (text.empty()) {
        error = "empty name";
        return false;
    }
    if (text == ".") {
        wire.push_back('\0');
        return true;
    }
    if (text.back() == '.') text.remove_suffix(1);
    size_t start = 0;
    while (start <= text.size()) {
        size_t dot = text.find('.', start);
        if (dot == std::string_view::npos) dot = text.size();
        const size_t l = dot - start;
        if (l == 0) {
            error = "empty label in " + config::quote(text);
            return false;
        }
        if (l > kMaxLabel) {
            error = "label longer than 63 octets in " + config::quote(text);
            return false;
        }
        for (size_t i = start; i < dot; ++i) {
            const unsigned char c = static_cast<unsigned char>(text[i]);
            if (c <= 0x20 || c >= 0x7F || c == '\\') {
                error = "invalid character in " + config::quote(text);
                return false;
            }
        }
        wire.push_back(static_cast<char>(l));
        wire.append(text.substr(start, l));
        start = dot + 1;
        if (dot == text.size()) break;
    }
    wire.push_back('\0');
    if (wire.size() > kMaxNameWire) {
        error = "name longer than 255 octets: " + config::quote(text);
        return false;
    }
    return true;
}

void Writer::rewind(size_t size) {
    if (size > len_) return;
    len_ = size;
    overflow_ = false;
    // Forget compression targets that now lie beyond the end.
    int keep = 0;
    for (int i = 0; i < remembered_; ++i)
        if (remembered_off_[i] < len_) remembered_off_[keep++] = remembered_off_[i];
    remembered_ = keep;
}

void Writer::remember_name(uint16_t offset) {
    // Each label start is itself a name (a suffix) that later names may point to.
    size_t o = offset;
    while (o < len_ && o < 0x4000) {
        const uint8_t l = buf_[o];
        if (l == 0 || (l & 0xC0)) break;
        if (remembered_ < kMaxRemembered) remembered_off_[remembered_++] = static_cast<uint16_t>(o);
        o += 1 + l;
    }
}

// Does the message name at `offset` (following pointers) equal `wire` exactly?
// Case-sensitive on purpose: a configured name keeps the case it was given.
bool Writer::match_at(uint16_t offset, const uint8_t* wire) const {
    size_t o = offset;
    int hops = 0;
    for (;;) {
        if (o >= len_) return false;
        uint8_t l = buf_[o];
        if ((l & 0xC0) == 0xC0) {
            if (o + 1 >= len_ || ++hops > 16) return false;
            o = size_t(l & 0x3F) << 8 | buf_[o + 1];
            continue;
        }
        if (l != *wire) return false;
        if (l == 0) return true;
        if (o + 1 + l > len_ || std::memcmp(buf_ + o + 1, wire + 1, l) != 0) return false;
        o += 1 + l;
        wire += 1 + l;
    }
}

void Writer::name(const uint8_t* wire) {
    const uint8_t* p = wire;
    while (*p != 0) {
        for (int i = 0; i < remembered_; ++i) {
            if (match_at(remembered_off_[i], p)) {
                const size_t start = len_;
                bytes(wire, static_cast<size_t>(p - wire));
                name_pointer(remembered_off_[i]);
                if (!overflow_ && p != wire) remember_name(static_cast<uint16_t>(start));
                return;
            }
        }
        p += 1 + *p;
    }
    const size_t start = len_;
    bytes(wire, static_cast<size_t>(p - wire) + 1);
    if (!overflow_ && start < 0x4000) remember_name(static_cast<uint16_t>(start));
}

void write_header(Writer& w, const Query& q, const HeaderFlags& f) {
    uint8_t f1 = 0x80 | static_cast<uint8_t>((q.opcode & 0x0F) << 3);
    if (f.aa) f1 |= 0x04;
    if (f.tc) f1 |= 0x02;
    // RD and CD are defined only for QUERY: copied there, cleared for any other opcode.
    if (q.rd && q.opcode == 0) f1 |= 0x01;
    uint8_t f2 = static_cast<uint8_t>(f.rcode & 0x0F);
    if (q.cd && q.opcode == 0) f2 |= 0x10;
    const uint8_t h[kHeaderSize] = {static_cast<uint8_t>(q.id >> 8), static_cast<uint8_t>(q.id), f1, f2};
    w.bytes(h, sizeof h);
}

void set_counts(uint8_t* msg, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
    const uint16_t v[4] = {qd, an, ns, ar};
    for (int i = 0; i < 4; ++i) {
        msg[4 + 2 * i] = static_cast<uint8_t>(v[i] >> 8);
        msg[5 + 2 * i] = static_cast<uint8_t>(v[i]);
    }
}

void set_tc(uint8_t* msg) { msg[2] |= 0x02; }

}  // namespace dp::dns
