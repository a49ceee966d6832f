#include "balancer/engine.hpp"

#include <algorithm>
#include <cstdio>

#include "balancer/tcp_front.hpp"
#include "balancer/udp_front.hpp"
#include "balancer/upstream_pool.hpp"
#include "dns/policy.hpp"
#include "net/sockets.hpp"

namespace dp::balancer {

namespace {
void log_line(const std::string& s) { std::fprintf(stderr, "domain-park-balancer: %s\n", s.c_str()); }

uint32_t share(uint32_t total, unsigned threads) { return std::max<uint32_t>(1, (total + threads - 1) / threads); }
}  // namespace

uint64_t client_fd_budget(const BalancerConfig& c) {
    // Descriptors the process keeps for itself: stdio, loops, signals, the metrics endpoint, and
    // per thread its UDP and TCP sockets and its connections to every worker.
    const uint64_t threads = std::max<uint32_t>(1, c.threads);
    const uint64_t per_thread = 2 * c.listen.size() + uint64_t(c.workers.size()) * c.upstream_max_connections + 8;
    const uint64_t reserved = 64 + c.serving.metrics_threads + threads * per_thread;
    const uint64_t fds = net::raise_fd_limit();
    return fds > reserved + threads ? (fds - reserved) / threads : 2;
}

BalancerConfig thread_share(const BalancerConfig& c, unsigned threads) {
    BalancerConfig t = c;
    if (threads <= 1) return t;
    t.max_inflight = share(c.max_inflight, threads);
    t.serving.tcp_max_connections = share(c.serving.tcp_max_connections, threads);
    t.serving.tcp_max_input_bytes = std::max<uint64_t>(65536, c.serving.tcp_max_input_bytes / threads);
    t.serving.tcp_max_output_bytes = std::max<uint64_t>(65536, c.serving.tcp_max_output_bytes / threads);
    if (c.cache.max_entries) {
        t.cache.max_entries = share(static_cast<uint32_t>(c.cache.max_entries), threads);
        t.cache.max_bytes = share(static_cast<uint32_t>(std::min<size_t>(c.cache.max_bytes, 0xFFFFFFFFu)), threads);
    }
    // A client spreads its queries over the threads by source port: each thread lets through
    // its share of the rate (and keeps its share of the table).
    RateLimitSettings& r = t.rate_limit;
    auto split = [&](uint32_t& v) {
        if (v) v = share(v, threads);
    };
    split(r.requests_per_second);
    split(r.requests_burst);
    split(r.responses_per_second);
    split(r.nodata_per_second);
    split(r.nxdomains_per_second);
    split(r.errors_per_second);
    r.max_entries = std::max<size_t>(8, r.max_entries / threads);
    return t;
}

Engine::Engine(unsigned index, const BalancerConfig& config) : index_(index) {
    uv_loop_init(&loop_);
    ctx_.loop = &loop_;
    ctx_.config = thread_share(config, config.threads);
    ctx_.worker_stats = &worker_stats_;
    cache_ = std::make_unique<AnswerCache>(ctx_.config.cache);
    requests_ = std::make_unique<RequestLimiter>(ctx_.config.rate_limit, rate_stats_);
    responses_ = std::make_unique<ResponseLimiter>(ctx_.config.rate_limit, rate_stats_);
    ctx_.cache = cache_.get();
    ctx_.cookies = dns::make_cookies(ctx_.config.cookies);
    ctx_.requests = requests_.get();
    ctx_.responses = responses_.get();
    load_suffix_list();
}

void Engine::load_suffix_list() {
    if (!responses_->enabled()) {
        responses_->set_suffix_list(nullptr);
        psl_.reset();
        return;
    }
    try {
        auto next = dns::load_suffix_list(ctx_.config.psl);
        responses_->set_suffix_list(next.get());
        psl_ = std::move(next);
    } catch (const std::exception& e) {
        // Validated by the main thread before the reload was posted; keep what there is.
        log_line("thread " + std::to_string(index_) + ": " + e.what());
    }
}

Engine::~Engine() {
    // Only reached when start-up failed before the loop ran; a running engine ends the process.
    if (thread_.joinable()) thread_.join();
}

bool Engine::open(std::string& error) {
    BalancerConfig& c = ctx_.config;
    pool_ = std::make_unique<UpstreamPool>(&loop_, ctx_);
    std::vector<std::pair<std::string, uint16_t>> addrs;
    for (const auto& l : c.listen) {
        std::string host, err;
        uint16_t port = 0;
        net::parse_host_port(l, host, port, err);  // validated by load_config
        addrs.emplace_back(host, port);
    }
    if (c.serving.udp) {
        for (const auto& [host, port] : addrs) {
            auto u = std::make_unique<UdpFront>(&loop_, ctx_, *pool_, host, port);
            if (!u->start(error)) return false;
            udp_.push_back(std::move(u));
        }
    }
    if (c.serving.tcp) {
        tcp_ = std::make_unique<TcpFront>(&loop_, ctx_, *pool_, client_fd_budget(c));
        if (!tcp_->start(addrs, error)) return false;
    }
    // Flush order: queries to the workers first, then answers to the clients.
    ctx_.flushables.push_back(pool_.get());
    for (auto& u : udp_) ctx_.flushables.push_back(u.get());
    if (tcp_) ctx_.flushables.push_back(tcp_.get());
    pool_->start();
    // Everything one loop iteration produced goes out once: after polling (check) and before
    // the loop waits again (prepare: what timers produced).
    uv_prepare_init(&loop_, &prepare_);
    prepare_.data = this;
    uv_prepare_start(&prepare_, [](uv_prepare_t* p) { static_cast<Engine*>(p->data)->ctx_.flush_all(); });
    uv_check_init(&loop_, &check_);
    check_.data = this;
    uv_check_start(&check_, [](uv_check_t* k) { static_cast<Engine*>(k->data)->ctx_.flush_all(); });
    uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));
    uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
    // Expired entries are also dropped when met; this reclaims the ones never asked again.
    uv_timer_init(&loop_, &cache_sweeper_);
    cache_sweeper_.data = this;
    uv_timer_start(
        &cache_sweeper_,
        [](uv_timer_t* t) {
            auto* e = static_cast<Engine*>(t->data);
            e->cache_->sweep(uv_now(&e->loop_), 4096);
        },
        1000, 1000);

    uv_async_init(&loop_, &command_, [](uv_async_t* a) { static_cast<Engine*>(a->data)->on_command(); });
    command_.data = this;
    return true;
}

