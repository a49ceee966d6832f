#include "net/tcp_engine.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "net/dns_stream.hpp"

namespace dp::net {

namespace {
// One read (the worker's and balancer's read buffers are 64 KiB) plus one whole message.
constexpr size_t kMaxHeldInput = 64 * 1024 + 2 + 65535;

inline void put_len(uint8_t* p, size_t len) {
    p[0] = static_cast<uint8_t>(len >> 8);
    p[1] = static_cast<uint8_t>(len);
}
}  // namespace

const char* close_reason_name(CloseReason r) {
    switch (r) {
        case CloseReason::Idle: return "idle";
        case CloseReason::Evicted: return "evicted";
        case CloseReason::Peer: return "peer";
        case CloseReason::Error: return "error";
        case CloseReason::Shutdown: return "shutdown";
        case CloseReason::BadLength: return "bad_length";
        case CloseReason::MessageTimeout: return "message_timeout";
        case CloseReason::InputBudget: return "input_budget";
        case CloseReason::Oversized: return "oversized";
        case CloseReason::Count: break;
    }
    return "unknown";
}

const char* refuse_reason_name(RefuseReason r) {
    switch (r) {
        case RefuseReason::FdBudget: return "fd_budget";
        case RefuseReason::FdLimit: return "fd_limit";
        case RefuseReason::Count: break;
    }
    return "unknown";
}

void TcpStats::register_all(MetricsRegistry& r, const std::string& p, const std::string& who) const {
    r.counter(p + "tcp_connections_accepted_total", who + " TCP connections accepted", {}, &accepted);
    r.gauge(p + "tcp_connections_open", who + " TCP connections holding a descriptor (closing ones included)", {},
            &open);
    r.gauge(p + "tcp_connections_max",
            who + " TCP connections allowed open: tcp_max_connections, lowered to fit the descriptors the process has",
            {}, &max_connections);
    for (int c = 0; c < static_cast<int>(CloseReason::Count); ++c)
        r.counter(p + "tcp_connections_closed_total", who + " TCP connections closed, by reason",
                  {{"reason", close_reason_name(static_cast<CloseReason>(c))}}, &closed[c]);
    for (int c = 0; c < static_cast<int>(RefuseReason::Count); ++c)
        r.counter(p + "tcp_connections_refused_total",
                  who + " TCP connections closed as soon as accepted, by reason (descriptors short)",
                  {{"reason", refuse_reason_name(static_cast<RefuseReason>(c))}}, &refused[c]);
    r.counter(p + "tcp_read_paused_total",
              "Times reading from a TCP connection paused (unsent answers or outstanding queries at their cap)", {},
              &read_paused);
    r.counter(p + "tcp_oversized_input_total", "TCP connections closed for holding more input than one message",
              {}, &oversized_input);
    r.gauge(p + "tcp_input_bytes", "Input held for incomplete or not yet read messages, all connections", {},
            &input_bytes);
    r.gauge(p + "tcp_output_bytes", "Answers not yet taken by the kernel, all connections", {}, &output_bytes);
}

TcpLimits TcpLimits::derive(const ServingSettings& s, uint64_t fd_budget, uint32_t max_outstanding,
                            uint64_t drain_ms) {
    TcpLimits l;
    l.idle_ms = s.tcp_idle_timeout_ms;
    l.message_ms = s.tcp_message_timeout_ms;
    l.close_grace_ms = s.tcp_close_grace_ms;
    l.drain_ms = std::max<uint64_t>(s.tcp_close_grace_ms, drain_ms);
    // A quarter of the descriptors (at least one) stays for connections on their way out, so
    // evicting one to admit another never needs a descriptor that is not there.
    l.max_fds = std::max<uint64_t>(fd_budget, 2);
    l.max_connections = std::min<uint64_t>(s.tcp_max_connections, l.max_fds - std::max<uint64_t>(l.max_fds / 4, 1));
    l.max_pending_bytes = s.tcp_max_pending_bytes;
    l.max_outstanding = max_outstanding;
    l.max_input_bytes = s.tcp_max_input_bytes;
    l.max_output_bytes = s.tcp_max_output_bytes;
    return l;
}

TcpEngine::TcpEngine(TcpHandler& handler, const Clock& clock, TcpStats& stats, const TcpLimits& limits)
    : handler_(handler), clock_(clock), stats_(stats), limits_(limits),
      staging_(static_cast<uint8_t*>(std::malloc(kStagingSize))) {
    if (!staging_) throw std::bad_alloc();
    stats_.max_connections.set(static_cast<int64_t>(limits_.max_connections));
}

TcpEngine::~TcpEngine() {
    for (List* l : {&active_, &draining_, &finwait_})
        while (Conn* c = l->head) {
            l->remove(c);
            delete c->stream;
            delete c;
        }
    std::free(staging_);
}

void TcpEngine::reconfigure(const TcpLimits& limits) {
    limits_ = limits;
    stats_.max_connections.set(static_cast<int64_t>(limits_.max_connections));
    while (active_.size > limits_.max_connections && active_.head) begin_close(*active_.head, CloseReason::Evicted);
}

bool TcpEngine::admit() {
    if (shutting_down_) return false;
    if (open_connections() >= limits_.max_fds) {
        // Connections on their way out give up their grace first.
        if (finwait_.head) hard_close(*finwait_.head);
        else if (draining_.head) hard_close(*draining_.head);
        else return false;
    }
    if (active_.size >= limits_.max_connections && active_.head) begin_close(*active_.head, CloseReason::Evicted);
    return true;
}

void TcpEngine::add(Stream* s, const PeerAddress& peer) {
    auto* c = new Conn;
    c->stream = s;
    c->peer = peer;
    s->owner = this;
    s->user = c;
    c->stamp_ms = now();
    active_.push_back(c);
    stats_.accepted.inc();
    stats_.open.add(1);
    s->read(true);
}

size_t TcpEngine::shed(size_t n) {
    size_t done = 0;
    for (List* l : {&finwait_, &draining_})
        while (done < n && l->head) {
            hard_close(*l->head);
            ++done;
        }
    return done;
}

TcpEngine::List& TcpEngine::list_of(Conn& c) {
    return c.state == Conn::Open ? active_ : c.state == Conn::Draining ? draining_ : finwait_;
}

void TcpEngine::touch(Conn& c) {
    c.stamp_ms = now();
    if (active_.tail != &c) {
        active_.remove(&c);
        active_.push_back(&c);
    }
}

void TcpEngine::on_data(Stream& s, const uint8_t* data, size_t n) {
    Conn& c = *conn_of(s);
    if (c.state != Conn::Open) return;  // closing: read and discard until the peer's FIN
    stats_.bytes_in.inc(n);
    reading_ = &c;
    if (!c.in.empty() || c.paused) {
        if (hold_input(c, data, n)) consume_held(c);
    } else {
        const size_t used = scan(c, data, n);
        if (c.state == Conn::Open && used < n && hold_input(c, data + used, n - used)) track_held(c, used > 0);
        else if (c.state == Conn::Open) track_held(c, used > 0);
        if (used > 0 && c.state == Conn::Open) touch(c);
    }
    flush_staging();
    reading_ = nullptr;
    handler_.after_read(c);
    settle(c);
    stats_.input_bytes.set(static_cast<int64_t>(input_bytes_));
}

// Processes the input c holds (reading_ is c); what is used is dropped from it.
void TcpEngine::consume_held(Conn& c) {
    const size_t used = scan(c, c.in.data(), c.in.size());
    if (c.state != Conn::Open) {
        free_input(c);
        return;
    }
    const size_t before = c.in.capacity();
    c.in.consume(used);
    input_bytes_ -= before - c.in.capacity();
    if (used > 0) touch(c);
    track_held(c, used > 0);
}

size_t TcpEngine::scan(Conn& c, const uint8_t* p, size_t n) {
    scanning_ = &c;
    const size_t used = process(c, p, n);
    scanning_ = nullptr;
    if (c.state != Conn::Open) free_input(c);
    return used;
}

size_t TcpEngine::process(Conn& c, const uint8_t* p, size_t n) {
    if (c.paused) return 0;
    bool bad = false;
    const size_t used = scan_frames(p, n, bad, [&](const uint8_t* msg, size_t len) {
        handler_.on_message(c, msg, len);
        if (c.state != Conn::Open) return false;
        if (over_limits(c)) {
            pause(c);
            return false;
        }
        return true;
    });
    if (bad && c.state == Conn::Open) {
        begin_close(c, CloseReason::BadLength);
        return n;
    }
    return used;
}

bool TcpEngine::over_limits(const Conn& c) const {
    // Unsent answers of this connection (those of the current read included); over the process's
    // budget, any connection whose answers the kernel has not taken waits.
    const size_t pending = c.out.pending() + (reading_ == &c ? staged_ : 0);
    return pending >= limits_.max_pending_bytes || c.outstanding >= limits_.max_outstanding ||
           (output_bytes_ >= limits_.max_output_bytes && c.out.pending() > 0);
}

void TcpEngine::pause(Conn& c) {
    c.paused = true;
    c.stream->read(false);
    stats_.read_paused.inc();
}

bool TcpEngine::under_resume_limits(const Conn& c) const {
    const size_t pending = c.out.pending();
    return pending <= limits_.max_pending_bytes / 2 && c.outstanding <= limits_.max_outstanding / 2 &&
           !(pending > 0 && output_bytes_ > limits_.max_output_bytes / 2);
}

void TcpEngine::maybe_resume(Conn& c) {
    if (reading_ != nullptr) return;  // never inside another connection's read
    // Each pass answers held queries until a limit pauses c again; once its answers are
    // written that may already be lifted, so go on while there is input and room.
    for (int pass = 0; c.paused && c.state == Conn::Open && under_resume_limits(c) && pass < 64; ++pass) {
        c.paused = false;
        if (c.in.empty()) break;
        reading_ = &c;
        consume_held(c);
        flush_staging();
        reading_ = nullptr;
        handler_.after_read(c);
        stats_.input_bytes.set(static_cast<int64_t>(input_bytes_));
    }
    if (c.state != Conn::Open || c.paused) return;
    if (c.eof) {
        if (c.in.empty() || c.held == 1) begin_close(c, CloseReason::Peer);  // half-closed: its queries are answered
        return;
    }
    c.stream->read(true);
}

bool TcpEngine::hold_input(Conn& c, const uint8_t* p, size_t n) {
    const size_t need = c.in.size() + n;
    if (need > kMaxHeldInput) {
        stats_.oversized_input.inc();
        begin_close(c, CloseReason::Oversized);
        return false;
    }
    const size_t old_cap = c.in.capacity();
    const uint64_t grow = ByteBuffer::capacity_for(need, old_cap) - old_cap;
    // Over the process's budget, the connection holding input the longest makes room: an
    // incomplete message first (a slow sender), then a paused connection's backlog.
    while (input_bytes_ + grow > limits_.max_input_bytes) {
        Conn* victim = partial_.head != &c ? partial_.head : partial_.head ? partial_.head->held_next : nullptr;
        if (!victim) victim = paused_.head != &c ? paused_.head : paused_.head ? paused_.head->held_next : nullptr;
        if (!victim) {
            begin_close(c, CloseReason::InputBudget);
            return false;
        }
        begin_close(*victim, CloseReason::InputBudget);
    }
    if (!c.in.append(p, n)) {
        begin_close(c, CloseReason::Error);
        return false;
    }
    input_bytes_ += c.in.capacity() - old_cap;
    return true;
}

void TcpEngine::track_held(Conn& c, bool fresh_message) {
    const uint8_t want = c.in.empty() ? 0 : c.paused ? 2 : 1;
    if (want == c.held && !(want == 1 && fresh_message)) return;
    drop_held(c);
    if (want == 0) return;
    c.held = want;
    c.held_since_ms = now();
    (want == 1 ? partial_ : paused_).push_back(&c);
}

void TcpEngine::drop_held(Conn& c) {
    if (c.held == 1) partial_.remove(&c);
    else if (c.held == 2) paused_.remove(&c);
    c.held = 0;
}

void TcpEngine::free_input(Conn& c) {
    drop_held(c);
    if (&c == scanning_) return;  // being scanned: scan() frees it after
    input_bytes_ -= c.in.capacity();
    c.in.release();
}

uint8_t* TcpEngine::answer_space(Conn& c, size_t max) {
    if (c.state == Conn::Closed || c.state == Conn::FinWait) return nullptr;
    if (&c == reading_) {
        if (kStagingSize - staged_ < 2 + max) flush_staging();
        if (kStagingSize - staged_ < 2 + max || c.state == Conn::Closed) return nullptr;
        return staging_ + staged_ + 2;
    }
    uint8_t* p = c.out.space(2 + max);
    return p ? p + 2 : nullptr;
}

void TcpEngine::answer_commit(Conn& c, size_t len) {
    stats_.bytes_out.inc(len);
    if (&c == reading_) {
        put_len(staging_ + staged_, len);
        staged_ += 2 + len;
        return;
    }
    const size_t before = c.out.pending();
    uint8_t* at = c.out.space(2 + len);  // the space answer_space reserved
    put_len(at, len);
    c.out.commit(2 + len);
    account_output(c, before);
    mark_dirty(c);
}

void TcpEngine::release(Conn& c) {
    if (c.outstanding > 0) --c.outstanding;
    if (c.state == Conn::Closed) maybe_free(c);
    else mark_dirty(c);
}

void TcpEngine::flush_staging() {
    if (staged_ == 0 || !reading_) return;
    Conn& c = *reading_;
    const size_t n = staged_;
    staged_ = 0;
    if (c.state == Conn::Closed || c.state == Conn::FinWait) return;
    const size_t before = c.out.pending();
    const int r = c.out.write(*c.stream, staging_, n);
    account_output(c, before);
    if (r < 0) {
        if (c.state == Conn::Open) stats_.closed[static_cast<int>(CloseReason::Error)].inc();
        hard_close(c);
    }
}

void TcpEngine::write_out(Conn& c) {
    const size_t before = c.out.pending();
    const int r = c.out.flush(*c.stream);
    account_output(c, before);
    if (r < 0) {
        if (c.state == Conn::Open) stats_.closed[static_cast<int>(CloseReason::Error)].inc();
        hard_close(c);
    }
}

void TcpEngine::account_output(Conn& c, size_t before) {
    output_bytes_ = output_bytes_ + c.out.pending() - before;
    stats_.output_bytes.set(static_cast<int64_t>(output_bytes_));
}

void TcpEngine::mark_dirty(Conn& c) {
    if (c.dirty) return;
    c.dirty = true;
    dirty_.push_back(&c);
}

void TcpEngine::flush() {
    // Writing may resume a paused connection, whose queries may be answered at once and mark it
    // dirty again: loop until quiet (bounded by the input held).
    for (int rounds = 0; !dirty_.empty() && rounds < 64; ++rounds) {
        flushing_.swap(dirty_);
        for (Conn* c : flushing_) {
            c->dirty = false;
            settle(*c);
        }
        flushing_.clear();
    }
}

// After anything happened to c: write what it has, resume or finish closing it.
void TcpEngine::settle(Conn& c) {
    if (c.state == Conn::Closed) {
        maybe_free(c);
        return;
    }
    write_out(c);
    if (c.state == Conn::Open) maybe_resume(c);  // may answer held queries, or close
    if (c.state == Conn::Open) {
        if (c.out.idle() && c.outstanding == 0) c.out.release();  // hold no memory while idle
    } else if (c.state == Conn::Draining && c.outstanding == 0 && c.out.pending() == 0) {
        finish_close(c);
    }
}

void TcpEngine::on_end(Stream& s, int error) {
    Conn& c = *conn_of(s);
    c.eof = true;
    c.stream->read(false);
    if (error != 0) {
        // A reset: nothing more can be written, so nothing is waited for.
        if (c.state == Conn::Open) stats_.closed[static_cast<int>(CloseReason::Error)].inc();
        hard_close(c);
        return;
    }
    if (c.state == Conn::Open) {
        // A peer that half-closed after pipelining gets the answers to the queries held here.
        if (c.paused && !c.in.empty()) return;
        begin_close(c, CloseReason::Peer);
    } else if (c.state == Conn::FinWait) {
        hard_close(c);
    }
    // Draining: closes as soon as its answers are out (no FIN wait: the peer is gone).
}

void TcpEngine::on_written(Stream& s, int status) {
    Conn& c = *conn_of(s);
    const size_t before = c.out.pending();
    c.out.written();
    account_output(c, before);
    if (c.state == Conn::Closed) {
        maybe_free(c);
        return;
    }
    if (status < 0) {
        if (c.state == Conn::Open) stats_.closed[static_cast<int>(CloseReason::Error)].inc();
        hard_close(c);
        return;
    }
    if (c.state == Conn::Open) touch(c);  // the peer is reading: activity
    settle(c);
}

void TcpEngine::on_shutdown(Stream& s, int status) {
    Conn& c = *conn_of(s);
    if (c.state != Conn::FinWait) return;
    if (status < 0 || c.eof || shutting_down_) hard_close(c);
}

void TcpEngine::on_closed(Stream& s) {
    Conn& c = *conn_of(s);
    c.stream_gone = true;
    stats_.open.add(-1);
    free_input(c);
    const size_t before = c.out.pending();
    c.out.written();
    c.out.release();
    account_output(c, before);
    stats_.input_bytes.set(static_cast<int64_t>(input_bytes_));
    maybe_free(c);
}

void TcpEngine::maybe_free(Conn& c) {
    if (c.state != Conn::Closed || !c.stream_gone || c.outstanding > 0 || c.dirty) return;
    delete c.stream;
    delete &c;
}

void TcpEngine::begin_close(Conn& c, CloseReason why) {
    if (c.state != Conn::Open) return;
    stats_.closed[static_cast<int>(why)].inc();
    active_.remove(&c);
    c.state = Conn::Draining;
    c.stamp_ms = now() + limits_.drain_ms;
    draining_.push_back(&c);
    free_input(c);  // unread input is ignored from now on (after the scan, if one is running)
    if (&c == reading_) return;  // on_data settles it once the answers of this read are written
    if (c.outstanding == 0 && c.out.pending() == 0) finish_close(c);
    else mark_dirty(c);
}

// All answers are out: close our side with a FIN, between messages.
void TcpEngine::finish_close(Conn& c) {
    if (c.state != Conn::Draining) return;
    draining_.remove(&c);
    if (c.eof) {  // the peer already closed its side; nothing to wait for
        c.state = Conn::FinWait;  // (for hard_close's list bookkeeping)
        finwait_.push_back(&c);
        hard_close(c);
        return;
    }
    c.state = Conn::FinWait;
    c.stamp_ms = now() + limits_.close_grace_ms;
    finwait_.push_back(&c);
    if (c.stream->shutdown() != 0) {
        hard_close(c);
        return;
    }
    if (!shutting_down_) c.stream->read(true);  // discard until the peer's FIN
}

void TcpEngine::hard_close(Conn& c) {
    if (c.state == Conn::Closed) return;
    list_of(c).remove(&c);
    drop_held(c);
    c.state = Conn::Closed;
    c.stream->close();
}

void TcpEngine::tick() {
    const uint64_t t = now();
    // A connection waiting for answers to its queries is busy, not idle (its queries have
    // deadlines of their own).
    for (size_t guard = active_.size; guard > 0 && active_.head && t - active_.head->stamp_ms >= limits_.idle_ms;
         --guard) {
        Conn& c = *active_.head;
        if (c.outstanding > 0) touch(c);
        else begin_close(c, CloseReason::Idle);
    }
    while (partial_.head && t - partial_.head->held_since_ms >= limits_.message_ms)
        begin_close(*partial_.head, CloseReason::MessageTimeout);
    while (draining_.head && draining_.head->stamp_ms <= t) hard_close(*draining_.head);
    while (finwait_.head && finwait_.head->stamp_ms <= t) hard_close(*finwait_.head);
    stats_.input_bytes.set(static_cast<int64_t>(input_bytes_));
}

void TcpEngine::shutdown() {
    shutting_down_ = true;
    while (active_.head) begin_close(*active_.head, CloseReason::Shutdown);
    // Connections already waiting for a peer's FIN need not wait any longer.
    while (finwait_.head) hard_close(*finwait_.head);
    flush();
}

}  // namespace dp::net
