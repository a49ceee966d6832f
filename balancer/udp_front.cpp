#include "balancer/udp_front.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "dns/message.hpp"
#include "balancer/rate_limit.hpp"
#include "net/sockets.hpp"

namespace dp::balancer {

UdpFront::UdpFront(uv_loop_t* loop, BalancerContext& ctx, UpstreamPool& pool, std::string host, uint16_t port)
    : loop_(loop), ctx_(ctx), pool_(pool), host_(std::move(host)), port_(port) {
    for (int i = 0; i < kBatch; ++i) in_iov_[i] = {in_buf_[i], kInSize};
}

bool UdpFront::start(std::string& error) {
    return socket_.open(
        loop_, host_, port_, ctx_.config.threads > 1, ctx_.config.serving.udp_rcvbuf,
        [](void* p) { static_cast<UdpFront*>(p)->drain(); },
        this, error);
}

void UdpFront::stop() { socket_.stop(); }

void UdpFront::drain() {
    for (int round = 0; round < kRounds; ++round) {
        for (int i = 0; i < kBatch; ++i) {
            msghdr& mh = in_[i].msg_hdr;
            mh.msg_name = &in_peers_[i];
            mh.msg_namelen = sizeof(sockaddr_storage);
            mh.msg_iov = &in_iov_[i];
            mh.msg_iovlen = 1;
            mh.msg_control = nullptr;
            mh.msg_controllen = 0;
            mh.msg_flags = 0;
        }
        const int got = recvmmsg(socket_.fd(), in_, kBatch, MSG_DONTWAIT, nullptr);
        if (got <= 0) return;  // EAGAIN: drained; other errors (ICMP feedback) are transient
        const uint64_t t0 = now_ns();
        for (int i = 0; i < got; ++i) parse(i);
        if (ctx_.cache_on()) {
            // A cache hit waits on three dependent loads, each usually a miss by now: ask for
            // them batch-wide, one level at a time, so the misses overlap.
            for (int i = 0; i < got; ++i)
                fetch_[i] = AnswerCache::cacheable_query(q_[i], st_[i]) && ctx_.cache->prefetch_index(q_[i], tag_[i]);
            for (int level = 0; level < 2; ++level)
                for (int i = 0; i < got; ++i)
                    if (fetch_[i]) ctx_.cache->prefetch_entry(tag_[i], level == 1);
        }
        for (int i = 0; i < got; ++i) handle(i, t0);
        // Hand this batch to the workers before reading the next one.
        ctx_.flush_all();
        if (got < kBatch) return;
    }
}

namespace {
// A datagram's sender as cookies see it: a view of the address octets in `peer`.
dns::ClientAddr client_addr(const sockaddr_storage& peer) {
    dns::ClientAddr a;
    a.octets = net::address_octets(reinterpret_cast<const sockaddr*>(&peer), a.len);
    return a;
}
}  // namespace

void UdpFront::parse(int i) {
    uint8_t* msg = in_buf_[i];
    size_t len = in_[i].msg_len;
    ctx_.metrics.udp_bytes_in.inc(len);
    dns::Query& q = q_[i];
    dns::Malformed why;
    dns::ParseStatus st = dns::parse_query(msg, len, q, why);
    // edns-tcp-keepalive and the client's cookie go before the query goes to a worker (or the cache).
    if (has_front_options(q, st, why, true))
        len = take_front_options(ctx_, msg, len, q, st, why, client_addr(in_peers_[i]), true, cookie_[i]);
    else
        cookie_[i].clear();
    len_[i] = len;
    st_[i] = st;
}

void UdpFront::handle(int i, uint64_t t0) {
    BalancerMetrics& m = ctx_.metrics;
    uint8_t* const msg = in_buf_[i];
    const size_t len = len_[i];
    const dns::Query& q = q_[i];
    const dns::ParseStatus st = st_[i];
    const sockaddr_storage& peer = in_peers_[i];
    const socklen_t peer_len = in_[i].msg_hdr.msg_namelen;
    if (st == dns::ParseStatus::Drop) {
        m.drop(DropReason::Malformed);  // a response or a runt: never answered
        return;
    }
    if (len > kMaxQuery) {
        m.drop(DropReason::Oversized);
        return;
    }
    const auto* sa = reinterpret_cast<const sockaddr*>(&peer);
    if (ctx_.requests->enabled() && !ctx_.requests->allow(sa, uv_now(loop_))) return;  // counted there
    const uint16_t udp_limit = q.edns ? std::clamp<uint16_t>(q.edns_udp_size, 512, dns::kUdpPayloadCap) : 512;
    if (ctx_.cache_on() && AnswerCache::cacheable_query(q, st)) {
        const size_t r = ctx_.cache->lookup(q, uv_now(loop_), false, ctx_.answer_buf, sizeof ctx_.answer_buf);
        if (r) {
            send_answer(peer, peer_len, q.id, udp_limit, ctx_.answer_buf, r, t0, cookie_[i]);
            return;
        }
    }
    Pending* p = pool_.acquire();
    if (!p) {
        // Every query slot is taken: answer at once rather than queue without bound.
        m.servfail[static_cast<int>(ServfailReason::Overload)].inc();
        const size_t r = dns::make_servfail(msg, len, ctx_.answer_buf, sizeof ctx_.answer_buf);
        if (r) send_answer(peer, peer_len, q.id, udp_limit, ctx_.answer_buf, r, t0, cookie_[i]);
        return;
    }
    p->front = this;
    p->transport = 0;
    p->keepalive = false;
    std::memcpy(&p->peer, &peer, peer_len);
    p->peer_len = peer_len;
    p->client_id = q.id;
    p->udp_limit = udp_limit;
    p->cookie.clear();
    if (cookie_[i].len) p->cookie = cookie_[i];
    if (!pool_.fill_query(p, msg, len, q)) return;
    p->start_ns = t0;
    pool_.submit(p);
}

uint8_t* UdpFront::out_slot(const sockaddr_storage& peer, socklen_t peer_len) {
    if (n_out_ == kBatch) flush();
    std::memcpy(&out_peers_[n_out_], &peer, peer_len);
    msghdr& mh = out_[n_out_].msg_hdr;
    mh.msg_name = &out_peers_[n_out_];
    mh.msg_namelen = peer_len;
    mh.msg_iov = &out_iov_[n_out_];
    mh.msg_iovlen = 1;
    mh.msg_control = nullptr;
    mh.msg_controllen = 0;
    mh.msg_flags = 0;
    out_iov_[n_out_].iov_base = out_buf_[n_out_];
    return out_buf_[n_out_];
}

void UdpFront::deliver(Pending& p, const uint8_t* answer, size_t len) {
    send_answer(p.peer, p.peer_len, p.client_id, p.udp_limit, answer, len, p.start_ns, p.cookie);
}

void UdpFront::send_answer(const sockaddr_storage& peer, socklen_t peer_len, uint16_t client_id,
                           uint16_t udp_limit, const uint8_t* answer, size_t len, uint64_t start_ns,
                           const dns::ClientCookie& cookie) {
    BalancerMetrics& m = ctx_.metrics;
    bool slip = false;
    if (ctx_.responses->enabled() && cookie.verdict == dns::CookieVerdict::Valid) {
        m.rrl_cookie_exempt.inc();  // a valid server cookie: the address is not spoofed (as BIND and Knot)
    } else if (ctx_.responses->enabled()) {
        ResponseClass rc;
        classify(answer, len, rc);
        switch (ctx_.responses->check(reinterpret_cast<const sockaddr*>(&peer), rc, uv_now(loop_))) {
            case RrlVerdict::Send: break;
            case RrlVerdict::Drop: return;  // counted by the limiter
            case RrlVerdict::Slip: slip = true; break;
        }
    }
    uint8_t* out = out_slot(peer, peer_len);
    size_t r = len;
    const size_t cookie_room = cookie.len ? 4 + dns::kClientCookie + dns::kServerCookie : 0;
    if (slip || len + cookie_room > udp_limit) {
        // A slip is the empty TC=1 answer a truncated one would be: a real client retries over
        // TCP. A client that sent a cookie gets BADCOOKIE with a fresh one instead, and retries
        // over UDP with it, which RRL then lets through (RFC 7873 5.2.3, as BIND does).
        r = dns::truncate_answer(answer, len, out, udp_limit);
        if (r == 0) return;  // an answer we cannot walk: nothing safe to send
        if (slip && cookie.len && dns::make_badcookie(out, r)) m.badcookie.inc();
        else if (!slip) m.udp_truncated.inc();
    } else {
        std::memcpy(out, answer, len);
    }
    // The cookie computed for this client now, whoever made the answer (a worker, the cache).
    r = dns::add_cookie(ctx_.cookies, cookie, client_addr(peer), out, r, udp_limit);
    dns::put_u16(out, client_id);
    out_iov_[n_out_].iov_len = r;
    ++n_out_;
    out_bytes_ += r;
    m.answered(0, out[3] & 0x0F);
    m.duration[0].observe_ns(now_ns() - start_ns);
}

void UdpFront::flush() {
    BalancerMetrics& m = ctx_.metrics;
    int sent = 0;
    while (sent < n_out_) {
        const int s = sendmmsg(socket_.fd(), out_ + sent, static_cast<unsigned>(n_out_ - sent), MSG_DONTWAIT);
        if (s > 0) {
            sent += s;
            continue;
        }
        if (s < 0 && errno == EINTR) continue;
        // EAGAIN (send queue full) or a per-destination error: skip that datagram.
        m.udp_send_failed.inc();
        out_bytes_ -= out_[sent].msg_hdr.msg_iov->iov_len;
        ++sent;
    }
    m.udp_bytes_out.inc(out_bytes_);
    out_bytes_ = 0;
    n_out_ = 0;
}

}  // namespace dp::balancer
