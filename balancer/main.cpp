// domain-park-balancer: one process, one libuv loop, one thread on the query path.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "balancer/balancer_config.hpp"
#include "balancer/balancer_context.hpp"
#include "balancer/tcp_front.hpp"
#include "balancer/udp_front.hpp"
#include "balancer/upstream_pool.hpp"
#include "dns/policy.hpp"
#include "net/metrics.hpp"
#include "net/sockets.hpp"

#ifndef DOMAIN_PARK_VERSION
#define DOMAIN_PARK_VERSION "dev"
#endif

namespace {

using namespace dp::balancer;

void log_line(const std::string& s) { std::fprintf(stderr, "domain-park-balancer: %s\n", s.c_str()); }

struct App {
    int argc;
    char** argv;
    uv_loop_t* loop = uv_default_loop();
    BalancerContext ctx;
    std::shared_ptr<MetricsExport> exporter;
    std::unique_ptr<UpstreamPool> pool;
    std::vector<std::unique_ptr<UdpFront>> udp;
    std::unique_ptr<TcpFront> tcp;
    std::unique_ptr<prometheus::Exposer> exposer;
    uv_signal_t sighup{}, sigterm{}, sigint{};
    uv_timer_t drain_timer{};
    uint64_t drain_deadline_ms = 0;
    bool stopping = false;

    void reload() {
        BalancerConfig next;
        try {
            load_config(argc, argv, next);
        } catch (const std::exception& e) {
            ctx.metrics.reloads_failed.inc();
            log_line(std::string("reload failed, keeping the running configuration: ") + e.what());
            return;
        }
        BalancerConfig& c = ctx.config;
        if (next.listen != c.listen || next.udp != c.udp || next.tcp != c.tcp || next.metrics != c.metrics ||
            next.max_inflight != c.max_inflight || next.upstream_connections != c.upstream_connections ||
            next.upstream_max_outstanding != c.upstream_max_outstanding || next.udp_rcvbuf != c.udp_rcvbuf ||
            next.tcp_max_connections != c.tcp_max_connections || next.tcp_backlog != c.tcp_backlog)
            log_line("reload: listen/metrics addresses, max_inflight, upstream_connections, "
                     "upstream_max_outstanding and socket sizes change only on restart; kept the old ones");
        c.workers = next.workers;
        c.deadline_ms = next.deadline_ms;
        c.attempt_timeout_ms = next.attempt_timeout_ms;
        c.max_retries = next.max_retries;
        c.deadline_action = next.deadline_action;
        c.health_failures = next.health_failures;
        c.health_backoff_min_ms = next.health_backoff_min_ms;
        c.health_backoff_max_ms = next.health_backoff_max_ms;
        c.tcp_idle_timeout_ms = next.tcp_idle_timeout_ms;
        c.tcp_max_pending_bytes = next.tcp_max_pending_bytes;
        c.tcp_max_queries_per_connection = next.tcp_max_queries_per_connection;
        c.tcp_close_grace_ms = next.tcp_close_grace_ms;
        c.shutdown_grace_ms = next.shutdown_grace_ms;
        pool->reconfigure();
        ctx.flush_all();
        ctx.metrics.reloads_ok.inc();
        log_line("reloaded configuration: " + std::to_string(c.workers.size()) + " worker(s)");
    }

    // SIGTERM: stop reading new queries, answer the ones in flight (bounded by shutdown_grace),
    // close client connections with FIN, exit 0.
    void stop() {
        if (stopping) return;
        stopping = true;
        log_line("stopping: draining queries in flight and connections");
        for (auto& u : udp) u->stop();
        if (tcp) tcp->shutdown();
        ctx.flush_all();
        drain_deadline_ms = uv_now(loop) + ctx.config.shutdown_grace_ms;
        uv_timer_init(loop, &drain_timer);
        drain_timer.data = this;
        uv_timer_start(&drain_timer, [](uv_timer_t* t) { static_cast<App*>(t->data)->check_drained(); }, 0, 20);
    }

