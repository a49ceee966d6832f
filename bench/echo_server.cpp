// echo_server: the "physical limit of one core" reference for the domain-park benchmarks.
//
// It does the least any DNS server must do on the wire and nothing else: every UDP datagram
// comes back with the QR bit set (recvmmsg/sendmmsg batches), every length-prefixed TCP
// message comes back with QR set, and all complete messages from one read go back in one
// write. No parsing beyond the framing, no answers computed. Whatever a real server does
// below these numbers is the price of its DNS logic; the gap to this reference is the
// headroom.
//
// Single-threaded, epoll, runs until SIGTERM/SIGINT.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr int kBatch = 64;
constexpr size_t kDatagram = 65536;     // any UDP payload fits, so nothing is echoed cut short
constexpr size_t kTcpBuf = 2 * 65538;   // a full frame always fits behind a partial one
constexpr uint64_t kListenTag = UINT64_MAX;
constexpr uint64_t kUdpTag = UINT64_MAX - 1;

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "echo_server: %s\n", msg.c_str());
    std::exit(2);
}

struct Conn {
    int fd = -1;
    std::vector<uint8_t> in = std::vector<uint8_t>(kTcpBuf);
    size_t inlen = 0;
    std::vector<uint8_t> out;   // unsent tail of the last echo; reading pauses until empty
    size_t outoff = 0;
};

class EchoServer {
public:
    EchoServer(const std::string& host, uint16_t port, bool udp, bool tcp);
    void run();

private:
    void on_udp();
    void on_accept();
    void on_conn(Conn* c, uint32_t events);
    bool flush(Conn* c);
    void drop(Conn* c);

    int ep_ = -1;
    int udp_ = -1;
    int listen_ = -1;
    std::vector<uint8_t> dgrams_ = std::vector<uint8_t>(kBatch * kDatagram);
    uint64_t conns_open_ = 0;
};

