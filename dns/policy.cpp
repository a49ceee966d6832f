#include "dns/policy.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "config/settings.hpp"

namespace dp::dns {

namespace {

std::string to_lower(std::string_view s) {
    std::string r(s);
    for (char& c : r) c = static_cast<char>(ascii_lower(static_cast<uint8_t>(c)));
    return r;
}

std::string strip_dot(std::string_view s) {
    if (s.size() > 1 && s.back() == '.') s.remove_suffix(1);
    return std::string(s);
}

bool host_label(std::string_view l) {
    if (l.empty() || l.size() > kMaxLabel || l.front() == '-' || l.back() == '-') return false;
    for (char ch : l)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-') return false;
    return true;
}

}  // namespace

bool split_mailbox(std::string_view text, std::string& local, std::string& domain, std::string& why) {
    const size_t at = text.rfind('@');
    if (at == std::string_view::npos) {
        why = "no '@'";
        return false;
    }
    const std::string_view l = text.substr(0, at), d = text.substr(at + 1);
    // The local part: RFC 5322 dot-atom text, without the characters that end a DMARC tag or URI.
    if (l.empty() || l.size() > 64 || l.front() == '.' || l.back() == '.' || l.find("..") != std::string_view::npos) {
        why = "bad local part";
        return false;
    }
    for (char ch : l) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7F || std::strchr("\"(),:;<>@[\\]!", c)) {
            why = "bad local part";
            return false;
        }
    }
    // The domain: a host name with at least two labels, its last not all digits.
    size_t labels = 0, start = 0;
    std::string_view last;
    while (start <= d.size()) {
        size_t dot = d.find('.', start);
        if (dot == std::string_view::npos) dot = d.size();
        last = d.substr(start, dot - start);
        if (!host_label(last)) {
            why = "bad domain";
            return false;
        }
        ++labels;
        start = dot + 1;
    }
    if (labels < 2 || d.size() > 253 || last.find_first_not_of("0123456789") == std::string_view::npos) {
        why = "the domain needs at least two labels";
        return false;
    }
    local = std::string(l);
    domain = std::string(d);
    return true;
}

namespace {

template <size_t N>
bool label_is(const uint8_t* label, const char (&text)[N]) {
    constexpr size_t n = N - 1;  // a literal: its length is known at compile time
    if (label[0] != n) return false;
    for (size_t i = 0; i < n; ++i)
        if (ascii_lower(label[1 + i]) != static_cast<uint8_t>(text[i])) return false;
    return true;
}

// Is the wire name `inner` equal to or below the wire name `outer` (ignoring case)?
bool at_or_below(const uint8_t* inner, const uint8_t* outer) {
    const uint8_t* p = inner;
    for (;;) {
        if (name_equal_ci(p, outer)) return true;
        if (*p == 0) return false;
        p += 1 + *p;
    }
}

constexpr uint16_t kOptSizeBase = 11;  // root owner + type + class + ttl + rdlength

}  // namespace

std::string txt_rdata(std::string_view text) {
    std::string r;
    do {
        const size_t n = std::min<size_t>(text.size(), 255);
        r.push_back(static_cast<char>(n));
        r.append(text.substr(0, n));
        text.remove_prefix(n);
    } while (!text.empty());
    return r;
}

namespace {
std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}
bool all_digits(std::string_view v, size_t max_len) {
    return !v.empty() && v.size() <= max_len && v.find_first_not_of("0123456789") == std::string_view::npos;
}
// Is `v` a valid value of DMARC tag `tag` (RFC 7489 6.3, DMARCbis np/psd/t)? False for a tag
// this server does not know.
bool dmarc_value_ok(std::string_view tag, std::string_view v) {
    if (tag == "p" || tag == "sp" || tag == "np") return v == "none" || v == "quarantine" || v == "reject";
    if (tag == "adkim" || tag == "aspf") return v == "r" || v == "s";
    if (tag == "pct") return all_digits(v, 3) && std::stoi(std::string(v)) <= 100;
    if (tag == "ri") return all_digits(v, 10) && std::stoull(std::string(v)) <= 0xFFFFFFFFull;
    if (tag == "rf") return v == "afrf";
    if (tag == "t") return v == "y" || v == "n";
    if (tag == "psd") return v == "y" || v == "n" || v == "u";
    if (tag == "fo") {  // colon-separated 0, 1, d, s
        size_t i = 0;
        while (true) {
            const size_t colon = v.find(':', i);
            const std::string_view o = trim(v.substr(i, colon == std::string_view::npos ? colon : colon - i));
            if (o != "0" && o != "1" && o != "d" && o != "s") return false;
            if (colon == std::string_view::npos) return true;
            i = colon + 1;
        }
    }
    return false;
}
}  // namespace

