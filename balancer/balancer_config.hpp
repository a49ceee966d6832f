// The balancer's settings: JSON file plus command-line flags (flags win). Kept apart from
// behaviour so that --check-config and SIGHUP read exactly what start-up reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "balancer/answer_cache.hpp"
#include "balancer/rate_limit.hpp"

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
    bool udp = true;
    bool tcp = true;
    uint32_t threads = 1;  // query threads, sharing nothing (engine.hpp)
    std::string metrics;   // ADDR:PORT of the Prometheus endpoint; empty: off

    // Query life: a client's query gets `deadline_ms` in total; each attempt on a worker gets
    // `attempt_timeout_ms`; a failed attempt is re-sent to another worker at most `max_retries` times.
    uint32_t deadline_ms = 1500;
    uint32_t attempt_timeout_ms = 500;
    uint32_t max_retries = 2;
    DeadlineAction deadline_action = DeadlineAction::Servfail;
    uint32_t max_inflight = 16384;  // queries waiting for a worker, all clients together

    // Upstream connections.
    uint32_t upstream_connections = 2;        // persistent TCP connections per worker
    uint32_t upstream_max_outstanding = 1024;  // queries in flight per connection (16-bit ID space)
    uint32_t health_failures = 3;             // consecutive failures that mark a worker down
    uint32_t health_backoff_min_ms = 100;     // first probe delay after marking down
    uint32_t health_backoff_max_ms = 5000;    // probe delay cap (doubles per failed probe)

    // Client-facing TCP (same meaning as the worker's).
    uint32_t tcp_idle_timeout_ms = 30000;
    uint32_t tcp_max_connections = 10000;
    uint32_t tcp_max_pending_bytes = 256 * 1024;
    uint32_t tcp_max_queries_per_connection = 256;  // unanswered queries per client connection
    uint32_t tcp_backlog = 4096;
    uint32_t tcp_close_grace_ms = 5000;
    uint32_t shutdown_grace_ms = 5000;
    uint32_t udp_rcvbuf = 4 * 1024 * 1024;

    // The answer cache (JSON object "cache"). Lifetimes are capped at 5 minutes by default so
    // that a policy change on the workers shows within that time even without a reload.
    CacheSettings cache = default_cache();
    // Per-client request limits and response rate limiting, UDP only (JSON object "rate_limit").
    RateLimitSettings rate_limit;

    std::string config_path;
    bool check_only = false;
};

enum class CliAction { Run, Help, Version };

// Reads argv (and the --config file it names). Throws dns::ConfigError with a one-line message.
CliAction load_config(int argc, char** argv, BalancerConfig& out);

const char* usage();

}  // namespace dp::balancer
