#include "balancer/upstream_pool.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "dns/message.hpp"
#include "dns/wire.hpp"
#include "net/sockets.hpp"

namespace dp::balancer {

namespace {
constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kMaxHeldInput = kReadSize + 65537 + 2;  // one read plus one split answer
// `. NS`: every worker answers it at once (REFUSED), whatever its configuration.
constexpr uint8_t kProbeQuery[] = {0, 17, 0xFF, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1};

void log_line(const std::string& s) { std::fprintf(stderr, "domain-park-balancer: %s\n", s.c_str()); }
}  // namespace

struct PoolCallbacks {
    static UpstreamPool* pool(UpConn* c) { return c->up->pool; }
    static void alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
        UpstreamPool* p = pool(static_cast<UpConn*>(h->data));
        *buf = uv_buf_init(reinterpret_cast<char*>(p->read_buf_.data()), static_cast<unsigned>(p->read_buf_.size()));
    }
    static void read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* c = static_cast<UpConn*>(s->data);
        UpstreamPool* p = pool(c);
        p->on_read(c, nread, buf);
        p->ctx_.flush_all();
    }
    static void connected(uv_connect_t* req, int status) {
        if (status == UV_ECANCELED) return;  // closed while connecting; on_closed takes over
        auto* c = static_cast<UpConn*>(req->data);
        UpstreamPool* p = pool(c);
        p->on_connect(c, status);
        p->ctx_.flush_all();
    }
    static void written(uv_write_t* req, int status) {
        if (status == UV_ECANCELED) return;
        auto* c = static_cast<UpConn*>(req->data);
        UpstreamPool* p = pool(c);
        p->on_write_done(c, status);
        p->ctx_.flush_all();
    }
    static void closed(uv_handle_t* h) {
        auto* c = static_cast<UpConn*>(h->data);
        UpstreamPool* p = pool(c);
        p->on_closed(c);
        p->ctx_.flush_all();
    }
    static void probe_timer(uv_timer_t* t) {
        auto* u = static_cast<Upstream*>(t->data);
        u->pool->on_probe_timer(u);
        u->pool->ctx_.flush_all();
    }
    static void tick(uv_timer_t* t) {
        auto* p = static_cast<UpstreamPool*>(t->data);
        p->tick();
        p->ctx_.flush_all();
    }
};

UpstreamPool::UpstreamPool(uv_loop_t* loop, BalancerContext& ctx) : loop_(loop), ctx_(ctx), read_buf_(kReadSize) {
    // calloc: pages of the table are touched only when that many queries are in flight at once.
    table_size_ = ctx_.config.max_inflight;
    table_ = static_cast<Pending*>(std::calloc(table_size_, sizeof(Pending)));
    if (!table_) {
        log_line("max_inflight: cannot allocate the query table");
        std::exit(2);
    }
    for (size_t i = table_size_; i-- > 0;) {
        table_[i].next = free_;
        free_ = &table_[i];
    }
}

UpstreamPool::~UpstreamPool() { std::free(table_); }

void UpstreamPool::start() {
    for (const auto& a : ctx_.config.workers) add_upstream(a);
    uv_timer_init(loop_, &ticker_);
    ticker_.data = this;
    const uint64_t every = std::clamp<uint64_t>(ctx_.config.attempt_timeout_ms / 10, 5, 50);
    uv_timer_start(&ticker_, PoolCallbacks::tick, every, every);
}

