#include "balancer/upstream_pool.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "dns/message.hpp"
#include "dns/wire.hpp"
#include "net/dns_stream.hpp"
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
    static void probe_timer(uv_timer_t* t) {
        auto* u = static_cast<Upstream*>(t->data);
        u->pool->on_probe_timer(u);
    }
    static void tick(uv_timer_t* t) { static_cast<UpstreamPool*>(t->data)->tick(); }
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
    Upstream* raw = u.get();
    ups_.push_back(std::move(u));
    for (uint32_t i = 0; i < ctx_.config.upstream_connections; ++i) connect(add_conn(raw, false), false);
    return raw;
}

UpConn* UpstreamPool::add_conn(Upstream* u, bool extra) {
    auto c = std::make_unique<UpConn>();
    c->up = u;
    c->extra = extra;
    const uint32_t cap = std::min<uint32_t>(ctx_.config.upstream_max_outstanding, 65535);
    c->slots.assign(cap, nullptr);
    c->free_ids.resize(cap);
    for (uint32_t id = 0; id < cap; ++id) c->free_ids[id] = static_cast<uint16_t>(id);
    c->free_count = cap;
    u->conns.push_back(std::move(c));
    return u->conns.back().get();
}

void UpstreamPool::connect(UpConn* c, bool probe) {
    if (c->state != UpConn::Idle || c->up->finalizing) return;
    if (c->opened_before) c->up->stats->reconnects.inc();
    c->opened_before = true;
    c->stream = new net::UvTcpStream(loop_, read_buf_.data(), read_buf_.size());
    c->stream->owner = this;
    c->stream->user = c;
    c->state = UpConn::Connecting;
    c->probe = probe;
    c->got_answer = false;
    c->connect_started_ms = now_ms();
    if (c->stream->connect(reinterpret_cast<const sockaddr*>(&c->up->sa)) != 0) break_conn(c, true, FailReason::Connect);
}

void UpstreamPool::on_connected(net::Stream& s, int status) {
    UpConn* c = conn_of(s);
    if (c->state != UpConn::Connecting) return;  // closed while connecting
    if (status < 0) {
        break_conn(c, true, FailReason::Connect);
        return;
    }
    c->state = UpConn::Ready;
    c->stream->read(true);
    if (c->probe) {
        c->probe_deadline_ms = now_ms() + ctx_.config.attempt_timeout_ms;
        c->out.append(kProbeQuery, sizeof kProbeQuery);
    }
    // Queries queued while connecting go out now.
    if (c->out.pending() > 0) mark_dirty(c);
}

void UpstreamPool::on_end(net::Stream& s, int error) {
    UpConn* c = conn_of(s);
    if (c->state != UpConn::Ready) return;
    // A worker closing an idle connection (its idle timeout) is routine; a reset, closing one
    // with queries in flight, or closing right after accepting it counts against it (the last
    // keeps a worker that accepts and hangs up from looping through reconnects).
    const bool failure = error != 0 || c->outstanding > 0 ||
                         (!c->got_answer && now_ms() - c->connect_started_ms < ctx_.config.attempt_timeout_ms);
    break_conn(c, failure, FailReason::Reset);
}

