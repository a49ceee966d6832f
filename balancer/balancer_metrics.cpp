#include "balancer/balancer_metrics.hpp"

namespace dp::balancer {

namespace {
constexpr const char* kTransportNames[BalancerMetrics::kTransports] = {"udp", "tcp"};
constexpr const char* kRcodeNames[BalancerMetrics::kRcodes] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                                               "NOTIMP",  "REFUSED", "YXDOMAIN", "other"};
constexpr const char* kDropNames[] = {"malformed", "oversized", "deadline"};
constexpr const char* kServfailNames[] = {"no_worker", "deadline", "retries_exhausted", "busy", "overload"};
static_assert(sizeof kServfailNames / sizeof kServfailNames[0] == static_cast<size_t>(ServfailReason::Count));
constexpr const char* kFailNames[] = {"connect", "reset", "timeout", "probe"};
}  // namespace

void BalancerMetrics::register_all(net::MetricsRegistry& r) const {
    for (int t = 0; t < kTransports; ++t) {
        for (int c = 0; c < kRcodes; ++c)
            r.counter("domain_park_balancer_requests_total", "Answers sent to clients, by transport and rcode",
                      {{"transport", kTransportNames[t]}, {"rcode", kRcodeNames[c]}}, &requests[t][c]);
        r.histogram("domain_park_balancer_request_duration_seconds",
                    "Time from receiving a query to handing its answer to the kernel",
                    {{"transport", kTransportNames[t]}}, &duration[t]);
        r.counter("domain_park_balancer_received_bytes_total", "DNS payload octets received from clients",
                  {{"transport", kTransportNames[t]}}, t == 0 ? &udp_bytes_in : &tcp.bytes_in);
        r.counter("domain_park_balancer_sent_bytes_total", "DNS payload octets sent to clients",
                  {{"transport", kTransportNames[t]}}, t == 0 ? &udp_bytes_out : &tcp.bytes_out);
    }
    for (int i = 0; i < static_cast<int>(DropReason::Count); ++i)
        r.counter("domain_park_balancer_dropped_total", "Queries received and never answered, by reason",
                  {{"reason", kDropNames[i]}}, &dropped[i]);
    for (int i = 0; i < static_cast<int>(ServfailReason::Count); ++i)
        r.counter("domain_park_balancer_servfail_total", "SERVFAIL answers made by the balancer, by reason",
                  {{"reason", kServfailNames[i]}}, &servfail[i]);
    r.counter("domain_park_balancer_retries_total", "Queries re-sent to another worker after a failed attempt", {},
              &retries);
    r.counter("domain_park_balancer_deadline_expired_total", "Queries whose deadline passed without an answer", {},
              &deadline_expired);
    r.counter("domain_park_balancer_unmatched_answers_total",
              "Answers from workers that matched no query in flight (late after a retry, or bogus)", {},
              &unmatched_answers);
    r.gauge("domain_park_balancer_inflight_queries", "Client queries waiting for a worker's answer", {}, &inflight);
    r.counter("domain_park_balancer_udp_truncated_total", "UDP answers sent with TC=1 because they did not fit", {},
              &udp_truncated);
    r.counter("domain_park_balancer_udp_send_failed_total", "UDP answers the kernel refused", {}, &udp_send_failed);
    r.gauge("domain_park_balancer_waiting_queries",
            "Client queries waiting for a free query ID on the workers' connections", {}, &waiting);
    tcp.register_all(r, "domain_park_balancer_", "Client");
    for (int i = 0; i < 4; ++i)
        r.counter("domain_park_balancer_cookies_total",
                  "Client queries with a DNS cookie (RFC 7873), by what it proved: client_only, valid (our server "
                  "cookie), invalid (someone else's, expired, another address), malformed (FORMERR)",
                  {{"result", dns::kCookieResults[i]}}, &cookies[i]);
    r.counter("domain_park_balancer_rrl_cookie_exempt_total",
              "UDP answers not rate limited because the client sent a valid server cookie", {}, &rrl_cookie_exempt);
    r.counter("domain_park_balancer_badcookie_total",
              "RRL slips answered BADCOOKIE with a fresh server cookie (the client had a client cookie) instead of TC=1",
              {}, &badcookie);
    r.counter("domain_park_balancer_config_reloads_total", "Configuration reloads (SIGHUP)", {{"result", "success"}},
              &reloads_ok);
    r.counter("domain_park_balancer_config_reloads_total", "Configuration reloads (SIGHUP)", {{"result", "failure"}},
              &reloads_failed);
    r.gauge("domain_park_balancer_config_restart_required",
            "1 when the last reload met settings that change only on restart (see the log)", {}, &restart_required);
}

