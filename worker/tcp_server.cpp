#include "worker/tcp_server.hpp"

#include "net/sockets.hpp"

namespace dp::worker {

namespace {
// Descriptors the worker keeps for itself: stdio, the loop, signals, UDP, the listener, the
// metrics endpoint's threads and connections, a configuration file being read.
constexpr uint64_t kReservedFds = 64;
}  // namespace

TcpServer::TcpServer(uv_loop_t* loop, WorkerContext& ctx)
    : ctx_(ctx), server_(loop, *this, ctx.metrics.tcp, limits()) {
    keepalive_100ms_ = dns::keepalive_units(ctx_.config.serving.tcp_idle_timeout_ms);
}

net::TcpLimits TcpServer::limits() const {
    const uint64_t fds = net::raise_fd_limit();
    return net::TcpLimits::derive(ctx_.config.serving, fds > kReservedFds ? fds - kReservedFds : 2);
}

bool TcpServer::start(std::string& error) {
    const auto& c = ctx_.config;
    return server_.listen(c.host, c.port, c.reuseport, static_cast<int>(c.serving.tcp_backlog), error);
}

void TcpServer::reconfigure() {
    server_.reconfigure(limits());
    keepalive_100ms_ = dns::keepalive_units(ctx_.config.serving.tcp_idle_timeout_ms);
}

void TcpServer::on_message(net::Conn& c, const uint8_t* msg, size_t len) {
    net::TcpEngine& e = server_.engine();
    uint8_t* out = e.answer_space(c, dns::kMaxMessage);
    if (!out) return;
    if (batch_queries_ == 0) batch_start_ns_ = now_ns();
    dns::Outcome o;
    const dns::Transport t{true, keepalive_100ms_, dns::cookie_clock(), dns::ClientAddr{c.peer.octets, c.peer.len}};
    const size_t r = ctx_.policy->respond(msg, len, out, dns::kMaxMessage, t, o);
    ctx_.metrics.count(1, o);
    if (r == 0) return;
    e.answer_commit(c, r);
    ++batch_queries_;
}

void TcpServer::after_read(net::Conn&) {
    if (batch_queries_ == 0) return;
    ctx_.metrics.duration[1].observe_ns(now_ns() - batch_start_ns_, batch_queries_);
    batch_queries_ = 0;
}

}  // namespace dp::worker
