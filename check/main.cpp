// domain-park-check DOMAIN: finds the domain's delegation at its parent, checks it points at
// the parking name servers, asks each of them over UDP and TCP for every record the parking
// contract publishes, compares with what this configuration answers, and checks that the DMARC
// report addresses can receive mail and authorize the reports. One line per check; exit 0 when
// all pass, 1 when one fails, 2 for bad arguments or configuration.
#include <ares.h>
#include <arpa/nameser.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "check/check.hpp"
#include "config/settings.hpp"
#include "dns/policy.hpp"
#include "net/sockets.hpp"
#include "worker/worker_config.hpp"

#ifndef DOMAIN_PARK_VERSION
#define DOMAIN_PARK_VERSION "dev"
#endif

namespace {

using dp::check::Exchange;
using dp::config::ConfigError;

constexpr const char* kDefaultConfig = "/etc/domain-park/worker.json";
constexpr int kCAA = 257;

const char* usage() {
    return R"(usage: domain-park-check [options] DOMAIN
Checks that DOMAIN is delegated to the parking name servers and that each of them publishes,
over UDP and TCP, the parking records (SPF, DMARC, DKIM, null MX, CAA, NS, SOA) this
configuration answers; and that the DMARC report addresses can receive mail and authorize
the reports (RFC 7489 7.1). One line per check; exit 0 when every check passes, 1 otherwise.

  -c, --config FILE          the worker's JSON configuration (default /etc/domain-park/worker.json)
  -n, --nameserver NAME[:ADDR[,ADDR...]]
                             an expected parking name server (repeatable; replaces the file's)
      --resolver ADDR[:PORT] recursive resolver for the parent zone, addresses and report
                             domains (default: the system's, /etc/resolv.conf)
      --timeout MS           per query and try (default 2000)
      --json                 one JSON object instead of lines
  -h, --help                 this text
      --version              print the version
)";
}

struct Check {
    std::string what, server, address, transport, seen, expected, problem;
    bool ok = false;
};

struct Options {
    std::string domain, config, resolver;
    std::vector<std::string> nameservers;
    int timeout_ms = 2000;
    bool json = false;
};

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
    return s.empty() ? "(none)" : s;
}

class Checker {
public:
    Checker(Options o, dp::dns::PolicySettings s) : o_(std::move(o)), s_(std::move(s)), policy_(s_) {}

    int run() {
        const std::string given = dp::check::lower_name(o_.domain);
        d_ = policy_.registrable_domain(given);
        if (d_.empty()) {
            add({"domain", "", "", "", given, "a registrable domain", "has no registrable domain (a public suffix?)"});
            return finish();
        }
        for (const auto& n : s_.nameservers) expected_ns_.push_back(dp::check::lower_name(n.name));
        std::sort(expected_ns_.begin(), expected_ns_.end());
        if (!check_delegation()) return finish();
        for (const auto& ns : delegated_) check_server(ns);
        check_reports();
        return finish();
    }

private:
    // --- helpers -------------------------------------------------------------------------------

    void add(Check c) { checks_.push_back(std::move(c)); }

    Exchange resolve(const std::string& name, int type) {
        return dp::check::exchange(o_.resolver, name, type, false, true, o_.timeout_ms);
    }

    std::vector<std::string> addresses_of(const std::string& host) {
        std::vector<std::string> out;
        for (int t : {ns_t_a, ns_t_aaaa}) {
            const Exchange e = resolve(host, t);
            if (e.status == Exchange::Ok)
                for (const auto& a : dp::check::render(e.msg, t)) out.push_back(a);
        }
        return out;
    }

    // What this configuration answers for (name, type): the worker's own policy, asked here.
    std::vector<std::string> expected(const std::string& name, int type) {
        unsigned char* q = nullptr;
        int qlen = 0;
        if (ares_create_query(name.c_str(), ns_c_in, type, 0, 0, &q, &qlen, 1232) != ARES_SUCCESS) return {};
        std::vector<uint8_t> out(65535);
        dp::dns::Outcome oc;
        const size_t n = policy_.respond(q, static_cast<size_t>(qlen), out.data(), out.size(),
                                         dp::dns::Transport{true, 0}, oc);
        ares_free_string(q);
        out.resize(n);
        return dp::check::render(out, type);
    }

    // --- the delegation ------------------------------------------------------------------------