void register_cache_metrics(net::MetricsRegistry& r, const CacheStats& s) {
    const char* lookups = "domain_park_balancer_cache_lookups_total";
    const char* lookups_help = "Cache lookups of cacheable queries: hit (fresh), stale (served past expiry, RFC 8767), miss";
    r.counter(lookups, lookups_help, {{"result", "hit"}}, &s.hits);
    r.counter(lookups, lookups_help, {{"result", "stale"}}, &s.stale_hits);
    r.counter(lookups, lookups_help, {{"result", "miss"}}, &s.misses);
    r.counter("domain_park_balancer_cache_inserts_total", "Worker answers stored in the cache", {}, &s.inserts);
    r.counter("domain_park_balancer_cache_not_cacheable_total",
              "Worker answers not stored (rcode, TC, TTL 0, size, malformed)", {}, &s.not_cacheable);
    const char* ev = "domain_park_balancer_cache_evictions_total";
    const char* ev_help = "Cache entries removed: capacity (entry or byte cap reached), expired (past TTL and serve-stale)";
    r.counter(ev, ev_help, {{"reason", "capacity"}}, &s.evictions_capacity);
    r.counter(ev, ev_help, {{"reason", "expired"}}, &s.expired_dropped);
    r.gauge("domain_park_balancer_cache_entries", "Answers held in the cache", {}, &s.entries);
    r.gauge("domain_park_balancer_cache_bytes", "Bytes charged to the cache's max_bytes", {}, &s.bytes);
}

void register_rate_limit_metrics(net::MetricsRegistry& r, const RateLimitStats& s) {
    static constexpr const char* kKinds[] = {"answer", "nodata", "nxdomain", "error"};
    const char* req = "domain_park_balancer_request_limit_total";
    const char* req_help = "UDP queries met by the per-client request limit: dropped, would_drop (log_only), exempt";
    r.counter(req, req_help, {{"action", "dropped"}}, &s.requests_dropped);
    r.counter(req, req_help, {{"action", "would_drop"}}, &s.requests_would_drop);
    r.counter(req, req_help, {{"action", "exempt"}}, &s.requests_exempt);
    const char* rrl = "domain_park_balancer_rrl_total";
    const char* rrl_help =
        "UDP responses held back by response rate limiting: dropped, slipped (sent TC=1), by response kind";
    for (int k = 0; k < 4; ++k) {
        r.counter(rrl, rrl_help, {{"action", "dropped"}, {"kind", kKinds[k]}}, &s.rrl_dropped[k]);
        r.counter(rrl, rrl_help, {{"action", "slipped"}, {"kind", kKinds[k]}}, &s.rrl_slipped[k]);
    }
    const char* rrl_other = "domain_park_balancer_rrl_other_total";
    const char* rrl_other_help =
        "Responses to exempt clients (exempt), and what log_only mode let through (would_drop, would_slip)";
    r.counter(rrl_other, rrl_other_help, {{"action", "exempt"}}, &s.rrl_exempt);
    r.counter(rrl_other, rrl_other_help, {{"action", "would_drop"}}, &s.rrl_would_drop);
    r.counter(rrl_other, rrl_other_help, {{"action", "would_slip"}}, &s.rrl_would_slip);
    r.counter("domain_park_balancer_rate_limit_table_evictions_total",
              "Live rate-limit buckets replaced because their table set was full", {}, &s.table_evictions);
    const char* ent = "domain_park_balancer_rate_limit_entries";
    r.gauge(ent, "Rate-limit buckets held, by table", {{"table", "requests"}}, &s.request_entries);
    r.gauge(ent, "Rate-limit buckets held, by table", {{"table", "responses"}}, &s.response_entries);
}

WorkerStats& WorkerStatsTable::stats_for(const std::string& addr) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& w : workers_)
        if (w.addr == addr) return w;
    return workers_.emplace_back(addr);
}

void WorkerStatsTable::register_all(net::MetricsRegistry& r) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& w : workers_) {
        const net::Labels l{{"worker", w.addr}};
        r.counter("domain_park_balancer_worker_queries_total", "Query attempts sent to a worker", l, &w.queries);
        r.counter("domain_park_balancer_worker_answers_total", "Answers received from a worker", l, &w.answers);
        r.gauge("domain_park_balancer_worker_outstanding", "Queries sent to a worker and not answered yet", l,
                &w.outstanding);
        // With several threads each has its own view of a worker's health: 1 only when all see it up.
        r.gauge("domain_park_balancer_worker_up", "1 when the worker is healthy and configured, else 0", l, &w.up,
                net::MetricsRegistry::Merge::Min);
        r.counter("domain_park_balancer_worker_reconnects_total", "Connections to a worker opened again", l,
                  &w.reconnects);
        for (int i = 0; i < static_cast<int>(FailReason::Count); ++i)
            r.counter("domain_park_balancer_worker_failures_total", "Failures counted against a worker's health",
                      {{"worker", w.addr}, {"reason", kFailNames[i]}}, &w.failures[i]);
    }
}

}  // namespace dp::balancer
