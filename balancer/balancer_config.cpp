#include "balancer/balancer_config.hpp"

#include <set>

#include "dns/policy_settings.hpp"
#include "net/sockets.hpp"

namespace dp::balancer {

using config::ConfigError;
using config::Reload;
using config::Unit;
using B = BalancerConfig;

namespace {

void check_addresses(const std::string& setting, const std::vector<std::string>& list) {
    std::set<std::string> seen;
    for (const auto& a : list) {
        std::string host, err;
        uint16_t port;
        if (!net::parse_host_port(a, host, port, err)) throw ConfigError(setting + ": " + err);
        if (port == 0) throw ConfigError(setting + ": " + config::quote(a) + ": port 0");
        if (!seen.insert(a).second) throw ConfigError(setting + ": " + config::quote(a) + " is listed twice");
    }
}

std::vector<config::Setting<CacheSettings>> cache_settings() {
    using C = CacheSettings;
    using config::number;
    std::vector<config::Setting<C>> v;
    v.push_back(config::with_flag(number<C>("cache.max_entries", &C::max_entries, 0, 1u << 26, Unit::Count,
                                            Reload::Live, "answers held (all threads together); 0 turns the cache off"),
                                  "--cache-entries", "N"));
    v.push_back(number<C>("cache.max_bytes", &C::max_bytes, 4096, 0xFFFFFFFFu, Unit::Bytes, Reload::Live,
                          "bytes charged to the cache (answer + TTL offsets + fixed per-entry overhead)"));
    v.push_back(number<C>("cache.max_ttl", &C::max_ttl, 1, 7 * 86400, Unit::Seconds, Reload::Live,
                          "longest a positive answer stays fresh in the cache; clients still see the worker's TTL "
                          "counted down"));
    v.push_back(number<C>("cache.max_negative_ttl", &C::max_negative_ttl, 1, 7 * 86400, Unit::Seconds, Reload::Live,
                          "longest an NXDOMAIN/NODATA answer stays fresh (RFC 2308: also at most its SOA's)"));
    v.push_back(config::with_flag(
        number<C>("cache.serve_stale", &C::max_stale, 0, 7 * 86400, Unit::Seconds, Reload::Live,
                  "RFC 8767: how long past expiry an entry may answer when no worker can (0: off)"),
        "--serve-stale", "SECONDS"));
    v.push_back(number<C>("cache.stale_ttl", &C::stale_ttl, 1, 86400, Unit::Seconds, Reload::Live,
                          "TTL in a stale answer"));
    return v;
}

config::Setting<RateLimitSettings> exempt() {
    return config::parsed_list<RateLimitSettings, Prefix>(
        "rate_limit.exempt", &RateLimitSettings::exempt, "list of networks", Reload::Live,
        "client networks never limited (\"10.0.0.0/8\", \"2001:db8::/32\")",
        [](const std::string& text, const std::string& k) {
            Prefix p;
            std::string err;
            if (!parse_prefix(text, p, err)) throw ConfigError(k + ": " + err);
            return p;
        },
        [](const Prefix& p) { return to_string(p); });
}

std::vector<config::Setting<RateLimitSettings>> rate_settings() {
    using R = RateLimitSettings;
    using config::number;
    using config::with_flag;
    std::vector<config::Setting<R>> v;
    v.push_back(with_flag(number<R>("rate_limit.requests_per_second", &R::requests_per_second, 0, 10000000,
                                    Unit::Count, Reload::Live,
                                    "UDP queries per second per client network; over it the query is dropped (0: off)"),
                          "--requests-per-second", "N"));
    v.push_back(config::with_default(number<R>("rate_limit.requests_burst", &R::requests_burst, 0, 10000000,
                                               Unit::Count, Reload::Live, "token bucket size (0: the rate)"),
                                     "the rate"));
    v.push_back(number<R>("rate_limit.ipv4_prefix", &R::ipv4_prefix, 8, 32, Unit::Count, Reload::Live,
                          "IPv4 client network length, for both limits"));
    v.push_back(number<R>("rate_limit.ipv6_prefix", &R::ipv6_prefix, 16, 128, Unit::Count, Reload::Live,
                          "IPv6 client network length, for both limits"));
    v.push_back(with_flag(number<R>("rate_limit.responses_per_second", &R::responses_per_second, 0, 1000000,
                                    Unit::Count, Reload::Live,
                                    "RRL: UDP answers per second per (client network, registrable domain, type) (0: off)"),
                          "--responses-per-second", "N"));
    v.push_back(config::with_default(
        number<R>("rate_limit.nodata_per_second", &R::nodata_per_second, 0, 1000000, Unit::Count, Reload::Live,
                  "RRL for NODATA, keyed on the zone (the SOA owner)"),
        "responses_per_second"));
    v.push_back(config::with_default(
        number<R>("rate_limit.nxdomains_per_second", &R::nxdomains_per_second, 0, 1000000, Unit::Count,
                  Reload::Live, "RRL for NXDOMAIN, keyed on the zone"),
        "responses_per_second"));
    v.push_back(config::with_default(
        number<R>("rate_limit.errors_per_second", &R::errors_per_second, 0, 1000000, Unit::Count, Reload::Live,
                  "RRL for errors (REFUSED, FORMERR, ...), keyed on the client network"),
        "responses_per_second"));
    v.push_back(number<R>("rate_limit.window", &R::window, 1, 3600, Unit::Seconds, Reload::Live,
                          "seconds of debt a flooded bucket runs up (it stays limited that long)"));
    v.push_back(number<R>("rate_limit.slip", &R::slip, 0, 10, Unit::Count, Reload::Live,
                          "every Nth suppressed answer goes out as an empty TC=1 answer (0 never, 1 always)"));
    v.push_back(with_flag(config::boolean<R>("rate_limit.log_only", &R::log_only, Reload::Live,
                                             "count what would be dropped or slipped; send everything"),
                          "--rate-limit-log-only"));
    v.push_back(exempt());
    v.push_back(number<R>("rate_limit.max_entries", &R::max_entries, 8, 1u << 24, Unit::Count, Reload::Live,
                          "buckets per table (requests, responses); the least recent is replaced when full"));
    return v;
}

config::Setting<B> deadline_action() {
    return config::custom<B, DeadlineAction>(
        "deadline_action", &B::deadline_action, "servfail or drop", Reload::Live,
        "what a client gets when its query's deadline passes",
        [](const nlohmann::json& v, const std::string& k) {
            const std::string s = config::json_string(v, k);
            if (s == "servfail") return DeadlineAction::Servfail;
            if (s == "drop") return DeadlineAction::Drop;
            throw ConfigError(k + ": " + config::quote(s) + " is not servfail or drop");
        },
        [](const DeadlineAction& a) { return std::string(a == DeadlineAction::Servfail ? "servfail" : "drop"); });
}

const config::Check kHostPorts = [](const std::string& v, const std::string& k) { net::check_host_port(v, k); };

}  // namespace

const config::Schema<BalancerConfig>& balancer_schema() {
    static const config::Schema<B> schema = [] {
        using config::number;
        using config::with_flag;
        config::Schema<B> s;
        s.add(with_flag(config::strings<B>("listen", &B::listen, Reload::Restart,
                                           "addresses served over UDP and TCP; IPv6 as [ADDR]:PORT; repeat the flag "
                                           "for more",
                                           kHostPorts),
                        "--listen", "ADDR:PORT"));
        s.add(config::with_default(
            with_flag(config::strings<B>("workers", &B::workers, Reload::Live,
                                         "the workers; repeat the flag for more", kHostPorts),
                      "--worker", "ADDR:PORT"),
            "required"));
        s.add(with_flag(number<B>("threads", &B::threads, 1, 64, Unit::Count, Reload::Restart,
                                  "query threads, each with its own sockets (SO_REUSEPORT), worker connections and "
                                  "cache"),
                        "--threads", "N"));
        s.add(with_flag(number<B>("deadline_ms", &B::deadline_ms, 10, 60000, Unit::Milliseconds, Reload::Live,
                                  "time a query may take in total; then SERVFAIL (or drop)"),
                        "--deadline-ms", "MS"));
        s.add(with_flag(number<B>("attempt_timeout_ms", &B::attempt_timeout_ms, 10, 60000, Unit::Milliseconds,
                                  Reload::Live,
                                  "time one attempt on a worker may take; also the connect and probe timeout"),
                        "--attempt-timeout-ms", "MS"));
        s.add(with_flag(number<B>("max_retries", &B::max_retries, 0, 2, Unit::Count, Reload::Live,
                                  "re-sends to another worker after a failed attempt"),
                        "--max-retries", "N"));
        s.add(deadline_action());
        s.add(number<B>("max_inflight", &B::max_inflight, 1, 1u << 20, Unit::Count, Reload::Restart,
                        "client queries held (waiting for a worker or for a free query ID), all clients together; "
                        "beyond it: SERVFAIL (reason overload)"));
        s.add(with_flag(number<B>("upstream_connections", &B::upstream_connections, 1, 64, Unit::Count,
                                  Reload::Restart, "persistent TCP connections per worker, opened at start"),
                        "--upstream-connections", "N"));
        s.add(number<B>("upstream_max_connections", &B::upstream_max_connections, 1, 64, Unit::Count,
                        Reload::Restart,
                        "connections per worker at most: more are opened while every query ID of the open ones is "
                        "in use (closed again when idle)"));
        s.add(number<B>("upstream_max_outstanding", &B::upstream_max_outstanding, 1, 65535, Unit::Count,
                        Reload::Restart, "queries in flight per worker connection (its 16-bit ID space)"));
        s.add(number<B>("health_failures", &B::health_failures, 1, 1000, Unit::Count, Reload::Live,
                        "consecutive failures that mark a worker down"));
        s.add(number<B>("health_backoff_min_ms", &B::health_backoff_min_ms, 10, 600000, Unit::Milliseconds,
                        Reload::Live, "first probe of a worker marked down"));
        s.add(number<B>("health_backoff_max_ms", &B::health_backoff_max_ms, 10, 600000, Unit::Milliseconds,
                        Reload::Live, "probe delay cap (doubled per failed probe)"));
        s.add(number<B>("tcp_max_queries_per_connection", &B::tcp_max_queries_per_connection, 1, 65535,
                        Unit::Count, Reload::Live,
                        "unanswered queries per client TCP connection before reading it pauses"));
        s.section(&B::serving, net::serving_settings());
        s.section(&B::cache, cache_settings());
        s.section(&B::rate_limit, rate_settings());
        s.section(&B::psl, dns::suffix_list_settings());
        s.section(&B::cookies, dns::cookie_settings());
        return s;
    }();
    return schema;
}

std::string usage() {
    return config::usage(balancer_schema(),
                         "usage: domain-park-balancer [options]\n"
                         "Spreads DNS queries over domain-park workers through persistent pipelined TCP "
                         "connections.\n",
                         "Signals: SIGHUP reloads the worker list and limits; SIGTERM/SIGINT drain and exit.\n");
}

config::CliAction load_config(int argc, char** argv, BalancerConfig& out, config::Cli& cli) {
    BalancerConfig c;
    const config::CliAction a = config::load_command_line(balancer_schema(), argc, argv, c, cli);
    if (a != config::CliAction::Run) return a;
    if (!c.serving.udp && !c.serving.tcp) throw ConfigError("udp/tcp: both are off; nothing to serve");
    if (c.listen.empty()) throw ConfigError("listen: no address to listen on");
    if (c.workers.empty()) throw ConfigError("workers: at least one worker ADDR:PORT is required (--worker)");
    check_addresses("listen", c.listen);
    check_addresses("workers", c.workers);
    if (c.health_backoff_max_ms < c.health_backoff_min_ms)
        throw ConfigError("health_backoff_max_ms: below health_backoff_min_ms");
    if (c.upstream_max_connections < c.upstream_connections)
        throw ConfigError("upstream_max_connections: below upstream_connections");
    dns::make_cookies(c.cookies);  // throws for a previous secret without a current one
    out = std::move(c);
    return a;
}

}  // namespace dp::balancer