    void check_drained() {
        const bool idle = pool->inflight() == 0 && (!tcp || tcp->open_connections() == 0);
        if (!idle && uv_now(loop) < drain_deadline_ms) return;
        ctx.flush_all();
        log_line(idle ? "stopped" : "stopped (shutdown_grace passed with queries or connections left)");
        std::fflush(stderr);
        // Handles are still registered with the loop; the process is ending, so skip the
        // destructors rather than tear the loop down piece by piece.
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
    BalancerContext& ctx = app->ctx;
    ctx.loop = app->loop;
    try {
        switch (load_config(argc, argv, ctx.config)) {
            case CliAction::Help: std::fputs(usage(), stdout); return 0;
            case CliAction::Version: std::printf("domain-park-balancer %s\n", DOMAIN_PARK_VERSION); return 0;
            case CliAction::Run: break;
        }
    } catch (const std::exception& e) {
        log_line(e.what());
        return 2;
    }
    if (ctx.config.check_only) {
        std::printf("configuration is valid\n");
        return 0;
    }

    app->exporter = std::make_shared<MetricsExport>(ctx.metrics);
    ctx.exporter = app->exporter.get();
    app->pool = std::make_unique<UpstreamPool>(app->loop, ctx);

    std::vector<std::pair<std::string, uint16_t>> addrs;
    for (const auto& l : ctx.config.listen) {
        std::string host, err;
        uint16_t port = 0;
        dp::net::parse_host_port(l, host, port, err);  // validated by load_config
        addrs.emplace_back(host, port);
    }
    std::string error;
    if (ctx.config.udp) {
        for (const auto& [host, port] : addrs) {
            auto u = std::make_unique<UdpFront>(app->loop, ctx, *app->pool, host, port);
            if (!u->start(error)) {
                log_line(error);
                return 2;
            }
            app->udp.push_back(std::move(u));
        }
    }
    if (ctx.config.tcp) {
        app->tcp = std::make_unique<TcpFront>(app->loop, ctx, *app->pool);
        if (!app->tcp->start(addrs, error)) {
            log_line(error);
            return 2;
        }
    }
    // Flush order: queries to the workers first, then answers to the clients.
    ctx.flushables.push_back(app->pool.get());
    for (auto& u : app->udp) ctx.flushables.push_back(u.get());
    if (app->tcp) ctx.flushables.push_back(app->tcp.get());

    if (!ctx.config.metrics.empty()) {
        try {
            app->exposer = dp::net::serve_metrics(ctx.config.metrics, std::make_shared<dp::net::MetricsRegistry>());
            app->exposer->RegisterCollectable(app->exporter);
        } catch (const std::exception& e) {
            log_line(e.what());
            return 2;
        }
    }
    app->pool->start();

    uv_signal_init(app->loop, &app->sighup);
    uv_signal_start(&app->sighup, [](uv_signal_t*, int) { g_app->reload(); }, SIGHUP);
    uv_signal_init(app->loop, &app->sigterm);
    uv_signal_start(&app->sigterm, [](uv_signal_t*, int) { g_app->stop(); }, SIGTERM);
    uv_signal_init(app->loop, &app->sigint);
    uv_signal_start(&app->sigint, [](uv_signal_t*, int) { g_app->stop(); }, SIGINT);

    std::string listen;
    for (const auto& l : ctx.config.listen) listen += (listen.empty() ? "" : " ") + l;
    std::string workers;
    for (const auto& w : ctx.config.workers) workers += (workers.empty() ? "" : " ") + w;
    log_line("serving " + std::string(ctx.config.udp ? "udp" : "") + (ctx.config.udp && ctx.config.tcp ? "+" : "") +
             (ctx.config.tcp ? "tcp" : "") + " on " + listen + "; workers " + workers +
             (ctx.config.metrics.empty() ? "" : "; metrics on " + ctx.config.metrics));
    uv_run(app->loop, UV_RUN_DEFAULT);
    app.release();
    std::_Exit(0);
}
