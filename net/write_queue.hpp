// Octets on their way out of one stream, in order: those collected and not handed over yet
// (`queued`), and the rest of an earlier write the kernel did not take at once (`inflight`,
// given to Stream::write). Both client connections and the balancer's connections to its
// workers write through this. Writing first tries the kernel directly (no copy when it takes
// everything, the usual case); only what it leaves is kept.
#pragma once

#include "net/byte_buffer.hpp"
#include "net/stream.hpp"

namespace dp::net {

class WriteQueue {
public:
    size_t pending() const { return queued_.size() + inflight_.size(); }
    bool writing() const { return writing_; }
    bool idle() const { return !writing_ && queued_.empty(); }

    // Room for n more octets at the end of the queue (count them with commit); null when
    // memory is short.
    uint8_t* space(size_t n) { return queued_.tail(n); }
    void commit(size_t n) { queued_.grow(n); }
    bool append(const uint8_t* p, size_t n) { return queued_.append(p, n); }

    // Hands the queue to the stream. 0, or a negative error when the stream failed.
    int flush(Stream& s) {
        if (writing_ || queued_.empty()) return 0;
        const int n = s.try_write(queued_.data(), queued_.size());
        if (n < 0) return n;
        if (static_cast<size_t>(n) == queued_.size()) {
            queued_.reset();
            return 0;
        }
        inflight_.swap(queued_);
        queued_.reset();
        inflight_.consume(static_cast<size_t>(n));
        return start(s);
    }

    // Writes p directly when nothing is queued or in flight (the fast path; what the kernel
    // does not take is copied and written later); otherwise queues it behind the rest.
    int write(Stream& s, const uint8_t* p, size_t n) {
        if (!idle()) return append(p, n) ? 0 : -12;  // ENOMEM
        const int took = s.try_write(p, n);
        if (took < 0) return took;
        if (static_cast<size_t>(took) == n) return 0;
        if (!inflight_.append(p + took, n - static_cast<size_t>(took))) return -12;
        return start(s);
    }

    // The write in flight is done (status < 0: it failed). The next flush sends what queued up.
    void written() {
        writing_ = false;
        inflight_.reset();
    }
    // Forgets what was not handed to the stream yet (the stream broke).
    void drop_queued() { queued_.release(); }
    // Gives the memory back (nothing pending, or the stream is gone).
    void release() {
        if (writing_) return;
        queued_.release();
        inflight_.release();
    }
    size_t capacity() const { return queued_.capacity() + inflight_.capacity(); }

private:
    int start(Stream& s) {
        writing_ = true;
        const int r = s.write(inflight_.data(), inflight_.size());
        if (r < 0) writing_ = false;
        return r;
    }

    ByteBuffer queued_;
    ByteBuffer inflight_;
    bool writing_ = false;
};

}  // namespace dp::net