Upstream* UpstreamPool::add_upstream(const std::string& addr) {
    auto u = std::make_unique<Upstream>();
    u->addr = addr;
    u->pool = this;
    std::string host, err;
    uint16_t port = 0;
    socklen_t len;
    net::parse_host_port(addr, host, port, err);  // validated by the configuration reader
    net::make_sockaddr(host, port, u->sa, len);
    u->stats = &ctx_.worker_stats->stats_for(addr);
    u->stats->up.set(1);
    u->backoff_ms = ctx_.config.health_backoff_min_ms;
    uv_timer_init(loop_, &u->timer);
    u->timer.data = u.get();
    const uint32_t cap = std::min<uint32_t>(ctx_.config.upstream_max_outstanding, 65535);
    for (uint32_t i = 0; i < ctx_.config.upstream_connections; ++i) {
        auto c = std::make_unique<UpConn>();
        c->up = u.get();
        c->slots.assign(cap, nullptr);
        c->free_ids.resize(cap);
        for (uint32_t id = 0; id < cap; ++id) c->free_ids[id] = static_cast<uint16_t>(id);
        c->free_count = cap;
        u->conns.push_back(std::move(c));
    }
    Upstream* raw = u.get();
    ups_.push_back(std::move(u));
    for (auto& c : raw->conns) connect(c.get(), false);
    return raw;
}

void UpstreamPool::connect(UpConn* c, bool probe) {
    if (c->state != UpConn::Idle || c->up->finalizing) return;
    if (c->opened_before) c->up->stats->reconnects.inc();
    c->opened_before = true;
    uv_tcp_init(loop_, &c->handle);
    c->handle.data = c;
    c->connect_req.data = c;
    c->write_req.data = c;
    c->state = UpConn::Connecting;
    c->probe = probe;
    c->got_answer = false;
    c->connect_started_ms = now_ms();
    const int r = uv_tcp_connect(&c->connect_req, &c->handle, reinterpret_cast<const sockaddr*>(&c->up->sa),
                                 PoolCallbacks::connected);
    if (r != 0) break_conn(c, true, FailReason::Connect);
}

void UpstreamPool::on_connect(UpConn* c, int status) {
    if (c->state != UpConn::Connecting) return;
    if (status < 0) {
        break_conn(c, true, FailReason::Connect);
        return;
    }
    c->state = UpConn::Ready;
    uv_tcp_nodelay(&c->handle, 1);
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), PoolCallbacks::alloc, PoolCallbacks::read);
    if (c->probe) {
        c->probe_deadline_ms = now_ms() + ctx_.config.attempt_timeout_ms;
        if (c->next.size() < sizeof kProbeQuery) c->next.resize(4096);
        std::memcpy(c->next.data(), kProbeQuery, sizeof kProbeQuery);
        c->next_len = sizeof kProbeQuery;
    }
    // Queries queued while connecting go out now.
    if (c->next_len > 0 && !c->dirty) {
        c->dirty = true;
        dirty_.push_back(c);
    }
}

void UpstreamPool::on_read(UpConn* c, ssize_t nread, const uv_buf_t* buf) {
    if (nread == 0 || c->state != UpConn::Ready) return;
    if (nread < 0) {
        // A worker closing an idle connection (its idle timeout) is routine; a reset, closing
        // one with queries in flight, or closing right after accepting it counts against it
        // (the last keeps a worker that accepts and hangs up from looping through reconnects).
        const bool failure = nread != UV_EOF || c->outstanding > 0 ||
                             (!c->got_answer && now_ms() - c->connect_started_ms < ctx_.config.attempt_timeout_ms);
        break_conn(c, failure, FailReason::Reset);
        return;
    }
    const auto* data = reinterpret_cast<const uint8_t*>(buf->base);
    const size_t n = static_cast<size_t>(nread);
    if (c->in.empty()) {
        const size_t used = process(c, data, n);
        if (c->state == UpConn::Ready && used < n && !c->in.append(data + used, n - used, kMaxHeldInput))
            break_conn(c, true, FailReason::Reset);
    } else {
        if (!c->in.append(data, n, kMaxHeldInput)) {
            break_conn(c, true, FailReason::Reset);
            return;
        }
        const size_t used = process(c, c->in.data(), c->in.size());
        if (c->state == UpConn::Ready) c->in.consume(used);
    }
}