void Engine::start() {
    thread_ = std::thread([this] { run(); });
}

void Engine::run() {
    uv_run(&loop_, UV_RUN_DEFAULT);
}

void Engine::post_reload(const BalancerConfig& config) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        pending_config_ = config;
    }
    uv_async_send(&command_);
}

void Engine::post_stop() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        pending_stop_ = true;
    }
    uv_async_send(&command_);
}

bool Engine::join() {
    if (thread_.joinable()) thread_.join();
    return drained_;
}

void Engine::on_command() {
    std::optional<BalancerConfig> next;
    bool stop_now = false;
    {
        std::lock_guard<std::mutex> lock(mu_);
        next.swap(pending_config_);
        stop_now = pending_stop_;
    }
    if (next) reload(*next);
    if (stop_now) stop();
}

// The main thread has already put the running values back into the settings that change only
// on restart, so this thread's share of the new record can replace its own.
void Engine::reload(const BalancerConfig& full) {
    ctx_.config = thread_share(full, full.threads);
    const BalancerConfig& c = ctx_.config;
    // A reload empties the cache, so that answers from changed workers show at once.
    cache_->clear();
    cache_->reconfigure(c.cache);
    requests_->reconfigure(c.rate_limit);
    responses_->reconfigure(c.rate_limit);
    load_suffix_list();
    ctx_.cookies = dns::make_cookies(c.cookies);  // validated by the main thread before the reload was posted
    pool_->reconfigure();
    if (tcp_) tcp_->reconfigure();
    ctx_.flush_all();
}

// Stop reading new queries, answer the ones in flight (bounded by shutdown_grace), close
// client connections with FIN, then end the loop.
void Engine::stop() {
    if (stopping_) return;
    stopping_ = true;
    for (auto& u : udp_) u->stop();
    if (tcp_) tcp_->shutdown();
    ctx_.flush_all();
    drain_deadline_ms_ = uv_now(&loop_) + ctx_.config.serving.shutdown_grace_ms;
    uv_timer_init(&loop_, &drain_timer_);
    drain_timer_.data = this;
    uv_timer_start(&drain_timer_, [](uv_timer_t* t) { static_cast<Engine*>(t->data)->check_drained(); }, 0, 20);
}

void Engine::check_drained() {
    const bool idle = pool_->inflight() == 0 && (!tcp_ || tcp_->open_connections() == 0);
    if (!idle && uv_now(&loop_) < drain_deadline_ms_) return;
    ctx_.flush_all();
    drained_ = idle;
    if (!idle) log_line("thread " + std::to_string(index_) + ": shutdown_grace passed with queries or connections left");
    // Handles stay registered; the process ends right after every thread returns.
    uv_stop(&loop_);
}

void Engine::register_metrics(net::MetricsRegistry& r) const {
    ctx_.metrics.register_all(r);
    worker_stats_.register_all(r);
    register_cache_metrics(r, cache_->stats());
    register_rate_limit_metrics(r, rate_stats_);
}

}  // namespace dp::balancer
