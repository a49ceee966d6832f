#include "worker/udp_server.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "net/sockets.hpp"

namespace dp::worker {

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

UdpServer::UdpServer(uv_loop_t* loop, WorkerContext& ctx) : loop_(loop), ctx_(ctx) {
    // Fields that never change are set once; drain() touches only what each batch changes.
    for (int i = 0; i < kBatch; ++i) {
        in_iov_[i] = {in_buf_[i], kInSize};
        in_[i].msg_hdr = msghdr{};
        in_[i].msg_hdr.msg_name = &peers_[i];
        in_[i].msg_hdr.msg_iov = &in_iov_[i];
        in_[i].msg_hdr.msg_iovlen = 1;
        out_[i].msg_hdr = msghdr{};
        out_[i].msg_hdr.msg_iov = &out_iov_[i];
        out_[i].msg_hdr.msg_iovlen = 1;
    }
}

bool UdpServer::start(std::string& error) {
    const auto& c = ctx_.config;
    return socket_.open(loop_, c.host, c.port, c.reuseport, c.serving.udp_rcvbuf,
                        [](void* self) { static_cast<UdpServer*>(self)->drain(); }, this, error);
}

void UdpServer::stop() { socket_.stop(); }

void UdpServer::drain() {
    WorkerMetrics& m = ctx_.metrics;
    const dns::Policy& policy = *ctx_.policy;
    dns::Transport transport;  // UDP: no keepalive; the time and the sender are set per batch and datagram
    for (int round = 0; round < kRounds; ++round) {
        for (int i = 0; i < kBatch; ++i) in_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        const int got = recvmmsg(socket_.fd(), in_, kBatch, MSG_DONTWAIT, nullptr);
        if (got <= 0) return;  // EAGAIN: drained; other errors (ICMP feedback) are transient
        const uint64_t t0 = now_ns();
        transport.now = dns::cookie_clock();
        int n_out = 0;
        uint64_t in_bytes = 0, out_bytes = 0;
        for (int i = 0; i < got; ++i) {
            const size_t len = in_[i].msg_len;
            in_bytes += len;
            dns::Outcome o;
            transport.peer.octets = net::address_octets(reinterpret_cast<const sockaddr*>(&peers_[i]), transport.peer.len);
            // In place: the answer overwrites the query in its receive buffer, so a batch
            // touches one set of buffers (the kernel has just written them) rather than two.
            const size_t r = policy.respond(in_buf_[i], len, in_buf_[i], kInSize, transport, o);
            m.count(0, o);
            if (r == 0) continue;
            out_iov_[n_out] = {in_buf_[i], r};
            msghdr& mh = out_[n_out].msg_hdr;
            mh.msg_name = &peers_[i];
            mh.msg_namelen = in_[i].msg_hdr.msg_namelen;
            out_bytes += r;
            ++n_out;
        }
        int sent = 0;
        while (sent < n_out) {
            const int s = sendmmsg(socket_.fd(), out_ + sent, static_cast<unsigned>(n_out - sent), MSG_DONTWAIT);
            if (s > 0) {
                sent += s;
                continue;
            }
            if (s < 0 && errno == EINTR) continue;
            // EAGAIN (send queue full) or a per-destination error: skip that datagram.
            m.udp_send_failed.inc();
            out_bytes -= out_[sent].msg_hdr.msg_iov->iov_len;
            ++sent;
        }
        m.udp_bytes_in.inc(in_bytes);
        m.udp_bytes_out.inc(out_bytes);
        m.duration[0].observe_ns(now_ns() - t0, static_cast<uint64_t>(got));
        if (got < kBatch) return;
    }
}

}  // namespace dp::worker