size_t UpstreamPool::process(UpConn* c, const uint8_t* p, size_t n) {
    bool bad = false;
    const size_t used = net::scan_frames(p, n, bad, [&](const uint8_t* msg, size_t len) {
        on_answer(c, msg, len);
        return c->state == UpConn::Ready;
    });
    if (bad) break_conn(c, true, FailReason::Reset);  // the stream is out of step
    return used;
}

void UpstreamPool::on_answer(UpConn* c, const uint8_t* msg, size_t len) {
    const uint16_t id = dns::get_u16(msg);
    Upstream* u = c->up;
    if (c->probe) {
        if (id == kProbeId) {
            c->probe = false;
            c->got_answer = true;
            if (!u->removed) mark_up(u);
        }
        return;
    }
    Pending* p = id < c->slots.size() ? c->slots[id] : nullptr;
    size_t qend = 0;
    if (!p || !dns::question_end(msg, len, qend) ||
        !dns::same_question(p->query() + dns::kHeaderSize, p->qlen, msg + dns::kHeaderSize, qend - dns::kHeaderSize)) {
        ctx_.metrics.unmatched_answers.inc();
        return;
    }
    c->got_answer = true;
    u->failures = 0;
    u->stats->answers.inc();
    detach(p);
    dns::Query q;
    if (ctx_.cache_on() && cache_key(*p, q)) ctx_.cache->insert(q, msg, len, now_ms());
    p->front->deliver(*p, msg, len);
    release(p);
}

void UpstreamPool::flush() {
    for (size_t i = 0; i < dirty_.size(); ++i) {
        UpConn* c = dirty_[i];
        c->dirty = false;
        write_out(c);
    }
    dirty_.clear();
}

void UpstreamPool::write_out(UpConn* c) {
    if (c->state != UpConn::Ready || c->writing || c->next_len == 0) return;
    uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(c->next.data()), static_cast<unsigned>(c->next_len));
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&c->handle), &b, 1);
    if (n == static_cast<int>(c->next_len)) {
        c->next_len = 0;
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        break_conn(c, true, FailReason::Reset);
        return;
    }
    if (n < 0) n = 0;
    // The kernel took part: hand the rest to libuv and collect new queries in the other buffer.
    std::swap(c->inflight, c->next);
    const size_t rest = c->next_len - static_cast<size_t>(n);
    c->next_len = 0;
    uv_buf_t wb = uv_buf_init(reinterpret_cast<char*>(c->inflight.data() + n), static_cast<unsigned>(rest));
    c->writing = true;
    uv_write(&c->write_req, reinterpret_cast<uv_stream_t*>(&c->handle), &wb, 1, PoolCallbacks::written);
}

void UpstreamPool::on_write_done(UpConn* c, int status) {
    c->writing = false;
    if (c->state != UpConn::Ready) return;
    if (status < 0) {
        break_conn(c, true, FailReason::Reset);
        return;
    }
    write_out(c);
}

void UpstreamPool::break_conn(UpConn* c, bool failure, FailReason why) {
    if (c->state == UpConn::Idle || c->state == UpConn::Closing) return;
    Upstream* u = c->up;
    const bool was_probe = c->probe;
    c->state = UpConn::Closing;
    c->probe = false;
    c->next_len = 0;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->handle), PoolCallbacks::closed);
    // Whatever was in flight here goes to another worker (within its deadline and retry budget).
    while (Pending* p = c->head) {
        detach(p);
        resend(p, u);
    }
    if (was_probe) probe_failed(u);
    else if (failure) fail(u, why);
}

void UpstreamPool::on_closed(UpConn* c) {
    c->state = UpConn::Idle;
    c->writing = false;
    c->in.clear();
    c->next_len = 0;
    Upstream* u = c->up;
    // A healthy worker keeps its connections open: a clean close (its idle timeout) is simply
    // reopened; a failing one reaches the health threshold after a few rounds and stops this.
    if (!u->removed && u->up) connect(c, false);
}