void UpstreamPool::on_data(net::Stream& s, const uint8_t* data, size_t n) {
    UpConn* c = conn_of(s);
    if (c->state != UpConn::Ready) return;
    if (c->in.empty()) {
        const size_t used = process(c, data, n);
        if (c->state == UpConn::Ready && used < n &&
            (c->in.size() + n - used > kMaxHeldInput || !c->in.append(data + used, n - used)))
            break_conn(c, true, FailReason::Reset);
    } else {
        if (c->in.size() + n > kMaxHeldInput || !c->in.append(data, n)) {
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

void UpstreamPool::mark_dirty(UpConn* c) {
    if (c->dirty) return;
    c->dirty = true;
    dirty_.push_back(c);
}

void UpstreamPool::flush() {
    // IDs freed during this iteration go to queries waiting for one first.
    if (wait_head_) dispatch_waiting();
    for (size_t i = 0; i < dirty_.size(); ++i) {
        UpConn* c = dirty_[i];
        c->dirty = false;
        write_out(c);
    }
    dirty_.clear();
}

void UpstreamPool::write_out(UpConn* c) {
    if (c->state != UpConn::Ready) return;
    if (c->out.flush(*c->stream) < 0) break_conn(c, true, FailReason::Reset);
}

void UpstreamPool::on_written(net::Stream& s, int status) {
    UpConn* c = conn_of(s);
    c->out.written();
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
    c->out.drop_queued();
    c->stream->close();
    // Whatever was in flight here goes to another worker (within its deadline and retry budget).
    while (Pending* p = c->head) {
        detach(p);
        resend(p, u);
    }
    if (was_probe) probe_failed(u);
    else if (failure) fail(u, why);
}

void UpstreamPool::on_closed(net::Stream& s) {
    UpConn* c = conn_of(s);
    delete c->stream;
    c->stream = nullptr;
    c->state = UpConn::Idle;
    c->in.release();
    c->out.written();
    c->out.release();
    Upstream* u = c->up;
    // A healthy worker keeps its base connections open: a clean close (its idle timeout) is
    // simply reopened; a failing one reaches the health threshold after a few rounds and stops
    // this. Connections opened on demand stay closed until needed again.
    if (!u->removed && u->up && !c->extra) connect(c, false);
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
    for (size_t j = 0; j < u->conns.size(); ++j) break_conn(u->conns[j].get(), false, FailReason::Reset);
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
    for (size_t j = 0; j < u->conns.size(); ++j)
        if (!u->conns[j]->extra) connect(u->conns[j].get(), false);
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
        // By index: a retry may open another connection to this worker (conns grows).
        for (size_t j = 0; j < u->conns.size(); ++j) {
            UpConn* c = u->conns[j].get();
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
            for (size_t j = 0; j < u->conns.size(); ++j) break_conn(u->conns[j].get(), false, FailReason::Reset);
            uv_timer_stop(&u->timer);
            uv_close(reinterpret_cast<uv_handle_t*>(&u->timer),
                     [](uv_handle_t* h) { static_cast<Upstream*>(h->data)->timer_closed = true; });
        }
    }
    // Queries waiting for an ID whose deadline passed (the list is short but not sorted by
    // deadline: retries join it with older deadlines).
    for (Pending* p = wait_head_; p;) {
        Pending* next = p->next;
        if (p->deadline_ms <= now) {
            unwait(p);
            expire(p, ServfailReason::Busy);
        }
        p = next;
    }
    if (wait_head_) dispatch_waiting();
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
    p->waiting = false;
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
    route(p, nullptr);
}

// To a worker now, or to the wait list when every ID is in use; SERVFAIL at once when no
// healthy worker exists at all (a query never waits without a worker).
void UpstreamPool::route(Pending* p, const Upstream* avoid) {
    // Behind queries already waiting for an ID (they go first, at the next flush).
    if (!wait_head_ && dispatch(p, avoid)) return;
    if (!any_healthy(nullptr)) servfail(p, ServfailReason::NoWorker);
    else wait(p);
}

bool UpstreamPool::any_healthy(const Upstream* avoid) const {
    for (const auto& u : ups_)
        if (u->up && !u->removed && u.get() != avoid) return true;
    return false;
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
    if (!best) best = grow(avoid);
    if (!best && avoid) return pick(nullptr);  // the only worker left may take a retry
    return best;
}

UpConn* UpstreamPool::grow(const Upstream* avoid) {
    Upstream* target = nullptr;
    for (auto& u : ups_) {
        if (!u->up || u->removed || u->finalizing || u.get() == avoid) continue;
        size_t open = 0;
        for (auto& c : u->conns) open += c->state != UpConn::Idle;
        if (open >= ctx_.config.upstream_max_connections) continue;
        if (!target || u->outstanding < target->outstanding) target = u.get();
    }
    if (!target) return nullptr;
    UpConn* c = nullptr;
    for (auto& cp : target->conns)
        if (cp->extra && cp->state == UpConn::Idle) c = cp.get();
    if (!c) c = add_conn(target, true);
    connect(c, false);
    return c->state == UpConn::Connecting ? c : nullptr;
}

bool UpstreamPool::dispatch(Pending* p, const Upstream* avoid) {
    UpConn* c = pick(avoid);
    return c && assign(p, c);
}

bool UpstreamPool::assign(Pending* p, UpConn* c) {
    // Frame the query with the connection's ID (the space first: nothing to undo if it fails).
    uint8_t* at = c->out.space(2 + p->len);
    if (!at) return false;
    Upstream* u = c->up;
    const uint16_t id = c->free_ids[c->free_head];
    c->free_head = (c->free_head + 1) % c->free_ids.size();
    --c->free_count;
    c->slots[id] = p;
    p->conn = c;
    p->up_id = id;
    dns::put_u16(at, p->len);
    std::memcpy(at + 2, p->query(), p->len);
    dns::put_u16(at + 2, id);
    c->out.commit(2 + p->len);
    mark_dirty(c);
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
    ++c->outstanding;
    ++u->outstanding;
    u->stats->outstanding.add(1);
    u->stats->queries.inc();
    ++p->tries;
    p->last_upstream = u;
    return true;
}

void UpstreamPool::wait(Pending* p) {
    p->waiting = true;
    p->next = nullptr;
    p->prev = wait_tail_;
    if (wait_tail_) wait_tail_->next = p;
    else wait_head_ = p;
    wait_tail_ = p;
    ++waiting_;
    ctx_.metrics.waiting.set(static_cast<int64_t>(waiting_));
}

void UpstreamPool::unwait(Pending* p) {
    if (p->prev) p->prev->next = p->next;
    else wait_head_ = p->next;
    if (p->next) p->next->prev = p->prev;
    else wait_tail_ = p->prev;
    p->prev = p->next = nullptr;
    p->waiting = false;
    --waiting_;
    ctx_.metrics.waiting.set(static_cast<int64_t>(waiting_));
}

void UpstreamPool::dispatch_waiting() {
    while (Pending* p = wait_head_) {
        UpConn* c = pick(nullptr);
        if (!c) break;
        unwait(p);
        if (!assign(p, c)) {
            servfail(p, ServfailReason::Overload);  // out of memory for the write buffer
            break;
        }
    }
    // Every worker went down meanwhile: nobody will free an ID for these.
    if (wait_head_ && !any_healthy(nullptr))
        while (Pending* q = wait_head_) {
            unwait(q);
            servfail(q, ServfailReason::NoWorker);
        }
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
    if (now_ms() >= p->deadline_ms) {
        expire(p, ServfailReason::Deadline);
        return;
    }
    if (p->tries > ctx_.config.max_retries) {
        expire(p, ServfailReason::RetriesExhausted);
        return;
    }
    ctx_.metrics.retries.inc();
    route(p, from);
}

void UpstreamPool::expire(Pending* p, ServfailReason why) {
    if (why == ServfailReason::Deadline || why == ServfailReason::Busy) ctx_.metrics.deadline_expired.inc();
    if (serve_stale(p)) return;
    if (ctx_.config.deadline_action == DeadlineAction::Servfail) {
        servfail(p, why);
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