    bool check_delegation() {
        // The parent zone: the closest ancestor of D that has NS records, through the resolver.
        std::string parent;
        std::vector<std::string> parent_ns;
        for (size_t dot = d_.find('.'); dot != std::string::npos; dot = d_.find('.', dot + 1)) {
            const std::string a = d_.substr(dot + 1);
            const Exchange e = resolve(a, ns_t_ns);
            if (e.status != Exchange::Ok) {
                add({"delegation", "", "", "", "", "", "the resolver " + (o_.resolver.empty() ? "(system)" : o_.resolver) +
                                                       " does not answer for " + a + " NS: " + e.error});
                return false;
            }
            parent_ns = dp::check::render(e.msg, ns_t_ns);
            if (!parent_ns.empty()) {
                parent = a;
                break;
            }
        }
        if (parent.empty()) {
            parent = ".";
            parent_ns = dp::check::render(resolve(".", ns_t_ns).msg, ns_t_ns);
        }
        // Ask the parent's servers themselves (no recursion): their referral is the delegation.
        dp::check::Delegation del;
        std::string asked;
        bool answered = false, nxdomain = false;
        for (const auto& pns : parent_ns) {
            for (const auto& addr : addresses_of(pns)) {
                const std::string server = dp::check::server_entry(addr, 53);
                Exchange e = dp::check::exchange(server, d_, ns_t_ns, false, false, o_.timeout_ms);
                if (e.status == Exchange::Ok && e.tc())
                    e = dp::check::exchange(server, d_, ns_t_ns, true, false, o_.timeout_ms);
                if (e.status != Exchange::Ok || (e.rcode() != ns_r_noerror && e.rcode() != ns_r_nxdomain)) continue;
                answered = true;
                asked = pns + " " + addr;
                nxdomain = e.rcode() == ns_r_nxdomain;
                del = dp::check::delegation(e.msg, d_);
                break;
            }
            if (answered) break;
        }
        Check c{"delegation", asked, "", "", "", join(expected_ns_), ""};
        if (!answered) {
            c.problem = "no server of the parent zone " + parent + " (" + join(parent_ns) + ") answers for " + d_;
            add(c);
            return false;
        }
        c.seen = join(del.ns);
        if (del.ns.empty()) {
            c.problem = d_ + " is not delegated: the parent zone " + parent + (nxdomain ? " says it does not exist" : " has no NS for it");
            add(c);
            return false;
        }
        std::vector<std::string> ours;
        std::set_intersection(del.ns.begin(), del.ns.end(), expected_ns_.begin(), expected_ns_.end(),
                              std::back_inserter(ours));
        if (ours.empty()) {
            c.problem = d_ + " is not delegated here: its name servers at " + parent + " are " + join(del.ns) +
                        ", not the parking name servers " + join(expected_ns_);
            add(c);
            return false;
        }
        c.ok = del.ns == expected_ns_;
        if (!c.ok) c.problem = "the delegation at " + parent + " differs from the parking name servers";
        add(c);
        delegated_ = del.ns;
        glue_ = del.glue;
        return true;
    }

    // --- one name server -----------------------------------------------------------------------

    void check_server(const std::string& ns) {
        std::vector<std::string> addrs;
        for (const auto& [name, addr] : glue_)
            if (name == ns) addrs.push_back(addr);
        if (addrs.empty()) addrs = addresses_of(ns);
        if (addrs.empty()) {
            add({"address", ns, "", "", "", "an A or AAAA record", ns + " has no address (no glue, nothing through the resolver)"});
            return;
        }
        struct Row {
            const char* what;
            std::string name;
            int type;
        };
        const std::vector<Row> rows = {{"SOA", d_, ns_t_soa},
                                       {"SPF", d_, ns_t_txt},
                                       {"DMARC", "_dmarc." + d_, ns_t_txt},
                                       {"DKIM", "domain-park-check._domainkey." + d_, ns_t_txt},
                                       {"null MX", d_, ns_t_mx},
                                       {"CAA", d_, kCAA},
                                       {"NS", d_, ns_t_ns}};
        for (const auto& addr : addrs) {
            for (bool tcp : {false, true}) {
                const std::string server = dp::check::server_entry(addr, 53);
                const char* tr = tcp ? "tcp" : "udp";
                for (const auto& row : rows) {
                    Check c{row.what, ns, addr, tr, "", join(expected(row.name, row.type)), ""};
                    const Exchange e = dp::check::exchange(server, row.name, row.type, tcp, false, o_.timeout_ms);
                    if (e.status != Exchange::Ok) {
                        c.what = "answers";
                        c.expected = "an answer";
                        c.problem = ns + " (" + addr + ") does not answer over " + tr + ": " + e.error;
                        add(c);
                        break;  // the other records would say the same
                    }
                    if (e.rcode() == ns_r_refused || !e.aa()) {
                        c.what = "authoritative";
                        c.expected = "an authoritative answer (AA=1)";
                        c.seen = e.rcode() == ns_r_refused ? "REFUSED" : "AA=0, rcode " + std::to_string(e.rcode());
                        c.problem = "lame delegation: " + ns + " (" + addr + ") is not authoritative for " + d_;
                        add(c);
                        break;
                    }
                    if (e.tc()) {
                        c.seen = "TC=1";
                        c.problem = "the answer does not fit a UDP message";
                        add(c);
                        continue;
                    }
                    c.seen = join(dp::check::render(e.msg, row.type));
                    c.ok = e.rcode() == ns_r_noerror && c.seen == c.expected;
                    if (!c.ok) c.problem = row.name + " " + row.what + " differs";
                    if (row.type == ns_t_txt && row.name == "_dmarc." + d_ && dmarc_seen_.empty() && c.ok)
                        dmarc_seen_ = dp::check::render(e.msg, row.type);
                    add(c);
                }
            }
        }
    }

