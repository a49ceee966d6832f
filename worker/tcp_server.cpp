#include "worker/tcp_server.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "net/sockets.hpp"

namespace dp::worker {

namespace {
enum State : uint8_t {
    kOpen = 0,
    kDraining,  // close decided, answers still being written; FIN follows
    kClosing,   // FIN sent; reading until the peer's FIN so unread data never causes a reset
    kClosed,    // uv_close called
};
constexpr size_t kMaxHeldInput = 64 * 1024 + 65537 + 2;  // one read plus one split message
}  // namespace

// Answers the kernel has not accepted yet: one buffer being written, one collecting more.
struct OutQueue {
    uv_write_t req{};
    uint8_t* inflight = nullptr;
    size_t inflight_len = 0;
    uint8_t* next = nullptr;
    size_t next_len = 0;
    size_t next_cap = 0;
    bool writing = false;
    ~OutQueue() {
        std::free(inflight);
        std::free(next);
    }
};

struct ConnWithServer : Conn {
    TcpServer* server;
};

static TcpServer* server_of(Conn* c) { return static_cast<ConnWithServer*>(c)->server; }

// libuv callbacks, routed to the server.
struct TcpCallbacks {
    static void on_connection(uv_stream_t* s, int status) {
        if (status < 0) return;
        static_cast<TcpServer*>(s->data)->on_connection();
    }
    static void alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
        TcpServer* s = server_of(static_cast<Conn*>(h->data));
        *buf = uv_buf_init(reinterpret_cast<char*>(s->read_buf_.data()), static_cast<unsigned>(s->read_buf_.size()));
    }
    static void read(uv_stream_t* st, ssize_t nread, const uv_buf_t* buf) {
        Conn* c = static_cast<Conn*>(st->data);
        server_of(c)->on_read(c, nread, buf);
    }
    static void write_done(uv_write_t* req, int status) {
        Conn* c = static_cast<Conn*>(req->data);
        if (status == UV_ECANCELED) return;  // the connection is closing; close_done frees everything
        server_of(c)->on_write_done(c, status);
    }
    static void shutdown_done(uv_shutdown_t* req, int status) {
        Conn* c = static_cast<Conn*>(req->data);
        delete req;
        if (status == UV_ECANCELED) return;
        TcpServer* s = server_of(c);
        if (status < 0 || c->eof || s->shutting_down_) s->hard_close(c);
    }
    static void close_done(uv_handle_t* h) {
        Conn* c = static_cast<Conn*>(h->data);
        TcpServer* s = server_of(c);
        delete c->out;
        delete static_cast<ConnWithServer*>(c);
        s->ctx_.metrics.tcp_open.add(-1);
        s->check_shutdown_done();
    }
    static void sweep(uv_timer_t* t) { static_cast<TcpServer*>(t->data)->sweep(); }
};

TcpServer::TcpServer(uv_loop_t* loop, WorkerContext& ctx)
    : loop_(loop), ctx_(ctx), read_buf_(kReadSize), out_buf_(kOutSize) {}

bool TcpServer::start(std::string& error) {
    const auto& c = ctx_.config;
    const int fd = net::bind_socket(c.host, c.port, SOCK_STREAM, c.reuseport, error);
    if (fd < 0) return false;
    uv_tcp_init(loop_, &listener_);
    listener_.data = this;
    uv_tcp_open(&listener_, fd);
    const int r = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), static_cast<int>(c.tcp_backlog),
                            TcpCallbacks::on_connection);
    if (r != 0) {
        error = "cannot listen on " + c.host + ":" + std::to_string(c.port) + "/tcp: " + uv_strerror(r);
        return false;
    }
    listening_ = true;
    // Leave room for the UDP socket, metrics, and the connections we are closing.
    const uint64_t fds = net::raise_fd_limit();
    max_connections_ = c.tcp_max_connections;
    if (fds > 128 && max_connections_ > (fds - 64) / 2 + (fds - 64) / 4)
        max_connections_ = (fds - 64) / 2 + (fds - 64) / 4;
    keepalive_100ms_ = dns::keepalive_units(c.tcp_idle_timeout_ms);
    uv_timer_init(loop_, &sweeper_);
    sweeper_.data = this;
    const uint64_t every = std::clamp<uint64_t>(c.tcp_idle_timeout_ms / 10, 50, 1000);
    uv_timer_start(&sweeper_, TcpCallbacks::sweep, every, every);
    return true;
}

