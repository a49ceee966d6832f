// The query mix file format shared by the bench tools: one "NAME TYPE" per line, TYPE a
// mnemonic from the table below or RFC 3597's TYPEnnn. Header-only, libc and the C++
// library only (the tools build without the server's dependencies).
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace mixq {

struct TypeName {
    const char* name;
    uint16_t code;
};

constexpr std::array<TypeName, 27> kTypes{{
    {"A", 1},       {"NS", 2},      {"CNAME", 5},   {"SOA", 6},     {"PTR", 12},
    {"HINFO", 13},  {"MX", 15},     {"TXT", 16},    {"AAAA", 28},   {"SRV", 33},
    {"NAPTR", 35},  {"DS", 43},     {"SSHFP", 44},  {"RRSIG", 46},  {"NSEC", 47},
    {"DNSKEY", 48}, {"NSEC3", 50},  {"TLSA", 52},   {"CDS", 59},    {"CDNSKEY", 60},
    {"SVCB", 64},   {"HTTPS", 65},  {"IXFR", 251},  {"AXFR", 252},  {"ANY", 255},
    {"CAA", 257},   {"SPF", 99},
}};

inline bool parse_type(std::string_view s, uint16_t& out) {
    for (const auto& t : kTypes) {
        if (s.size() == std::strlen(t.name) &&
            std::equal(s.begin(), s.end(), t.name,
                       [](char a, char b) { return std::toupper(static_cast<unsigned char>(a)) == b; })) {
            out = t.code;
            return true;
        }
    }
    // RFC 3597 generic form so the mix can hold types this table does not know.
    if (s.size() > 4 && (s.substr(0, 4) == "TYPE" || s.substr(0, 4) == "type")) {
        unsigned long v = 0;
        for (char c : s.substr(4)) {
            if (c < '0' || c > '9') return false;
            v = v * 10 + static_cast<unsigned long>(c - '0');
            if (v > 65535) return false;
        }
        out = static_cast<uint16_t>(v);
        return true;
    }
    return false;
}

// Appends the uncompressed wire form of a presentation name (no escapes); false if a label
// is empty or over 63 octets or the name over 255.
inline bool encode_name(std::string_view name, std::vector<uint8_t>& out) {
    if (name == ".") {
        out.push_back(0);
        return true;
    }
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    size_t total = 1;
    while (!name.empty()) {
        size_t dot = name.find('.');
        std::string_view label = name.substr(0, dot);
        if (label.empty() || label.size() > 63) return false;
        total += label.size() + 1;
        if (total > 255) return false;
        out.push_back(static_cast<uint8_t>(label.size()));
        out.insert(out.end(), label.begin(), label.end());
        if (dot == std::string_view::npos) break;
        name.remove_prefix(dot + 1);
    }
    out.push_back(0);
    return true;
}

// A query (ID 0, RD 0, class IN) for one mix line: header, question, and an OPT record
// advertising `edns_size` unless it is 0. Sets `question_len` (question octets after the
// header); false for a bad name.
inline bool build_query(std::string_view name, uint16_t qtype, uint16_t edns_size, std::vector<uint8_t>& q,
                        uint16_t& question_len) {
    q = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, static_cast<uint8_t>(edns_size ? 1 : 0)};
    if (!encode_name(name, q)) return false;
    const uint8_t tail[] = {static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype & 0xff), 0, 1};
    q.insert(q.end(), tail, tail + sizeof tail);
    question_len = static_cast<uint16_t>(q.size() - 12);
    if (edns_size) {
        // OPT: root owner, type 41, class = our UDP size, TTL 0 (version 0, DO=0), no rdata.
        const uint8_t opt[11] = {0, 0, 41, static_cast<uint8_t>(edns_size >> 8), static_cast<uint8_t>(edns_size & 0xff),
                                 0, 0, 0, 0, 0, 0};
        q.insert(q.end(), opt, opt + sizeof opt);
    }
    return true;
}

}  // namespace mixq
