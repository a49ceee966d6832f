// The workers behind the balancer: a few persistent TCP connections to each, carrying many
// queries at once (RFC 7766 pipelining) under IDs remapped per connection, so any number of
// clients share them. Spreads queries to the least loaded connection of a healthy worker,
// re-sends the queries of a failed attempt to another worker within their deadline, marks a
// worker down after repeated failures and brings it back when an active probe succeeds.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "balancer/balancer_context.hpp"
#include "dns/wire.hpp"
#include "net/dns_stream.hpp"

namespace dp::balancer {

struct Upstream;
class UpstreamPool;

struct UpConn {
    enum State : uint8_t { Idle, Connecting, Ready, Closing };

    uv_tcp_t handle{};
    uv_connect_t connect_req{};
    uv_write_t write_req{};
    Upstream* up = nullptr;
    State state = Idle;
    bool probe = false;       // opened only to probe a down worker
    bool writing = false;     // write_req in flight
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

    std::vector<uint8_t> next;  // framed queries not yet handed to the kernel
    size_t next_len = 0;
    std::vector<uint8_t> inflight;  // the part of a write the kernel has not taken yet
    net::StreamBuffer in;           // an answer split across reads
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

class UpstreamPool : public Flushable {
public:
    UpstreamPool(uv_loop_t* loop, BalancerContext& ctx);
    ~UpstreamPool() override;
    // Connects to the configured workers and starts the deadline timer.
    void start();
    // Applies ctx.config's worker list after a reload: new workers are connected, removed
    // ones stop getting queries and are closed once their queries are answered.
    void reconfigure();

    // A free query slot, or null when max_inflight queries are already waiting.
    Pending* acquire();
    // Sends a filled Pending (client fields, query, len, qlen, start_ns) to a worker. When
    // none can take it, the client gets SERVFAIL at once: a query never waits without a worker.
    void submit(Pending* p);
    // Copies the client's query into an acquired Pending (len, qlen, the heap copy when long).
    // False when memory for a long query is short: the Pending is released and the drop counted.
    bool fill_query(Pending* p, const uint8_t* msg, size_t len, const dns::Query& q);
    // Returns a Pending that was acquired but never submitted.
    void release(Pending* p);
    void flush() override;
    size_t inflight() const { return inflight_; }

private:
    friend struct PoolCallbacks;
    static constexpr uint16_t kProbeId = 0xFFFF;  // never handed to a query (slots < 65535)

    Upstream* add_upstream(const std::string& addr);
    void connect(UpConn* c, bool probe);
    void on_connect(UpConn* c, int status);
    void on_read(UpConn* c, ssize_t nread, const uv_buf_t* buf);
    size_t process(UpConn* c, const uint8_t* p, size_t n);
    void on_answer(UpConn* c, const uint8_t* msg, size_t len);
    void on_write_done(UpConn* c, int status);
    void on_closed(UpConn* c);
    void write_out(UpConn* c);
    void break_conn(UpConn* c, bool failure, FailReason why);
    void fail(Upstream* u, FailReason why);
    void mark_down(Upstream* u);
    void mark_up(Upstream* u);
    void probe_failed(Upstream* u);
    void on_probe_timer(Upstream* u);
    void tick();

    UpConn* pick(const Upstream* avoid);
    bool dispatch(Pending* p, const Upstream* avoid);
    void detach(Pending* p);
    void resend(Pending* p, const Upstream* from);
    void expire(Pending* p);
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

    std::vector<UpConn*> dirty_;
    std::vector<uint8_t> read_buf_;
};

}  // namespace dp::balancer
