// Test-only helpers: build query packets and decode answers independently of dns/wire.cpp's
// writer (the decoder follows RFC 1035 directly), so a writer bug cannot hide itself.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dptest {

struct QueryOpts {
    uint16_t id = 0x1234;
    uint8_t opcode = 0;
    bool rd = true;
    bool cd = false;
    bool qr = false;
    uint16_t qclass = 1;
    bool edns = false;
    uint16_t udp_size = 1232;
    uint8_t version = 0;
    bool do_bit = false;
    bool nsid = false;
    bool keepalive = false;
    std::vector<uint8_t> cookie{};  // a COOKIE option with these octets (any length) when non-empty
    int qdcount = 1;
};

inline std::vector<uint8_t> wire_name(const std::string& name) {
    std::vector<uint8_t> w;
    if (name == "." || name.empty()) {
        w.push_back(0);
        return w;
    }
    size_t start = 0;
    std::string n = name.back() == '.' ? name.substr(0, name.size() - 1) : name;
    while (true) {
        size_t dot = n.find('.', start);
        if (dot == std::string::npos) dot = n.size();
        w.push_back(static_cast<uint8_t>(dot - start));
        for (size_t i = start; i < dot; ++i) w.push_back(static_cast<uint8_t>(n[i]));
        if (dot == n.size()) break;
        start = dot + 1;
    }
    w.push_back(0);
    return w;
}

inline void put16(std::vector<uint8_t>& v, uint16_t x) {
    v.push_back(static_cast<uint8_t>(x >> 8));
    v.push_back(static_cast<uint8_t>(x));
}

inline std::vector<uint8_t> make_query(const std::string& name, uint16_t qtype, const QueryOpts& o = {}) {
    std::vector<uint8_t> m;
    put16(m, o.id);
    m.push_back(static_cast<uint8_t>((o.qr ? 0x80 : 0) | (o.opcode << 3) | (o.rd ? 1 : 0)));
    m.push_back(o.cd ? 0x10 : 0);
    put16(m, static_cast<uint16_t>(o.qdcount));
    put16(m, 0);
    put16(m, 0);
    put16(m, o.edns ? 1 : 0);
    for (int i = 0; i < (o.qdcount > 0 ? 1 : 0); ++i) {
        auto w = wire_name(name);
        m.insert(m.end(), w.begin(), w.end());
        put16(m, qtype);
        put16(m, o.qclass);
    }
    if (o.edns) {
        m.push_back(0);
        put16(m, 41);
        put16(m, o.udp_size);
        m.push_back(0);
        m.push_back(o.version);
        m.push_back(o.do_bit ? 0x80 : 0);
        m.push_back(0);
        std::vector<uint8_t> opts;
        if (o.nsid) {
            put16(opts, 3);
            put16(opts, 0);
        }
        if (o.keepalive) {
            put16(opts, 11);
            put16(opts, 0);
        }
        if (!o.cookie.empty()) {
            put16(opts, 10);
            put16(opts, static_cast<uint16_t>(o.cookie.size()));
            opts.insert(opts.end(), o.cookie.begin(), o.cookie.end());
        }
        put16(m, static_cast<uint16_t>(opts.size()));
        m.insert(m.end(), opts.begin(), opts.end());
    }
    return m;
}

struct RR {
    std::string name;  // presentation form, case as on the wire, trailing dot
    uint16_t type = 0, klass = 0;
    uint32_t ttl = 0;
    std::vector<uint8_t> rdata;
    size_t rdata_off = 0;  // offset of RDATA in the message (names inside may be compressed)
};

struct Msg {
    uint16_t id = 0;
    bool qr = false, aa = false, tc = false, rd = false, ra = false, ad = false, cd = false, z = false;
    uint8_t opcode = 0;
    uint16_t rcode = 0;  // with the extended bits from OPT
    std::string qname;
    uint16_t qtype = 0, qclass = 0;
    int qdcount = 0;
    std::vector<RR> an, ns, ar;
    bool has_opt = false;
    uint16_t opt_udp = 0;
    uint8_t opt_version = 0;
    bool opt_do = false;
    std::vector<std::pair<uint16_t, std::vector<uint8_t>>> opt_options;
    std::vector<uint8_t> raw;
};

