// A growable run of octets for stream input and output. Holds no memory while empty, so an
// idle connection costs nothing here. Small buffers come from malloc; from kOwnPages on, a
// buffer has pages of its own (mmap), so the memory goes back to the system the moment it is
// freed: a flood of connections each holding 64 KiB of a half-sent message must not leave the
// process's heap bloated after they are gone.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace dp::net {

class ByteBuffer {
public:
    static constexpr size_t kOwnPages = 16 * 1024;

    ByteBuffer() = default;
    ByteBuffer(const ByteBuffer&) = delete;
    ByteBuffer& operator=(const ByteBuffer&) = delete;
    ByteBuffer(ByteBuffer&& o) noexcept { swap(o); }
    ByteBuffer& operator=(ByteBuffer&& o) noexcept {
        swap(o);
        return *this;
    }
    ~ByteBuffer() { release(); }

    uint8_t* data() { return data_; }
    const uint8_t* data() const { return data_; }
    size_t size() const { return len_; }
    size_t capacity() const { return cap_; }
    bool empty() const { return len_ == 0; }

    // The capacity holding `need` octets would have (what reserve() would grow to).
    static size_t capacity_for(size_t need, size_t current) {
        if (need <= current) return current;
        size_t cap = current ? current : 512;
        while (cap < need) cap *= 2;
        if (cap >= kOwnPages) cap = (cap + 4095) & ~size_t(4095);
        return cap;
    }
    // Room for `need` octets in all; false (nothing changed) when memory is short.
    bool reserve(size_t need) {
        if (need <= cap_) return true;
        const size_t cap = capacity_for(need, cap_);
        uint8_t* d;
        if (cap < kOwnPages) {
            d = static_cast<uint8_t*>(std::realloc(data_, cap));
            if (!d) return false;
        } else if (cap_ >= kOwnPages) {
            void* m = mremap(data_, cap_, cap, MREMAP_MAYMOVE);
            if (m == MAP_FAILED) return false;
            d = static_cast<uint8_t*>(m);
        } else {
            void* m = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) return false;
            d = static_cast<uint8_t*>(m);
            if (len_) std::memcpy(d, data_, len_);
            std::free(data_);
        }
        data_ = d;
        cap_ = cap;
        return true;
    }
    bool append(const void* p, size_t n) {
        if (!reserve(len_ + n)) return false;
        std::memcpy(data_ + len_, p, n);
        len_ += n;
        return true;
    }
    // Space for n more octets at the end (count them with grow()); null when memory is short.
    uint8_t* tail(size_t n) { return reserve(len_ + n) ? data_ + len_ : nullptr; }
    void grow(size_t n) { len_ += n; }
    // Drops the first n octets; frees the memory once empty.
    void consume(size_t n) {
        if (n >= len_) {
            release();
            return;
        }
        std::memmove(data_, data_ + n, len_ - n);
        len_ -= n;
    }
    // Empty, keeping the memory (a buffer about to be refilled).
    void reset() { len_ = 0; }
    void release() {
        if (cap_ >= kOwnPages) munmap(data_, cap_);
        else std::free(data_);
        data_ = nullptr;
        len_ = cap_ = 0;
    }
    void swap(ByteBuffer& o) noexcept {
        std::swap(data_, o.data_);
        std::swap(len_, o.len_);
        std::swap(cap_, o.cap_);
    }

private:
    uint8_t* data_ = nullptr;
    size_t len_ = 0;
    size_t cap_ = 0;
};

}  // namespace dp::net