std::string dmarc_record(std::string_view tags, const std::string& rua, const std::string& ruf) {
    std::string out = "v=DMARC1;";
    std::vector<std::string> seen;
    const std::string whole(tags);
    while (!tags.empty()) {
        const size_t semi = tags.find(';');
        const std::string_view item = trim(tags.substr(0, semi));
        tags.remove_prefix(semi == std::string_view::npos ? tags.size() : semi + 1);
        if (item.empty()) continue;
        const size_t eq = item.find('=');
        if (eq == std::string_view::npos)
            throw ConfigError("dmarc_tags: " + config::quote(item) + " is not tag=value (in " + config::quote(whole) + ")");
        const std::string tag = to_lower(trim(item.substr(0, eq)));
        const std::string_view value = trim(item.substr(eq + 1));
        if (tag == "v" || tag == "rua" || tag == "ruf")
            throw ConfigError("dmarc_tags: '" + tag +
                              "' is not set here (v is always DMARC1; rua and ruf have their own settings)");
        if (std::find(seen.begin(), seen.end(), tag) != seen.end())
            throw ConfigError("dmarc_tags: " + config::quote(tag) + " is given twice");
        if (!dmarc_value_ok(tag, value))
            throw ConfigError("dmarc_tags: " + config::quote(item) + " is not a known DMARC tag with a valid value");
        if (seen.empty() && tag != "p")
            throw ConfigError("dmarc_tags: p must come first (RFC 7489 6.4), got " + config::quote(tag));
        seen.push_back(tag);
        out += " " + tag + "=" + std::string(value) + ";";
    }
    if (seen.empty()) throw ConfigError("dmarc_tags: empty; at least p=... is required (RFC 7489 6.3)");
    if (!rua.empty()) out += " rua=mailto:" + rua + ";";
    if (!ruf.empty()) out += " ruf=mailto:" + ruf + ";";
    return out;
}

bool parse_address(std::string_view text, std::vector<Ipv4>& v4, std::vector<Ipv6>& v6) {
    const std::string s(text);
    Ipv4 a4;
    Ipv6 a6;
    if (inet_pton(AF_INET, s.c_str(), a4.data()) == 1) {
        v4.push_back(a4);
        return true;
    }
    if (inet_pton(AF_INET6, s.c_str(), a6.data()) == 1) {
        v6.push_back(a6);
        return true;
    }
    return false;
}