void UpstreamPool::fail(Upstream* u, FailReason why) {
    u->stats->failures[static_cast<int>(why)].inc();
    if (!u->up || u->removed) return;
    if (++u->failures >= ctx_.config.health_failures) mark_down(u);
}

void UpstreamPool::mark_down(Upstream* u) {
    u->up = false;
    u->stats->up.set(0);
    log_line("worker " + u->addr + " marked down after " + std::to_string(u->failures) + " failures");
    for (auto& c : u->conns) break_conn(c.get(), false, FailReason::Reset);
    u->backoff_ms = ctx_.config.health_backoff_min_ms;
    uv_timer_start(&u->timer, PoolCallbacks::probe_timer, u->backoff_ms, 0);
}

void UpstreamPool::mark_up(Upstream* u) {
    u->up = true;
    u->failures = 0;
    u->backoff_ms = ctx_.config.health_backoff_min_ms;
    u->stats->up.set(u->removed ? 0 : 1);
    uv_timer_stop(&u->timer);
    log_line("worker " + u->addr + " is up again (probe answered)");
    for (auto& c : u->conns) connect(c.get(), false);
}

void UpstreamPool::probe_failed(Upstream* u) {
    u->stats->failures[static_cast<int>(FailReason::Probe)].inc();
    if (u->up || u->removed) return;
    u->backoff_ms = std::min(u->backoff_ms * 2, ctx_.config.health_backoff_max_ms);
    uv_timer_start(&u->timer, PoolCallbacks::probe_timer, u->backoff_ms, 0);
}

void UpstreamPool::on_probe_timer(Upstream* u) {
    if (u->up || u->removed) return;
    UpConn* c = u->conns[0].get();
    if (c->state == UpConn::Idle) connect(c, true);
    else uv_timer_start(&u->timer, PoolCallbacks::probe_timer, 10, 0);  // still closing
}

void UpstreamPool::tick() {
    const uint64_t now = now_ms();
    const uint64_t attempt = ctx_.config.attempt_timeout_ms;
    for (size_t i = 0; i < ups_.size(); ++i) {
        Upstream* u = ups_[i].get();
        for (auto& cp : u->conns) {
            UpConn* c = cp.get();
            if (c->state == UpConn::Connecting && now - c->connect_started_ms >= attempt) {
                break_conn(c, true, FailReason::Connect);
                continue;
            }
            if (c->state == UpConn::Ready && c->probe && now >= c->probe_deadline_ms) {
                break_conn(c, false, FailReason::Probe);
                continue;
            }
            while (c->head && c->head->attempt_deadline_ms <= now &&
                   (c->state == UpConn::Ready || c->state == UpConn::Connecting)) {
                Pending* p = c->head;
                detach(p);
                resend(p, u);
                fail(u, FailReason::Timeout);
            }
        }
        if (u->removed && u->outstanding == 0 && !u->finalizing) {
            u->finalizing = true;
            for (auto& c : u->conns) break_conn(c.get(), false, FailReason::Reset);
            uv_timer_stop(&u->timer);
            uv_close(reinterpret_cast<uv_handle_t*>(&u->timer),
                     [](uv_handle_t* h) { static_cast<Upstream*>(h->data)->timer_closed = true; });
        }
    }
    // Free removed workers whose handles are all closed.
    for (size_t i = 0; i < ups_.size();) {
        Upstream* u = ups_[i].get();
        bool gone = u->finalizing && u->timer_closed;
        for (auto& c : u->conns) gone = gone && c->state == UpConn::Idle;
        if (gone) {
            log_line("worker " + u->addr + " removed");
            ups_.erase(ups_.begin() + static_cast<long>(i));
        } else {
            ++i;
        }
    }
}