    // --- DMARC report addresses ----------------------------------------------------------------

    void check_reports() {
        const std::vector<std::string> record = dmarc_seen_.empty() ? expected("_dmarc." + d_, ns_t_txt) : dmarc_seen_;
        if (record.empty()) return;
        const std::string text = record.front();
        for (const char* tag : {"rua", "ruf"}) {
            // tag=mailto:a@b[!size][,mailto:...]
            const std::string key = std::string(tag) + "=";
            size_t at = text.find(" " + key);
            if (at == std::string::npos) continue;
            at += 1 + key.size();
            const std::string list = text.substr(at, text.find(';', at) - at);
            size_t start = 0;
            while (start <= list.size()) {
                size_t comma = list.find(',', start);
                if (comma == std::string::npos) comma = list.size();
                std::string uri = list.substr(start, comma - start);
                start = comma + 1;
                if (uri.rfind("mailto:", 0) != 0) continue;
                uri = uri.substr(0, uri.find('!'));
                const std::string rdomain = dp::check::lower_name(uri.substr(uri.find('@') + 1));
                check_report_domain(tag, uri, rdomain);
            }
        }
    }

    void check_report_domain(const std::string& tag, const std::string& uri, const std::string& r) {
        // It must accept mail: a real MX, not the null MX of RFC 7505 (a parked domain has one).
        Check mx{tag + " receives mail", "", "", "", "", "an MX other than 0 . at " + r, ""};
        const Exchange e = resolve(r, ns_t_mx);
        const std::vector<std::string> mxs = e.status == Exchange::Ok ? dp::check::render(e.msg, ns_t_mx)
                                                                        : std::vector<std::string>{};
        mx.seen = uri + ": MX " + join(mxs);
        const bool null_mx = mxs.size() == 1 && mxs[0].size() > 2 && mxs[0].substr(mxs[0].size() - 2) == " .";
        mx.ok = !mxs.empty() && !null_mx;
        if (null_mx) mx.problem = r + " has a null MX (RFC 7505): it cannot receive the reports";
        else if (mxs.empty()) mx.problem = r + " has no MX: the reports have nowhere to go";
        add(mx);
        // Reports for D go to another organization only if it says so (RFC 7489 7.1).
        Check auth{tag + " authorized", "", "", "", "", "", ""};
        const std::string rorg = policy_.registrable_domain(r);
        if (rorg == d_) {
            auth.ok = true;
            auth.seen = uri + ": same organizational domain as " + d_;
            auth.expected = "no authorization needed";
            add(auth);
            return;
        }
        const std::string name = d_ + "._report._dmarc." + r;
        auth.expected = name + " TXT \"v=DMARC1...\"";
        const Exchange a = resolve(name, ns_t_txt);
        const std::vector<std::string> txts = a.status == Exchange::Ok ? dp::check::render(a.msg, ns_t_txt)
                                                                         : std::vector<std::string>{};
        auth.seen = uri + ": " + join(txts);
        auth.ok = std::any_of(txts.begin(), txts.end(), [](const std::string& t) { return t.rfind("\"v=DMARC1", 0) == 0; });
        if (!auth.ok)
            auth.problem = r + " does not authorize reports for " + d_ + ": where " + r +
                           "'s DNS is hosted, publish *._report._dmarc." + r + " TXT \"v=DMARC1\"";
        add(auth);
    }

    // --- output --------------------------------------------------------------------------------