EchoServer::EchoServer(const std::string& host, uint16_t port, bool udp, bool tcp) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    addrinfo* res = nullptr;
    std::string ps = std::to_string(port);
    if (getaddrinfo(host.c_str(), ps.c_str(), &hints, &res) != 0 || !res) {
        die("--host must be a numeric address: " + host);
    }
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    int one = 1;
    if (udp) {
        udp_ = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int sz = 4 << 20;
        if (setsockopt(udp_, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0) {
            setsockopt(udp_, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        }
        if (setsockopt(udp_, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0) {
            setsockopt(udp_, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        }
        if (bind(udp_, res->ai_addr, res->ai_addrlen) != 0) {
            die("udp bind " + host + ":" + ps + ": " + std::strerror(errno));
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kUdpTag;
        epoll_ctl(ep_, EPOLL_CTL_ADD, udp_, &ev);
    }
    if (tcp) {
        listen_ = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        setsockopt(listen_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(listen_, res->ai_addr, res->ai_addrlen) != 0) {
            die("tcp bind " + host + ":" + ps + ": " + std::strerror(errno));
        }
        if (listen(listen_, 4096) != 0) die(std::string("listen: ") + std::strerror(errno));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kListenTag;
        epoll_ctl(ep_, EPOLL_CTL_ADD, listen_, &ev);
    }
    freeaddrinfo(res);
}

void EchoServer::on_udp() {
    std::array<mmsghdr, kBatch> msgs{};
    std::array<iovec, kBatch> iov{};
    std::array<sockaddr_storage, kBatch> peers{};
    for (;;) {
        for (int i = 0; i < kBatch; ++i) {
            iov[i] = iovec{dgrams_.data() + static_cast<size_t>(i) * kDatagram, kDatagram};
            msgs[i].msg_hdr = msghdr{};
            msgs[i].msg_hdr.msg_name = &peers[i];
            msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(udp_, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
        if (n <= 0) return;
        // Reuse the receive vectors for the replies: same buffers, lengths and peers.
        int out = 0;
        for (int i = 0; i < n; ++i) {
            if (msgs[i].msg_len < 12) continue;  // not even a header: a DNS server drops it
            auto* p = static_cast<uint8_t*>(iov[i].iov_base);
            p[2] |= 0x80;
            iov[i].iov_len = msgs[i].msg_len;
            if (out != i) msgs[out] = msgs[i];
            msgs[out].msg_hdr.msg_iov = &iov[i];
            ++out;
        }
        int sent = 0;
        while (sent < out) {
            int r = sendmmsg(udp_, msgs.data() + sent, static_cast<unsigned>(out - sent), 0);
            if (r <= 0) break;  // a full send buffer drops the rest, as UDP may
            sent += r;
        }
        if (n < kBatch) return;
    }
}

void EchoServer::on_accept() {
    for (;;) {
        int fd = accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;  // EAGAIN, or EMFILE: the backlog keeps them until we can
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto* c = new Conn;
        c->fd = fd;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            delete c;
            continue;
        }
        ++conns_open_;
    }
}

void EchoServer::drop(Conn* c) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
    close(c->fd);
    delete c;
    --conns_open_;
}

// Returns false when the connection was dropped.
bool EchoServer::flush(Conn* c) {
    while (c->outoff < c->out.size()) {
        ssize_t w = send(c->fd, c->out.data() + c->outoff, c->out.size() - c->outoff, MSG_NOSIGNAL);
        if (w > 0) {
            c->outoff += static_cast<size_t>(w);
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            epoll_event ev{};
            ev.events = EPOLLOUT;  // stop reading until the client takes its answers
            ev.data.ptr = c;
            epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
            return true;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            drop(c);
            return false;
        }
    }
    c->out.clear();
    c->outoff = 0;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
    return true;
}

void EchoServer::on_conn(Conn* c, uint32_t events) {
    if (events & EPOLLOUT) {
        if (!flush(c)) return;
        if (!c->out.empty()) return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    ssize_t r = recv(c->fd, c->in.data() + c->inlen, c->in.size() - c->inlen, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        drop(c);
        return;
    }
    if (r < 0) return;
    c->inlen += static_cast<size_t>(r);
    // Walk the complete frames; the echo of all of them is exactly the bytes walked.
    size_t off = 0;
    while (c->inlen - off >= 2) {
        size_t mlen = static_cast<size_t>(c->in[off] << 8 | c->in[off + 1]);
        if (c->inlen - off - 2 < mlen) break;
        if (mlen >= 3) c->in[off + 2 + 2] |= 0x80;
        off += 2 + mlen;
    }
    if (off == 0) return;
    ssize_t w = send(c->fd, c->in.data(), off, MSG_NOSIGNAL);
    size_t done = w > 0 ? static_cast<size_t>(w) : 0;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        drop(c);
        return;
    }
    if (done < off) c->out.assign(c->in.begin() + static_cast<long>(done), c->in.begin() + static_cast<long>(off));
    std::memmove(c->in.data(), c->in.data() + off, c->inlen - off);
    c->inlen -= off;
    if (!c->out.empty()) flush(c);
}

void EchoServer::run() {
    std::array<epoll_event, 256> events{};
    while (!g_stop) {
        int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die(std::string("epoll_wait: ") + std::strerror(errno));
        }
        for (int i = 0; i < n; ++i) {
            uint64_t tag = events[i].data.u64;
            if (tag == kUdpTag) on_udp();
            else if (tag == kListenTag) on_accept();
            else on_conn(static_cast<Conn*>(events[i].data.ptr), events[i].events);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    long port = 5353;
    bool udp = true, tcp = true;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--udp") tcp = false;
        else if (a == "--tcp") udp = false;
        else if ((a == "--host" || a == "-s") && i + 1 < argc) host = argv[++i];
        else if ((a == "--port" || a == "-p") && i + 1 < argc) {
            char* end = nullptr;
            port = std::strtol(argv[++i], &end, 10);
            if (*end != '\0' || port < 1 || port > 65535) die(std::string("bad --port: ") + argv[i]);
        } else {
            std::fprintf(stderr, "usage: echo_server [--host ADDR] [--port N] [--udp|--tcp]\n");
            return 2;
        }
    }
    struct sigaction sa{};
    sa.sa_handler = on_signal;  // no SA_RESTART: epoll_wait must return EINTR to stop
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    EchoServer server(host, static_cast<uint16_t>(port), udp, tcp);
    server.run();
    return 0;
}
