#include "balancer/tcp_front.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "dns/message.hpp"
#include "dns/wire.hpp"
#include "net/sockets.hpp"

namespace dp::balancer {

namespace {
enum State : uint8_t {
    kOpen = 0,
    kDraining,  // close decided; waiting for the answers still due and for them to be written
    kClosing,   // FIN sent; reading until the peer's FIN so unread data never causes a reset
    kClosed,    // uv_close called
};
constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kMaxHeldInput = kReadSize + 65537 + 2;  // one read plus one split message
}  // namespace

struct TcpFrontCallbacks {
    static void on_connection(uv_stream_t* s, int status) {
        if (status < 0) return;
        auto* f = static_cast<TcpFront*>(s->data);
        f->on_connection(reinterpret_cast<uv_tcp_t*>(s));
        f->ctx_.flush_all();
    }
    static void alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
        TcpFront* f = static_cast<TcpClient*>(h->data)->front;
        *buf = uv_buf_init(reinterpret_cast<char*>(f->read_buf_.data()), static_cast<unsigned>(f->read_buf_.size()));
    }
    static void read(uv_stream_t* st, ssize_t nread, const uv_buf_t* buf) {
        auto* c = static_cast<TcpClient*>(st->data);
        TcpFront* f = c->front;
        f->on_read(c, nread, buf);
        f->ctx_.flush_all();
    }
    static void write_done(uv_write_t* req, int status) {
        if (status == UV_ECANCELED) return;  // closing; on_closed frees everything
        auto* c = static_cast<TcpClient*>(req->data);
        TcpFront* f = c->front;
        f->on_write_done(c, status);
        f->ctx_.flush_all();
    }
    static void shutdown_done(uv_shutdown_t* req, int status) {
        auto* c = static_cast<TcpClient*>(req->data);
        delete req;
        if (status == UV_ECANCELED) return;
        TcpFront* f = c->front;
        if (status < 0 || c->eof || f->shutting_down_) f->hard_close(c);
    }
    static void closed(uv_handle_t* h) {
        auto* c = static_cast<TcpClient*>(h->data);
        c->front->on_closed(c);
    }
    static void sweep(uv_timer_t* t) {
        auto* f = static_cast<TcpFront*>(t->data);
        f->sweep();
        f->ctx_.flush_all();
    }
};

TcpFront::TcpFront(uv_loop_t* loop, BalancerContext& ctx, UpstreamPool& pool)
    : loop_(loop), ctx_(ctx), pool_(pool), read_buf_(kReadSize) {}

bool TcpFront::start(const std::vector<std::pair<std::string, uint16_t>>& addrs, std::string& error) {
    for (const auto& [host, port] : addrs) {
        const int fd = net::bind_socket(host, port, SOCK_STREAM, ctx_.config.threads > 1, error);
        if (fd < 0) return false;
        auto* l = new uv_tcp_t;
        uv_tcp_init(loop_, l);
        l->data = this;
        uv_tcp_open(l, fd);
        const int r = uv_listen(reinterpret_cast<uv_stream_t*>(l), static_cast<int>(ctx_.config.tcp_backlog),
                                TcpFrontCallbacks::on_connection);
        if (r != 0) {
            error = "cannot listen on " + host + ":" + std::to_string(port) + "/tcp: " + uv_strerror(r);
            return false;
        }
        listeners_.push_back(l);
    }
    // Leave room for the UDP sockets, the worker connections, metrics, and closing connections.
    // The descriptors are shared by every thread.
    const uint64_t fds = net::raise_fd_limit();
    const uint64_t fd_share = ((fds - 128) / 2 + (fds - 128) / 4) / std::max<uint32_t>(1, ctx_.config.threads);
    max_connections_ = ctx_.config.tcp_max_connections;
    if (fds > 256 && max_connections_ > fd_share) max_connections_ = fd_share;
    uv_timer_init(loop_, &sweeper_);
    sweeper_.data = this;
    const uint64_t every = std::clamp<uint64_t>(ctx_.config.tcp_idle_timeout_ms / 10, 50, 1000);
    uv_timer_start(&sweeper_, TcpFrontCallbacks::sweep, every, every);
    return true;
}

void TcpFront::touch(TcpClient* c) {
    c->stamp_ms = now_ms();
    if (active_.tail != c) {
        active_.remove(c);
        active_.push_back(c);
    }
}

