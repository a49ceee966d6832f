// A byte stream as the TCP code sees it, and the events it reports. In production the stream is
// a libuv TCP handle (uv_tcp.hpp); in the engine's unit tests it is a script, so the whole
// connection life cycle runs without sockets (as dnsdist tests its TCP state machine).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace dp::net {

class Stream;

// Receives a stream's events. Every operation that completes later (write, shutdown, close)
// reports exactly once, even when the stream is closed meanwhile (then with a negative status).
class StreamOwner {
public:
    virtual ~StreamOwner() = default;
    virtual void on_data(Stream& s, const uint8_t* data, size_t n) = 0;
    // The peer closed its side (`error` 0) or the stream failed (a negative errno-style code).
    virtual void on_end(Stream& s, int error) = 0;
    virtual void on_written(Stream& s, int status) = 0;
    virtual void on_shutdown(Stream& s, int status) = 0;
    // The stream is gone; the owner may free it now.
    virtual void on_closed(Stream& s) = 0;
};

class Stream {
public:
    virtual ~Stream() = default;
    // Octets the kernel took at once (0 when it would block), or a negative error.
    virtual int try_write(const uint8_t* p, size_t n) = 0;
    // Writes all n octets, which must stay valid until on_written; 0 or a negative error.
    virtual int write(const uint8_t* p, size_t n) = 0;
    virtual void read(bool on) = 0;
    // Sends FIN once pending writes are out; on_shutdown follows. 0 or a negative error.
    virtual int shutdown() = 0;
    // Closes at once (the descriptor is released now); on_closed follows.
    virtual void close() = 0;

    StreamOwner* owner = nullptr;
    void* user = nullptr;  // the owner's per-stream state
};

// Milliseconds of a monotonic clock (libuv's loop time in production, set by hand in tests).
class Clock {
public:
    virtual ~Clock() = default;
    virtual uint64_t now_ms() const = 0;
};

}  // namespace dp::net