size_t TcpServer::pending(const Conn* c) const {
    return c->out ? c->out->inflight_len + c->out->next_len : 0;
}

void TcpServer::touch(Conn* c) {
    c->stamp_ms = now_ms();
    if (active_.tail != c) {
        active_.remove(c);
        active_.push_back(c);
    }
}

void TcpServer::on_connection() {
    auto* c = new ConnWithServer;
    c->server = this;
    uv_tcp_init(loop_, &c->handle);
    c->handle.data = static_cast<Conn*>(c);
    if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_), reinterpret_cast<uv_stream_t*>(&c->handle)) != 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(&c->handle),
                 [](uv_handle_t* h) { delete static_cast<ConnWithServer*>(static_cast<Conn*>(h->data)); });
        return;
    }
    ctx_.metrics.tcp_accepted.inc();
    ctx_.metrics.tcp_open.add(1);
    if (active_.size >= max_connections_ && active_.head) begin_close(active_.head, CloseReason::Evicted);
    uv_tcp_nodelay(&c->handle, 1);
    c->stamp_ms = now_ms();
    active_.push_back(c);
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), TcpCallbacks::alloc, TcpCallbacks::read);
}

void TcpServer::on_read(Conn* c, ssize_t nread, const uv_buf_t* buf) {
    if (nread == 0) return;
    WorkerMetrics& m = ctx_.metrics;
    if (nread < 0) {
        if (c->state == kOpen) {
            c->eof = true;
            uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->handle));
            begin_close(c, nread == UV_EOF ? CloseReason::Peer : CloseReason::Error);
        } else if (c->state == kClosing) {
            hard_close(c);
        } else {
            c->eof = true;  // draining: close as soon as the answers are out
            uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->handle));
        }
        return;
    }
    if (c->state != kOpen) return;  // closing: read and discard until the peer's FIN
    m.bytes_in[1].inc(static_cast<uint64_t>(nread));
    touch(c);
    const auto* data = reinterpret_cast<const uint8_t*>(buf->base);
    if (!c->in.empty()) {
        if (!c->in.append(data, static_cast<size_t>(nread), kMaxHeldInput)) {
            m.tcp_oversized_input.inc();
            begin_close(c, CloseReason::Error);
            return;
        }
        const size_t used = process(c, c->in.data(), c->in.size());
        if (c->state == kOpen) c->in.consume(used);
    } else {
        const size_t used = process(c, data, static_cast<size_t>(nread));
        if (c->state == kOpen && used < static_cast<size_t>(nread) &&
            !c->in.append(data + used, static_cast<size_t>(nread) - used, kMaxHeldInput)) {
            m.tcp_oversized_input.inc();
            begin_close(c, CloseReason::Error);
        }
    }
    flush(c);
}

size_t TcpServer::process(Conn* c, const uint8_t* p, size_t n) {
    if (c->paused) return 0;
    const size_t max_pending = ctx_.config.tcp_max_pending_bytes;
    bool bad = false;
    const size_t used = net::scan_frames(p, n, bad, [&](const uint8_t* msg, size_t len) {
        append_answer(c, msg, len);
        if (c->state != kOpen) return false;  // a failed write closed it meanwhile
        if (pending(c) + out_len_ >= max_pending) {
            // The peer is not reading its answers: stop reading its queries until it does.
            c->paused = true;
            uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->handle));
            ctx_.metrics.tcp_read_paused.inc();
            return false;
        }
        return true;
    });
    if (bad) {
        ctx_.metrics.malformed[static_cast<int>(dns::Malformed::TooShort)].inc();
        flush(c);
        begin_close(c, CloseReason::BadLength);
        return n;
    }
    return used;
}

