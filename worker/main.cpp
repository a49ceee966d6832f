// domain-park-worker: one process, one libuv loop, one thread on the query path.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "net/metrics.hpp"
#include "net/systemd_notify.hpp"
#include "worker/tcp_server.hpp"
#include "worker/udp_server.hpp"
#include "worker/worker_config.hpp"
#include "worker/worker_context.hpp"

#ifndef DOMAIN_PARK_VERSION
#define DOMAIN_PARK_VERSION "dev"
#endif

namespace {

using dp::dns::ConfigError;
using namespace dp::worker;

void log_line(const std::string& s) { std::fprintf(stderr, "domain-park-worker: %s\n", s.c_str()); }

struct App {
    int argc;
    char** argv;
    uv_loop_t* loop = uv_default_loop();
    WorkerContext ctx;
    std::unique_ptr<UdpServer> udp;
    std::unique_ptr<TcpServer> tcp;
    std::unique_ptr<prometheus::Exposer> exposer;
    std::shared_ptr<dp::net::MetricsRegistry> registry;
    uv_signal_t sighup{}, sigterm{}, sigint{};
    bool stopping = false;
    std::string status;  // the "serving ..." line, also systemd's STATUS=

    void reload() {
        WorkerConfig next;
        try {
            load_config(argc, argv, next);
            auto policy = std::make_unique<dp::dns::Policy>(next.policy);
            if (next.host != ctx.config.host || next.port != ctx.config.port || next.udp != ctx.config.udp ||
                next.tcp != ctx.config.tcp || next.metrics != ctx.config.metrics)
                log_line("reload: listen and metrics addresses change only on restart; kept the old ones");
            ctx.policy = std::move(policy);
            ctx.config.policy = next.policy;
            ctx.config.tcp_idle_timeout_ms = next.tcp_idle_timeout_ms;
            ctx.config.tcp_max_pending_bytes = next.tcp_max_pending_bytes;
            ctx.config.tcp_close_grace_ms = next.tcp_close_grace_ms;
            ctx.config.shutdown_grace_ms = next.shutdown_grace_ms;
            ctx.metrics.reloads_ok.inc();
            log_line("reloaded configuration");
        } catch (const std::exception& e) {
            ctx.metrics.reloads_failed.inc();
            log_line(std::string("reload failed, keeping the running configuration: ") + e.what());
        }
    }

    void stop() {
        if (stopping) return;
        stopping = true;
        dp::net::notify_stopping();
        log_line("stopping: draining connections");
        if (udp) udp->stop();
        if (tcp) {
            tcp->shutdown([](void* a) { static_cast<App*>(a)->finish(); }, this);
        } else {
            finish();
        }
    }

    void finish() {
        for (uv_signal_t* s : {&sighup, &sigterm, &sigint}) uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
        uv_stop(loop);
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
    WorkerContext& ctx = app->ctx;
    try {
        switch (load_config(argc, argv, ctx.config)) {
            case CliAction::Help: std::fputs(usage(), stdout); return 0;
            case CliAction::Version: std::printf("domain-park-worker %s\n", DOMAIN_PARK_VERSION); return 0;
            case CliAction::Run: break;
        }
        ctx.policy = std::make_unique<dp::dns::Policy>(ctx.config.policy);
    } catch (const std::exception& e) {
        log_line(e.what());
        return 2;
    }
    if (ctx.config.check_only) {
        std::printf("configuration is valid\n");
        return 0;
    }

    std::string error;
    if (ctx.config.udp) {
        app->udp = std::make_unique<UdpServer>(app->loop, ctx);
        if (!app->udp->start(error)) {
            log_line(error);
            return 2;
        }
    }
    if (ctx.config.tcp) {
        app->tcp = std::make_unique<TcpServer>(app->loop, ctx);
        if (!app->tcp->start(error)) {
            log_line(error);
            return 2;
        }
    }
    if (!ctx.config.metrics.empty()) {
        app->registry = std::make_shared<dp::net::MetricsRegistry>();
        ctx.metrics.register_all(*app->registry);
        try {
            app->exposer = dp::net::serve_metrics(ctx.config.metrics, app->registry);
        } catch (const std::exception& e) {
            log_line(e.what());
            return 2;
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

    const auto& c = ctx.config;
    app->status = "serving " + std::string(c.udp ? "udp" : "") + (c.udp && c.tcp ? "+" : "") + (c.tcp ? "tcp" : "") +
                  " on " + c.host + ":" + std::to_string(c.port) + (c.metrics.empty() ? "" : ", metrics on " + c.metrics) +
                  "; public suffix list: " + ctx.policy->psl().source();
    log_line(app->status);
    dp::net::notify_ready(app->status);  // every socket is bound; the loop runs next
    uv_run(app->loop, UV_RUN_DEFAULT);
    log_line("stopped");
    // Handles owned by the servers may still be registered with the loop; the process is
    // ending, so skip the destructors rather than tear the loop down piece by piece.
    app.release();
    std::fflush(stderr);
    std::_Exit(0);
}
