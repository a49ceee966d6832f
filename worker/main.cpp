// domain-park-worker: one process, one libuv loop, one thread on the query path.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "net/metrics.hpp"
#include "net/sockets.hpp"
#include "net/systemd_notify.hpp"
#include "worker/tcp_server.hpp"
#include "worker/udp_server.hpp"
#include "worker/worker_config.hpp"
#include "worker/worker_context.hpp"

#ifndef DOMAIN_PARK_VERSION
#define DOMAIN_PARK_VERSION "dev"
#endif

namespace {

using namespace dp::worker;
using dp::config::CliAction;

void log_line(const std::string& s) { std::fprintf(stderr, "domain-park-worker: %s\n", s.c_str()); }

std::string joined(const std::vector<std::string>& v) {
    std::string r;
    for (const auto& s : v) {
        if (!r.empty()) r += ", ";
        r += s;
    }
    return r;
}

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
    uv_timer_t drain{};
    uint64_t drain_deadline_ms = 0;
    bool stopping = false;
    std::string status;  // the "serving ..." line, also systemd's STATUS=

    // SIGHUP: the file and flags again. Everything the schema marks live is applied (a new answer
    // policy, new TCP limits, re-derived values); what changes only on restart keeps its running
    // value, and the log line and a gauge say so.
    void reload() {
        WorkerConfig next;
        dp::config::Cli cli;
        try {
            load_config(argc, argv, next, cli);
            auto policy = std::make_unique<dp::dns::Policy>(next.policy);
            const std::vector<std::string> kept = worker_schema().keep_restart_only(next, ctx.config);
            ctx.policy = std::move(policy);
            ctx.config = next;
            if (tcp) tcp->reconfigure();
            ctx.metrics.reloads_ok.inc();
            ctx.metrics.restart_required.set(kept.empty() ? 0 : 1);
            log_line("reloaded configuration" +
                     (kept.empty() ? std::string()
                                   : "; changed settings that apply only on restart kept their running values: " +
                                         joined(kept)));
        } catch (const std::exception& e) {
            ctx.metrics.reloads_failed.inc();
            log_line(std::string("reload failed, keeping the running configuration: ") + e.what());
        }
    }

    // SIGTERM: stop reading, answer what has arrived (bounded by shutdown_grace), close with FIN.
    void stop() {
        if (stopping) return;
        stopping = true;
        dp::net::notify_stopping();
        log_line("stopping: draining connections");
        if (udp) udp->stop();
        if (tcp) tcp->shutdown();
        drain_deadline_ms = uv_now(loop) + ctx.config.serving.shutdown_grace_ms;
        uv_timer_init(loop, &drain);
        drain.data = this;
        uv_timer_start(&drain, [](uv_timer_t* t) { static_cast<App*>(t->data)->check_drained(); }, 0, 20);
    }

    void check_drained() {
        const bool idle = !tcp || tcp->open_connections() == 0;
        if (!idle && uv_now(loop) < drain_deadline_ms) return;
        if (!idle) log_line("shutdown_grace passed with connections left");
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
    dp::config::Cli cli;
    try {
        switch (load_config(argc, argv, ctx.config, cli)) {
            case CliAction::Help: std::fputs(usage().c_str(), stdout); return 0;
            case CliAction::Version: std::printf("domain-park-worker %s\n", DOMAIN_PARK_VERSION); return 0;
            case CliAction::SettingsTable: std::fputs(worker_schema().markdown().c_str(), stdout); return 0;
            case CliAction::SettingsJson: std::fputs(worker_schema().json().c_str(), stdout); return 0;
            case CliAction::Run: break;
        }
        ctx.policy = std::make_unique<dp::dns::Policy>(ctx.config.policy);
    } catch (const std::exception& e) {
        log_line(e.what());
        return 2;
    }
    if (cli.check_only) {
        std::printf("configuration is valid\n");
        return 0;
    }

    const auto& c = ctx.config;
    std::string error;
    if (c.serving.udp) {
        app->udp = std::make_unique<UdpServer>(app->loop, ctx);
        if (!app->udp->start(error)) {
            log_line(error);
            return 2;
        }
    }
    if (c.serving.tcp) {
        app->tcp = std::make_unique<TcpServer>(app->loop, ctx);
        if (!app->tcp->start(error)) {
            log_line(error);
            return 2;
        }
    }
    std::string metrics_at;
    if (!c.serving.metrics.empty()) {
        app->registry = std::make_shared<dp::net::MetricsRegistry>();
        ctx.metrics.register_all(*app->registry);
        try {
            app->exposer = dp::net::serve_metrics(c.serving.metrics, app->registry, c.serving.metrics_threads,
                                                  c.serving.metrics_timeout_ms, metrics_at);
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

    app->status = "serving " + std::string(c.serving.udp ? "udp" : "") + (c.serving.udp && c.serving.tcp ? "+" : "") +
                  (c.serving.tcp ? "tcp" : "") + " on " + dp::net::format_host_port(c.host, c.port) +
                  (metrics_at.empty() ? "" : ", metrics on " + metrics_at) +
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