void UpstreamPool::reconfigure() {
    const auto& want = ctx_.config.workers;
    for (auto& u : ups_) {
        const bool keep = std::find(want.begin(), want.end(), u->addr) != want.end();
        if (!keep && !u->removed) {
            u->removed = true;
            u->stats->up.set(0);
            log_line("worker " + u->addr + " leaves the pool: no new queries, closing when its queries are answered");
        }
    }
    for (const auto& a : want) {
        bool have = false;
        for (auto& u : ups_) {
            if (u->addr != a || u->finalizing) continue;
            have = true;
            if (u->removed) {  // listed again before it was closed: keep using it
                u->removed = false;
                u->stats->up.set(u->up ? 1 : 0);
            }
        }
        if (!have) {
            log_line("worker " + a + " joins the pool");
            add_upstream(a);
        }
    }
}

Pending* UpstreamPool::acquire() {
    Pending* p = free_;
    if (!p) return nullptr;
    free_ = p->next;
    p->next = p->prev = nullptr;
    p->heap = nullptr;
    p->conn = nullptr;
    p->tries = 0;
    p->client = nullptr;
    ++inflight_;
    ctx_.metrics.inflight.add(1);
    return p;
}

bool UpstreamPool::fill_query(Pending* p, const uint8_t* msg, size_t len, const dns::Query& q) {
    p->len = static_cast<uint16_t>(len);
    p->qlen = q.question_ok ? static_cast<uint16_t>(q.question_end - dns::kHeaderSize) : 0;
    if (len > kInlineQuery) {
        p->heap = static_cast<uint8_t*>(std::malloc(len));
        if (!p->heap) {
            release(p);
            ctx_.metrics.drop(DropReason::Oversized);
            return false;
        }
    }
    std::memcpy(p->query(), msg, len);
    return true;
}

void UpstreamPool::release(Pending* p) {
    if (p->heap) {
        std::free(p->heap);
        p->heap = nullptr;
    }
    p->front = nullptr;
    p->client = nullptr;
    p->next = free_;
    free_ = p;
    --inflight_;
    ctx_.metrics.inflight.add(-1);
}

void UpstreamPool::submit(Pending* p) {
    p->tries = 0;
    p->last_upstream = nullptr;
    p->deadline_ms = now_ms() + ctx_.config.deadline_ms;
    if (!dispatch(p, nullptr)) servfail(p, ServfailReason::NoWorker);
}

UpConn* UpstreamPool::pick(const Upstream* avoid) {
    // Least outstanding over the connections of healthy workers; a connection still
    // connecting is used only when no open one has room (its queries wait for the handshake).
    UpConn* best = nullptr;
    bool best_ready = false;
    uint32_t best_load = 0;
    const size_t n = ups_.size();
    if (n == 0) return nullptr;
    const size_t start = rr_++ % n;
    for (size_t k = 0; k < n; ++k) {
        Upstream* u = ups_[(start + k) % n].get();
        if (!u->up || u->removed || u == avoid) continue;
        for (auto& cp : u->conns) {
            UpConn* c = cp.get();
            if (c->probe || c->free_count == 0) continue;
            if (c->state != UpConn::Ready && c->state != UpConn::Connecting) continue;
            const bool ready = c->state == UpConn::Ready;
            if (!best || (ready && !best_ready) || (ready == best_ready && c->outstanding < best_load)) {
                best = c;
                best_ready = ready;
                best_load = c->outstanding;
            }
        }
    }
    if (!best && avoid) return pick(nullptr);  // the only worker left may take a retry
    return best;
}