void TcpFront::on_connection(uv_tcp_t* listener) {
    auto* c = new TcpClient;
    c->front = this;
    uv_tcp_init(loop_, &c->handle);
    c->handle.data = c;
    c->write_req.data = c;
    if (uv_accept(reinterpret_cast<uv_stream_t*>(listener), reinterpret_cast<uv_stream_t*>(&c->handle)) != 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(&c->handle),
                 [](uv_handle_t* h) { delete static_cast<TcpClient*>(h->data); });
        return;
    }
    ctx_.metrics.tcp_accepted.inc();
    ctx_.metrics.tcp_open.add(1);
    if (active_.size >= max_connections_ && active_.head) begin_close(active_.head, CloseReason::Evicted);
    uv_tcp_nodelay(&c->handle, 1);
    c->stamp_ms = now_ms();
    active_.push_back(c);
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), TcpFrontCallbacks::alloc, TcpFrontCallbacks::read);
}

void TcpFront::on_read(TcpClient* c, ssize_t nread, const uv_buf_t* buf) {
    if (nread == 0) return;
    BalancerMetrics& m = ctx_.metrics;
    if (nread < 0) {
        c->eof = true;
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->handle));
        if (c->state == kOpen) begin_close(c, nread == UV_EOF ? CloseReason::Peer : CloseReason::Error);
        else if (c->state == kClosing) hard_close(c);
        // draining: closes as soon as its answers are out
        return;
    }
    if (c->state != kOpen) return;  // closing: read and discard until the peer's FIN
    m.bytes_in[1].inc(static_cast<uint64_t>(nread));
    touch(c);
    const auto* data = reinterpret_cast<const uint8_t*>(buf->base);
    const size_t n = static_cast<size_t>(nread);
    if (!c->in.empty() || c->paused) {
        if (!c->in.append(data, n, kMaxHeldInput)) {
            m.tcp_oversized_input.inc();
            begin_close(c, CloseReason::Error);
            return;
        }
        const size_t used = process(c, c->in.data(), c->in.size());
        if (c->state == kOpen) c->in.consume(used);
    } else {
        const size_t used = process(c, data, n);
        if (c->state == kOpen && used < n && !c->in.append(data + used, n - used, kMaxHeldInput)) {
            m.tcp_oversized_input.inc();
            begin_close(c, CloseReason::Error);
        }
    }
}

bool TcpFront::over_limits(const TcpClient* c) const {
    return c->outstanding >= ctx_.config.tcp_max_queries_per_connection ||
           pending(c) >= ctx_.config.tcp_max_pending_bytes;
}

size_t TcpFront::process(TcpClient* c, const uint8_t* p, size_t n) {
    if (c->paused) return 0;
    bool bad = false;
    const size_t used = net::scan_frames(p, n, bad, [&](const uint8_t* msg, size_t len) {
        handle_query(c, msg, len);
        if (c->state != kOpen) return false;
        if (over_limits(c)) {
            // Too many unanswered queries or unread answers: stop reading this client until
            // it catches up (the rest of its input waits in `in`, bounded).
            c->paused = true;
            uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->handle));
            ctx_.metrics.tcp_read_paused.inc();
            return false;
        }
        return true;
    });
    if (bad) {
        ctx_.metrics.drop(DropReason::Malformed);
        begin_close(c, CloseReason::BadLength);
        return n;
    }
    return used;
}

void TcpFront::handle_query(TcpClient* c, const uint8_t* msg, size_t len) {
    BalancerMetrics& m = ctx_.metrics;
    dns::Query q;
    dns::Malformed why;
    const dns::ParseStatus st = dns::parse_query(msg, len, q, why);
    if (st == dns::ParseStatus::Drop) {
        m.drop(DropReason::Malformed);
        return;
    }
    if (len > kMaxQuery) {
        m.drop(DropReason::Oversized);
        return;
    }
    if (ctx_.cache_on() && AnswerCache::cacheable_query(q, st)) {
        const uint64_t t0 = now_ns();
        const size_t r = ctx_.cache->lookup(q, now_ms(), false, ctx_.answer_buf, sizeof ctx_.answer_buf);
        if (r) {
            if (append(c, ctx_.answer_buf, r, q.id)) {
                m.answered(1, ctx_.answer_buf[3] & 0x0F);
                m.duration[1].observe_ns(now_ns() - t0);
            }
            return;
        }
    }
    Pending* p = pool_.acquire();
    if (!p) {
        m.servfail[static_cast<int>(ServfailReason::Overload)].inc();
        const size_t r = dns::make_servfail(msg, len, ctx_.answer_buf, sizeof ctx_.answer_buf);
        if (r && append(c, ctx_.answer_buf, r, q.id)) m.answered(1, dns::rcode::SERVFAIL);
        return;
    }
    p->front = this;
    p->client = c;
    p->transport = 1;
    p->client_id = q.id;
    p->udp_limit = 0;
    p->keepalive = q.edns_keepalive;
    if (!pool_.fill_query(p, msg, len, q)) return;
    p->start_ns = now_ns();
    ++c->outstanding;
    pool_.submit(p);
}

