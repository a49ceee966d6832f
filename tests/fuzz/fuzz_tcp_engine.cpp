// Fuzz target: the TCP connection engine (net/tcp_engine) under any sequence of events. The
// input is a script: connections arrive, send arbitrary chunks (split, merged, malformed
// framing) or whole messages, the kernel takes any part of a write and completes it later or
// fails it, peers half-close or reset, time passes and the sweep runs, the handler answers at
// once or later or never, the engine flushes, is reconfigured, shuts down. Invariants after
// every event: descriptors and held input within their limits; at the end, once everything
// is drained, nothing is left: no connection, no held input, no pending output (the engine's
// accounting is exact), and ASan sees no use after free or leak.
#include <deque>
#include <memory>
#include <vector>

#include "tests/fuzz/fuzz_check.hpp"
#include "tests/unit/tcp_script.hpp"

using fuzz::check;
using namespace dp::net;

namespace {

// Answers a message at once when its first octet is odd, else holds it for later.
struct MixedHandler : TcpHandler {
    TcpEngine* engine = nullptr;
    std::deque<std::pair<Conn*, size_t>> held;
    void on_message(Conn& c, const uint8_t* msg, size_t len) override {
        if (msg[0] & 1) {
            if (uint8_t* out = engine->answer_space(c, len)) {
                std::copy(msg, msg + len, out);
                engine->answer_commit(c, len);
            }
            return;
        }
        engine->hold(c);
        held.emplace_back(&c, len);
    }
    void answer_one(bool forget) {
        if (held.empty()) return;
        auto [c, len] = held.front();
        held.pop_front();
        if (!forget)
            if (uint8_t* out = engine->answer_space(*c, len)) {
                std::fill(out, out + len, 0x42);
                engine->answer_commit(*c, len);
            }
        engine->release(*c);
    }
};

struct Peer {
    dptest::ScriptStream* s;
    bool alive = true;  // the engine has not deleted it
    bool closed_told = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Bytes in{data, size};
    dptest::ManualClock clock;
    TcpStats stats;
    MixedHandler handler;
    TcpLimits limits;
    limits.idle_ms = 2000;
    limits.message_ms = 1000;
    limits.close_grace_ms = 500;
    limits.drain_ms = 1500;
    limits.max_connections = 4;
    limits.max_fds = 6;
    limits.max_pending_bytes = 4096;
    limits.max_outstanding = 16;
    limits.max_input_bytes = 3 * 65536;
    limits.max_output_bytes = 64 * 1024;
    auto engine = std::make_unique<TcpEngine>(handler, clock, stats, limits);
    handler.engine = engine.get();
    std::deque<Peer> peers;  // stable addresses for the alive flags

    auto pick = [&]() -> Peer* {
        std::vector<Peer*> live;
        for (auto& p : peers)
            if (p.alive && !p.closed_told) live.push_back(&p);
        if (live.empty()) return nullptr;
        return live[in.u8() % live.size()];
    };
    auto tell_closed = [&] {
        for (auto& p : peers)
            if (p.alive && p.s->closed && !p.closed_told) {
                p.closed_told = true;
                p.s->finish_close();  // may delete the stream (p.alive goes false)
            }
    };

    for (int step = 0; step < 400 && !in.done(); ++step) {
        switch (in.u8() % 13) {
            case 0:
                if (peers.size() < 24 && engine->admit()) {
                    peers.push_back(Peer{new dptest::ScriptStream});
                    peers.back().s->alive = &peers.back().alive;
                    engine->add(peers.back().s);
                }
                break;
            case 1: {  // raw octets, any framing
                Peer* p = pick();
                size_t got = 0;
                const uint8_t* chunk = in.take(in.u16() % 1500, got);
                if (p && p->s->reading && got) p->s->owner->on_data(*p->s, chunk, got);
                break;
            }
            case 2: {  // whole messages
                Peer* p = pick();
                const int count = 1 + in.u8() % 8;
                const uint8_t first = in.u8();
                std::string m;
                for (int i = 0; i < count; ++i) m += dptest::message(static_cast<uint16_t>(first << 8 | i), 12 + in.u8());
                if (p && p->s->reading) p->s->send(m);
                break;
            }
            case 3: {
                Peer* p = pick();
                const bool fail = in.u8() % 8 == 0;
                if (p) p->s->complete_write(fail ? -104 : 0);
                break;
            }
            case 4: {
                Peer* p = pick();
                const uint16_t t = in.u16();
                if (p) p->s->take_limit = t % 3 == 0 ? 0 : t;
                break;
            }
            case 5:
                clock.t += in.u16() % 3000;
                engine->tick();
                break;
            case 6: {
                Peer* p = pick();
                if (p && !p->s->closed) p->s->end(0);
                break;
            }
            case 7: {
                Peer* p = pick();
                if (p && !p->s->closed) p->s->end(-104);
                break;
            }
            case 8: handler.answer_one(in.u8() % 4 == 0); break;
            case 9: engine->flush(); break;
            case 10: tell_closed(); break;
            case 11: {
                TcpLimits l = limits;
                l.max_connections = 1 + in.u8() % 6;
                l.max_pending_bytes = 512 + in.u16();
                engine->reconfigure(l);
                limits.max_connections = l.max_connections;
                limits.max_pending_bytes = l.max_pending_bytes;
                break;
            }
            case 12: {  // a shutoff of the peer's socket on the engine's side
                Peer* p = pick();
                if (p && p->s->shut && !p->s->closed) p->s->owner->on_shutdown(*p->s, 0);
                break;
            }
        }
        check(engine->open_connections() <= limits.max_fds, "more descriptors than the budget");
        check(engine->held_input() <= limits.max_input_bytes, "held input over the process budget");
    }

    // Drain: the peers read everything, every held query is answered (one per round, so a
    // script that left hundreds held gets as many rounds), time runs out.
    engine->shutdown();
    const size_t rounds = 200 + handler.held.size();
    for (size_t round = 0; round < rounds; ++round) {
        for (auto& p : peers)
            if (p.alive && !p.closed_told) {
                p.s->take_limit = SIZE_MAX;
                p.s->complete_write();
                if (p.s->shut && !p.s->closed) p.s->owner->on_shutdown(*p.s, 0);
            }
        handler.answer_one(false);
        engine->flush();
        clock.t += 1000;
        engine->tick();
        tell_closed();
    }
    check(handler.held.empty(), "queries left held");
    check(engine->open_connections() == 0, "connections left after shutdown and drain");
    check(engine->held_input() == 0, "held input left");
    check(engine->pending_output() == 0, "pending output left");
    check(stats.open.value() == 0, "open gauge not back to zero");
    for (auto& p : peers) check(!p.alive, "a stream the engine never freed");
    return 0;
}
