// domain-park-balancer: `threads` query threads (each its own libuv loop, see engine.hpp)
// and the main thread, which handles signals.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "balancer/balancer_config.hpp"
#include "balancer/engine.hpp"
#include "dns/policy.hpp"
#include "net/metrics.hpp"
#include "net/systemd_notify.hpp"
#include "net/sockets.hpp"

#ifndef DOMAIN_PARK_VERSION
#define DOMAIN_PARK_VERSION "dev"
#endif

namespace {

using namespace dp::balancer;

void log_line(const std::string& s) { std::fprintf(stderr, "domain-park-balancer: %s\n", s.c_str()); }

// What only loading can tell: the Public Suffix List response rate limiting keys answers on.
void validate(const BalancerConfig& c) {
    if (ResponseLimiter::enabled_by(c.rate_limit)) dp::dns::load_suffix_list(c.psl);
}

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

    // SIGHUP: the file and flags again. Everything the schema marks live goes to every thread
    // (each takes its share and re-derives what depends on it); what changes only on restart
    // keeps its running value, and the log line and a gauge say so.
    void reload() {
        BalancerConfig next;
        dp::config::Cli cli;
        try {
            load_config(argc, argv, next, cli);
            validate(next);
        } catch (const std::exception& e) {
            metrics().reloads_failed.inc();
            log_line(std::string("reload failed, keeping the running configuration: ") + e.what());
            return;
        }
        const std::vector<std::string> kept = balancer_schema().keep_restart_only(next, config);
        config = next;
        for (auto& e : engines) e->post_reload(config);
        metrics().reloads_ok.inc();
        metrics().restart_required.set(kept.empty() ? 0 : 1);
        std::string line = "reloaded configuration: " + std::to_string(config.workers.size()) + " worker(s)";
        if (!kept.empty()) {
            line += "; changed settings that apply only on restart kept their running values:";
            for (const auto& k : kept) line.append(" ").append(k);
        }
        log_line(line);
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
    dp::config::Cli cli;
    try {
        switch (load_config(argc, argv, app->config, cli)) {
            case dp::config::CliAction::Help: std::fputs(usage().c_str(), stdout); return 0;
            case dp::config::CliAction::Version: std::printf("domain-park-balancer %s\n", DOMAIN_PARK_VERSION); return 0;
            case dp::config::CliAction::SettingsTable:
                std::fputs(balancer_schema().markdown().c_str(), stdout);
                return 0;
            case dp::config::CliAction::SettingsJson: std::fputs(balancer_schema().json().c_str(), stdout); return 0;
            case dp::config::CliAction::Run: break;
        }
        validate(app->config);
    } catch (const std::exception& e) {
        log_line(e.what());
        return 2;
    }
    const BalancerConfig& config = app->config;
    if (cli.check_only) {
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
    std::string metrics_at;
    if (!config.serving.metrics.empty()) {
        try {
            app->exposer = dp::net::serve_metrics(config.serving.metrics, std::make_shared<dp::net::MetricsRegistry>(),
                                                  config.serving.metrics_threads, config.serving.metrics_timeout_ms,
                                                  metrics_at);
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

    std::string listen, workers;
    for (const auto& l : config.listen) listen.append(listen.empty() ? "" : " ").append(l);
    for (const auto& w : config.workers) workers.append(workers.empty() ? "" : " ").append(w);
    const auto& sv = config.serving;
    app->status = "serving " + std::string(sv.udp ? "udp" : "") + (sv.udp && sv.tcp ? "+" : "") + (sv.tcp ? "tcp" : "") +
                  " on " + listen + " with " + std::to_string(config.threads) + " thread(s); workers " + workers +
                  (metrics_at.empty() ? "" : "; metrics on " + metrics_at);
    log_line(app->status);
    dp::net::notify_ready(app->status);  // every socket is bound; the loop runs next
    uv_run(app->loop, UV_RUN_DEFAULT);
    app.release();
    std::_Exit(0);
}
