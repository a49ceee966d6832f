#include "net/udp_socket.hpp"

#include <unistd.h>

#include "net/sockets.hpp"

namespace dp::net {

UdpSocket::~UdpSocket() {
    if (fd_ >= 0) close(fd_);
}

bool UdpSocket::open(uv_loop_t* loop, const std::string& host, uint16_t port, bool reuseport, uint32_t rcvbuf,
                     OnReadable on_readable, void* owner, std::string& error) {
    fd_ = bind_udp_socket(host, port, reuseport, rcvbuf, error);
    if (fd_ < 0) return false;
    on_readable_ = on_readable;
    owner_ = owner;
    uv_poll_init_socket(loop, &poll_, fd_);
    poll_.data = this;
    uv_poll_start(&poll_, UV_READABLE, [](uv_poll_t* h, int status, int) {
        if (status < 0) return;
        auto* self = static_cast<UdpSocket*>(h->data);
        self->on_readable_(self->owner_);
    });
    polling_ = true;
    return true;
}

void UdpSocket::stop() {
    if (!polling_) return;
    uv_poll_stop(&poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
    polling_ = false;
}

}  // namespace dp::net
