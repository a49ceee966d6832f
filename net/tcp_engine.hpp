// The one TCP connection engine of the worker and the balancer (RFC 7766, RFC 9210): the life
// cycle of every client connection, from admission to the last octet, with the limits that keep
// strangers from wearing a server down. The program plugs in through TcpHandler: it is given
// each whole DNS message and answers at once (the worker) or later (the balancer, from a worker
// or its cache). Everything about sockets goes through Stream, so the state machine runs under
// unit tests with scripted streams.
//
// A connection is Open (read, answered), Draining (close decided: answers still due are
// awaited and written, bounded by drain_ms), FinWait (our FIN sent; input read and discarded
// until the peer's FIN, bounded by close_grace_ms, so unread data never turns the close into a
// reset) or Closed. Limits:
//   - activity: a connection is active when a whole message arrives or a write completes, not
//     when a single octet does; the idle sweep closes those inactive for idle_ms (a connection
//     with queries outstanding at the handler is busy, not idle);
//   - message deadline: a message whose first octet arrived must be complete within message_ms;
//   - connection cap: at max_connections the least recently active one is evicted; every
//     descriptor counts, closing ones included, against max_fds: there the oldest closing one
//     is closed at once, and when none is closing a new connection is refused;
//   - back-pressure: reading pauses while a connection's unsent answers reach max_pending_bytes
//     or its outstanding queries max_outstanding, and resumes below half;
//   - memory for the process: input held for incomplete messages is bounded by
//     max_input_bytes (over it the connection holding the oldest incomplete message is
//     closed), unsent answers by max_output_bytes (over it, connections with unsent answers are
//     not read until it halves);
//   - writes coalesce: answers to everything one read delivered go out in one system call; the
//     handler's later answers are collected and flushed once per loop iteration (flush()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "net/byte_buffer.hpp"
#include "net/conn_list.hpp"
#include "net/metrics.hpp"
#include "net/serving_settings.hpp"
#include "net/sockets.hpp"
#include "net/stream.hpp"
#include "net/write_queue.hpp"

namespace dp::net {

enum class CloseReason : uint8_t {
    Idle,            // no activity for idle_ms
    Evicted,         // the connection cap made room for a new connection
    Peer,            // the peer closed (FIN)
    Error,           // reset, write failure, out of memory
    Shutdown,        // the process is stopping
    BadLength,       // a length prefix below 12: the stream is out of step
    MessageTimeout,  // a message was not complete within message_ms
    InputBudget,     // held input over max_input_bytes: the oldest incomplete message's connection
    Oversized,       // more input held than one read plus one message
    Count
};
const char* close_reason_name(CloseReason r);

enum class RefuseReason : uint8_t {
    FdBudget,  // every descriptor the process gives to clients is in use, none closing
    FdLimit,   // accept() failed: the process (EMFILE) or system (ENFILE) ran out of descriptors
    Count
};
const char* refuse_reason_name(RefuseReason r);

struct TcpStats {
    Counter accepted;
    Gauge open;  // every client descriptor held, closing connections included
    Gauge max_connections;  // the cap in force (tcp_max_connections, lowered to fit the descriptors)
    Counter closed[static_cast<int>(CloseReason::Count)];
    Counter refused[static_cast<int>(RefuseReason::Count)];
    Counter read_paused;
    Counter oversized_input;  // also counted in closed{reason=oversized}; kept for dashboards
    Gauge input_bytes;   // held for incomplete messages and paused connections
    Gauge output_bytes;  // unsent answers
    Counter bytes_in, bytes_out;

    // Registers these under `prefix` ("domain_park_" or "domain_park_balancer_").
    void register_all(MetricsRegistry& r, const std::string& prefix, const std::string& who) const;
};

// The engine's limits, derived from the serving settings (derive() again after a reload).
struct TcpLimits {
    uint64_t idle_ms = 30000;
    uint64_t message_ms = 5000;
    uint64_t close_grace_ms = 5000;
    uint64_t drain_ms = 5000;  // Draining lasts at most this long
    size_t max_connections = 10000;
    size_t max_fds = 10000 + 2500;
    size_t max_pending_bytes = 256 * 1024;
    uint32_t max_outstanding = 0xFFFFFFFFu;
    uint64_t max_input_bytes = 64u << 20;
    uint64_t max_output_bytes = 64u << 20;

    // `fd_budget`: descriptors this engine may give to client connections (its share of the
    // process's limit after what else the process holds). Draining lasts at least close grace.
    static TcpLimits derive(const ServingSettings& s, uint64_t fd_budget, uint32_t max_outstanding = 0xFFFFFFFFu,
                            uint64_t drain_ms = 0);
};

struct Conn {
    enum State : uint8_t { Open, Draining, FinWait, Closed };
    Stream* stream = nullptr;
    Conn* prev = nullptr;  // the activity list (Open) or a closing list
    Conn* next = nullptr;
    Conn* held_prev = nullptr;  // a list of connections holding input (incomplete, or paused)
    Conn* held_next = nullptr;
    uint64_t stamp_ms = 0;          // Open: last activity; Draining/FinWait: the deadline
    uint64_t held_since_ms = 0;     // when the held input began (an incomplete message's first octet)
    ByteBuffer in;                  // unconsumed input: an incomplete message, or input held while paused
    WriteQueue out;
    uint32_t outstanding = 0;  // queries the handler holds (hold/release)
    State state = Open;
    bool paused = false;
    bool eof = false;          // the peer's FIN arrived
    bool dirty = false;        // on the flush list
    uint8_t held = 0;          // which held list: 0 none, 1 incomplete message, 2 paused
    bool stream_gone = false;  // on_closed arrived
    PeerAddress peer;          // the client's address, recorded at accept (the handler's to use)
    void* user = nullptr;      // the handler's
};

class TcpHandler {
public:
    virtual ~TcpHandler() = default;
    // One whole message from the client (`msg` is valid only during the call). Answers go through
    // TcpEngine::answer_space/answer_commit, now or — between hold() and release() — later.
    virtual void on_message(Conn& c, const uint8_t* msg, size_t len) = 0;
    // The answers given at once to one read's messages have been handed to the kernel.
    virtual void after_read(Conn&) {}
};

class TcpEngine : public StreamOwner {
public:
    static constexpr size_t kStagingSize = 256 * 1024;

