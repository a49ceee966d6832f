#include "balancer/balancer_config.hpp"


#include <nlohmann/json.hpp>
#include <set>

#include "dns/policy.hpp"
#include "dns/policy_settings.hpp"
#include "net/sockets.hpp"

namespace dp::balancer {

using dns::ConfigError;

const char* usage() {
    return R"(usage: domain-park-balancer [options]
Spreads DNS queries over domain-park workers through persistent pipelined TCP connections.

  -c, --config FILE          JSON configuration file; flags below override it
      --check-config         validate the configuration and exit (0 valid, 2 invalid)
      --listen ADDR:PORT     listen address (repeatable; [V6]:PORT for IPv6; default 127.0.0.1:53)
      --worker ADDR:PORT     a worker (repeatable, at least one; replaces the file's list)
      --udp                  serve UDP only          --tcp   serve TCP only (default: both)
      --metrics ADDR:PORT    serve Prometheus metrics at http://ADDR:PORT/metrics (default off)
      --threads N            query threads, each with its own sockets (SO_REUSEPORT), worker
                             connections and cache (default 1; at most 64)
      --deadline-ms MS       time a query may take in total before SERVFAIL (default 1500)
      --attempt-timeout-ms MS  time one attempt on a worker may take (default 500)
      --max-retries N        re-sends to another worker after a failed attempt (default 2)
      --upstream-connections N  persistent TCP connections per worker (default 2)
      --idle-timeout SECONDS close client TCP connections idle this long (default 30)
      --max-connections N    client TCP connection cap (default 10000)
      --cache-entries N      answer cache size in entries (default 100000; 0 turns the cache off)
      --serve-stale SECONDS  answer from expired cache entries up to this long past expiry when
                             no worker can answer (RFC 8767; default 0: off)
      --requests-per-second N   UDP queries per second per client network (/24, /56; default 0: off)
      --responses-per-second N  response rate limiting (RRL) per client network and name (default 0: off)
      --rate-limit-log-only  count what the limits would drop, drop nothing
  -h, --help                 this text
      --version              print the version
Signals: SIGHUP reloads the worker list and limits; SIGTERM/SIGINT drain and exit.
)";
}

namespace {

void check_addresses(const std::string& setting, const std::vector<std::string>& list) {
    std::set<std::string> seen;
    for (const auto& a : list) {
        std::string host, err;
        uint16_t port;
        if (!net::parse_host_port(a, host, port, err)) throw ConfigError(setting + ": " + err);
        if (port == 0) throw ConfigError(setting + ": '" + a + "': port 0");
        if (!seen.insert(a).second) throw ConfigError(setting + ": '" + a + "' is listed twice");
    }
}

DeadlineAction parse_action(const std::string& key, const std::string& v) {
    if (v == "servfail") return DeadlineAction::Servfail;
    if (v == "drop") return DeadlineAction::Drop;
    throw ConfigError(key + ": '" + v + "' is not servfail or drop");
}

void apply_cache_key(CacheSettings& c, const std::string& key, const nlohmann::json& v) {
    using dns::json_u32;
    const std::string name = "cache." + key;
    if (key == "max_entries") c.max_entries = json_u32(v, name, 0, 1u << 26);
    else if (key == "max_bytes") c.max_bytes = json_u32(v, name, 4096, 0xFFFFFFFFu);
    else if (key == "max_ttl") c.max_ttl = json_u32(v, name, 1, 7 * 86400);
    else if (key == "max_negative_ttl") c.max_negative_ttl = json_u32(v, name, 1, 7 * 86400);
    else if (key == "serve_stale") c.max_stale = json_u32(v, name, 0, 7 * 86400);
    else if (key == "stale_ttl") c.stale_ttl = json_u32(v, name, 1, 86400);
    else throw ConfigError(name + ": unknown setting");
}

void apply_rate_key(RateLimitSettings& r, const std::string& key, const nlohmann::json& v) {
    using dns::json_u32;
    const std::string name = "rate_limit." + key;
    if (key == "requests_per_second") r.requests_per_second = json_u32(v, name, 0, 10000000);
    else if (key == "requests_burst") r.requests_burst = json_u32(v, name, 0, 10000000);
    else if (key == "ipv4_prefix") r.ipv4_prefix = static_cast<uint8_t>(json_u32(v, name, 8, 32));
    else if (key == "ipv6_prefix") r.ipv6_prefix = static_cast<uint8_t>(json_u32(v, name, 16, 128));
    else if (key == "responses_per_second") r.responses_per_second = json_u32(v, name, 0, 1000000);
    else if (key == "nodata_per_second") r.nodata_per_second = json_u32(v, name, 0, 1000000);
    else if (key == "nxdomains_per_second") r.nxdomains_per_second = json_u32(v, name, 0, 1000000);
    else if (key == "errors_per_second") r.errors_per_second = json_u32(v, name, 0, 1000000);
    else if (key == "window") r.window = json_u32(v, name, 1, 3600);
    else if (key == "slip") r.slip = json_u32(v, name, 0, 10);
    else if (key == "log_only") r.log_only = dns::json_bool(v, name);
    else if (key == "max_entries") r.max_entries = json_u32(v, name, 8, 1u << 24);
    else if (key == "exempt") {
        r.exempt.clear();
        for (const auto& text : dns::json_strings(v, name)) {
            Prefix p;
            std::string err;
            if (!parse_prefix(text, p, err)) throw ConfigError(name + ": " + err);
            r.exempt.push_back(p);
        }
    } else throw ConfigError(name + ": unknown setting");
}

template <typename Settings>
void apply_object(Settings& s, const std::string& key, const nlohmann::json& v,
                  void (*apply)(Settings&, const std::string&, const nlohmann::json&)) {
    if (!v.is_object()) throw ConfigError(key + ": must be an object");
    for (const auto& [k, value] : v.items()) apply(s, k, value);
}

void apply_key(BalancerConfig& c, const std::string& key, const nlohmann::json& v) {
    using dns::json_bool;
    using dns::json_string;
    using dns::json_strings;
    using dns::json_u32;
    if (key == "listen") c.listen = json_strings(v, key);
    else if (key == "workers") c.workers = json_strings(v, key);
    else if (key == "udp") c.udp = json_bool(v, key);
    else if (key == "tcp") c.tcp = json_bool(v, key);
    else if (key == "threads") c.threads = json_u32(v, key, 1, 64);
    else if (key == "metrics") c.metrics = json_string(v, key);
    else if (key == "deadline_ms") c.deadline_ms = json_u32(v, key, 10, 60000);
    else if (key == "attempt_timeout_ms") c.attempt_timeout_ms = json_u32(v, key, 10, 60000);
    else if (key == "max_retries") c.max_retries = json_u32(v, key, 0, 2);
    else if (key == "deadline_action") c.deadline_action = parse_action(key, json_string(v, key));
    else if (key == "max_inflight") c.max_inflight = json_u32(v, key, 1, 1u << 20);
    else if (key == "upstream_connections") c.upstream_connections = json_u32(v, key, 1, 64);
    else if (key == "upstream_max_outstanding") c.upstream_max_outstanding = json_u32(v, key, 1, 65535);
    else if (key == "health_failures") c.health_failures = json_u32(v, key, 1, 1000);
    else if (key == "health_backoff_min_ms") c.health_backoff_min_ms = json_u32(v, key, 10, 600000);
    else if (key == "health_backoff_max_ms") c.health_backoff_max_ms = json_u32(v, key, 10, 600000);
    else if (key == "tcp_idle_timeout") c.tcp_idle_timeout_ms = json_u32(v, key, 1, 3600) * 1000;
    else if (key == "tcp_max_connections") c.tcp_max_connections = json_u32(v, key, 1, 1000000);
    else if (key == "tcp_max_pending_bytes") c.tcp_max_pending_bytes = json_u32(v, key, 4096, 64 << 20);
    else if (key == "tcp_max_queries_per_connection") c.tcp_max_queries_per_connection = json_u32(v, key, 1, 65535);
    else if (key == "tcp_backlog") c.tcp_backlog = json_u32(v, key, 1, 65535);
    else if (key == "tcp_close_grace") c.tcp_close_grace_ms = json_u32(v, key, 0, 600) * 1000;
    else if (key == "shutdown_grace") c.shutdown_grace_ms = json_u32(v, key, 0, 600) * 1000;
    else if (key == "udp_rcvbuf") c.udp_rcvbuf = json_u32(v, key, 65536, 1u << 30);
    else if (key == "cache") apply_object(c.cache, key, v, apply_cache_key);
    else if (key == "rate_limit") apply_object(c.rate_limit, key, v, apply_rate_key);
    else throw ConfigError(key + ": unknown setting");
}

void load_file(const std::string& path, BalancerConfig& c) {
    const nlohmann::json j = dns::read_json_object(path);
    for (const auto& [key, value] : j.items()) apply_key(c, key, value);
}

}  // namespace

CliAction load_config(int argc, char** argv, BalancerConfig& out) {
    BalancerConfig c;
    std::vector<std::pair<std::string, std::string>> flags;  // applied after the file
    bool only_udp = false, only_tcp = false, log_only = false;
    const std::initializer_list<const char*> takes_value = {"-c",        "--config",           "--listen",      "--worker",
                              "--metrics", "--threads",          "--deadline-ms", "--attempt-timeout-ms",
                              "--max-retries", "--upstream-connections", "--idle-timeout", "--max-connections",
                              "--cache-entries", "--serve-stale", "--requests-per-second", "--responses-per-second"};
    for (const auto& [f, v, valued] : dns::split_flags(argc, argv, takes_value)) {
        if (f == "-h" || f == "--help") return CliAction::Help;
        if (f == "--version") return CliAction::Version;
        if (f == "--check-config") c.check_only = true;
        else if (f == "--udp") only_udp = true;
        else if (f == "--rate-limit-log-only") log_only = true;
        else if (f == "--tcp") only_tcp = true;
        else if (f == "-c" || f == "--config") c.config_path = v;
        else if (valued) flags.emplace_back(f, v);
        else throw ConfigError(f + ": unknown option (see --help)");
    }
    const bool check_only = c.check_only;
    const std::string path = c.config_path;
    if (!path.empty()) load_file(path, c);
    c.check_only = check_only;
    c.config_path = path;
    if (only_udp || only_tcp) {
        c.udp = only_udp;
        c.tcp = only_tcp;
    }
    bool listen_from_flags = false, workers_from_flags = false;
    for (const auto& [f, v] : flags) {
        if (f == "--listen") {
            if (!listen_from_flags) c.listen.clear();  // flags replace the file's list
            listen_from_flags = true;
            c.listen.push_back(v);
        } else if (f == "--worker") {
            if (!workers_from_flags) c.workers.clear();
            workers_from_flags = true;
            c.workers.push_back(v);
        } else if (f == "--metrics") c.metrics = v;
        else if (f == "--threads") c.threads = dns::flag_number(f, v, 1, 64);
        else if (f == "--deadline-ms") c.deadline_ms = dns::flag_number(f, v, 10, 60000);
        else if (f == "--attempt-timeout-ms") c.attempt_timeout_ms = dns::flag_number(f, v, 10, 60000);
        else if (f == "--max-retries") c.max_retries = dns::flag_number(f, v, 0, 2);
        else if (f == "--upstream-connections") c.upstream_connections = dns::flag_number(f, v, 1, 64);
        else if (f == "--idle-timeout") c.tcp_idle_timeout_ms = dns::flag_number(f, v, 1, 3600) * 1000;
        else if (f == "--max-connections") c.tcp_max_connections = dns::flag_number(f, v, 1, 1000000);
        else if (f == "--cache-entries") c.cache.max_entries = dns::flag_number(f, v, 0, 1u << 26);
        else if (f == "--serve-stale") c.cache.max_stale = dns::flag_number(f, v, 0, 7 * 86400);
        else if (f == "--requests-per-second") c.rate_limit.requests_per_second = dns::flag_number(f, v, 0, 10000000);
        else if (f == "--responses-per-second") c.rate_limit.responses_per_second = dns::flag_number(f, v, 0, 1000000);
    }
    if (log_only) c.rate_limit.log_only = true;
    if (!c.udp && !c.tcp) throw ConfigError("udp/tcp: both are off; nothing to serve");
    if (c.listen.empty()) throw ConfigError("listen: no address to listen on");
    if (c.workers.empty()) throw ConfigError("workers: at least one worker ADDR:PORT is required (--worker)");
    check_addresses("listen", c.listen);
    check_addresses("workers", c.workers);
    if (c.health_backoff_max_ms < c.health_backoff_min_ms)
        throw ConfigError("health_backoff_max_ms: below health_backoff_min_ms");
    if (!c.metrics.empty()) {
        std::string h, err;
        uint16_t p;
        if (!net::parse_host_port(c.metrics, h, p, err)) throw ConfigError("metrics: " + err);
    }
    out = std::move(c);
    return CliAction::Run;
}

}  // namespace dp::balancer
