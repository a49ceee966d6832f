// One query thread of the balancer: its own libuv loop, its own listening sockets (shared
// with the other threads through SO_REUSEPORT), its own worker connections, cache, rate
// limiters and metrics. Threads share nothing on the query path; the main thread only
// hands them a new configuration (SIGHUP) or tells them to drain (SIGTERM).
#pragma once

#include <uv.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "balancer/answer_cache.hpp"
#include "balancer/balancer_context.hpp"
#include "balancer/rate_limit.hpp"
#include "dns/public_suffix.hpp"
#include "net/metrics.hpp"

namespace dp::balancer {

class UpstreamPool;
class UdpFront;
class TcpFront;

// Descriptors one thread may give to client TCP connections: its share of the process's limit
// (raised to the hard limit) after what the process needs for everything else.
uint64_t client_fd_budget(const BalancerConfig& c);
// The share of the process-wide limits one of `threads` threads gets (at least 1).
BalancerConfig thread_share(const BalancerConfig& c, unsigned threads);

class Engine {
public:
    Engine(unsigned index, const BalancerConfig& config);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Binds the sockets and connects to the workers; the loop is not running yet. Called
    // from the main thread. False with `error` (one line) when an address cannot be bound.
    bool open(std::string& error);
    // Runs the loop on a thread of its own.
    void start();
    // Thread-safe requests, carried out on the engine's thread.
    void post_reload(const BalancerConfig& config);
    void post_stop();
    // Waits for the thread to end (after post_stop). True when it drained everything in time.
    bool join();

    // Scrape thread: this engine's metrics (the registry sums threads).
    void register_metrics(net::MetricsRegistry& r) const;
    BalancerMetrics& metrics() { return ctx_.metrics; }

private:
    void run();
    void on_command();
    // Response rate limiting keys answers on the registrable domain: the list, loaded while it
    // is on (and again when its settings change).
    void load_suffix_list();
    void reload(const BalancerConfig& next);
    void stop();
    void check_drained();

    unsigned index_;
    uv_loop_t loop_{};
    BalancerContext ctx_;
    WorkerStatsTable worker_stats_;
    RateLimitStats rate_stats_;
    std::unique_ptr<AnswerCache> cache_;
    std::unique_ptr<RequestLimiter> requests_;
    std::unique_ptr<ResponseLimiter> responses_;
    std::unique_ptr<dns::PublicSuffix> psl_;  // while response rate limiting is on
    uv_timer_t cache_sweeper_{};
    uv_prepare_t prepare_{};  // once per loop iteration, before waiting: flush everything
    uv_check_t check_{};      // and after polling
    std::unique_ptr<UpstreamPool> pool_;
    std::vector<std::unique_ptr<UdpFront>> udp_;
    std::unique_ptr<TcpFront> tcp_;
    uv_async_t command_{};
    uv_timer_t drain_timer_{};
    uint64_t drain_deadline_ms_ = 0;
    bool stopping_ = false;
    bool drained_ = false;
    std::thread thread_;

    std::mutex mu_;  // guards the two requests below
    std::optional<BalancerConfig> pending_config_;
    bool pending_stop_ = false;
};

}  // namespace dp::balancer