    TcpEngine(TcpHandler& handler, const Clock& clock, TcpStats& stats, const TcpLimits& limits);
    ~TcpEngine() override;
    TcpEngine(const TcpEngine&) = delete;
    TcpEngine& operator=(const TcpEngine&) = delete;

    // New limits (a reload); connections over a lowered cap are evicted.
    void reconfigure(const TcpLimits& limits);
    const TcpLimits& limits() const { return limits_; }

    // Admission, asked before a new descriptor is wrapped in a stream: makes room when needed
    // (closes the oldest closing connection at the descriptor cap, evicts the least recently
    // active one at the connection cap); false means refuse it (counted by the caller).
    bool admit();
    // A newly accepted connection (after admit()) from `peer`; the engine owns the stream from now on.
    void add(Stream* s, const PeerAddress& peer = {});
    void refused(RefuseReason r) { stats_.refused[static_cast<int>(r)].inc(); }
    // Descriptors are short: close closing connections at once (up to n); returns how many.
    size_t shed(size_t n);

    // For the handler. Space for one answer of at most `max` octets to `c` (the engine writes
    // the length prefix): during on_message for c, in the shared staging buffer written when the
    // read is processed; otherwise at the end of c's queue, written by flush(). Null when c takes
    // no more answers (closed) or memory is short; then the answer is dropped.
    uint8_t* answer_space(Conn& c, size_t max);
    void answer_commit(Conn& c, size_t len);
    void hold(Conn& c) { ++c.outstanding; }
    // An answer held since hold() was committed (or will never come); frees c when it is gone.
    void release(Conn& c);
    // Writes the answers collected since the last flush (call once per loop iteration).
    void flush();
    // Timers: idle sweep, message deadlines, close deadlines. Call a few times per second.
    void tick();
    // Stops reading new queries everywhere and closes every connection once its answers are out.
    void shutdown();
    size_t open_connections() const { return active_.size + draining_.size + finwait_.size; }
    size_t active_connections() const { return active_.size; }
    uint64_t held_input() const { return input_bytes_; }
    uint64_t pending_output() const { return output_bytes_; }

    // StreamOwner
    void on_data(Stream& s, const uint8_t* data, size_t n) override;
    void on_end(Stream& s, int error) override;
    void on_written(Stream& s, int status) override;
    void on_shutdown(Stream& s, int status) override;
    void on_closed(Stream& s) override;

private:
    using List = ConnList<Conn>;
    using HeldList = ConnList<Conn, &Conn::held_prev, &Conn::held_next>;
    static Conn* conn_of(Stream& s) { return static_cast<Conn*>(s.user); }
    uint64_t now() const { return clock_.now_ms(); }

    size_t process(Conn& c, const uint8_t* p, size_t n);
    size_t scan(Conn& c, const uint8_t* p, size_t n);
    void consume_held(Conn& c);
    bool over_limits(const Conn& c) const;
    bool under_resume_limits(const Conn& c) const;
    void pause(Conn& c);
    void maybe_resume(Conn& c);
    bool hold_input(Conn& c, const uint8_t* p, size_t n);
    // Puts c on the held list its input belongs to now (none when it holds nothing).
    void track_held(Conn& c, bool fresh_message);
    void drop_held(Conn& c);
    void settle(Conn& c);
    void flush_staging();
    void write_out(Conn& c);
    void account_output(Conn& c, size_t before);
    void mark_dirty(Conn& c);
    void touch(Conn& c);
    void begin_close(Conn& c, CloseReason why);
    void finish_close(Conn& c);
    void hard_close(Conn& c);
    void free_input(Conn& c);
    void maybe_free(Conn& c);
    List& list_of(Conn& c);

    TcpHandler& handler_;
    const Clock& clock_;
    TcpStats& stats_;
    TcpLimits limits_;
    List active_;    // Open, least recently active first
    List draining_;  // Draining, oldest deadline first
    List finwait_;   // FinWait, oldest deadline first
    HeldList partial_;  // holding an incomplete message, oldest first (message deadline)
    HeldList paused_;   // paused with input held, oldest first
    uint64_t input_bytes_ = 0;   // capacity of every input buffer
    uint64_t output_bytes_ = 0;  // pending output of every connection
    bool shutting_down_ = false;

    // The answers to the read being processed, for one connection at a time.
    uint8_t* staging_;
    size_t staged_ = 0;
    Conn* reading_ = nullptr;   // the connection whose read is being processed (answers go to staging)
    Conn* scanning_ = nullptr;  // the connection whose input is being scanned (its buffer stays)
    std::vector<Conn*> dirty_, flushing_;
};

}  // namespace dp::net
