// Scripted I/O for the TCP engine's unit tests (and its fuzz target): streams whose kernel is a
// script (how much a write takes, when an asynchronous write completes, when the peer sends,
// half-closes or resets), a clock set by hand, and handlers that answer at once (like the
// worker) or later (like the balancer).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "net/tcp_engine.hpp"

namespace dptest {

struct ManualClock : dp::net::Clock {
    uint64_t t = 1000;
    uint64_t now_ms() const override { return t; }
};

struct ScriptStream : dp::net::Stream {
    std::string taken;             // every octet the "kernel" accepted, in order
    size_t take_limit = SIZE_MAX;  // try_write takes at most this many octets per call
    int fail = 0;                  // non-zero: writes fail with this error
    bool reading = false;
    bool shut = false;    // shutdown() called (our FIN)
    bool closed = false;  // close() called
    int try_writes = 0, writes = 0;
    const uint8_t* async = nullptr;  // the write in flight
    size_t async_len = 0;
    bool* alive = nullptr;  // set to false when the engine deletes the stream

    ~ScriptStream() override {
        if (alive) *alive = false;
    }
    int try_write(const uint8_t* p, size_t n) override {
        ++try_writes;
        if (fail) return fail;
        const size_t k = n < take_limit ? n : take_limit;
        taken.append(reinterpret_cast<const char*>(p), k);
        return static_cast<int>(k);
    }
    int write(const uint8_t* p, size_t n) override {
        ++writes;
        if (fail) return fail;
        async = p;
        async_len = n;
        return 0;
    }
    void read(bool on) override { reading = on; }
    int shutdown() override {
        shut = true;
        return 0;
    }
    void close() override { closed = true; }

    // The kernel takes the write in flight; the engine hears of it.
    void complete_write(int status = 0) {
        if (!async) return;
        if (status == 0) taken.append(reinterpret_cast<const char*>(async), async_len);
        async = nullptr;
        async_len = 0;
        owner->on_written(*this, status);
    }
    void send(const std::string& bytes) {
        owner->on_data(*this, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    }
    void end(int error = 0) { owner->on_end(*this, error); }
    // libuv reports a closed handle later: cancelled operations first, then the close.
    void finish_close() {
        if (async) complete_write(-125);  // ECANCELED
        if (shut) owner->on_shutdown(*this, -125);
        owner->on_closed(*this);
    }
};

// A framed message of `len` octets: a 12-octet "header" starting with the 16-bit tag, then filler.
inline std::string message(uint16_t tag, size_t len = 12) {
    std::string m(2 + len, 'x');
    m[0] = static_cast<char>(len >> 8);
    m[1] = static_cast<char>(len);
    m[2] = static_cast<char>(tag >> 8);
    m[3] = static_cast<char>(tag);
    return m;
}
// The tags of the framed messages in `s`, in order.
inline std::vector<uint16_t> tags(const std::string& s) {
    std::vector<uint16_t> r;
    for (size_t off = 0; off + 2 <= s.size();) {
        const size_t len = size_t(uint8_t(s[off])) << 8 | uint8_t(s[off + 1]);
        if (off + 2 + len > s.size() || len < 2) break;
        r.push_back(static_cast<uint16_t>(uint8_t(s[off + 2]) << 8 | uint8_t(s[off + 3])));
        off += 2 + len;
    }
    return r;
}

// Answers every message at once with a copy of it (the worker's way).
struct EchoHandler : dp::net::TcpHandler {
    dp::net::TcpEngine* engine = nullptr;
    size_t answered = 0;
    void on_message(dp::net::Conn& c, const uint8_t* msg, size_t len) override {
        uint8_t* out = engine->answer_space(c, len);
        if (!out) return;
        std::copy(msg, msg + len, out);
        engine->answer_commit(c, len);
        ++answered;
    }
};

// Holds every message and answers when told (the balancer's way).
struct LaterHandler : dp::net::TcpHandler {
    dp::net::TcpEngine* engine = nullptr;
    struct Held {
        dp::net::Conn* conn;
        std::string msg;
    };
    std::deque<Held> held;
    void on_message(dp::net::Conn& c, const uint8_t* msg, size_t len) override {
        engine->hold(c);
        held.push_back({&c, std::string(reinterpret_cast<const char*>(msg), len)});
    }
    // Answers the oldest held message (or forgets it: no answer), as a worker's answer arriving.
    bool answer_one(bool forget = false) {
        if (held.empty()) return false;
        Held h = held.front();
        held.pop_front();
        if (!forget) {
            if (uint8_t* out = engine->answer_space(*h.conn, h.msg.size())) {
                std::copy(h.msg.begin(), h.msg.end(), out);
                engine->answer_commit(*h.conn, h.msg.size());
            }
        }
        engine->release(*h.conn);
        return true;
    }
};

}  // namespace dptest
