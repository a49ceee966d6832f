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

void UdpFront::parse(int i) {
    uint8_t* msg = in_buf_[i];
    size_t len = in_[i].msg_len;
    ctx_.metrics.udp_bytes_in.inc(len);
    dns::Query& q = q_[i];
    dns::Malformed why;
    dns::ParseStatus st = dns::parse_query(msg, len, q, why);
    if (q.edns_keepalive && st == dns::ParseStatus::Ok) {
        // RFC 7828: edns-tcp-keepalive is never answered over UDP, but the worker sees the
        // query over TCP: take the option out before it goes there (or to the cache).
        len = dns::remove_option(msg, len, dns::edns_opt::TCP_KEEPALIVE);
        st = dns::parse_query(msg, len, q, why);
    }
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
            send_answer(peer, peer_len, q.id, udp_limit, ctx_.answer_buf, r, t0);
            return;
        }
    }
    Pending* p = pool_.acquire();
    if (!p) {
        // Every query slot is taken: answer at once rather than queue without bound.
        m.servfail[static_cast<int>(ServfailReason::Overload)].inc();
        const size_t r = dns::make_servfail(msg, len, ctx_.answer_buf, sizeof ctx_.answer_buf);
        if (r) send_answer(peer, peer_len, q.id, udp_limit, ctx_.answer_buf, r, t0);
        return;
    }
    p->front = this;
    p->transport = 0;
    p->keepalive = false;
    std::memcpy(&p->peer, &peer, peer_len);
    p->peer_len = peer_len;
    p->client_id = q.id;
    p->udp_limit = udp_limit;
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
    send_answer(p.peer, p.peer_len, p.client_id, p.udp_limit, answer, len, p.start_ns);
}

void UdpFront::send_answer(const sockaddr_storage& peer, socklen_t peer_len, uint16_t client_id,
                           uint16_t udp_limit, const uint8_t* answer, size_t len, uint64_t start_ns) {
    BalancerMetrics& m = ctx_.metrics;
    bool slip = false;
    if (ctx_.responses->enabled()) {
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
    if (slip || len > udp_limit) {
        // A slip is the empty TC=1 answer a truncated one would be: a real client retries over TCP.
        r = dns::truncate_answer(answer, len, out, udp_limit);
        if (r == 0) return;  // an answer we cannot walk: nothing safe to send
        if (!slip) m.udp_truncated.inc();
    } else {
        std::memcpy(out, answer, len);
    }
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
