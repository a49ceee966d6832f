#include "dns/policy_settings.hpp"

#include <arpa/inet.h>

#include <nlohmann/json.hpp>

namespace dp::dns {

using config::ConfigError;
using config::Reload;
using config::Unit;
using P = PolicySettings;

namespace {

constexpr uint64_t kTtlMax = 0x7FFFFFFF;  // RFC 2181 8

std::string show_addresses(const std::vector<Ipv4>& v4, const std::vector<Ipv6>& v6) {
    std::string r;
    char buf[INET6_ADDRSTRLEN];
    for (const auto& a : v4) {
        if (!r.empty()) r += ',';
        r += inet_ntop(AF_INET, a.data(), buf, sizeof buf);
    }
    for (const auto& a : v6) {
        if (!r.empty()) r += ',';
        r += inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
    }
    return r;
}

std::string show_nameservers(const std::vector<NameServer>& v) {
    std::string r;
    for (const auto& n : v) {
        if (!r.empty()) r += ' ';
        r += n.name;
        const std::string addrs = show_addresses(n.v4, n.v6);
        if (!addrs.empty()) {
            r += ':';
            r += addrs;
        }
    }
    return r;
}

config::Setting<P> nameservers() {
    auto s = config::parsed_list<P, NameServer>(
        "nameservers", &P::nameservers, "list of NAME[:ADDR[,ADDR...]]", Reload::Live,
        "name servers of every parked zone (at most 13, at most 8 addresses each; the first is the SOA "
        "mname); addresses are glue and answer NAME A/AAAA; repeat the flag for more",
        [](const std::string& spec, const std::string&) { return parse_nameserver(spec); },
        [](const NameServer& n) { return show_nameservers({n}); });
    s.flag = "--nameserver";
    s.short_flag = "-n";
    s.value_name = "NAME[:ADDR[,ADDR...]]";
    s.default_text = "required";
    return s;
}

config::Setting<P> landing() {
    config::Setting<P> s;
    s.key = "landing";
    s.type = "list of IPv4/IPv6 addresses";
    s.reload = Reload::Live;
    s.doc = "landing-page addresses answered for D and www.D A/AAAA (none: NODATA)";
    s.from_json = [](P& p, const nlohmann::json& v, const std::string& k) {
        p.landing_a.clear();
        p.landing_aaaa.clear();
        for (const auto& a : config::json_strings(v, k))
            if (!parse_address(a, p.landing_a, p.landing_aaaa))
                throw ConfigError(k + ": " + config::quote(a) + " is not an IPv4 or IPv6 address");
    };
    s.show = [](const P& p) { return show_addresses(p.landing_a, p.landing_aaaa); };
    s.copy = [](P& to, const P& from) {
        to.landing_a = from.landing_a;
        to.landing_aaaa = from.landing_aaaa;
    };
    return s;
}

std::vector<config::Setting<P>> declare_policy() {
    using config::number;
    using config::string;
    using config::with_flag;
    std::vector<config::Setting<P>> v;
    v.push_back(nameservers());
    v.push_back(with_flag(string<P>("rua", &P::rua, Reload::Live, "DMARC aggregate report address (rua=mailto:EMAIL)"),
                          "--rua", "EMAIL"));
    v.push_back(with_flag(string<P>("ruf", &P::ruf, Reload::Live, "DMARC failure report address (ruf=mailto:EMAIL)"),
                          "--ruf", "EMAIL"));
    v.push_back(with_flag(string<P>("dmarc_tags", &P::dmarc_tags, Reload::Live,
                                    "the DMARC record's tags after v=DMARC1 (p first; rua/ruf come from their own "
                                    "settings); \"p=reject;\" gives the original domain-park's record",
                                    [](const std::string& v, const std::string&) { dmarc_record(v, "", ""); }),
                          "--dmarc-tags", "TAGS"));
    v.push_back(string<P>("caa_iodef", &P::caa_iodef, Reload::Live,
                          "adds 0 iodef \"URL\" to CAA (mailto:, http: or https:)"));
    v.push_back(with_flag(string<P>("identity", &P::identity, Reload::Live,
                                    "NSID (RFC 5001) and CHAOS id.server/hostname.bind answer, at most 64 octets; "
                                    "none: not disclosed"),
                          "--identity", "TEXT"));
    v.push_back(landing());
    v.push_back(config::strings<P>("allow", &P::allow, Reload::Live,
                                   "registrable domains; when set, only these are answered, others REFUSED"));
    v.push_back(config::strings<P>("deny", &P::deny, Reload::Live, "registrable domains answered REFUSED"));
    v.push_back(number<P>("ttl", &P::ttl, 0, kTtlMax, Unit::Seconds, Reload::Live, "TTL of TXT, MX, CAA, landing A/AAAA"));
    v.push_back(number<P>("ns_ttl", &P::ns_ttl, 0, kTtlMax, Unit::Seconds, Reload::Live,
                          "TTL of NS, glue and name-server host A/AAAA"));
    v.push_back(config::with_default(
        string<P>("soa.rname", &P::soa_rname, Reload::Live,
                  "SOA responsible mailbox, as a name (hostmaster.example.net) or an address (hostmaster@example.net)"),
        "hostmaster. + the first name server minus its first label"));
    v.push_back(number<P>("soa.ttl", &P::soa_ttl, 0, kTtlMax, Unit::Seconds, Reload::Live, "SOA TTL"));
    v.push_back(number<P>("soa.serial", &P::soa_serial, 0, 0xFFFFFFFF, Unit::Count, Reload::Live, "SOA serial"));
    v.push_back(number<P>("soa.refresh", &P::soa_refresh, 0, kTtlMax, Unit::Seconds, Reload::Live, "SOA refresh"));
    v.push_back(number<P>("soa.retry", &P::soa_retry, 0, kTtlMax, Unit::Seconds, Reload::Live, "SOA retry"));
    v.push_back(number<P>("soa.expire", &P::soa_expire, 0, kTtlMax, Unit::Seconds, Reload::Live, "SOA expire"));
    v.push_back(number<P>("soa.minimum", &P::soa_minimum, 0, kTtlMax, Unit::Seconds, Reload::Live,
                          "SOA minimum; negative answers carry the SOA with TTL min(soa.ttl, soa.minimum) (RFC 2308)"));
    return v;
}

using L = SuffixListSettings;

std::vector<config::Setting<L>> declare_list() {
    std::vector<config::Setting<L>> v;
    v.push_back(config::with_default(
        config::with_flag(config::string<L>("psl_file", &L::file, Reload::Live,
                                            "Public Suffix List file (.dat or .dafsa); it must hold a real list"),
                          "--psl-file", "PATH"),
        "newest of the system publicsuffix file and libpsl's built-in list"));
    v.push_back(config::with_flag(
        config::boolean<L>("psl_private", &L::private_section, Reload::Live,
                           "also treat the list's private section (e.g. blogspot.com) as public suffixes"),
        "--psl-private"));
    v.push_back(config::number<L>("psl_memo_entries", &L::memo_entries, 0, 1u << 24, Unit::Count, Reload::Live,
                                  "libpsl answers memoized for what the list's rule table cannot answer, 64 bytes "
                                  "each, taken from the system only as written (0: off)"));
    return v;
}

using C = CookieSettings;

void check_secret(const std::string& v, const std::string& key) {
    CookieSecret k;
    if (!v.empty() && !parse_cookie_secret(v, k))
        throw ConfigError(key + ": expected 32 hexadecimal digits (a 128-bit SipHash key)");
}

std::vector<config::Setting<C>> declare_cookies() {
    std::vector<config::Setting<C>> v;
    v.push_back(config::boolean<C>("cookies", &C::enabled, Reload::Live,
                                   "answer DNS cookies (RFC 7873) with RFC 9018 server cookies"));
    // Secrets only in the file: a flag would show them to every user of the machine (ps).
    v.push_back(config::with_default(
        config::string<C>("cookie_secret", &C::secret, Reload::Live,
                          "server cookie secret, 32 hex digits; give every server of an anycast group the same "
                          "one (file only)",
                          check_secret),
        "random per process"));
    v.push_back(config::string<C>("cookie_secret_previous", &C::previous, Reload::Live,
                                  "the secret before the current one, still accepted while a new one is rolled "
                                  "out (file only)",
                                  check_secret));
    return v;
}

}  // namespace

const std::vector<config::Setting<PolicySettings>>& policy_settings() {
    static const std::vector<config::Setting<P>> v = [] {
        std::vector<config::Setting<P>> all = declare_policy();
        for (auto& s : config::lift(&P::psl, suffix_list_settings())) all.push_back(std::move(s));
        for (auto& s : config::lift(&P::cookies, cookie_settings())) all.push_back(std::move(s));
        return all;
    }();
    return v;
}

const std::vector<config::Setting<SuffixListSettings>>& suffix_list_settings() {
    static const std::vector<config::Setting<L>> v = declare_list();
    return v;
}

const std::vector<config::Setting<CookieSettings>>& cookie_settings() {
    static const std::vector<config::Setting<C>> v = declare_cookies();
    return v;
}

}  // namespace dp::dns