bool UpstreamPool::dispatch(Pending* p, const Upstream* avoid) {
    UpConn* c = pick(avoid);
    if (!c) return false;
    Upstream* u = c->up;
    const uint16_t id = c->free_ids[c->free_head];
    c->free_head = (c->free_head + 1) % c->free_ids.size();
    --c->free_count;
    c->slots[id] = p;
    p->conn = c;
    p->up_id = id;
    const uint64_t now = now_ms();
    p->attempt_deadline_ms = std::min<uint64_t>(now + ctx_.config.attempt_timeout_ms, p->deadline_ms);
    // Keep the list ordered by attempt deadline: nearly always an append; a retry with little
    // time left walks back from the tail.
    Pending* after = c->tail;
    while (after && after->attempt_deadline_ms > p->attempt_deadline_ms) after = after->prev;
    p->prev = after;
    p->next = after ? after->next : c->head;
    if (p->next) p->next->prev = p;
    else c->tail = p;
    if (after) after->next = p;
    else c->head = p;
    // Frame the query with the connection's ID.
    const size_t need = c->next_len + 2 + p->len;
    if (c->next.size() < need) c->next.resize(std::max<size_t>(need, c->next.size() * 2 + 4096));
    uint8_t* at = c->next.data() + c->next_len;
    dns::put_u16(at, p->len);
    std::memcpy(at + 2, p->query(), p->len);
    dns::put_u16(at + 2, id);
    c->next_len = need;
    if (!c->dirty) {
        c->dirty = true;
        dirty_.push_back(c);
    }
    ++c->outstanding;
    ++u->outstanding;
    u->stats->outstanding.add(1);
    u->stats->queries.inc();
    ++p->tries;
    p->last_upstream = u;
    return true;
}

void UpstreamPool::detach(Pending* p) {
    UpConn* c = p->conn;
    if (!c) return;
    c->slots[p->up_id] = nullptr;
    c->free_ids[(c->free_head + c->free_count) % c->free_ids.size()] = p->up_id;
    ++c->free_count;
    if (p->prev) p->prev->next = p->next;
    else c->head = p->next;
    if (p->next) p->next->prev = p->prev;
    else c->tail = p->prev;
    p->prev = p->next = nullptr;
    p->conn = nullptr;
    --c->outstanding;
    --c->up->outstanding;
    c->up->stats->outstanding.add(-1);
}

void UpstreamPool::resend(Pending* p, const Upstream* from) {
    if (p->tries > ctx_.config.max_retries || now_ms() >= p->deadline_ms) {
        expire(p);
        return;
    }
    ctx_.metrics.retries.inc();
    if (!dispatch(p, from)) servfail(p, ServfailReason::NoWorker);
}

void UpstreamPool::expire(Pending* p) {
    ctx_.metrics.deadline_expired.inc();
    if (serve_stale(p)) return;
    if (ctx_.config.deadline_action == DeadlineAction::Servfail) {
        servfail(p, ServfailReason::Deadline);
    } else {
        ctx_.metrics.drop(DropReason::Deadline);
        p->front->forget(*p);
        release(p);
    }
}

bool UpstreamPool::cache_key(const Pending& p, dns::Query& q) {
    dns::Malformed why;
    const dns::ParseStatus st = dns::parse_query(p.query(), p.len, q, why);
    return AnswerCache::cacheable_query(q, st);
}

bool UpstreamPool::serve_stale(Pending* p) {
    if (!ctx_.cache_on() || ctx_.cache->settings().max_stale == 0) return false;
    dns::Query q;
    if (!cache_key(*p, q)) return false;
    const size_t len = ctx_.cache->lookup(q, now_ms(), true, ctx_.answer_buf, sizeof ctx_.answer_buf);
    if (len == 0) return false;
    p->front->deliver(*p, ctx_.answer_buf, len);
    release(p);
    return true;
}

void UpstreamPool::servfail(Pending* p, ServfailReason why) {
    if (why == ServfailReason::NoWorker && serve_stale(p)) return;
    ctx_.metrics.servfail[static_cast<int>(why)].inc();
    const size_t len = dns::make_servfail(p->query(), p->len, ctx_.answer_buf, sizeof ctx_.answer_buf);
    if (len) p->front->deliver(*p, ctx_.answer_buf, len);
    else p->front->forget(*p);
    release(p);
}

}  // namespace dp::balancer

namespace dp::balancer {

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

}  // namespace dp::balancer