bool TcpFront::append(TcpClient* c, const uint8_t* msg, size_t len, uint16_t id) {
    const size_t need = c->out_len + 2 + len;
    if (need > c->out_cap) {
        const size_t cap = std::max<size_t>(need, std::max<size_t>(c->out_cap * 2, 4096));
        auto* d = static_cast<uint8_t*>(std::realloc(c->out, cap));
        if (!d) return false;
        c->out = d;
        c->out_cap = cap;
    }
    uint8_t* at = c->out + c->out_len;
    dns::put_u16(at, static_cast<uint16_t>(len));
    std::memcpy(at + 2, msg, len);
    dns::put_u16(at + 2, id);
    c->out_len = need;
    ctx_.metrics.bytes_out[1].inc(len);
    mark_dirty(c);
    return true;
}

void TcpFront::mark_dirty(TcpClient* c) {
    if (c->dirty) return;
    c->dirty = true;
    dirty_.push_back(c);
}

void TcpFront::deliver(Pending& p, const uint8_t* answer, size_t len) {
    TcpClient* c = p.client;
    if (c->state == kOpen || c->state == kDraining) {
        if (append(c, answer, len, p.client_id)) {
            // The worker answered with its own idle timeout; the client's is ours (RFC 7828).
            if (p.keepalive)
                dns::set_keepalive(c->out + c->out_len - len, len, dns::keepalive_units(ctx_.config.tcp_idle_timeout_ms));
            ctx_.metrics.answered(1, answer[3] & 0x0F);
            ctx_.metrics.duration[1].observe_ns(now_ns() - p.start_ns);
        }
    }
    answered_one(c);
}

void TcpFront::forget(Pending& p) { answered_one(p.client); }

void TcpFront::answered_one(TcpClient* c) {
    --c->outstanding;
    if (c->state == kClosed) {
        maybe_free(c);
        return;
    }
    mark_dirty(c);  // flush() decides on resuming or closing
}

void TcpFront::flush() {
    // Writing may resume a paused client, whose queries may be answered at once (SERVFAIL)
    // and mark it dirty again: loop until quiet (bounded by the input held).
    for (int rounds = 0; !dirty_.empty() && rounds < 64; ++rounds) {
        flushing_.swap(dirty_);
        for (TcpClient* c : flushing_) {
            c->dirty = false;
            if (c->state == kClosed) {
                maybe_free(c);
                continue;
            }
            write_out(c);
            if (c->state == kOpen) maybe_resume(c);
            else if (c->state == kDraining && c->outstanding == 0 && pending(c) == 0) finish_close(c);
        }
        flushing_.clear();
        pool_.flush();
    }
}

void TcpFront::maybe_free(TcpClient* c) {
    if (c->state == kClosed && c->handle_closed && c->outstanding == 0 && !c->dirty) delete c;
}

void TcpFront::maybe_resume(TcpClient* c) {
    if (!c->paused || c->outstanding >= ctx_.config.tcp_max_queries_per_connection / 2 + 1 ||
        pending(c) > ctx_.config.tcp_max_pending_bytes / 2)
        return;
    c->paused = false;
    if (!c->in.empty()) {
        const size_t used = process(c, c->in.data(), c->in.size());
        if (c->state == kOpen) c->in.consume(used);
    }
    if (c->state == kOpen && !c->paused)
        uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), TcpFrontCallbacks::alloc, TcpFrontCallbacks::read);
}

