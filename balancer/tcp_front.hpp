// Client-facing TCP (RFC 7766, RFC 9210), with the worker's rules: many pipelined queries per
// connection, idle timeout, a connection cap that closes the least recently active one,
// graceful close (answers out, FIN, wait for the peer's FIN), bounded buffers. Answers come
// back from the workers in any order (RFC 7766 6.2.1.1) and are coalesced per connection:
// everything one event produced for a client goes out in one write.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "balancer/balancer_context.hpp"
#include "balancer/upstream_pool.hpp"
#include "net/conn_list.hpp"
#include "net/dns_stream.hpp"

namespace dp::balancer {

class TcpFront;

struct TcpClient {
    uv_tcp_t handle{};  // handle.data points back here
    uv_write_t write_req{};
    TcpFront* front = nullptr;
    TcpClient* prev = nullptr;
    TcpClient* next = nullptr;
    uint64_t stamp_ms = 0;  // last activity; for closing connections, the close deadline
    net::StreamBuffer in;   // unconsumed input: a split message, or input held while paused
    // Answers not handed to the kernel yet (collected during an event) and the part of a
    // write the kernel has not taken. Allocated only while there is something to send.
    uint8_t* out = nullptr;
    size_t out_len = 0, out_cap = 0;
    uint8_t* inflight = nullptr;
    size_t inflight_len = 0;
    uint32_t outstanding = 0;  // queries sent to workers, not answered yet
    uint8_t state = 0;
    bool writing = false;
    bool paused = false;
    bool eof = false;
    bool dirty = false;
    bool handle_closed = false;  // freed when also outstanding == 0
};

class TcpFront : public Front, public Flushable {
public:
    TcpFront(uv_loop_t* loop, BalancerContext& ctx, UpstreamPool& pool);
    // Binds and listens on every address; false with `error` set on failure.
    bool start(const std::vector<std::pair<std::string, uint16_t>>& addrs, std::string& error);
    // Stops accepting and closes every connection once its answers are out.
    void shutdown();
    size_t open_connections() const { return active_.size + closing_.size; }

    void deliver(Pending& p, const uint8_t* answer, size_t len) override;
    void forget(Pending& p) override;
    void flush() override;

private:
    friend struct TcpFrontCallbacks;
    using List = net::ConnList<TcpClient>;

    void on_connection(uv_tcp_t* listener);
    void on_read(TcpClient* c, ssize_t nread, const uv_buf_t* buf);
    size_t process(TcpClient* c, const uint8_t* p, size_t n);
    void handle_query(TcpClient* c, const uint8_t* msg, size_t len);
    bool append(TcpClient* c, const uint8_t* msg, size_t len, uint16_t id);
    void mark_dirty(TcpClient* c);
    void write_out(TcpClient* c);
    void on_write_done(TcpClient* c, int status);
    void maybe_resume(TcpClient* c);
    void answered_one(TcpClient* c);
    void begin_close(TcpClient* c, CloseReason why);
    void finish_close(TcpClient* c);
    void hard_close(TcpClient* c);
    void on_closed(TcpClient* c);
    void maybe_free(TcpClient* c);
    void sweep();
    void touch(TcpClient* c);
    size_t pending(const TcpClient* c) const { return c->out_len + c->inflight_len; }
    bool over_limits(const TcpClient* c) const;
    uint64_t now_ms() const { return uv_now(loop_); }

    uv_loop_t* loop_;
    BalancerContext& ctx_;
    UpstreamPool& pool_;
    std::vector<uv_tcp_t*> listeners_;
    uv_timer_t sweeper_{};
    List active_;
    List closing_;  // closing: answers draining, or FIN sent and waiting for the peer's
    size_t max_connections_ = 0;
    bool shutting_down_ = false;
    std::vector<TcpClient*> dirty_;
    std::vector<TcpClient*> flushing_;
    std::vector<uint8_t> read_buf_;
};

}  // namespace dp::balancer
