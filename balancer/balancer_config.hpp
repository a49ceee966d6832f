// The balancer's settings: its own (listen addresses, workers, query life, upstream
// connections, health, cache, rate limits), the serving settings it shares with the worker
// (net/serving_settings.hpp), the Public Suffix List's (response rate limiting keys answers
// on the registrable domain) and the DNS cookie settings (the fronts answer cookies), all declared once in config/settings.hpp form. JSON file plus
// command-line flags (flags win), kept apart from behaviour so that --check-config and SIGHUP
// read exactly what start-up reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "balancer/answer_cache.hpp"
#include "balancer/rate_limit.hpp"
#include "config/settings.hpp"
#include "dns/cookie.hpp"
#include "dns/public_suffix.hpp"
#include "net/serving_settings.hpp"

namespace dp::balancer {

enum class DeadlineAction : uint8_t { Servfail, Drop };

inline CacheSettings default_cache() {
    CacheSettings c;
    c.max_entries = 100000;
    c.max_bytes = 64u << 20;
    c.max_ttl = 300;
    c.max_negative_ttl = 300;
    c.stale_ttl = 30;
    c.max_stale = 0;
    return c;
}

struct BalancerConfig {
    std::vector<std::string> listen{"127.0.0.1:53"};  // ADDR:PORT, each served over UDP and TCP
    std::vector<std::string> workers;                 // ADDR:PORT of the workers (required)
    uint32_t threads = 1;  // query threads, sharing nothing (engine.hpp)

    // Query life: a client's query gets `deadline_ms` in total; each attempt on a worker gets
    // `attempt_timeout_ms`; a failed attempt is re-sent to another worker at most `max_retries` times.
    uint32_t deadline_ms = 1500;
    uint32_t attempt_timeout_ms = 500;
    uint32_t max_retries = 2;
    DeadlineAction deadline_action = DeadlineAction::Servfail;
    uint32_t max_inflight = 16384;  // client queries held, all clients together

    // Upstream connections.
    uint32_t upstream_connections = 2;          // persistent TCP connections per worker
    uint32_t upstream_max_connections = 8;      // more are opened while every ID of these is in use
    uint32_t upstream_max_outstanding = 1024;   // queries in flight per connection (16-bit ID space)
    uint32_t health_failures = 3;               // consecutive failures that mark a worker down
    uint32_t health_backoff_min_ms = 100;       // first probe delay after marking down
    uint32_t health_backoff_max_ms = 5000;      // probe delay cap (doubles per failed probe)

    uint32_t tcp_max_queries_per_connection = 256;  // unanswered queries per client connection
    net::ServingSettings serving;                   // client-facing transports, shared with the worker

    // The answer cache (JSON object "cache"). Lifetimes are capped at 5 minutes by default so
    // that a policy change on the workers shows within that time even without a reload.
    CacheSettings cache = default_cache();
    // Per-client request limits and response rate limiting, UDP only (JSON object "rate_limit").
    RateLimitSettings rate_limit;
    dns::SuffixListSettings psl;  // loaded only while response rate limiting is on
    // DNS cookies for the clients (RFC 7873, RFC 9018), the same keys and meaning as the
    // worker's: give every balancer of an anycast group the same secret.
    dns::CookieSettings cookies;
};

const config::Schema<BalancerConfig>& balancer_schema();

// Reads argv (and the --config file it names). Throws config::ConfigError with a one-line message.
config::CliAction load_config(int argc, char** argv, BalancerConfig& out, config::Cli& cli);

std::string usage();

}  // namespace dp::balancer
