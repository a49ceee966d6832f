// UDP transport: readiness from libuv, batched recvmmsg/sendmmsg on the socket itself
// (libuv 1.44 sends one datagram per system call), answers built in place.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <string>

#include "dns/wire.hpp"
#include "net/udp_socket.hpp"
#include "worker/worker_context.hpp"

namespace dp::worker {

class UdpServer {
public:
    UdpServer(uv_loop_t* loop, WorkerContext& ctx);
    // Binds and starts; false with `error` set on failure.
    bool start(std::string& error);
    void stop();

private:
    static constexpr int kBatch = 64;     // datagrams per recvmmsg/sendmmsg
    static constexpr int kRounds = 16;    // batches per readiness event before yielding to TCP
    static constexpr size_t kInSize = 4096;

    void drain();

    uv_loop_t* loop_;
    WorkerContext& ctx_;
    net::UdpSocket socket_;

    mmsghdr in_[kBatch];
    iovec in_iov_[kBatch];
    sockaddr_storage peers_[kBatch];
    mmsghdr out_[kBatch];
    iovec out_iov_[kBatch];
    // A query, then its answer (built in place). One cache line more than the receive size
    // apart: at exactly 4096 every datagram's first line would fall into the same L1 set.
    uint8_t in_buf_[kBatch][kInSize + 64];
};

}  // namespace dp::worker