void TcpFront::write_out(TcpClient* c) {
    if (c->writing || c->out_len == 0) return;
    uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(c->out), static_cast<unsigned>(c->out_len));
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&c->handle), &b, 1);
    if (n == static_cast<int>(c->out_len)) {
        c->out_len = 0;
        if (c->outstanding == 0) {  // nothing more due soon: hold no memory while idle
            std::free(c->out);
            c->out = nullptr;
            c->out_cap = 0;
        }
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        c->eof = true;
        if (c->state == kOpen) begin_close(c, CloseReason::Error);
        else hard_close(c);
        return;
    }
    if (n < 0) n = 0;
    // The kernel took part: the rest becomes the write in flight, new answers collect behind it.
    std::free(c->inflight);
    c->inflight = c->out;
    c->inflight_len = c->out_len - static_cast<size_t>(n);
    std::memmove(c->inflight, c->inflight + n, c->inflight_len);
    c->out = nullptr;
    c->out_len = c->out_cap = 0;
    uv_buf_t wb = uv_buf_init(reinterpret_cast<char*>(c->inflight), static_cast<unsigned>(c->inflight_len));
    c->writing = true;
    uv_write(&c->write_req, reinterpret_cast<uv_stream_t*>(&c->handle), &wb, 1, TcpFrontCallbacks::write_done);
}

void TcpFront::on_write_done(TcpClient* c, int status) {
    c->writing = false;
    std::free(c->inflight);
    c->inflight = nullptr;
    c->inflight_len = 0;
    if (c->state == kClosed) return;
    if (status < 0) {
        if (c->state == kOpen) ctx_.metrics.close(CloseReason::Error);
        hard_close(c);
        return;
    }
    mark_dirty(c);
}

void TcpFront::begin_close(TcpClient* c, CloseReason why) {
    if (c->state != kOpen) return;
    ctx_.metrics.close(why);
    active_.remove(c);
    // `in` is not freed here: this may run while a scan is reading it.
    c->state = kDraining;
    c->stamp_ms = now_ms() + std::max(ctx_.config.tcp_close_grace_ms, ctx_.config.deadline_ms);
    closing_.push_back(c);
    if (c->outstanding == 0 && pending(c) == 0) finish_close(c);
    else mark_dirty(c);
    // Bound the connections waiting for a peer's FIN, too.
    if (closing_.size > max_connections_ && closing_.head) hard_close(closing_.head);
}

// All answers are out: close our side with a FIN, between messages.
void TcpFront::finish_close(TcpClient* c) {
    if (c->eof) {
        hard_close(c);  // the peer already closed its side; nothing to wait for
        return;
    }
    c->state = kClosing;
    c->stamp_ms = now_ms() + ctx_.config.tcp_close_grace_ms;
    auto* req = new uv_shutdown_t;
    req->data = c;
    if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&c->handle), TcpFrontCallbacks::shutdown_done) != 0) {
        delete req;
        hard_close(c);
        return;
    }
    if (!shutting_down_)
        uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), TcpFrontCallbacks::alloc, TcpFrontCallbacks::read);
}

void TcpFront::hard_close(TcpClient* c) {
    if (c->state == kClosed) return;
    if (c->state == kOpen) active_.remove(c);
    else closing_.remove(c);
    c->state = kClosed;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->handle), TcpFrontCallbacks::closed);
}

void TcpFront::on_closed(TcpClient* c) {
    ctx_.metrics.tcp_open.add(-1);
    c->handle_closed = true;
    c->in.clear();
    std::free(c->out);
    std::free(c->inflight);
    c->out = c->inflight = nullptr;
    c->out_len = c->out_cap = c->inflight_len = 0;
    // Queries still at the workers point here, and the flush list may: the last of them frees it.
    maybe_free(c);
}

void TcpFront::sweep() {
    const uint64_t now = now_ms();
    const uint64_t idle = ctx_.config.tcp_idle_timeout_ms;
    // A client waiting for answers is not idle.
    for (size_t guard = active_.size; guard > 0 && active_.head && now - active_.head->stamp_ms >= idle; --guard) {
        TcpClient* c = active_.head;
        if (c->outstanding > 0) touch(c);
        else begin_close(c, CloseReason::Idle);
    }
    while (closing_.head && closing_.head->stamp_ms <= now) hard_close(closing_.head);
}

void TcpFront::shutdown() {
    shutting_down_ = true;
    for (uv_tcp_t* l : listeners_) uv_close(reinterpret_cast<uv_handle_t*>(l), [](uv_handle_t* h) {
        delete reinterpret_cast<uv_tcp_t*>(h);
    });
    listeners_.clear();
    while (active_.head) begin_close(active_.head, CloseReason::Shutdown);
    for (TcpClient* c = closing_.head; c;) {
        TcpClient* next = c->next;
        if (c->state == kClosing) hard_close(c);
        c = next;
    }
}

}  // namespace dp::balancer
