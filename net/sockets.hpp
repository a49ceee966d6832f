// Socket set-up shared by the worker and the balancer.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace dp::net {

// Parses "ADDR:PORT" or "[V6ADDR]:PORT"; false with `error` set when malformed.
bool parse_host_port(const std::string& text, std::string& host, uint16_t& port, std::string& error);
// "ADDR:PORT", or "[V6ADDR]:PORT" for IPv6: how flags and log lines write an address.
std::string format_host_port(const std::string& host, uint16_t port);
// The address a socket is bound to (after binding port 0: the port the kernel chose).
bool bound_address(int fd, std::string& host, uint16_t& port);
// Fills `ss` for host/port; false when host is not a literal IPv4 or IPv6 address.
bool make_sockaddr(const std::string& host, uint16_t port, sockaddr_storage& ss, socklen_t& len);
// A bound non-blocking socket (SOCK_DGRAM or SOCK_STREAM), SO_REUSEPORT when asked.
// Returns the fd, or -1 with `error` naming the address and the reason.
int bind_socket(const std::string& host, uint16_t port, int type, bool reuseport, std::string& error);
// A bound UDP socket with a deep receive queue (`rcvbuf` octets; SO_RCVBUFFORCE passes
// rmem_max when we are root) to absorb bursts. -1 with `error` set on failure.
int bind_udp_socket(const std::string& host, uint16_t port, bool reuseport, uint32_t rcvbuf, std::string& error);
// A client's address, compact (17 octets, kept per TCP connection): `len` 4 for IPv4 or 16
// for IPv6, the octets zero-padded; an IPv4-mapped IPv6 address is IPv4, so a client has one
// identity whether a dual-stack socket or an IPv4 one received it. len 0: unknown.
struct PeerAddress {
    uint8_t len = 0;
    uint8_t octets[16] = {};
};
// The address octets inside `sa` itself (no copy: for a datagram's sender, per query): 4 for
// IPv4 or an IPv4-mapped IPv6 address, 16 for IPv6, with `len` set; null (len 0) for null or
// another family.
const uint8_t* address_octets(const sockaddr* sa, uint8_t& len);
// The same, copied into a PeerAddress (len 0 when unknown).
PeerAddress peer_address(const sockaddr* sa);
// Is the 16-octet IPv6 address an IPv4-mapped one (::ffff:a.b.c.d)?
bool is_v4_mapped(const uint8_t* a);
// Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit.
uint64_t raise_fd_limit();

}  // namespace dp::net
