// The worker's TCP side: the shared connection engine (net/tcp_engine.hpp) with a handler that
// answers every query at once, straight into the engine's staging buffer, so the answers to
// everything one read delivered go out in one write with no copy.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include "net/uv_tcp.hpp"
#include "worker/worker_context.hpp"

namespace dp::worker {

class TcpServer : public net::TcpHandler {
public:
    TcpServer(uv_loop_t* loop, WorkerContext& ctx);
    bool start(std::string& error);
    // Takes ctx.config's serving settings again (a reload): limits, timeouts, keepalive value.
    void reconfigure();
    // Stops accepting and closes every connection once its answers are out.
    void shutdown() { server_.shutdown(); }
    size_t open_connections() const { return server_.open_connections(); }

    void on_message(net::Conn& c, const uint8_t* msg, size_t len) override;
    void after_read(net::Conn& c) override;

private:
    net::TcpLimits limits() const;

    WorkerContext& ctx_;
    net::TcpServer server_;
    uint16_t keepalive_100ms_ = 0;
    uint64_t batch_start_ns_ = 0;
    uint64_t batch_queries_ = 0;
};

}  // namespace dp::worker
