// What the balancer's parts share: the query in flight (Pending), the interface through which
// an answer goes back to the client that asked (Front), the settings and the metrics.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <vector>

#include "balancer/answer_cache.hpp"
#include "balancer/balancer_config.hpp"
#include "balancer/balancer_metrics.hpp"
#include "dns/cookie.hpp"
#include "dns/wire.hpp"

namespace dp::net {
struct Conn;
}

namespace dp::balancer {

struct Pending;
struct UpConn;

// A client-facing transport. Exactly one of deliver/forget is called for every Pending
// submitted by the front; the Pending is recycled right after, so the front copies what it keeps.
class Front {
public:
    virtual ~Front() = default;
    // `answer` carries the worker's (upstream) ID or the client's; the front writes p.client_id.
    virtual void deliver(Pending& p, const uint8_t* answer, size_t len) = 0;
    // No answer will come (deadline passed with deadline_action "drop").
    virtual void forget(Pending& p) = 0;
};

// Something holding output to hand to the kernel once the current event is processed, so that
// everything one event produced goes out in as few system calls as possible.
class Flushable {
public:
    virtual ~Flushable() = default;
    virtual void flush() = 0;
};

inline constexpr size_t kInlineQuery = 512;  // nearly every query fits; larger ones use the heap
inline constexpr size_t kMaxQuery = 4096;    // larger queries are dropped (reason "oversized")

// One client query from receipt until it is answered. Lives in the pool's fixed table; the
// memory is zeroed at start-up and reused (no allocation per query unless it exceeds kInlineQuery).
struct Pending {
    // The client.
    Front* front;
    net::Conn* client;  // TCP only
    sockaddr_storage peer;  // UDP only
    socklen_t peer_len;
    uint16_t client_id;
    uint16_t udp_limit;  // largest answer the UDP client takes
    uint8_t transport;   // 0 udp, 1 tcp
    bool keepalive;      // TCP query with edns-tcp-keepalive: the answer gets our idle timeout
    dns::ClientCookie cookie;  // the client's COOKIE option (taken out of the query sent on)
    // The query as the client sent it (client's ID).
    uint16_t len;
    uint16_t qlen;  // question octets after the header (0 when the query has no usable question)
    uint8_t* heap;  // the query when longer than kInlineQuery
    uint8_t inline_query[kInlineQuery];
    // The current attempt.
    UpConn* conn;
    uint16_t up_id;
    uint8_t tries;  // attempts made so far
    const void* last_upstream;
    uint64_t start_ns;
    uint64_t deadline_ms;          // loop time at which the client gets SERVFAIL (or nothing)
    uint64_t attempt_deadline_ms;  // loop time at which this attempt counts as failed
    Pending* prev;  // the connection's list ordered by attempt deadline, the wait list, or the free list
    Pending* next;
    bool waiting;   // on the wait list: no worker connection had a free query ID

    uint8_t* query() { return heap ? heap : inline_query; }
    const uint8_t* query() const { return heap ? heap : inline_query; }
};

struct BalancerContext {
    uv_loop_t* loop = nullptr;
    BalancerConfig config;
    BalancerMetrics metrics;
    WorkerStatsTable* worker_stats = nullptr;
    AnswerCache* cache = nullptr;        // the thread's answer cache (max_entries 0: off)
    dns::Cookies cookies;                // from config: cookies, cookie_secret, cookie_secret_previous
    RequestLimiter* requests = nullptr;  // UDP only
    ResponseLimiter* responses = nullptr;  // UDP only
    // An answer the balancer makes or takes from the cache, on its way to a front (one at a time).
    uint8_t answer_buf[AnswerCache::kMaxAnswer];

    bool cache_on() const { return cache->settings().max_entries != 0; }
    std::vector<Flushable*> flushables;  // flushed in order once per loop iteration (and by the UDP front per batch)

    void flush_all() {
        for (Flushable* f : flushables) f->flush();
    }
};

// The EDNS options a front answers itself rather than the worker. Does a query parsed as
// (q, st, why) carry one? (Inline: asked of every query.)
inline bool has_front_options(const dns::Query& q, dns::ParseStatus st, dns::Malformed why, bool udp) {
    if (st == dns::ParseStatus::Ok) return q.cookie_len != 0 || (udp && q.edns_keepalive);
    return st == dns::ParseStatus::FormErr && why == dns::Malformed::Cookie;
}
// Takes them out of the query in place, which is parsed again into q/st; returns the new
// length. The COOKIE option is judged for the client at `from` into `c` (counted; a malformed
// one, `why`, is counted and left for the worker to answer FORMERR) and always removed: the
// worker's cookie would be made for the balancer's address, and a cached answer must never
// carry one client's cookie. Over UDP edns-tcp-keepalive goes too (RFC 7828: never answered
// over UDP, but the worker sees the query over TCP; over TCP the front rewrites its value).
size_t take_front_options(BalancerContext& ctx, uint8_t* msg, size_t len, dns::Query& q, dns::ParseStatus& st,
                          dns::Malformed why, const dns::ClientAddr& from, bool udp, dns::ClientCookie& c);

// Monotonic clock in nanoseconds (vDSO, no system call).
uint64_t now_ns();

}  // namespace dp::balancer
