// The EDNS options a front answers itself rather than the worker (balancer_context.hpp).
#include <cstring>

#include "balancer/balancer_context.hpp"
#include "dns/message.hpp"

namespace dp::balancer {

size_t take_front_options(BalancerContext& ctx, uint8_t* msg, size_t len, dns::Query& q, dns::ParseStatus& st,
                          dns::Malformed why, const dns::ClientAddr& from, bool udp, dns::ClientCookie& c) {
    c.clear();
    if (st != dns::ParseStatus::Ok) {
        // A malformed COOKIE option goes on as it is: the worker answers FORMERR (RFC 7873 5.2.2).
        if (st == dns::ParseStatus::FormErr && why == dns::Malformed::Cookie) ctx.metrics.cookies[0].inc();
        return len;
    }
    if (q.cookie_len && ctx.cookies.enabled()) {
        c.len = q.cookie_len;
        std::memcpy(c.value, q.cookie, q.cookie_len);
        c.verdict = ctx.cookies.check(q.cookie, q.cookie_len, from, dns::cookie_clock());
        ctx.metrics.cookies[static_cast<int>(c.verdict)].inc();
    }
    const bool keepalive = udp && q.edns_keepalive;
    if (!keepalive && q.cookie_len == 0) return len;
    if (keepalive) len = dns::remove_option(msg, len, dns::edns_opt::TCP_KEEPALIVE);
    if (q.cookie_len) len = dns::remove_option(msg, len, dns::edns_opt::COOKIE);
    dns::Malformed again;
    st = dns::parse_query(msg, len, q, again);
    return len;
}

}  // namespace dp::balancer
