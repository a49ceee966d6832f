// The workers behind the balancer: a few persistent TCP connections to each, carrying many
// queries at once (RFC 7766 pipelining) under IDs remapped per connection, so any number of
// clients share them. Spreads queries to the least loaded connection of a healthy worker,
// re-sends the queries of a failed attempt to another worker within their deadline, marks a
// worker down after repeated failures and brings it back when an active probe succeeds.
// When every query ID of a worker's connections is in use, more connections are opened (up to
// upstream_max_connections) and meanwhile the query waits, within its deadline, for a free ID.
// The connections are net::UvTcpStream, framed with net::scan_frames and written through
// net::WriteQueue, like the client side.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "balancer/balancer_context.hpp"
#include "dns/wire.hpp"
#include "net/byte_buffer.hpp"
#include "net/conn_list.hpp"
#include "net/uv_tcp.hpp"
#include "net/write_queue.hpp"

namespace dp::balancer {

struct Upstream;
class UpstreamPool;

struct UpConn {
    enum State : uint8_t { Idle, Connecting, Ready, Closing };

    net::UvTcpStream* stream = nullptr;  // while not Idle
    Upstream* up = nullptr;
    State state = Idle;
    bool extra = false;       // opened on demand, beyond upstream_connections: not reopened
    bool probe = false;       // opened only to probe a down worker
    bool dirty = false;       // on the pool's flush list
    bool got_answer = false;  // since connecting
    bool opened_before = false;
    uint64_t connect_started_ms = 0;
    uint64_t probe_deadline_ms = 0;

    // Upstream ID -> query. IDs are handed out from a FIFO ring so a released ID is reused as
    // late as possible: a late answer to a timed-out attempt then rarely meets a new query
    // under its old ID (and the question check catches it when it does).
    std::vector<Pending*> slots;
    std::vector<uint16_t> free_ids;
    size_t free_head = 0, free_count = 0;
    uint32_t outstanding = 0;
    Pending* head = nullptr;  // in flight, ordered by attempt deadline
    Pending* tail = nullptr;

    net::WriteQueue out;  // framed queries on their way to the worker
    net::ByteBuffer in;   // an answer split across reads
};

struct Upstream {
    std::string addr;
    sockaddr_storage sa{};
    bool up = true;  // optimistic at start: queries wait on connecting connections
    bool removed = false;
    bool finalizing = false;
    bool timer_closed = false;
    uint32_t failures = 0;  // consecutive; an answer resets it
    uint32_t backoff_ms = 0;
    uint32_t outstanding = 0;
    uv_timer_t timer{};  // next probe while down
    std::vector<std::unique_ptr<UpConn>> conns;
    WorkerStats* stats = nullptr;
    UpstreamPool* pool = nullptr;
};

class UpstreamPool : public Flushable, public net::ConnectOwner {
public:
    UpstreamPool(uv_loop_t* loop, BalancerContext& ctx);
    ~UpstreamPool() override;
    // Connects to the configured workers and starts the deadline timer.
    void start();
    // Applies ctx.config's worker list after a reload: new workers are connected, removed
    // ones stop getting queries and are closed once their queries are answered.
    void reconfigure();

    // A free query slot, or null when max_inflight queries are already held.
    Pending* acquire();
    // Sends a filled Pending (client fields, query, len, qlen, start_ns) to a worker. When
    // no healthy worker exists, the client gets SERVFAIL at once; when every query ID is in use,
    // the query waits for one within its deadline.
    void submit(Pending* p);
    // Copies the client's query into an acquired Pending (len, qlen, the heap copy when long).
    // False when memory for a long query is short: the Pending is released and the drop counted.
    bool fill_query(Pending* p, const uint8_t* msg, size_t len, const dns::Query& q);
    // Returns a Pending that was acquired but never submitted.
    void release(Pending* p);
    void flush() override;
    size_t inflight() const { return inflight_; }

    // net::ConnectOwner
    void on_connected(net::Stream& s, int status) override;
    void on_data(net::Stream& s, const uint8_t* data, size_t n) override;
    void on_end(net::Stream& s, int error) override;
    void on_written(net::Stream& s, int status) override;
    void on_shutdown(net::Stream&, int) override {}
    void on_closed(net::Stream& s) override;

private:
    friend struct PoolCallbacks;
    static constexpr uint16_t kProbeId = 0xFFFF;  // never handed to a query (slots < 65535)
    static UpConn* conn_of(net::Stream& s) { return static_cast<UpConn*>(s.user); }

    Upstream* add_upstream(const std::string& addr);
    UpConn* add_conn(Upstream* u, bool extra);
    void connect(UpConn* c, bool probe);
    size_t process(UpConn* c, const uint8_t* p, size_t n);
    void on_answer(UpConn* c, const uint8_t* msg, size_t len);
    void write_out(UpConn* c);
    void mark_dirty(UpConn* c);
    void break_conn(UpConn* c, bool failure, FailReason why);
    void fail(Upstream* u, FailReason why);
    void mark_down(Upstream* u);
    void mark_up(Upstream* u);
    void probe_failed(Upstream* u);
    void on_probe_timer(Upstream* u);
    void tick();

    bool any_healthy(const Upstream* avoid) const;
    UpConn* pick(const Upstream* avoid);
    // Opens one more connection to the least loaded healthy worker that has room for one.
    UpConn* grow(const Upstream* avoid);
    bool dispatch(Pending* p, const Upstream* avoid);
    bool assign(Pending* p, UpConn* c);
    // No ID free anywhere: the query waits (oldest first) until one is or its deadline passes.
    void wait(Pending* p);
    void unwait(Pending* p);
    void dispatch_waiting();
    void detach(Pending* p);
    void resend(Pending* p, const Upstream* from);
    void route(Pending* p, const Upstream* avoid);
    void expire(Pending* p, ServfailReason why);
    void servfail(Pending* p, ServfailReason why);
    // Parses a query in flight again (the front's parse pointed into its own buffer) for the
    // cache; false when the cache does not take such a query.
    static bool cache_key(const Pending& p, dns::Query& q);
    // RFC 8767: answers from an expired cache entry when no worker could; false when none.
    bool serve_stale(Pending* p);
    uint64_t now_ms() const { return uv_now(loop_); }

    uv_loop_t* loop_;
    BalancerContext& ctx_;
    std::vector<std::unique_ptr<Upstream>> ups_;
    size_t rr_ = 0;  // rotates the scan start so equally loaded connections share the work
    uv_timer_t ticker_{};

    Pending* table_ = nullptr;  // max_inflight entries, zeroed, never moved
    Pending* free_ = nullptr;
    size_t inflight_ = 0;
    size_t table_size_ = 0;
    Pending* wait_head_ = nullptr;  // waiting for a free ID, oldest (earliest deadline) first
    Pending* wait_tail_ = nullptr;
    size_t waiting_ = 0;

    std::vector<UpConn*> dirty_;
    std::vector<uint8_t> read_buf_;
};

}  // namespace dp::balancer
