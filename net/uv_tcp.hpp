// TCP on libuv: a Stream over a uv_tcp_t (client connections and the balancer's connections to
// its workers alike), the listener that accepts client connections into a TcpEngine, and
// TcpServer, which ties an engine, its listeners and its timers to a loop.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "net/stream.hpp"
#include "net/tcp_engine.hpp"

namespace dp::net {

class UvTcpStream : public Stream {
public:
    // A stream that is not connected yet (connect() it), or, with `fd`, an accepted socket.
    // `read_buf` (shared by the streams of one loop) receives every read.
    UvTcpStream(uv_loop_t* loop, uint8_t* read_buf, size_t read_size, int fd = -1);
    ~UvTcpStream() override;

    bool ok() const { return ok_; }
    // Gives up a stream that never became a connection (frees it once libuv is done with it).
    void abandon();
    // Starts connecting; owner->on_connected follows (also when closed meanwhile).
    int connect(const sockaddr* addr);
    int try_write(const uint8_t* p, size_t n) override;
    int write(const uint8_t* p, size_t n) override;
    void read(bool on) override;
    int shutdown() override;
    void close() override;

private:
    friend struct UvTcpCallbacks;
    uv_tcp_t handle_{};
    uv_write_t* write_req_ = nullptr;  // allocated on first need: most connections never wait to write
    uv_connect_t* connect_req_ = nullptr;
    uint8_t* read_buf_;
    size_t read_size_;
    bool ok_ = true;
    bool reading_ = false;
    bool closing_ = false;
};

// What an outgoing stream reports beyond StreamOwner (the balancer's worker connections).
class ConnectOwner : public StreamOwner {
public:
    virtual void on_connected(Stream& s, int status) = 0;
};

// Accepts connections on one bound socket into an engine. Accepts itself (accept4 on libuv's
// readiness) so that descriptor exhaustion is handled here: at EMFILE/ENFILE one descriptor kept
// in reserve is given up to accept and close the waiting connection (the client sees a clean
// close rather than a hang), closing connections give up theirs, it is counted, and when even
// the reserve cannot be had back, accepting pauses for a moment instead of spinning.
class TcpListener {
public:
    TcpListener(uv_loop_t* loop, TcpEngine& engine, uint8_t* read_buf, size_t read_size);
    ~TcpListener();
    // Binds ADDR:PORT and listens; false with `error` naming the address.
    bool open(const std::string& host, uint16_t port, bool reuseport, int backlog, std::string& error);
    void close();

private:
    friend struct UvTcpCallbacks;
    void on_readable();
    void on_fd_limit();

    uv_loop_t* loop_;
    TcpEngine& engine_;
    uint8_t* read_buf_;
    size_t read_size_;
    int fd_ = -1;
    int reserve_fd_ = -1;
    uv_poll_t* poll_ = nullptr;
    uv_timer_t* pause_ = nullptr;
};

// An engine with its listeners, its sweep timer and its once-per-iteration flush on a loop.
class TcpServer : public Clock {
public:
    static constexpr size_t kReadSize = 64 * 1024;

    // `after_iteration` runs once per loop iteration, before the loop waits and after it
    // polled (default: the engine's flush); a program with more to flush passes its own.
    TcpServer(uv_loop_t* loop, TcpHandler& handler, TcpStats& stats, const TcpLimits& limits,
              std::function<void()> after_iteration = {});
    ~TcpServer() override;
    bool listen(const std::string& host, uint16_t port, bool reuseport, int backlog, std::string& error);
    void reconfigure(const TcpLimits& limits);
    // Stops accepting and closes every connection once its answers are out.
    void shutdown();
    size_t open_connections() const { return engine_.open_connections(); }
    TcpEngine& engine() { return engine_; }
    uint64_t now_ms() const override { return uv_now(loop_); }

private:
    friend struct UvTcpCallbacks;
    void restart_timer();

    uv_loop_t* loop_;
    std::vector<uint8_t> read_buf_;
    TcpEngine engine_;
    std::vector<std::unique_ptr<TcpListener>> listeners_;
    std::function<void()> after_iteration_;
    uv_timer_t* sweeper_;
    uv_prepare_t* prepare_;
    uv_check_t* check_;
};

// Milliseconds between two sweeps for these limits (a tenth of the shortest timeout, 50-1000).
uint64_t sweep_interval_ms(const TcpLimits& l);

}  // namespace dp::net