    int finish() {
        const bool all = !checks_.empty() && std::all_of(checks_.begin(), checks_.end(), [](const Check& c) { return c.ok; });
        if (o_.json) {
            nlohmann::json j;
            j["domain"] = d_.empty() ? dp::check::lower_name(o_.domain) : d_;
            j["ok"] = all;
            j["checks"] = nlohmann::json::array();
            for (const auto& c : checks_) {
                nlohmann::json x = {{"check", c.what}, {"ok", c.ok}, {"seen", c.seen}, {"expected", c.expected}};
                if (!c.server.empty()) x["server"] = c.server;
                if (!c.address.empty()) x["address"] = c.address;
                if (!c.transport.empty()) x["transport"] = c.transport;
                if (!c.problem.empty()) x["problem"] = c.problem;
                j["checks"].push_back(x);
            }
            std::printf("%s\n", j.dump(2).c_str());
        } else {
            for (const auto& c : checks_) {
                std::string where = c.server;
                if (!c.address.empty()) where += " " + c.address;
                if (!c.transport.empty()) where += " " + c.transport;
                if (c.ok) {
                    std::printf("\u2714 %-18s %s%s%s\n", c.what.c_str(), where.c_str(), where.empty() ? "" : ": ",
                                c.seen.c_str());
                    continue;
                }
                if (where.empty()) std::printf("\u2718 %s\n", c.what.c_str());
                else std::printf("\u2718 %-18s %s\n", c.what.c_str(), where.c_str());
                std::printf("    %s\n", c.problem.c_str());
                if (!c.seen.empty()) std::printf("    seen:     %s\n", c.seen.c_str());
                if (!c.expected.empty()) std::printf("    expected: %s\n", c.expected.c_str());
            }
            std::printf("%s: %s\n", d_.empty() ? o_.domain.c_str() : d_.c_str(),
                        all ? "parked right" : "NOT parked right");
        }
        return all ? 0 : 1;
    }

    Options o_;
    dp::dns::PolicySettings s_;
    dp::dns::Policy policy_;
    std::string d_;
    std::vector<std::string> expected_ns_, delegated_, dmarc_seen_;
    std::vector<std::pair<std::string, std::string>> glue_;
    std::vector<Check> checks_;
};

}  // namespace

int main(int argc, char** argv) {
    Options o;
    dp::dns::PolicySettings s;
    try {
        bool ns_given = false;
        std::vector<dp::dns::NameServer> ns;
        for (const auto& f : dp::config::split_flags(argc, argv, {"-c", "--config", "-n", "--nameserver", "--resolver",
                                                                 "--timeout"})) {
            if (f.name == "-h" || f.name == "--help") {
                std::fputs(usage(), stdout);
                return 0;
            }
            if (f.name == "--version") {
                std::printf("domain-park-check %s\n", DOMAIN_PARK_VERSION);
                return 0;
            }
            if (f.name == "-c" || f.name == "--config") o.config = f.value;
            else if (f.name == "-n" || f.name == "--nameserver") {
                ns_given = true;
                ns.push_back(dp::dns::parse_nameserver(f.value));
            } else if (f.name == "--resolver") {
                // ADDR, or ADDR:PORT / [V6ADDR]:PORT
                std::string host = f.value, err;
                uint16_t port = 53;
                if (!dp::net::parse_host_port(f.value, host, port, err)) {
                    host = f.value;
                    port = 53;
                }
                o.resolver = dp::check::server_entry(host, port);
                if (o.resolver.empty()) throw ConfigError("--resolver: '" + f.value + "' is not ADDR[:PORT]");
            } else if (f.name == "--timeout") o.timeout_ms = static_cast<int>(dp::config::flag_number(f.name, f.value, 50, 60000));
            else if (f.name == "--json") o.json = true;
            else if (!f.name.empty() && f.name[0] == '-') throw ConfigError(f.name + ": unknown option (see --help)");
            else if (o.domain.empty()) o.domain = f.name;
            else throw ConfigError("'" + f.name + "': one DOMAIN only");
        }
        if (o.domain.empty()) throw ConfigError("DOMAIN: missing (see --help)");
        if (o.config.empty() && !ns_given) {
            if (std::FILE* f = std::fopen(kDefaultConfig, "r")) {
                std::fclose(f);
                o.config = kDefaultConfig;
            }
        }
        if (!o.config.empty()) {
            // The worker's file, read by the worker's own declarations (a file the worker
            // refuses is refused here too): its policy says what the answers must be; the
            // rest (listen addresses, timeouts) does not matter here.
            dp::worker::WorkerConfig w;
            dp::worker::worker_schema().apply_json(w, dp::config::read_json_file(o.config));
            s = w.policy;
        }
        if (ns_given) s.nameservers = ns;
        if (s.nameservers.empty())
            throw ConfigError("nameservers: give --config FILE (the worker's) or -n NAME for each parking name server");
        ares_library_init(ARES_LIB_INIT_ALL);
        Checker c(o, s);
        const int rc = c.run();
        ares_library_cleanup();
        return rc;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "domain-park-check: %s\n", e.what());
        return 2;
    }
}
