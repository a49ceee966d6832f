// TCP transport (RFC 7766, RFC 9210): long-lived connections carrying many pipelined
// queries; answers to one read are coalesced into one write. An idle connection holds
// only its libuv handle and list links; buffers exist only while bytes are pending.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "net/conn_list.hpp"
#include "net/dns_stream.hpp"
#include "worker/worker_context.hpp"

namespace dp::worker {

class TcpServer;

struct OutQueue;

struct Conn {
    uv_tcp_t handle;  // handle.data points back here
    Conn* prev = nullptr;
    Conn* next = nullptr;
    uint64_t stamp_ms = 0;  // last activity; for closing connections, the close deadline
    net::StreamBuffer in;   // unconsumed input: a split message, or input held while paused
    OutQueue* out = nullptr;  // answers the kernel has not taken yet
    uint8_t state = 0;
    bool paused = false;
    bool eof = false;
};

using ConnList = net::ConnList<Conn>;

class TcpServer {
public:
    TcpServer(uv_loop_t* loop, WorkerContext& ctx);
    bool start(std::string& error);
    // Stops accepting, flushes and closes every connection; calls `done` when all are gone
    // or the grace period ends.
    void shutdown(void (*done)(void*), void* arg);
    size_t open_connections() const { return active_.size + closing_.size; }

private:
    friend struct TcpCallbacks;

    void on_connection();
    void on_read(Conn* c, ssize_t nread, const uv_buf_t* buf);
    size_t process(Conn* c, const uint8_t* p, size_t n);
    void append_answer(Conn* c, const uint8_t* query, size_t len);
    void flush(Conn* c);
    void on_write_done(Conn* c, int status);
    void begin_close(Conn* c, CloseReason why);
    void finish_close(Conn* c);
    void hard_close(Conn* c);
    void sweep();
    void touch(Conn* c);
    size_t pending(const Conn* c) const;
    void check_shutdown_done();
    uint64_t now_ms() const { return uv_now(loop_); }

    uv_loop_t* loop_;
    WorkerContext& ctx_;
    uv_tcp_t listener_{};
    bool listening_ = false;
    uv_timer_t sweeper_{};
    ConnList active_;
    ConnList closing_;  // FIN sent, waiting for the peer's
    size_t max_connections_ = 0;
    uint16_t keepalive_100ms_ = 0;

    // Shared by all connections: input of one read and the answers built from it.
    static constexpr size_t kReadSize = 64 * 1024;
    static constexpr size_t kOutSize = 256 * 1024;
    std::vector<uint8_t> read_buf_;
    std::vector<uint8_t> out_buf_;
    size_t out_len_ = 0;
    Conn* out_owner_ = nullptr;
    uint64_t batch_start_ns_ = 0;
    uint64_t batch_queries_ = 0;

    bool shutting_down_ = false;
    void (*shutdown_done_)(void*) = nullptr;
    void* shutdown_arg_ = nullptr;
    uint64_t shutdown_deadline_ms_ = 0;
};

}  // namespace dp::worker