void TcpServer::append_answer(Conn* c, const uint8_t* query, size_t len) {
    // The shared buffer holds one connection's answers at a time (every callback flushes
    // before returning, so another owner here would be a bug to survive, not a case).
    if (out_len_ > 0 && out_owner_ != c) flush(out_owner_);
    if (kOutSize - out_len_ < 2 + dns::kMaxMessage) flush(c);
    if (out_len_ == 0) {
        out_owner_ = c;
        batch_start_ns_ = now_ns();
        batch_queries_ = 0;
    }
    dns::Outcome o;
    uint8_t* at = out_buf_.data() + out_len_;
    const size_t r = ctx_.policy->respond(query, len, at + 2, kOutSize - out_len_ - 2,
                                          dns::Transport{true, keepalive_100ms_}, o);
    ctx_.metrics.count(1, o);
    if (r == 0) return;
    at[0] = static_cast<uint8_t>(r >> 8);
    at[1] = static_cast<uint8_t>(r);
    out_len_ += 2 + r;
    ++batch_queries_;
}

void TcpServer::flush(Conn* c) {
    if (out_len_ == 0 || out_owner_ != c) return;
    WorkerMetrics& m = ctx_.metrics;
    const size_t len = out_len_;
    out_len_ = 0;
    out_owner_ = nullptr;
    m.bytes_out[1].inc(len);
    m.duration[1].observe_ns(now_ns() - batch_start_ns_, batch_queries_);
    if (c->state == kClosed) return;
    OutQueue* q = c->out;
    if (q && q->writing) {
        // A write is in flight: collect behind it, in order. process() keeps this below the cap.
        if (q->next_len + len > q->next_cap) {
            const size_t cap = std::max(q->next_len + len, q->next_cap * 2);
            auto* d = static_cast<uint8_t*>(std::realloc(q->next, cap));
            if (!d) {
                begin_close(c, CloseReason::Error);
                return;
            }
            q->next = d;
            q->next_cap = cap;
        }
        std::memcpy(q->next + q->next_len, out_buf_.data(), len);
        q->next_len += len;
        return;
    }
    uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(out_buf_.data()), static_cast<unsigned>(len));
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&c->handle), &b, 1);
    if (n == static_cast<int>(len)) return;
    if (n < 0 && n != UV_EAGAIN) {
        if (c->state == kOpen) {
            c->eof = true;
            begin_close(c, CloseReason::Error);
        } else {
            hard_close(c);
        }
        return;
    }
    if (n < 0) n = 0;
    if (!q) q = c->out = new OutQueue;
    q->req.data = c;
    q->inflight_len = len - static_cast<size_t>(n);
    q->inflight = static_cast<uint8_t*>(std::malloc(q->inflight_len));
    if (!q->inflight) {
        q->inflight_len = 0;
        hard_close(c);
        return;
    }
    std::memcpy(q->inflight, out_buf_.data() + n, q->inflight_len);
    uv_buf_t wb = uv_buf_init(reinterpret_cast<char*>(q->inflight), static_cast<unsigned>(q->inflight_len));
    q->writing = true;
    uv_write(&q->req, reinterpret_cast<uv_stream_t*>(&c->handle), &wb, 1, TcpCallbacks::write_done);
}

