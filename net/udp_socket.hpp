// A bound UDP socket whose readiness libuv reports; the owner does its own batched
// recvmmsg/sendmmsg on fd() (libuv 1.44 sends one datagram per system call).
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

namespace dp::net {

class UdpSocket {
public:
    using OnReadable = void (*)(void* owner);

    UdpSocket() = default;
    UdpSocket(const UdpSocket&) = delete;
    UdpSocket& operator=(const UdpSocket&) = delete;
    ~UdpSocket();

    // Binds (see bind_udp_socket) and calls on_readable(owner) whenever datagrams wait.
    bool open(uv_loop_t* loop, const std::string& host, uint16_t port, bool reuseport, uint32_t rcvbuf,
              OnReadable on_readable, void* owner, std::string& error);
    // Stops reporting readiness (the socket stays bound until destruction).
    void stop();
    int fd() const { return fd_; }

private:
    int fd_ = -1;
    uv_poll_t poll_{};
    bool polling_ = false;
    OnReadable on_readable_ = nullptr;
    void* owner_ = nullptr;
};

}  // namespace dp::net
