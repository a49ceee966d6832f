// The balancer's metrics (names in README.md "Metrics"). Bumped only by the loop thread with
// the shared single-writer counters; read by the metrics thread at scrape time.
#pragma once

#include <deque>
#include <mutex>
#include <string>

#include "balancer/answer_cache.hpp"
#include "balancer/rate_limit.hpp"
#include "net/metrics.hpp"
#include "net/tcp_engine.hpp"

namespace dp::balancer {

// Queries received and never answered.
enum class DropReason : uint8_t { Malformed, Oversized, Deadline, Count };
// SERVFAIL answers the balancer made itself: no healthy worker; the deadline passed (waiting for
// a worker's answer); the retries ran out with time left; the deadline passed waiting for a free
// query ID on the workers' connections; every query slot (max_inflight) taken.
enum class ServfailReason : uint8_t { NoWorker, Deadline, RetriesExhausted, Busy, Overload, Count };
// What counts against a worker's health.
enum class FailReason : uint8_t { Connect, Reset, Timeout, Probe, Count };

struct WorkerStats {
    explicit WorkerStats(std::string a) : addr(std::move(a)) {}
    std::string addr;
    net::Counter queries;      // attempts sent (first tries and retries)
    net::Counter answers;      // answers matched to a query
    net::Gauge outstanding;    // attempts waiting for an answer
    net::Gauge up;             // 1 healthy, 0 down (or removed)
    net::Counter reconnects;   // connections opened after the first one of each slot
    net::Counter failures[static_cast<int>(FailReason::Count)];
};

struct BalancerMetrics {
    static constexpr int kTransports = 2;  // 0 udp, 1 tcp
    static constexpr int kRcodes = 8;

    net::Counter requests[kTransports][kRcodes];  // answers sent to clients, by header rcode
    net::Histogram duration[kTransports];         // query received to answer handed to the kernel
    net::Counter dropped[static_cast<int>(DropReason::Count)];
    net::Counter servfail[static_cast<int>(ServfailReason::Count)];
    net::Counter retries;
    net::Counter deadline_expired;
    net::Counter unmatched_answers;  // from a worker, matching no query in flight (late or bogus)
    net::Gauge inflight;
    net::Counter udp_bytes_in, udp_bytes_out;
    net::Counter udp_truncated;
    net::Counter udp_send_failed;
    net::TcpStats tcp;  // client connections, their limits, TCP payload octets (the engine's)
    net::Gauge waiting;  // queries waiting for a free query ID on the workers' connections
    net::Counter reloads_ok, reloads_failed;
    net::Gauge restart_required;  // 1 while the file asks for settings only a restart applies
    net::Counter cookies[4];          // queries with a COOKIE option: [0] malformed, then by dns::CookieVerdict
    net::Counter rrl_cookie_exempt;   // UDP answers RRL did not look at: the client's server cookie is valid
    net::Counter badcookie;           // RRL slips sent as BADCOOKIE with a fresh cookie instead of TC=1

    void answered(int transport, uint8_t rcode) { requests[transport][rcode < kRcodes - 1 ? rcode : kRcodes - 1].inc(); }
    void drop(DropReason r) { dropped[static_cast<int>(r)].inc(); }

    void register_all(net::MetricsRegistry& r) const;
};

void register_cache_metrics(net::MetricsRegistry& r, const CacheStats& s);
void register_rate_limit_metrics(net::MetricsRegistry& r, const RateLimitStats& s);

// One WorkerStats per worker address ever configured in a thread. Stats are never freed (a
// worker removed and added again continues its counters), so the loop thread may bump them
// without a lock; only adding one, and reading the list at scrape time, take the lock.
class WorkerStatsTable {
public:
    WorkerStats& stats_for(const std::string& addr);
    void register_all(net::MetricsRegistry& r) const;

private:
    mutable std::mutex mu_;
    std::deque<WorkerStats> workers_;
};

}  // namespace dp::balancer
