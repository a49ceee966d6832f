// domain-park-balancer: `threads` query threads (each its own libuv loop, see engine.hpp)
// and the main thread, which handles signals.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "balancer/balancer_config.hpp"
#include "balancer/engine.hpp"
#include "net/metrics.hpp"
#include "net/systemd_notify.hpp"
#include "net/sockets.hpp"

#ifndef DOMAIN_PARK_VERSION
#define DOMAIN_PARK_VERSION "dev"
#endif

namespace {

using namespace dp::balancer;

void log_line(const std::string& s) { std::fprintf(stderr, "domain-park-balancer: %s\n", s.c_str()); }

// The scrape side: every thread's metrics, summed by the registry.
class Export : public prometheus::Collectable {
public:
    explicit Export(const std::vector<std::unique_ptr<Engine>>& engines) : engines_(engines) {}
    std::vector<prometheus::MetricFamily> Collect() const override {
        dp::net::MetricsRegistry r;  // a scrape is rare: build it each time, in step with reloads
        for (const auto& e : engines_) e->register_metrics(r);
        return r.Collect();
    }

private:
    const std::vector<std::unique_ptr<Engine>>& engines_;
};

struct App {
    int argc;
    char** argv;
    uv_loop_t* loop = uv_default_loop();  // signals only; queries run on the engines' loops
    BalancerConfig config;
    std::vector<std::unique_ptr<Engine>> engines;
    std::shared_ptr<Export> exporter;
    std::unique_ptr<prometheus::Exposer> exposer;
    uv_signal_t sighup{}, sigterm{}, sigint{};
    bool stopping = false;
    std::string status;  // the "serving ..." line, also systemd's STATUS=

    // The reload counters live in thread 0's metrics; only this (main) thread bumps them.
    BalancerMetrics& metrics() { return engines.front()->metrics(); }

    void reload() {
        BalancerConfig next;
        try {
            load_config(argc, argv, next);
        } catch (const std::exception& e) {
            metrics().reloads_failed.inc();
            log_line(std::string("reload failed, keeping the running configuration: ") + e.what());
            return;
        }
        // The settings that change only on restart keep their running values; everything else
        // is the new file's, and each engine takes the whole record.
        bool kept = false;
        auto keep = [&](auto field) {
            if (next.*field != config.*field) {
                next.*field = config.*field;
                kept = true;
            }
        };
        keep(&BalancerConfig::listen);
        keep(&BalancerConfig::udp);
        keep(&BalancerConfig::tcp);
        keep(&BalancerConfig::metrics);
        keep(&BalancerConfig::threads);
        keep(&BalancerConfig::max_inflight);
        keep(&BalancerConfig::upstream_connections);
        keep(&BalancerConfig::upstream_max_outstanding);
        keep(&BalancerConfig::udp_rcvbuf);
        keep(&BalancerConfig::tcp_max_connections);
        keep(&BalancerConfig::tcp_backlog);
        if (kept)
            log_line("reload: listen/metrics addresses, threads, max_inflight, upstream_connections, "
                     "upstream_max_outstanding and socket sizes change only on restart; kept the old ones");
        config = next;
        for (auto& e : engines) e->post_reload(config);
        metrics().reloads_ok.inc();
        log_line("reloaded configuration: " + std::to_string(config.workers.size()) + " worker(s)");
    }

    // SIGTERM: every thread stops reading, answers what is in flight (bounded by
    // shutdown_grace) and closes its connections with FIN; then the process exits 0.
    void stop() {
        if (stopping) return;
        stopping = true;
        dp::net::notify_stopping();
        log_line("stopping: draining queries in flight and connections");
        for (auto& e : engines) e->post_stop();
        bool clean = true;
        for (auto& e : engines) clean = e->join() && clean;
        log_line(clean ? "stopped" : "stopped (shutdown_grace passed with queries or connections left)");
        std::fflush(stderr);
        // Handles are still registered with the loops; the process is ending, so skip the
        // destructors rather than tear the loops down piece by piece.
        std::_Exit(0);
    }
};

App* g_app = nullptr;

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    auto app = std::make_unique<App>();
    app->argc = argc;
    app->argv = argv;
    g_app = app.get();
    try {
        switch (load_config(argc, argv, app->config)) {
            case CliAction::Help: std::fputs(usage(), stdout); return 0;
            case CliAction::Version: std::printf("domain-park-balancer %s\n", DOMAIN_PARK_VERSION); return 0;
            case CliAction::Run: break;
        }
    } catch (const std::exception& e) {
        log_line(e.what());
        return 2;
    }
    const BalancerConfig& config = app->config;
    if (config.check_only) {
        std::printf("configuration is valid\n");
        return 0;
    }

    dp::net::raise_fd_limit();
    std::string error;
    for (unsigned i = 0; i < config.threads; ++i) {
        auto e = std::make_unique<Engine>(i, config);
        if (!e->open(error)) {
            log_line(error);
            std::_Exit(2);  // sockets of earlier threads are bound and their loops never ran
        }
        app->engines.push_back(std::move(e));
    }
    app->exporter = std::make_shared<Export>(app->engines);
    if (!config.metrics.empty()) {
        try {
            app->exposer = dp::net::serve_metrics(config.metrics, std::make_shared<dp::net::MetricsRegistry>());
            app->exposer->RegisterCollectable(app->exporter);
        } catch (const std::exception& e) {
            log_line(e.what());
            std::_Exit(2);
        }
    }

    uv_signal_init(app->loop, &app->sighup);
    uv_signal_start(
        &app->sighup, [](uv_signal_t*, int) { dp::net::notify_around_reload(g_app->status, [] { g_app->reload(); }); },
        SIGHUP);
    uv_signal_init(app->loop, &app->sigterm);
    uv_signal_start(&app->sigterm, [](uv_signal_t*, int) { g_app->stop(); }, SIGTERM);
    uv_signal_init(app->loop, &app->sigint);
    uv_signal_start(&app->sigint, [](uv_signal_t*, int) { g_app->stop(); }, SIGINT);
    // Signals are handled on this thread only (libuv's signal handler writes to this loop),
    // and the engines' threads start after the handlers are in place.
    for (auto& e : app->engines) e->start();

    std::string listen;
    for (const auto& l : config.listen) listen += (listen.empty() ? "" : " ") + l;
    std::string workers;
    for (const auto& w : config.workers) workers += (workers.empty() ? "" : " ") + w;
    app->status = "serving " + std::string(config.udp ? "udp" : "") + (config.udp && config.tcp ? "+" : "") +
                  (config.tcp ? "tcp" : "") + " on " + listen + " with " + std::to_string(config.threads) +
                  " thread(s); workers " + workers + (config.metrics.empty() ? "" : "; metrics on " + config.metrics);
    log_line(app->status);
    dp::net::notify_ready(app->status);  // every socket is bound; the loop runs next
    uv_run(app->loop, UV_RUN_DEFAULT);
    app.release();
    std::_Exit(0);
}