NameServer parse_nameserver(std::string_view spec) {
    const std::string whole(spec);
    {
        std::vector<Ipv4> a;
        std::vector<Ipv6> b;
        if (parse_address(spec, a, b))
            throw ConfigError("nameserver " + config::quote(whole) +
                              " is a bare address: give NAME[:ADDR[,ADDR...]], e.g. ns1.example.net:" + config::quote(whole, 40));
    }
    NameServer ns;
    const size_t colon = spec.find(':');
    const std::string_view name = spec.substr(0, colon);
    std::string wire, err;
    if (!encode_name(name, wire, err) || wire.size() < 3)
        throw ConfigError("nameserver " + config::quote(whole) + "': bad name: " + (err.empty() ? "root" : err));
    // A dotted quad as a name is the original's bug (it ended up in the NS data): refuse it.
    if (name.find_first_not_of("0123456789.") == std::string_view::npos)
        throw ConfigError("nameserver " + config::quote(whole) + "': name looks like an address");
    ns.name = to_lower(strip_dot(name));
    if (colon != std::string_view::npos) {
        std::string_view rest = spec.substr(colon + 1);
        if (rest.empty()) throw ConfigError("nameserver " + config::quote(whole) + "': empty address list after ':'");
        while (!rest.empty()) {
            const size_t comma = rest.find(',');
            const std::string_view addr = rest.substr(0, comma);
            if (!parse_address(addr, ns.v4, ns.v6))
                throw ConfigError("nameserver " + config::quote(whole) + ": " + config::quote(addr) +
                                  " is not an IPv4 or IPv6 address");
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    return ns;
}

Policy::Policy(const PolicySettings& s) : s_(s) {
    if (s_.nameservers.empty())
        throw ConfigError("nameservers: at least one is required (-n/--nameserver NAME[:ADDR,...])");
    if (s_.nameservers.size() > 13) throw ConfigError("nameservers: at most 13 are allowed");
    for (const auto& n : s_.nameservers) {
        Ns x;
        std::string err;
        if (!encode_name(n.name, x.wire, err)) throw ConfigError("nameservers: " + err);
        x.lower = to_lower(strip_dot(n.name));
        for (const auto& o : ns_)
            if (o.lower == x.lower) throw ConfigError("nameservers: " + config::quote(n.name) + " is listed twice");
        if (n.v4.size() + n.v6.size() > 8)
            throw ConfigError("nameservers: " + config::quote(n.name) + " has more than 8 addresses");
        x.v4 = n.v4;
        x.v6 = n.v6;
        ns_.push_back(std::move(x));
    }
    std::string rname = s_.soa_rname;
    if (rname.find('@') != std::string::npos) {
        // The mailbox form, hostmaster@example.net, is what operators write; RFC 1035 3.3.13
        // wants it as a name, hostmaster.example.net (a dot in the local part would need escaping).
        std::string local, domain, why;
        if (!split_mailbox(rname, local, domain, why)) throw ConfigError("soa.rname: " + config::quote(rname) + ": " + why);
        if (local.find('.') != std::string::npos)
            throw ConfigError("soa.rname: " + config::quote(rname) + ": a dot in the local part cannot be written as a name");
        rname = local + "." + domain;
    }
    if (rname.empty()) {
        const std::string& first = ns_.front().lower;
        const size_t dot = first.find('.');
        rname = "hostmaster." + (dot == std::string::npos ? first : first.substr(dot + 1));
    }
    std::string err;
    if (!encode_name(rname, rname_wire_, err)) throw ConfigError("soa.rname: " + err);
    // rname compressed against mname: its longest proper suffix that is also a suffix of mname.
    {
        const std::string& m = ns_.front().wire;
        for (size_t r = 0; rname_wire_[r] != 0 && soa_rname_suffix_at_ < 0; r += 1 + uint8_t(rname_wire_[r]))
            for (size_t o = 0; m[o] != 0; o += 1 + uint8_t(m[o]))
                if (rname_wire_.compare(r, std::string::npos, m, o, std::string::npos) == 0) {
                    soa_rname_prefix_ = rname_wire_.substr(0, r);
                    soa_rname_suffix_at_ = static_cast<int>(o);
                    break;
                }
    }
    {
        const uint32_t v[5] = {s_.soa_serial, s_.soa_refresh, s_.soa_retry, s_.soa_expire, s_.soa_minimum};
        for (int i = 0; i < 5; ++i)
            for (int b = 0; b < 4; ++b) soa_numbers_[4 * i + b] = static_cast<uint8_t>(v[i] >> (24 - 8 * b));
    }

    if (s_.ttl > 0x7FFFFFFF || s_.ns_ttl > 0x7FFFFFFF || s_.soa_ttl > 0x7FFFFFFF || s_.soa_minimum > 0x7FFFFFFF)
        throw ConfigError("ttl: must be below 2^31 (RFC 2181 8)");
    for (const auto& [key, mail] : {std::pair<const char*, const std::string*>{"rua", &s_.rua}, {"ruf", &s_.ruf}}) {
        std::string local, domain, why;
        if (!mail->empty() && !split_mailbox(*mail, local, domain, why))
            throw ConfigError(std::string(key) + ": " + config::quote(*mail) + " is not an email address: " + why);
    }
    if (s_.identity.size() > 64) throw ConfigError("identity: longer than 64 octets");
    if (s_.caa_iodef.size() > 255) throw ConfigError("caa_iodef: longer than 255 octets");
    // RFC 8659 4.4: the iodef property holds a mailto:, http: or https: URL.
    if (!s_.caa_iodef.empty() && s_.caa_iodef.rfind("mailto:", 0) != 0 && s_.caa_iodef.rfind("https://", 0) != 0 &&
        s_.caa_iodef.rfind("http://", 0) != 0)
        throw ConfigError("caa_iodef: " + config::quote(s_.caa_iodef) + " is not a mailto:, http: or https: URL");

    spf_rdata_ = txt_rdata("v=spf1 -all");
    dmarc_rdata_ = txt_rdata(dmarc_record(s_.dmarc_tags, s_.rua, s_.ruf));
    dkim_rdata_ = txt_rdata("v=DKIM1; p=");
    if (!s_.identity.empty()) identity_rdata_ = txt_rdata(s_.identity);
    // CAA (RFC 8659 4.1): flags, tag length, tag, value.
    null_mx_rdata_ = std::string("\0\0\0", 3);  // preference 0, root exchange (RFC 7505)
    caa_issue_rdata_ = std::string("\0\x05issue;", 8);
    if (!s_.caa_iodef.empty()) caa_iodef_rdata_ = std::string("\0\x05iodef", 7) + s_.caa_iodef;

    cookies_ = make_cookies(s_.cookies);
    psl_ = load_suffix_list(s_.psl);

    auto load_list = [this](const std::vector<std::string>& from, StrSet& to, const char* key) {
        for (const auto& d : from) {
            const std::string name = to_lower(strip_dot(d));
            const std::string reg = registrable_domain(name);
            if (reg != name)
                throw ConfigError(std::string(key) + ": " + config::quote(d) + " is not a registrable domain" +
                                  (reg.empty() ? "" : " (its registrable domain is " + reg + ")"));
            to.insert(name);
        }
    };
    load_list(s_.allow, allow_, "allow");
    load_list(s_.deny, deny_, "deny");
}

namespace {
// Per octet: its lower-case form, plus kNotHost for an octet no host-name label holds (a
// control, space, DEL, 8-bit or the dot itself) and kUnderscore for the underscore.
constexpr uint16_t kNotHost = 0x100, kUnderscore = 0x200;
struct OctetTable {
    uint16_t v[256] = {};
    constexpr OctetTable() {
        for (int c = 0; c < 256; ++c) {
            const bool host = c > 0x20 && c < 0x7F && c != '.';
            v[c] = static_cast<uint16_t>(ascii_lower(static_cast<uint8_t>(c)) | (host ? 0 : kNotHost) |
                                         (c == '_' ? kUnderscore : 0));
        }
    }
};
constexpr OctetTable kOctet;

struct LabelCheck {
    bool bad = false;         // holds an octet no host-name label has
    bool underscore = false;  // holds an underscore
};
// Writes the l octets at `in` lower-cased to `out` (which may be `in`). Labels are short (a
// TLD, "co", "park-12"), so one table lookup per octet beats word-at-a-time tricks.
inline LabelCheck lower_label(const uint8_t* in, size_t l, uint8_t* out) {
    unsigned flags = 0;
    for (size_t j = 0; j < l; ++j) {
        const uint16_t e = kOctet.v[in[j]];
        out[j] = static_cast<uint8_t>(e);
        flags |= e;
    }
    return {(flags & kNotHost) != 0, (flags & kUnderscore) != 0};
}
}  // namespace

int name_text(const Query& q, char* text, uint8_t* text_off) {
    // One pass: labels below the registrable domain may hold any octet (RFC 2181 11), so on
    // meeting one the text restarts after that label; only what follows can be a host name.
    int start = 0;
    size_t t = 0;
    const uint8_t* p = q.qname;
    for (int i = 0; i < q.label_count; ++i) {
        const uint8_t l = *p++;
        text_off[i] = static_cast<uint8_t>(t);
        const LabelCheck c = lower_label(p, l, reinterpret_cast<uint8_t*>(text + t));
        p += l;
        if (c.bad) {
            start = i + 1;
            t = 0;
            continue;
        }
        t += l;
        text[t++] = '.';
    }
    text[t ? t - 1 : 0] = '\0';
    return start;
}

namespace {
void count_source(Outcome& o, PublicSuffix::Source s) {
    if (s == PublicSuffix::Source::Memo && o.suffix_memo < 255) ++o.suffix_memo;
    if (s == PublicSuffix::Source::Libpsl && o.suffix_libpsl < 255) ++o.suffix_libpsl;
}
}  // namespace

int registrable_labels(const PublicSuffix& psl, const Query& q, char* buf, const char*& d_text, Outcome* o) {
    // The labels that can matter (kMaxSuffixLabels from the right, and one more for D) are
    // copied in wire form. A label is looked at only when needed, right to left: lower-cased
    // in place, its length octet turned into a dot, so the suffix starting at label i is the
    // NUL-terminated text at buf + off(i) + 1. Only a label of host-name octets without an
    // underscore can be part of a public suffix (Public Suffix List rules are host names;
    // labels left of one that is not may hold anything, RFC 2181 11); D's own label must be
    // host-name text. Labels left of D are never looked at.
    const int n = q.label_count;
    if (n == 0) return 0;
    const int lowest = std::max(0, n - PublicSuffix::kMaxSuffixLabels);
    const int copied = std::max(0, lowest - 1);
    const size_t base = q.label_off[copied];
    const size_t total = q.qname_len - base;  // up to and including the root label's 0
    uint8_t* const u = reinterpret_cast<uint8_t*>(buf);
    std::memcpy(u, q.qname + base, total);
    std::memset(u + total, 0, kNameTextSlack);  // reads past the last label see zeros
    const char* const end = buf + total - 1;    // the NUL (the root label's length octet)
    auto text = [&](int i) { return buf + (q.label_off[i] - base) + 1; };
    auto text_len = [&](int i) { return static_cast<size_t>(end - text(i)); };

    enum : uint8_t { Unseen, Candidate, HostText, Other };
    uint8_t seen[PublicSuffix::kMaxSuffixLabels + 1] = {};  // by n - 1 - i
    auto look = [&](int i) {
        uint8_t& st = seen[n - 1 - i];
        if (st == Unseen) {
            uint8_t* l = u + (q.label_off[i] - base);
            const LabelCheck c = lower_label(l + 1, l[0], l + 1);
            *l = '.';
            st = c.bad ? Other : c.underscore ? HostText : Candidate;
        }
        return st;
    };
    // Whether the suffix starting at label i is public, once asked (by n - 1 - i).
    bool is_public[PublicSuffix::kMaxSuffixLabels];

    // The longest public suffix decides; D is it plus one label. A suffix can be public only
    // if the suffix one label shorter has rules below it and one of them has this label:
    // walking from the right, the candidates end where that stops (the rest, usually D
    // itself, are not asked about).
    if (look(n - 1) != Candidate) return 0;
    int longest = n - 1;  // first label of the longest suffix that may be public
    int asked = n;        // suffixes starting at labels [asked, n) were asked about
    while (true) {
        const bool next = longest > lowest && look(longest - 1) == Candidate;
        uint64_t next_hash = 0;
        if (next) {
            const char* label = text(longest - 1);
            next_hash = PublicSuffix::hash(label, static_cast<size_t>(text(longest) - 1 - label));
        }
        const PublicSuffix::Verdict v = psl.verdict(text(longest), text_len(longest), next_hash);
        if (o) count_source(*o, v.source);
        is_public[n - 1 - longest] = v.is_public;
        asked = longest;
        if (!next || v.below == PublicSuffix::Below::Leaf) break;
        if (v.below == PublicSuffix::Below::Open) {  // no shortcut: every candidate label
            while (longest > lowest && look(longest - 1) == Candidate) --longest;
            break;
        }
        if (!v.child) break;
        --longest;
    }
    for (int i = longest; i < n; ++i) {
        bool pub;
        if (i >= asked) {
            pub = is_public[n - 1 - i];
        } else {
            const PublicSuffix::Verdict v = psl.verdict(text(i), text_len(i), 0);
            if (o) count_source(*o, v.source);
            pub = v.is_public;
        }
        if (!pub) continue;
        const int d = i - 1;
        if (d < 0 || look(d) == Other) return 0;  // the whole name is a public suffix, or D is not host-name text
        d_text = text(d);
        return n - d;
    }
    return 0;
}

std::unique_ptr<PublicSuffix> load_suffix_list(const SuffixListSettings& s) {
    try {
        return std::make_unique<PublicSuffix>(s.file, s.private_section, s.memo_entries);
    } catch (const std::runtime_error& e) {
        throw ConfigError(std::string("psl_file: ") + e.what());
    }
}

size_t registrable_suffix(const PublicSuffix& psl, const uint8_t* name, size_t len) {
    Query q;
    q.qname = name;
    q.qname_len = static_cast<uint16_t>(len);
    size_t off = 0;
    uint8_t labels = 0;
    while (off < len && name[off] != 0) {
        if (name[off] > kMaxLabel || labels >= kMaxLabels - 1 || off + 1 + name[off] >= len) return len;
        q.label_off[labels++] = static_cast<uint8_t>(off);
        off += 1 + name[off];
    }
    if (off + 1 != len) return len;
    q.label_count = labels;
    char text[kNameTextBuf];
    const char* d_text = nullptr;
    const int d = registrable_labels(psl, q, text, d_text);
    return d == 0 ? len : q.label_off[labels - d];
}

std::string Policy::registrable_domain(std::string_view name) const {
    std::string wire, err;
    if (!encode_name(name, wire, err)) return {};
    uint8_t msg[kHeaderSize + kMaxNameWire + 4] = {};
    msg[5] = 1;  // QDCOUNT
    std::memcpy(msg + kHeaderSize, wire.data(), wire.size());
    Query q;
    Malformed why;
    if (parse_query(msg, kHeaderSize + wire.size() + 4, q, why) != ParseStatus::Ok) return {};
    char text[kNameTextBuf];
    const char* d_text = nullptr;
    if (registrable_labels(*psl_, q, text, d_text) == 0) return {};
    return std::string(d_text);
}

// Builds one answer. Lives only for the duration of Policy::respond.
struct Responder {
    const Policy& p;
    const Query& q;
    Writer& w;
    uint16_t an = 0, ns = 0, ar = 0;

    // Starts a record; returns the offset of RDLENGTH for finish().
    size_t begin(uint16_t owner_ptr, uint16_t type, uint16_t klass, uint32_t ttl) {
        w.name_pointer(owner_ptr);
        w.u16(type);
        w.u16(klass);
        w.u32(ttl);
        const size_t at = w.size();
        w.u16(0);
        return at;
    }
    void finish(size_t at) {
        if (!w.overflow()) w.put_u16_at(at, static_cast<uint16_t>(w.size() - at - 2));
    }
    void raw(uint16_t owner_ptr, uint16_t type, uint16_t klass, uint32_t ttl, const std::string& rdata) {
        const size_t at = begin(owner_ptr, type, klass, ttl);
        w.bytes(rdata.data(), rdata.size());
        finish(at);
    }
    // The SOA goes into every negative answer: its RDATA is precomputed, mname written
    // whole and rname compressed against it, rather than searched for compression each time.
    void soa(uint16_t d_ptr, uint32_t ttl) {
        const size_t at = begin(d_ptr, type::SOA, klass::IN, ttl);
        const std::string& mname = p.ns_.front().wire;
        const size_t mname_at = w.size();
        w.bytes(mname.data(), mname.size());
        if (p.soa_rname_suffix_at_ >= 0 && mname_at + size_t(p.soa_rname_suffix_at_) < 0x4000) {
            w.bytes(p.soa_rname_prefix_.data(), p.soa_rname_prefix_.size());
            w.name_pointer(static_cast<uint16_t>(mname_at + size_t(p.soa_rname_suffix_at_)));
        } else {
            w.bytes(p.rname_wire_.data(), p.rname_wire_.size());
        }
        w.bytes(p.soa_numbers_, sizeof p.soa_numbers_);
        finish(at);
    }
    template <class Addr>
    void addresses(uint16_t owner_ptr, const std::vector<Addr>& list, uint32_t ttl, uint16_t& count) {
        const uint16_t t = sizeof(Addr) == 4 ? type::A : type::AAAA;
        for (const auto& a : list) {
            const size_t at = begin(owner_ptr, t, klass::IN, ttl);
            w.bytes(a.data(), a.size());
            finish(at);
            ++count;
        }
    }
};

size_t Policy::respond(const uint8_t* msg, size_t len, uint8_t* out, size_t out_cap, const Transport& t,
                       Outcome& o) const {
    Query q;
    o = Outcome{};
    const ParseStatus st = parse_query(msg, len, q, o.malformed);
    if (st == ParseStatus::Drop) return 0;
    o.qtype = q.qtype;

    // Size the client accepts: 512 without EDNS (RFC 1035), its EDNS size capped at 1232.
    size_t limit = out_cap < kMaxMessage ? out_cap : kMaxMessage;
    if (!t.tcp) {
        size_t udp = q.edns ? std::min<size_t>(q.edns_udp_size, kUdpPayloadCap) : 512;
        limit = std::min(limit, udp);
    }

    // The OPT record goes last; reserve its room so truncation never loses it.
    const bool send_nsid = q.edns && q.edns_nsid && !identity_rdata_.empty() && st == ParseStatus::Ok;
    const bool send_keepalive = q.edns && q.edns_keepalive && t.tcp && st == ParseStatus::Ok;
    // RFC 7873 5.2: a well-formed cookie gets the client cookie and our server cookie back.
    uint8_t cookie[kMaxCookie];
    size_t cookie_len = 0;
    if (q.cookie_len && st == ParseStatus::Ok && cookies_.enabled())
        cookie_len = cookies_.answer(q.cookie, q.cookie_len, t.peer, t.now, cookie, &o.cookie);
    size_t opt_size = 0;
    if (q.edns) {
        opt_size = kOptSizeBase;
        if (send_nsid) opt_size += 4 + s_.identity.size();
        if (send_keepalive) opt_size += 6;
        if (cookie_len) opt_size += 4 + cookie_len;
    }

    Writer w(out, limit - opt_size);
    HeaderFlags hf;
    uint16_t rc = rcode::NOERROR;
    Responder r{*this, q, w};

    auto echo_question = [&] {
        if (!q.question_ok) return;
        if (out == msg) w.keep(q.question_end - kHeaderSize);  // answering in place: it is there
        else w.bytes(msg + kHeaderSize, q.question_end - kHeaderSize);
    };

    if (st == ParseStatus::FormErr || st == ParseStatus::NotImp) {
        rc = st == ParseStatus::FormErr ? rcode::FORMERR : rcode::NOTIMP;
    } else if (q.edns && q.edns_version > 0) {
        rc = rcode::BADVERS;  // RFC 6891 6.1.3
    }

    int d_labels = 0;
    uint16_t d_ptr = 0;
    bool want_soa = false;  // negative answer: SOA of D in authority

    hf.rcode = rc;
    if (rc != rcode::NOERROR) {
        write_header(w, q, hf);
        echo_question();
    } else if (q.qclass != klass::IN) {
        // CHAOS id.server / hostname.bind disclose the worker identity when configured.
        char text[kMaxNameWire + 1];
        uint8_t off[kMaxLabels];
        const bool named = q.label_count > 0 && name_text(q, text, off) == 0;
        const bool chaos_id = q.qclass == klass::CH && (q.qtype == type::TXT || q.qtype == type::ANY) &&
                              !identity_rdata_.empty() && named &&
                              (std::strcmp(text, "id.server") == 0 || std::strcmp(text, "hostname.bind") == 0);
        if (chaos_id) {
            hf.aa = true;
            write_header(w, q, hf);
            echo_question();
            r.raw(kHeaderSize, type::TXT, klass::CH, 0, identity_rdata_);
            r.an = 1;
        } else {
            rc = hf.rcode = rcode::REFUSED;
            write_header(w, q, hf);
            echo_question();
        }
    } else if (q.qtype == type::AXFR || q.qtype == type::IXFR) {
        rc = hf.rcode = rcode::REFUSED;  // zones are synthesised; there is nothing to transfer
        write_header(w, q, hf);
        echo_question();
    } else {
        char text[kNameTextBuf];
        const char* d_text = nullptr;
        d_labels = registrable_labels(*psl_, q, text, d_text, &o);
        bool refused = d_labels == 0;
        const int rel = q.label_count - d_labels;  // labels left of D
        const Ns* host = nullptr;
        if (!refused && (q.qtype == type::A || q.qtype == type::AAAA || q.qtype == type::ANY)) {
            for (const auto& n : ns_)
                if (name_equal_ci(reinterpret_cast<const uint8_t*>(n.wire.data()), q.qname)) host = &n;
        }
        if (!refused && !host && (!allow_.empty() || !deny_.empty())) {
            const std::string_view d(d_text);
            if (!allow_.empty() && allow_.find(d) == allow_.end()) refused = true;
            if (!deny_.empty() && deny_.find(d) != deny_.end()) refused = true;
        }
        if (refused) {
            rc = hf.rcode = rcode::REFUSED;
            write_header(w, q, hf);
            echo_question();
        } else {
            hf.aa = true;
            write_header(w, q, hf);
            echo_question();
            d_ptr = static_cast<uint16_t>(kHeaderSize + q.label_off[rel]);
            auto label = [&](int i) { return q.qname + q.label_off[i]; };
            // X: D itself, or a name under D none of whose labels below D starts with '_'
            // (RFC 8552 scoped names such as _report._dmarc.D or a._mta-sts.D are not X).
            // The name starting at label i is X when i >= plain.
            int plain = rel;
            while (plain > 0 && !(label(plain - 1)[0] > 0 && label(plain - 1)[1] == '_')) --plain;
            auto is_x = [&](int i) { return i >= plain && i <= rel; };
            const bool x = is_x(0);
            const uint32_t ttl = s_.ttl;

            // Which TXT record exists at this name, if any.
            const std::string* txt = nullptr;
            if (rel >= 1 && label_is(label(0), "_dmarc") && is_x(1)) {
                txt = &dmarc_rdata_;
            } else {
                for (int i = 1; i < rel; ++i)
                    if (label_is(label(i), "_domainkey") && is_x(i + 1)) {
                        txt = &dkim_rdata_;
                        break;
                    }
                if (!txt && x) txt = &spf_rdata_;
            }

            switch (q.qtype) {
                case type::SOA:
                    if (rel == 0) {
                        r.soa(kHeaderSize, s_.soa_ttl);
                        r.an = 1;
                    }
                    break;
                case type::NS:
                    if (rel == 0) {
                        w.remember_name(kHeaderSize);  // name servers inside D compress against it
                        for (const auto& n : ns_) {
                            const size_t at = r.begin(kHeaderSize, type::NS, klass::IN, s_.ns_ttl);
                            w.name(reinterpret_cast<const uint8_t*>(n.wire.data()));
                            r.finish(at);
                            ++r.an;
                        }
                    }
                    break;
                case type::TXT:
                case type::ANY:  // RFC 8482: one small RRset (the TXT record) rather than everything
                    if (txt) {
                        r.raw(kHeaderSize, type::TXT, klass::IN, ttl, *txt);
                        r.an = 1;
                    } else if (q.qtype == type::ANY && host) {
                        r.addresses(kHeaderSize, host->v4, s_.ns_ttl, r.an);
                        r.addresses(kHeaderSize, host->v6, s_.ns_ttl, r.an);
                    }
                    break;
                case type::MX:
                    if (x) {
                        r.raw(kHeaderSize, type::MX, klass::IN, ttl, null_mx_rdata_);
                        r.an = 1;
                    }
                    break;
                case type::CAA:
                    if (x) {
                        r.raw(kHeaderSize, type::CAA, klass::IN, ttl, caa_issue_rdata_);
                        r.an = 1;
                        if (!caa_iodef_rdata_.empty()) {
                            r.raw(kHeaderSize, type::CAA, klass::IN, ttl, caa_iodef_rdata_);
                            r.an = 2;
                        }
                    }
                    break;
                case type::A:
                case type::AAAA: {
                    const bool v4 = q.qtype == type::A;
                    if (host) {
                        if (v4) r.addresses(kHeaderSize, host->v4, s_.ns_ttl, r.an);
                        else r.addresses(kHeaderSize, host->v6, s_.ns_ttl, r.an);
                    } else if (rel == 0 || (rel == 1 && label_is(label(0), "www"))) {
                        if (v4) r.addresses(kHeaderSize, s_.landing_a, ttl, r.an);
                        else r.addresses(kHeaderSize, s_.landing_aaaa, ttl, r.an);
                    }
                    break;
                }
                default:
                    break;
            }
            if (r.an == 0) {
                want_soa = true;  // NODATA (RFC 2308 2.2)
            } else if (q.qtype == type::NS) {
                // Glue: first for the servers inside D, which is required: if it does not
                // fit, the answer goes out with TC=1 (RFC 9471 2.1). Then for the others, one
                // server at a time while it fits whole: that glue may be left out without TC
                // (RFC 9471 3), so the answer keeps as much of it as fits.
                const uint8_t* d_wire = q.qname + q.label_off[rel];
                auto server_glue = [&](const Ns& n) {
                    const auto* wire = reinterpret_cast<const uint8_t*>(n.wire.data());
                    auto one = [&](uint16_t type, const uint8_t* addr, uint16_t len) {
                        w.name(wire);
                        w.u16(type);
                        w.u16(klass::IN);
                        w.u32(s_.ns_ttl);
                        w.u16(len);
                        w.bytes(addr, len);
                        ++r.ar;
                    };
                    for (const auto& a : n.v4) one(type::A, a.data(), 4);
                    for (const auto& a : n.v6) one(type::AAAA, a.data(), 16);
                };
                auto inside = [&](const Ns& n) {
                    return at_or_below(reinterpret_cast<const uint8_t*>(n.wire.data()), d_wire);
                };
                for (const auto& n : ns_)
                    if (!w.overflow() && inside(n)) server_glue(n);
                for (const auto& n : ns_) {
                    if (w.overflow()) break;
                    if (inside(n)) continue;
                    const size_t before = w.size();
                    const uint16_t before_ar = r.ar;
                    server_glue(n);
                    if (w.overflow()) {
                        w.rewind(before);
                        r.ar = before_ar;
                        break;
                    }
                }
            }
        }
    }

    if (want_soa && !w.overflow()) {
        r.soa(d_ptr, std::min(s_.soa_ttl, s_.soa_minimum));
        r.ns = 1;
    }

    if (w.overflow()) {
        // Does not fit: header, question and OPT only, with TC=1 (RFC 2181 9).
        w.rewind(q.question_ok ? q.question_end : kHeaderSize);
        r.an = r.ns = r.ar = 0;
        set_tc(out);
        o.truncated = true;
    }

    size_t size = w.size();
    if (q.edns) {
        // Room for the OPT record was reserved in the writer's limit, so it always fits.
        Writer ow(out + size, opt_size);
        ow.u8(0);
        ow.u16(type::OPT);
        ow.u16(kUdpPayloadCap);
        ow.u8(static_cast<uint8_t>(rc >> 4));  // extended rcode, upper 8 bits
        ow.u8(0);                              // version 0
        ow.u8(q.edns_do ? 0x80 : 0);           // DO copied (RFC 3225)
        ow.u8(0);
        ow.u16(static_cast<uint16_t>(opt_size - kOptSizeBase));
        if (send_nsid) {
            ow.u16(edns_opt::NSID);
            ow.u16(static_cast<uint16_t>(s_.identity.size()));
            ow.bytes(s_.identity.data(), s_.identity.size());
        }
        if (send_keepalive) {
            ow.u16(edns_opt::TCP_KEEPALIVE);
            ow.u16(2);
            ow.u16(t.keepalive_100ms);
        }
        if (cookie_len) {
            ow.u16(edns_opt::COOKIE);
            ow.u16(static_cast<uint16_t>(cookie_len));
            ow.bytes(cookie, cookie_len);
        }
        size += ow.size();
        ++r.ar;
    }
    set_counts(out, q.question_ok ? 1 : 0, r.an, r.ns, r.ar);
    o.rcode = rc;
    o.answered = true;
    return size;
}

}  // namespace dp::dns