void TcpServer::on_write_done(Conn* c, int status) {
    OutQueue* q = c->out;
    std::free(q->inflight);
    q->inflight = nullptr;
    q->inflight_len = 0;
    q->writing = false;
    if (status < 0) {
        if (c->state == kOpen) ctx_.metrics.close(CloseReason::Error);
        hard_close(c);
        return;
    }
    if (q->next_len > 0) {
        std::swap(q->inflight, q->next);
        q->inflight_len = q->next_len;
        q->next_len = q->next_cap = 0;
        uv_buf_t wb = uv_buf_init(reinterpret_cast<char*>(q->inflight), static_cast<unsigned>(q->inflight_len));
        q->writing = true;
        uv_write(&q->req, reinterpret_cast<uv_stream_t*>(&c->handle), &wb, 1, TcpCallbacks::write_done);
    } else {
        delete q;  // back to holding nothing while idle
        c->out = nullptr;
    }
    if (c->state == kOpen && c->paused && pending(c) <= ctx_.config.tcp_max_pending_bytes / 2) {
        c->paused = false;
        if (!c->in.empty()) {
            const size_t used = process(c, c->in.data(), c->in.size());
            if (c->state == kOpen) c->in.consume(used);
            flush(c);
        }
        if (c->state == kOpen && !c->paused)
            uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), TcpCallbacks::alloc, TcpCallbacks::read);
    } else if (c->state == kDraining && pending(c) == 0) {
        finish_close(c);
    }
}

void TcpServer::begin_close(Conn* c, CloseReason why) {
    if (c->state != kOpen) return;
    ctx_.metrics.close(why);
    active_.remove(c);
    // `in` is not freed here: this may run while a scan is reading it (a failed write during
    // process()); unread input is ignored from now on and freed with the connection.
    c->state = kDraining;
    c->stamp_ms = now_ms() + ctx_.config.tcp_close_grace_ms;
    closing_.push_back(c);
    if (pending(c) == 0) finish_close(c);
    // Bound the connections waiting for a peer's FIN, too.
    if (closing_.size > max_connections_ && closing_.head) hard_close(closing_.head);
}

// All answers are out: close our side with a FIN, between messages.
void TcpServer::finish_close(Conn* c) {
    if (c->eof) {
        hard_close(c);  // the peer already closed its side; nothing to wait for
        return;
    }
    c->state = kClosing;
    auto* req = new uv_shutdown_t;
    req->data = c;
    if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&c->handle), TcpCallbacks::shutdown_done) != 0) {
        delete req;
        hard_close(c);
        return;
    }
    if (!shutting_down_)
        uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), TcpCallbacks::alloc, TcpCallbacks::read);
}

void TcpServer::hard_close(Conn* c) {
    if (c->state == kClosed) return;
    if (c->state == kOpen) active_.remove(c);
    else closing_.remove(c);
    c->state = kClosed;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->handle), TcpCallbacks::close_done);
}

void TcpServer::sweep() {
    const uint64_t now = now_ms();
    const uint64_t idle = ctx_.config.tcp_idle_timeout_ms;
    while (active_.head && now - active_.head->stamp_ms >= idle) begin_close(active_.head, CloseReason::Idle);
    while (closing_.head && closing_.head->stamp_ms <= now) hard_close(closing_.head);
    if (shutting_down_ && now >= shutdown_deadline_ms_) {
        while (closing_.head) hard_close(closing_.head);
    }
}

void TcpServer::shutdown(void (*done)(void*), void* arg) {
    shutting_down_ = true;
    shutdown_done_ = done;
    shutdown_arg_ = arg;
    shutdown_deadline_ms_ = now_ms() + ctx_.config.shutdown_grace_ms;
    if (listening_) {
        uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
        listening_ = false;
    }
    while (active_.head) {
        Conn* c = active_.head;
        begin_close(c, CloseReason::Shutdown);
    }
    // Connections already waiting for a peer's FIN need not wait any longer.
    for (Conn* c = closing_.head; c;) {
        Conn* next = c->next;
        if (c->state == kClosing) hard_close(c);
        c = next;
    }
    check_shutdown_done();
}

void TcpServer::check_shutdown_done() {
    if (!shutting_down_ || !shutdown_done_ || active_.size + closing_.size > 0) return;
    uv_timer_stop(&sweeper_);
    uv_close(reinterpret_cast<uv_handle_t*>(&sweeper_), nullptr);
    auto done = shutdown_done_;
    shutdown_done_ = nullptr;
    done(shutdown_arg_);
}

}  // namespace dp::worker
