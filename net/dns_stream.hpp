// DNS over a byte stream (RFC 1035 4.2.2, RFC 7766 8): two-octet length prefixes.
// Shared by every TCP endpoint of the worker and the balancer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace dp::net {

inline constexpr size_t kMinMessage = 12;  // a DNS header; anything shorter cannot be a message

// Calls on_message(msg, len) for each complete message at the front of [p, p+n); a callback
// returning false stops the scan after that message. Returns the octets consumed. Sets `bad`
// when a length prefix below 12 is met: the stream is out of step and cannot be trusted.
template <class OnMessage>
size_t scan_frames(const uint8_t* p, size_t n, bool& bad, OnMessage&& on_message) {
    size_t off = 0;
    bad = false;
    while (n - off >= 2) {
        const size_t len = size_t(p[off]) << 8 | p[off + 1];
        if (len < kMinMessage) {
            bad = true;
            return off;
        }
        if (n - off - 2 < len) break;
        off += 2 + len;
        if (!on_message(p + off - len, len)) break;
    }
    return off;
}

// Octets of a stream not yet consumed (a message split across reads, or input held back
// while the peer is not reading its answers). Holds no memory while empty, so an idle
// connection costs nothing here; bounded by `max` on append.
class StreamBuffer {
public:
    StreamBuffer() = default;
    StreamBuffer(const StreamBuffer&) = delete;
    StreamBuffer& operator=(const StreamBuffer&) = delete;
    ~StreamBuffer() { std::free(data_); }

    const uint8_t* data() const { return data_; }
    size_t size() const { return len_; }
    bool empty() const { return len_ == 0; }

    // False (and nothing appended) when the result would exceed `max` octets or memory is short.
    bool append(const uint8_t* p, size_t n, size_t max) {
        if (len_ + n > max) return false;
        if (len_ + n > cap_) {
            size_t cap = cap_ ? cap_ : 512;
            while (cap < len_ + n) cap *= 2;
            if (cap > max) cap = max;
            void* d = std::realloc(data_, cap);
            if (!d) return false;
            data_ = static_cast<uint8_t*>(d);
            cap_ = static_cast<uint32_t>(cap);
        }
        std::memcpy(data_ + len_, p, n);
        len_ += static_cast<uint32_t>(n);
        return true;
    }
    // Drops the first n octets; frees the memory once empty.
    void consume(size_t n) {
        if (n >= len_) {
            clear();
            return;
        }
        std::memmove(data_, data_ + n, len_ - n);
        len_ -= static_cast<uint32_t>(n);
    }
    void clear() {
        std::free(data_);
        data_ = nullptr;
        len_ = cap_ = 0;
    }

private:
    uint8_t* data_ = nullptr;
    uint32_t len_ = 0;
    uint32_t cap_ = 0;
};

}  // namespace dp::net
