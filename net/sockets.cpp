#include "net/sockets.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "config/settings.hpp"

namespace dp::net {

bool parse_host_port(const std::string& text, std::string& host, uint16_t& port, std::string& error) {
    std::string p;
    if (!text.empty() && text[0] == '[') {
        const size_t close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            error = config::quote(text) + " is not [IPV6]:PORT";
            return false;
        }
        host = text.substr(1, close - 1);
        p = text.substr(close + 2);
    } else {
        const size_t colon = text.rfind(':');
        if (colon == std::string::npos || text.find(':') != colon) {
            error = config::quote(text) + " is not ADDR:PORT (write IPv6 as [ADDR]:PORT)";
            return false;
        }
        host = text.substr(0, colon);
        p = text.substr(colon + 1);
    }
    if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos || std::stoul(p) > 65535) {
        error = config::quote(text) + ": bad port";
        return false;
    }
    port = static_cast<uint16_t>(std::stoul(p));
    sockaddr_storage ss;
    socklen_t len;
    if (!make_sockaddr(host, port, ss, len)) {
        error = config::quote(text) + ": " + config::quote(host) + " is not an IPv4 or IPv6 address";
        return false;
    }
    return true;
}

std::string format_host_port(const std::string& host, uint16_t port) {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool bound_address(int fd, std::string& host, uint16_t& port) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
    char buf[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        port = ntohs(a->sin6_port);
    } else {
        return false;
    }
    host = buf;
    return true;
}

bool make_sockaddr(const std::string& host, uint16_t port, sockaddr_storage& ss, socklen_t& len) {
    std::memset(&ss, 0, sizeof ss);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        len = sizeof(sockaddr_in);
        return true;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        len = sizeof(sockaddr_in6);
        return true;
    }
    return false;
}

int bind_socket(const std::string& host, uint16_t port, int type, bool reuseport, std::string& error) {
    sockaddr_storage ss;
    socklen_t len;
    const std::string where = format_host_port(host, port) + (type == SOCK_DGRAM ? "/udp" : "/tcp");
    if (!make_sockaddr(host, port, ss, len)) {
        error = "host: " + config::quote(host) + " is not an IPv4 or IPv6 address";
        return -1;
    }
    const int fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = "cannot create socket for " + where + ": " + std::strerror(errno);
        return -1;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        error = "cannot set SO_REUSEPORT on " + where + ": " + std::strerror(errno);
        close(fd);
        return -1;
    }
    if (ss.ss_family == AF_INET6) {
        // Listening on "::" serves IPv4 too unless the system says otherwise; be explicit.
        const int zero = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        error = "cannot bind " + where + ": " + std::strerror(errno);
        close(fd);
        return -1;
    }
    return fd;
}

int bind_udp_socket(const std::string& host, uint16_t port, bool reuseport, uint32_t rcvbuf, std::string& error) {
    const int fd = bind_socket(host, port, SOCK_DGRAM, reuseport, error);
    if (fd < 0) return -1;
    const int size = static_cast<int>(rcvbuf);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    return fd;
}

uint64_t raise_fd_limit() {
    rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

bool is_v4_mapped(const uint8_t* a) {
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(a, kMapped, 12) == 0;
}

const uint8_t* address_octets(const sockaddr* sa, uint8_t& len) {
    len = 0;
    if (sa == nullptr) return nullptr;
    const auto* base = reinterpret_cast<const uint8_t*>(sa);
    if (sa->sa_family == AF_INET) {
        len = 4;
        return base + offsetof(sockaddr_in, sin_addr);
    }
    if (sa->sa_family != AF_INET6) return nullptr;
    const uint8_t* a = base + offsetof(sockaddr_in6, sin6_addr);
    if (is_v4_mapped(a)) {
        len = 4;
        return a + 12;
    }
    len = 16;
    return a;
}

PeerAddress peer_address(const sockaddr* sa) {
    PeerAddress p;
    const uint8_t* a = address_octets(sa, p.len);
    if (a) std::memcpy(p.octets, a, p.len);
    return p;
}

}  // namespace dp::net
