#include "balancer/tcp_front.hpp"

#include <algorithm>
#include <cstring>

#include "dns/message.hpp"
#include "dns/wire.hpp"

namespace dp::balancer {

TcpFront::TcpFront(uv_loop_t* loop, BalancerContext& ctx, UpstreamPool& pool, uint64_t fd_budget)
    : ctx_(ctx), pool_(pool), fd_budget_(fd_budget),
      // The engine's flush runs with everything else the thread flushes (Engine's loop hooks).
      server_(loop, *this, ctx.metrics.tcp, limits(), [] {}) {}

net::TcpLimits TcpFront::limits() const {
    const BalancerConfig& c = ctx_.config;
    // A closing connection waits for the answers still due, which come within the deadline.
    return net::TcpLimits::derive(c.serving, fd_budget_, c.tcp_max_queries_per_connection, c.deadline_ms);
}

bool TcpFront::start(const std::vector<std::pair<std::string, uint16_t>>& addrs, std::string& error) {
    for (const auto& [host, port] : addrs)
        if (!server_.listen(host, port, ctx_.config.threads > 1, static_cast<int>(ctx_.config.serving.tcp_backlog), error))
            return false;
    return true;
}

void TcpFront::reconfigure() { server_.reconfigure(limits()); }

bool TcpFront::answer(net::Conn& c, const uint8_t* msg, size_t len, uint16_t id, bool keepalive,
                      const dns::ClientCookie& cookie) {
    net::TcpEngine& e = server_.engine();
    const size_t cap = cookie.len ? std::min(len + 4 + dns::kMaxCookie, dns::kMaxMessage) : len;
    uint8_t* out = e.answer_space(c, cap);
    if (!out) return false;
    std::memcpy(out, msg, len);
    dns::put_u16(out, id);
    // The worker answered with its own idle timeout; the client's is ours (RFC 7828).
    if (keepalive) dns::set_keepalive(out, len, dns::keepalive_units(ctx_.config.serving.tcp_idle_timeout_ms));
    // The cookie computed for this client now, whoever made the answer (a worker, the cache).
    len = dns::add_cookie(ctx_.cookies, cookie, dns::ClientAddr{c.peer.octets, c.peer.len}, out, len, cap);
    e.answer_commit(c, len);
    ctx_.metrics.answered(1, msg[3] & 0x0F);
    return true;
}

void TcpFront::on_message(net::Conn& c, const uint8_t* msg, size_t len) {
    BalancerMetrics& m = ctx_.metrics;
    dns::Query q;
    dns::Malformed why;
    dns::ParseStatus st = dns::parse_query(msg, len, q, why);
    if (st == dns::ParseStatus::Drop) {
        m.drop(DropReason::Malformed);
        return;
    }
    if (len > kMaxQuery) {
        m.drop(DropReason::Oversized);
        return;
    }
    // The client's cookie is the front's to answer: judged, and taken out of a copy of the query.
    dns::ClientCookie cookie;
    uint8_t copy[kMaxQuery];
    if (has_front_options(q, st, why, false)) {
        std::memcpy(copy, msg, len);
        len = take_front_options(ctx_, copy, len, q, st, why, dns::ClientAddr{c.peer.octets, c.peer.len}, false,
                                 cookie);
        msg = copy;
    }
    const uint64_t t0 = now_ns();
    if (ctx_.cache_on() && AnswerCache::cacheable_query(q, st)) {
        const size_t r = ctx_.cache->lookup(q, uv_now(ctx_.loop), false, ctx_.answer_buf, sizeof ctx_.answer_buf);
        if (r) {
            if (answer(c, ctx_.answer_buf, r, q.id, false, cookie)) m.duration[1].observe_ns(now_ns() - t0);
            return;
        }
    }
    Pending* p = pool_.acquire();
    if (!p) {
        m.servfail[static_cast<int>(ServfailReason::Overload)].inc();
        const size_t r = dns::make_servfail(msg, len, ctx_.answer_buf, sizeof ctx_.answer_buf);
        if (r) answer(c, ctx_.answer_buf, r, q.id, false, cookie);
        return;
    }
    p->front = this;
    p->client = &c;
    p->transport = 1;
    p->client_id = q.id;
    p->udp_limit = 0;
    p->keepalive = q.edns_keepalive;
    p->cookie.clear();
    if (cookie.len) p->cookie = cookie;
    if (!pool_.fill_query(p, msg, len, q)) return;
    p->start_ns = t0;
    server_.engine().hold(c);
    pool_.submit(p);
}

void TcpFront::deliver(Pending& p, const uint8_t* answer_msg, size_t len) {
    net::Conn& c = *p.client;
    if (answer(c, answer_msg, len, p.client_id, p.keepalive, p.cookie)) ctx_.metrics.duration[1].observe_ns(now_ns() - p.start_ns);
    server_.engine().release(c);
}

void TcpFront::forget(Pending& p) { server_.engine().release(*p.client); }

}  // namespace dp::balancer