inline std::string read_name(const std::vector<uint8_t>& m, size_t& off) {
    std::string out;
    size_t o = off;
    bool jumped = false;
    int hops = 0;
    while (true) {
        if (o >= m.size()) throw std::runtime_error("name runs past the end");
        uint8_t l = m[o];
        if ((l & 0xC0) == 0xC0) {
            if (o + 1 >= m.size() || ++hops > 20) throw std::runtime_error("bad pointer");
            size_t target = size_t(l & 0x3F) << 8 | m[o + 1];
            if (target >= o) throw std::runtime_error("forward pointer");
            if (!jumped) off = o + 2;
            jumped = true;
            o = target;
            continue;
        }
        if (l == 0) {
            if (!jumped) off = o + 1;
            break;
        }
        if (l > 63 || o + 1 + l > m.size()) throw std::runtime_error("bad label");
        out.append(reinterpret_cast<const char*>(&m[o + 1]), l);
        out.push_back('.');
        o += 1 + l;
    }
    return out.empty() ? "." : out;
}

inline uint16_t rd16(const std::vector<uint8_t>& m, size_t o) {
    if (o + 2 > m.size()) throw std::runtime_error("short");
    return static_cast<uint16_t>(m[o] << 8 | m[o + 1]);
}

inline Msg decode(const std::vector<uint8_t>& m) {
    Msg r;
    r.raw = m;
    if (m.size() < 12) throw std::runtime_error("short header");
    r.id = rd16(m, 0);
    r.qr = m[2] & 0x80;
    r.opcode = (m[2] >> 3) & 0xF;
    r.aa = m[2] & 4;
    r.tc = m[2] & 2;
    r.rd = m[2] & 1;
    r.ra = m[3] & 0x80;
    r.z = m[3] & 0x40;
    r.ad = m[3] & 0x20;
    r.cd = m[3] & 0x10;
    r.rcode = m[3] & 0xF;
    r.qdcount = rd16(m, 4);
    const int an = rd16(m, 6), ns = rd16(m, 8), ar = rd16(m, 10);
    size_t off = 12;
    if (r.qdcount >= 1) {
        r.qname = read_name(m, off);
        r.qtype = rd16(m, off);
        r.qclass = rd16(m, off + 2);
        off += 4;
    }
    auto read_rr = [&](std::vector<RR>& into) {
        RR x;
        x.name = read_name(m, off);
        x.type = rd16(m, off);
        x.klass = rd16(m, off + 2);
        x.ttl = uint32_t(rd16(m, off + 4)) << 16 | rd16(m, off + 6);
        uint16_t len = rd16(m, off + 8);
        off += 10;
        if (off + len > m.size()) throw std::runtime_error("rdata past end");
        x.rdata.assign(m.begin() + off, m.begin() + off + len);
        x.rdata_off = off;
        off += len;
        into.push_back(x);
    };
    for (int i = 0; i < an; ++i) read_rr(r.an);
    for (int i = 0; i < ns; ++i) read_rr(r.ns);
    for (int i = 0; i < ar; ++i) read_rr(r.ar);
    if (off != m.size()) throw std::runtime_error("trailing octets");
    for (auto it = r.ar.begin(); it != r.ar.end(); ++it) {
        if (it->type != 41) continue;
        r.has_opt = true;
        r.opt_udp = it->klass;
        r.rcode |= static_cast<uint16_t>((it->ttl >> 24) << 4);
        r.opt_version = static_cast<uint8_t>(it->ttl >> 16);
        r.opt_do = it->ttl & 0x8000;
        size_t o = 0;
        while (o + 4 <= it->rdata.size()) {
            uint16_t code = static_cast<uint16_t>(it->rdata[o] << 8 | it->rdata[o + 1]);
            uint16_t len = static_cast<uint16_t>(it->rdata[o + 2] << 8 | it->rdata[o + 3]);
            r.opt_options.push_back({code, std::vector<uint8_t>(it->rdata.begin() + o + 4,
                                                                it->rdata.begin() + o + 4 + len)});
            o += 4 + len;
        }
        r.ar.erase(it);
        break;
    }
    return r;
}

// TXT RDATA as one string (character-strings joined).
inline std::string txt(const RR& rr) {
    std::string s;
    size_t o = 0;
    while (o < rr.rdata.size()) {
        uint8_t l = rr.rdata[o];
        s.append(reinterpret_cast<const char*>(&rr.rdata[o + 1]), l);
        o += 1 + l;
    }
    return s;
}

}  // namespace dptest
