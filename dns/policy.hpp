// The parking policy: turns a query into the answer docs/CONTRACT.md prescribes.
// Knows nothing of sockets; every transport calls Policy::respond.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "config/error.hpp"
#include "dns/cookie.hpp"
#include "dns/public_suffix.hpp"
#include "dns/wire.hpp"

namespace dp::dns {

using config::ConfigError;

using Ipv4 = std::array<uint8_t, 4>;
using Ipv6 = std::array<uint8_t, 16>;

struct NameServer {
    std::string name;  // presentation form, lower case, no trailing dot
    std::vector<Ipv4> v4;
    std::vector<Ipv6> v6;
};

// Parses "NAME[:ADDR[,ADDR...]]"; throws ConfigError for a bare address or a bad part.
NameServer parse_nameserver(std::string_view spec);
// An email address LOCAL@DOMAIN (a dot-atom local part; a host-name domain of at least two
// labels); false with `why` otherwise.
bool split_mailbox(std::string_view text, std::string& local, std::string& domain, std::string& why);
// Parses an IPv4 or IPv6 address into one of the two outputs; false if neither.
bool parse_address(std::string_view text, std::vector<Ipv4>& v4, std::vector<Ipv6>& v6);

struct PolicySettings {
    std::vector<NameServer> nameservers;  // first one is the SOA mname
    std::string rua, ruf;                 // DMARC report addresses (without mailto:)
    // The DMARC record's tags after "v=DMARC1;" (rua/ruf come from their own settings). The
    // default follows current guidance for domains that send no mail; "p=reject;" is the
    // original domain-park's record.
    std::string dmarc_tags = "p=reject; sp=reject; np=reject; adkim=s; aspf=s;";
    std::string caa_iodef;                // e.g. "mailto:security@example.net"; empty: none
    std::string identity;                 // NSID and CHAOS id.server; empty: not disclosed
    std::vector<Ipv4> landing_a;          // landing page at D and www.D; empty: NODATA
    std::vector<Ipv6> landing_aaaa;
    std::vector<std::string> allow;  // registrable domains; non-empty: only these are answered
    std::vector<std::string> deny;   // registrable domains answered REFUSED
    uint32_t ttl = 3600;             // TXT, MX, CAA, landing A/AAAA
    uint32_t ns_ttl = 86400;         // NS, glue, name-server host A/AAAA
    std::string soa_rname;           // empty: hostmaster.<parent of the first name server>
    uint32_t soa_ttl = 3600;
    uint32_t soa_serial = 1;
    uint32_t soa_refresh = 10800;
    uint32_t soa_retry = 3600;
    uint32_t soa_expire = 604800;
    uint32_t soa_minimum = 3600;  // negative-caching TTL (RFC 2308)
    SuffixListSettings psl;
    CookieSettings cookies;  // DNS cookies (RFC 7873, RFC 9018)
};

// What happened to one message, for metrics.
struct Outcome {
    bool answered = false;
    bool truncated = false;
    uint16_t qtype = 0;
    uint16_t rcode = 0;  // full (extended) rcode, e.g. 16 for BADVERS
    Malformed malformed = Malformed::None;
    // Public-suffix lookups the hot table could not answer: answered by the memo, or by
    // libpsl itself (100-300 ns each). Few in steady state; many mean names under suffixes
    // no rule table can shortcut, or a flood of new top-level labels.
    uint8_t suffix_memo = 0, suffix_libpsl = 0;
    CookieVerdict cookie = CookieVerdict::None;  // what the query's COOKIE option proved
};

// Transport facts the answer depends on.
struct Transport {
    bool tcp = false;
    uint16_t keepalive_100ms = 0;  // edns-tcp-keepalive value echoed over TCP (RFC 7828)
    uint32_t now = 0;               // cookie_clock(): the server cookie's timestamp
    ClientAddr peer{};              // the client's address, which server cookies are bound to
};

class Policy {
public:
    // Validates and precomputes everything; throws ConfigError.
    explicit Policy(const PolicySettings& s);

    // Answers the query in `msg` into `out` (capacity `out_cap`, at least 512).
    // Returns the answer length, or 0 when the message must be dropped. `out` may be `msg`
    // itself: the answer is then built in place over the query (header and question stay
    // where they are; nothing after the question is read once writing starts).
    size_t respond(const uint8_t* msg, size_t len, uint8_t* out, size_t out_cap, const Transport& t,
                   Outcome& o) const;

    const PolicySettings& settings() const { return s_; }
    const PublicSuffix& psl() const { return *psl_; }

    // Registrable domain of a presentation-form name ("" if none), for tests and tools.
    std::string registrable_domain(std::string_view name) const;

private:
    struct Ns {
        std::string wire;  // uncompressed wire name
        std::string lower;
        std::vector<Ipv4> v4;
        std::vector<Ipv6> v6;
    };
    struct StrHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    using StrSet = std::unordered_set<std::string, StrHash, std::equal_to<>>;

    PolicySettings s_;
    std::unique_ptr<PublicSuffix> psl_;
    std::vector<Ns> ns_;
    std::string rname_wire_;
    std::string soa_rname_prefix_;  // rname's labels before the suffix it shares with mname
    int soa_rname_suffix_at_ = -1;  // offset of that suffix in mname's wire form; -1: none
    uint8_t soa_numbers_[20] = {};  // serial, refresh, retry, expire, minimum
    std::string spf_rdata_, dmarc_rdata_, dkim_rdata_, identity_rdata_;
    std::string caa_issue_rdata_, caa_iodef_rdata_, null_mx_rdata_;
    StrSet allow_, deny_;
    Cookies cookies_;

    friend struct Responder;
};

// Labels of D (the registrable domain of q's name) counted from the right, or 0 when the
// name has none; then `d_text` points at D in lower-case presentation form inside `buf`
// (kNameTextBuf octets; zeros after the name: word-at-a-time reads, and PublicSuffix::verdict's
// padded keys). Lookups the hot table could not answer are counted in `o`.
inline constexpr size_t kNameTextSlack = PublicSuffix::kPadded;
inline constexpr size_t kNameTextBuf = kMaxNameWire + kNameTextSlack;
int registrable_labels(const PublicSuffix& psl, const Query& q, char* buf, const char*& d_text, Outcome* o = nullptr);
// The list the settings name; ConfigError naming psl_file when it cannot be loaded or is no list.
std::unique_ptr<PublicSuffix> load_suffix_list(const SuffixListSettings& s);
// The offset in the uncompressed wire name `name` (`len` octets, root included) where its
// registrable domain starts; `len` when it has none or the name is malformed.
size_t registrable_suffix(const PublicSuffix& psl, const uint8_t* name, size_t len);

// Lower-case presentation form (no trailing dot) of q's name from the first label after the
// last one holding a dot, control or 8-bit octet; returns that label's index. text_off[i] is
// label i's offset in `text` for every label from there on.
int name_text(const Query& q, char* text, uint8_t* text_off);

// The DMARC record for the given tags ("p=reject; sp=reject;") and report addresses (empty:
// none): "v=DMARC1; " + the tags in the order given, each "tag=value;" + " rua=mailto:...;"
// + " ruf=mailto:...;". Throws ConfigError naming `dmarc_tags` for an unknown or repeated
// tag, a bad value, a missing or misplaced p, or v/rua/ruf among the tags.
std::string dmarc_record(std::string_view tags, const std::string& rua, const std::string& ruf);

// TXT RDATA for a string: split into character-strings of at most 255 octets.
std::string txt_rdata(std::string_view text);

}  // namespace dp::dns
