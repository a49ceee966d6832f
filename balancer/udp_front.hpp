// Client-facing UDP on one address: readiness from libuv, batched recvmmsg; each query goes
// to the upstream pool; answers (which come back later, from the workers' TCP connections)
// are collected and sent with one sendmmsg per event. Answers larger than the client's size
// (512, or its EDNS size capped at 1232) are truncated to header, question and OPT with TC=1.
// Before a query reaches the pool: the per-client request limit, then the answer cache; every
// answer passes response rate limiting (drop, or a TC=1 "slip") on its way out.
#pragma once

#include "net/udp_socket.hpp"

#include <sys/socket.h>
#include <uv.h>

#include <string>

#include "balancer/balancer_context.hpp"
#include "balancer/upstream_pool.hpp"
#include "dns/wire.hpp"

namespace dp::balancer {

class UdpFront : public Front, public Flushable {
public:
    UdpFront(uv_loop_t* loop, BalancerContext& ctx, UpstreamPool& pool, std::string host, uint16_t port);
    bool start(std::string& error);
    void stop();  // stops reading; answers still in flight are still sent

    void deliver(Pending& p, const uint8_t* answer, size_t len) override;
    void forget(Pending&) override {}
    void flush() override;

private:
    static constexpr int kBatch = 64;   // datagrams per recvmmsg/sendmmsg
    static constexpr int kRounds = 16;  // batches per readiness event before yielding
    static constexpr size_t kInSize = 4096;

    void drain();
    // Per batch: every datagram is parsed first (parse), the cache lines its lookup will need
    // are requested for all of them, then each is handled (handle).
    void parse(int i);
    void handle(int i, uint64_t t0);
    uint8_t* out_slot(const sockaddr_storage& peer, socklen_t peer_len);
    // Queues an answer for a client: response rate limiting, truncation to the client's size,
    // the client's ID, metrics. `answer` may carry any ID.
    void send_answer(const sockaddr_storage& peer, socklen_t peer_len, uint16_t client_id, uint16_t udp_limit,
                     const uint8_t* answer, size_t len, uint64_t start_ns, const dns::ClientCookie& cookie);

    uv_loop_t* loop_;
    BalancerContext& ctx_;
    UpstreamPool& pool_;
    std::string host_;
    uint16_t port_;
    net::UdpSocket socket_;

    mmsghdr in_[kBatch];
    iovec in_iov_[kBatch];
    sockaddr_storage in_peers_[kBatch];
    uint8_t in_buf_[kBatch][kInSize];
    dns::Query q_[kBatch];  // the batch parsed: views into in_buf_
    dns::ParseStatus st_[kBatch];
    size_t len_[kBatch];  // after edns-tcp-keepalive and COOKIE are taken out
    dns::ClientCookie cookie_[kBatch];
    uint32_t tag_[kBatch];
    bool fetch_[kBatch];

    int n_out_ = 0;
    uint64_t out_bytes_ = 0;
    mmsghdr out_[kBatch];
    iovec out_iov_[kBatch];
    sockaddr_storage out_peers_[kBatch];
    uint8_t out_buf_[kBatch][dns::kUdpPayloadCap];
};

}  // namespace dp::balancer
