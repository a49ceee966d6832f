// Client-facing TCP: the shared connection engine (net/tcp_engine.hpp) with the balancer's
// handler. A query is answered at once from the cache (straight into the engine's staging
// buffer, written with the rest of that read's answers) or goes to a worker and is answered
// when the worker's answer arrives (RFC 7766 6.2.1.1: in any order), collected per connection
// and written once per loop iteration. The engine bounds what a client may hold: unanswered
// queries (tcp_max_queries_per_connection), unsent answers, input, time.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "balancer/balancer_context.hpp"
#include "balancer/upstream_pool.hpp"
#include "net/uv_tcp.hpp"

namespace dp::balancer {

class TcpFront : public Front, public Flushable, public net::TcpHandler {
public:
    TcpFront(uv_loop_t* loop, BalancerContext& ctx, UpstreamPool& pool, uint64_t fd_budget);
    // Binds and listens on every address; false with `error` set on failure.
    bool start(const std::vector<std::pair<std::string, uint16_t>>& addrs, std::string& error);
    // ctx.config again (a reload): limits, timeouts, the keepalive value.
    void reconfigure();
    // Stops accepting and closes every connection once its answers are out.
    void shutdown() { server_.shutdown(); }
    size_t open_connections() const { return server_.open_connections(); }

    void deliver(Pending& p, const uint8_t* answer, size_t len) override;
    void forget(Pending& p) override;
    void flush() override { server_.engine().flush(); }
    void on_message(net::Conn& c, const uint8_t* msg, size_t len) override;

private:
    net::TcpLimits limits() const;
    // Writes an answer (any ID; the client's goes in, and the client's cookie when it sent one)
    // to c; true when it was taken.
    bool answer(net::Conn& c, const uint8_t* msg, size_t len, uint16_t id, bool keepalive,
                const dns::ClientCookie& cookie);

    BalancerContext& ctx_;
    UpstreamPool& pool_;
    uint64_t fd_budget_;
    net::TcpServer server_;
};

}  // namespace dp::balancer
