// The query mix file format shared by the bench tools: one "NAME TYPE [!MALFORMATION]" per
// line, TYPE a mnemonic from the table below or RFC 3597's TYPEnnn; lines starting with # or ;
// are comments. The optional third word turns the query into a malformed one a server should
// refuse to parse (see Malform). Header-only, libc and the C++ library only (the tools build
// without the server's dependencies).
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
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

// Malformed queries of the mix (RFC 1035 4.1, RFC 6891 6.1.1): each keeps a whole header, so
// a server can answer FORMERR to its ID, or drop it.
enum class Malform : uint8_t {
    None,
    NoQuestion,  // "!noquestion": QDCOUNT 0, no question (an OPT when EDNS is on)
    CutName,     // "!cut": QDCOUNT 1, the message ends inside the question name
    TwoOpt,      // "!opt2": the question, then two OPT records
};

inline bool parse_malform(std::string_view s, Malform& out) {
    if (s == "!noquestion") out = Malform::NoQuestion;
    else if (s == "!cut") out = Malform::CutName;
    else if (s == "!opt2") out = Malform::TwoOpt;
    else return false;
    return true;
}

// One line of a mix file.
struct MixLine {
    std::string name, type;
    Malform malform = Malform::None;
};

enum class LineStatus { Query, Skip, Bad };

// Splits one line; Skip for blank and comment lines, Bad for a missing type or an unknown
// third word.
inline LineStatus parse_line(const std::string& line, MixLine& out) {
    std::istringstream ls(line);
    out = MixLine{};
    if (!(ls >> out.name) || out.name[0] == '#' || out.name[0] == ';') return LineStatus::Skip;
    if (!(ls >> out.type)) return LineStatus::Bad;
    std::string extra;
    if (ls >> extra && !parse_malform(extra, out.malform)) return LineStatus::Bad;
    return ls >> extra ? LineStatus::Bad : LineStatus::Query;
}

// A query (ID 0, RD 0, class IN) for one mix line: header, question, and an OPT record
// advertising `edns_size` unless it is 0; `malform` makes it one of the malformed kinds.
// Sets `question_len` (question octets after the header, 0 when the query carries no whole
// question); false for a bad name.
inline bool build_query(std::string_view name, uint16_t qtype, uint16_t edns_size, std::vector<uint8_t>& q,
                        uint16_t& question_len, Malform malform = Malform::None) {
    // OPT: root owner, type 41, class = our UDP size, TTL 0 (version 0, DO=0), no rdata.
    const uint16_t opt_size = edns_size ? edns_size : 1232;
    const uint8_t opt[11] = {0, 0, 41, static_cast<uint8_t>(opt_size >> 8), static_cast<uint8_t>(opt_size & 0xff),
                             0, 0, 0, 0, 0, 0};
    const uint8_t opts = malform == Malform::TwoOpt ? 2 : (edns_size && malform != Malform::CutName ? 1 : 0);
    q = {0, 0, 0, 0, 0, static_cast<uint8_t>(malform == Malform::NoQuestion ? 0 : 1), 0, 0, 0, 0, 0, opts};
    question_len = 0;
    if (malform != Malform::NoQuestion) {
        if (!encode_name(name, q)) return false;
        if (malform == Malform::CutName) {
            // Half the encoded name: never a whole one (its last octet, the root, is cut off).
            q.resize(12 + (q.size() - 12) / 2);
            return true;
        }
        const uint8_t tail[] = {static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype & 0xff), 0, 1};
        q.insert(q.end(), tail, tail + sizeof tail);
        if (malform == Malform::None) question_len = static_cast<uint16_t>(q.size() - 12);
    }
    for (uint8_t i = 0; i < opts; ++i) q.insert(q.end(), opt, opt + sizeof opt);
    return true;
}

}  // namespace mixq
