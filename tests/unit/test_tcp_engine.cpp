// The TCP connection engine's state machine under scripted I/O: every life-cycle rule of the
// worker's and the balancer's client connections, without a socket.
#include <doctest/doctest.h>

#include <deque>
#include <memory>
#include <random>

#include "tests/unit/tcp_script.hpp"

using dp::net::CloseReason;
using dp::net::Conn;
using dp::net::RefuseReason;
using dp::net::TcpEngine;
using dp::net::TcpLimits;
using dp::net::TcpStats;
using dptest::message;
using dptest::ScriptStream;
using dptest::tags;

namespace {

template <class Handler>
struct Rig {
    std::deque<bool> alive;  // per stream made here: not yet deleted by the engine (outlives it)
    dptest::ManualClock clock;
    TcpStats stats;
    Handler handler;
    std::unique_ptr<TcpEngine> engine;
    std::vector<ScriptStream*> live;  // streams made here

    explicit Rig(TcpLimits l = TcpLimits{}) {
        engine = std::make_unique<TcpEngine>(handler, clock, stats, l);
        handler.engine = engine.get();
    }
    // Whatever a test left: held queries forgotten, closed streams' close reported, so that
    // every connection is freed (the leak checker watches).
    ~Rig() {
        if constexpr (requires { handler.held; })
            while (handler.answer_one(true)) {
            }
        for (size_t i = 0; i < live.size(); ++i)
            if (alive[i] && live[i]->closed) live[i]->finish_close();
    }
    ScriptStream* accept() {
        if (!engine->admit()) {
            engine->refused(RefuseReason::FdBudget);
            return nullptr;
        }
        auto* s = new ScriptStream;
        alive.push_back(true);
        s->alive = &alive.back();
        live.push_back(s);
        engine->add(s);
        return s;
    }
    Conn& conn(ScriptStream* s) { return *static_cast<Conn*>(s->user); }
    uint64_t closed(CloseReason r) const { return stats.closed[static_cast<int>(r)].value(); }
    void advance(uint64_t ms) {
        clock.t += ms;
        engine->tick();
    }
};

std::string messages(uint16_t first, int n, size_t len = 12) {
    std::string s;
    for (int i = 0; i < n; ++i) s += message(static_cast<uint16_t>(first + i), len);
    return s;
}

}  // namespace

TEST_CASE("pipelined queries in one read are answered in order with one write") {
    Rig<dptest::EchoHandler> r;
    ScriptStream* s = r.accept();
    REQUIRE(s);
    CHECK(s->reading);
    s->send(messages(1, 100));
    CHECK(r.handler.answered == 100);
    CHECK(s->try_writes == 1);
    CHECK(tags(s->taken) == tags(messages(1, 100)));
    CHECK(r.stats.bytes_out.value() == 100 * 12);
}

TEST_CASE("the client's address recorded at accept reaches the handler with every message") {
    Rig<dptest::LaterHandler> r;
    REQUIRE(r.engine->admit());
    auto* s = new ScriptStream;
    dp::net::PeerAddress peer;
    peer.len = 16;
    for (uint8_t i = 0; i < 16; ++i) peer.octets[i] = static_cast<uint8_t>(0x20 + i);
    r.engine->add(s, peer);
    ScriptStream* unknown = r.accept();  // a stream added without an address
    s->send(messages(1, 2));
    unknown->send(messages(3, 1));
    REQUIRE(r.handler.held.size() == 3);
    for (int i = 0; i < 2; ++i) {
        const Conn& c = *r.handler.held[i].conn;
        CHECK(c.peer.len == 16);
        CHECK(std::equal(c.peer.octets, c.peer.octets + 16, peer.octets));
    }
    CHECK(r.handler.held[2].conn->peer.len == 0);
    while (r.handler.answer_one()) {
    }
}

TEST_CASE("a message split at every octet is answered once, when complete") {
    Rig<dptest::EchoHandler> r;
    ScriptStream* s = r.accept();
    const std::string m = messages(7, 2, 40);
    for (char ch : m) s->send(std::string(1, ch));
    CHECK(tags(s->taken) == std::vector<uint16_t>{7, 8});
    CHECK(r.engine->held_input() == 0);  // nothing held once every message is complete
}

TEST_CASE("slowloris: a message must be complete within message_ms, octets do not refresh it") {
    TcpLimits l;
    l.message_ms = 3000;
    Rig<dptest::EchoHandler> r(l);
    ScriptStream* s = r.accept();
    const std::string m = message(1, 200);
    s->send(m.substr(0, 2));  // the length prefix
    for (int i = 0; i < 2; ++i) {
        r.advance(1000);
        s->send(m.substr(2 + i, 1));
        CHECK_FALSE(s->shut);
    }
    r.advance(1001);
    CHECK(r.closed(CloseReason::MessageTimeout) == 1);
    CHECK(s->shut);  // graceful: FIN
    CHECK(r.engine->held_input() == 0);
    // Input arriving while closing is read and discarded.
    s->send(m.substr(4, 50));
    CHECK(r.handler.answered == 0);
}

TEST_CASE("a new message restarts the message clock; complete messages keep it off") {
    TcpLimits l;
    l.message_ms = 3000;
    Rig<dptest::EchoHandler> r(l);
    ScriptStream* s = r.accept();
    for (int i = 0; i < 5; ++i) {
        // Every read completes one message and starts the next one.
        const std::string m = message(static_cast<uint16_t>(i), 12);
        s->send(i == 0 ? m.substr(0, 7) : m.substr(7) + message(static_cast<uint16_t>(i + 1)).substr(0, 7));
        r.advance(2000);
    }
    CHECK(r.closed(CloseReason::MessageTimeout) == 0);
    CHECK(r.handler.answered >= 4);
}

TEST_CASE("activity is a whole message or a write, so a trickling connection is evicted first") {
    TcpLimits l;
    l.max_connections = 2;
    l.max_fds = 10;
    l.message_ms = 100000;
    Rig<dptest::EchoHandler> r(l);
    ScriptStream* trickle = r.accept();  // t=1000
    r.advance(1000);
    ScriptStream* real = r.accept();  // t=2000
    real->send(message(1));
    const std::string m = message(9, 300);
    for (int i = 0; i < 5; ++i) {
        r.advance(1000);
        trickle->send(m.substr(i, 1));
    }
    ScriptStream* fresh = r.accept();
    REQUIRE(fresh);
    CHECK(r.closed(CloseReason::Evicted) == 1);
    CHECK(trickle->shut);
    CHECK_FALSE(real->shut);
}

TEST_CASE("idle connections close after idle_ms with a FIN; busy ones do not") {
    TcpLimits l;
    l.idle_ms = 5000;
    Rig<dptest::LaterHandler> r(l);
    ScriptStream* idle = r.accept();
    ScriptStream* busy = r.accept();
    busy->send(message(1));  // held by the handler: outstanding
    r.advance(6000);
    CHECK(idle->shut);
    CHECK_FALSE(busy->shut);
    CHECK(r.closed(CloseReason::Idle) == 1);
    // The peer's FIN completes the close.
    idle->end();
    CHECK(idle->closed);
    r.handler.answer_one();
    r.engine->flush();  // once per loop iteration
    CHECK(tags(busy->taken) == std::vector<uint16_t>{1});
    r.advance(6000);
    CHECK(busy->shut);
}

TEST_CASE("every descriptor counts: closing connections against max_fds, then refusal") {
    TcpLimits l;
    l.max_connections = 3;
    l.max_fds = 4;
    l.idle_ms = 1000;
    Rig<dptest::EchoHandler> r(l);
    std::vector<ScriptStream*> s;
    for (int i = 0; i < 3; ++i) s.push_back(r.accept());
    r.advance(1500);  // all three idle: FIN sent, waiting for the peers' FINs
    for (auto* x : s) CHECK(x->shut);
    CHECK(r.engine->open_connections() == 3);
    ScriptStream* a = r.accept();  // a 4th descriptor fits
    REQUIRE(a);
    ScriptStream* b = r.accept();  // at max_fds: the oldest closing one goes at once
    REQUIRE(b);
    CHECK(s[0]->closed);
    CHECK(r.engine->open_connections() == 4);
}

TEST_CASE("refusal when no descriptor can be freed") {
    TcpLimits l;
    l.max_connections = 10;
    l.max_fds = 2;
    Rig<dptest::LaterHandler> r(l);
    ScriptStream* a = r.accept();
    ScriptStream* b = r.accept();
    REQUIRE(a);
    REQUIRE(b);
    CHECK(r.accept() == nullptr);
    CHECK(r.stats.refused[static_cast<int>(RefuseReason::FdBudget)].value() == 1);
    // Established connections are still served.
    a->send(message(5));
    r.handler.answer_one();
    r.engine->flush();
    CHECK(tags(a->taken) == std::vector<uint16_t>{5});
    // Once one closes for good, admission recovers by itself.
    b->end();
    b->finish_close();
    CHECK(r.accept() != nullptr);
}

TEST_CASE("back-pressure: a peer that does not read pauses its queries, resumes below half") {
    TcpLimits l;
    l.max_pending_bytes = 4096;
    Rig<dptest::EchoHandler> r(l);
    ScriptStream* s = r.accept();
    s->take_limit = 0;  // the peer reads nothing
    s->send(messages(1, 1000, 20));
    CHECK_FALSE(s->reading);
    CHECK(r.stats.read_paused.value() >= 1);
    const size_t answered = r.handler.answered;
    CHECK(answered < 1000);
    CHECK(r.engine->held_input() > 0);
    // The peer catches up: held queries are answered, reading resumes.
    s->take_limit = SIZE_MAX;
    for (int i = 0; i < 100 && s->async; ++i) s->complete_write();
    CHECK(r.handler.answered == 1000);
    CHECK(s->reading);
    CHECK(tags(s->taken) == tags(messages(1, 1000, 20)));
    CHECK(r.engine->pending_output() == 0);
}

TEST_CASE("outstanding queries at max_outstanding pause reading until answers come") {
    TcpLimits l;
    l.max_outstanding = 8;
    Rig<dptest::LaterHandler> r(l);
    ScriptStream* s = r.accept();
    s->send(messages(1, 30));
    CHECK(r.handler.held.size() == 8);
    CHECK_FALSE(s->reading);
    while (r.handler.answer_one()) r.engine->flush();
    CHECK(tags(s->taken) == tags(messages(1, 30)));
    CHECK(s->reading);
}

TEST_CASE("graceful close waits for answers due, then FIN, then the peer's FIN or the grace") {
    TcpLimits l;
    l.idle_ms = 1000;
    l.close_grace_ms = 2000;
    l.drain_ms = 5000;
    Rig<dptest::LaterHandler> r(l);
    ScriptStream* s = r.accept();
    s->send(message(3));
    r.engine->shutdown();
    CHECK_FALSE(s->shut);  // an answer is still due
    r.handler.answer_one();
    r.engine->flush();
    CHECK(tags(s->taken) == std::vector<uint16_t>{3});
    CHECK(s->shut);
    // Shutting down: the FIN's completion closes without waiting for the peer.
    s->owner->on_shutdown(*s, 0);
    CHECK(s->closed);
    s->finish_close();

    Rig<dptest::EchoHandler> g(l);
    ScriptStream* t = g.accept();
    g.advance(1500);
    CHECK(t->shut);
    g.advance(2500);  // no FIN from the peer within the grace
    CHECK(t->closed);
}

TEST_CASE("draining is bounded: answers that never come do not hold the descriptor") {
    TcpLimits l;
    l.drain_ms = 3000;
    Rig<dptest::LaterHandler> r(l);
    ScriptStream* s = r.accept();
    const bool& alive = r.alive.back();
    s->send(message(1));
    r.engine->shutdown();
    r.advance(3001);
    CHECK(s->closed);
    s->finish_close();
    CHECK(alive);  // the handler still holds a query for it
    r.handler.answer_one();  // the late answer is dropped, the connection freed
    CHECK_FALSE(alive);
}

TEST_CASE("half-close after queries: every query is answered, then the connection closes") {
    Rig<dptest::EchoHandler> r;
    ScriptStream* s = r.accept();
    s->send(messages(1, 3));
    s->end();
    CHECK(tags(s->taken) == std::vector<uint16_t>{1, 2, 3});
    CHECK(s->closed);
    CHECK_FALSE(s->shut);  // the peer is gone: no FIN wait
    CHECK(r.closed(CloseReason::Peer) == 1);
}

TEST_CASE("half-close while paused: the queries held are still answered") {
    TcpLimits l;
    l.max_pending_bytes = 4096;
    Rig<dptest::EchoHandler> r(l);
    ScriptStream* s = r.accept();
    s->take_limit = 0;
    s->send(messages(1, 500, 20));
    s->end();
    CHECK_FALSE(s->closed);
    s->take_limit = SIZE_MAX;
    for (int i = 0; i < 100 && s->async; ++i) s->complete_write();
    CHECK(tags(s->taken) == tags(messages(1, 500, 20)));
    CHECK(s->closed);
}

TEST_CASE("a length prefix below 12 closes after the answers before it") {
    Rig<dptest::EchoHandler> r;
    ScriptStream* s = r.accept();
    std::string in = messages(1, 2);
    in += std::string("\x00\x05hello", 7);
    s->send(in);
    CHECK(tags(s->taken) == std::vector<uint16_t>{1, 2});
    CHECK(s->shut);
    CHECK(r.closed(CloseReason::BadLength) == 1);
}

TEST_CASE("input for the process is bounded: the oldest incomplete message's connection goes") {
    TcpLimits l;
    l.max_input_bytes = 3 * 65536;
    l.message_ms = 100000;
    Rig<dptest::EchoHandler> r(l);
    std::vector<ScriptStream*> s;
    for (int i = 0; i < 4; ++i) s.push_back(r.accept());
    const std::string big = message(1, 65535);
    for (int i = 0; i < 3; ++i) {
        s[i]->send(big.substr(0, 60000));  // announces 65,535, sends 60,000
        r.advance(10);
    }
    CHECK(r.closed(CloseReason::InputBudget) == 0);
    s[3]->send(big.substr(0, 60000));
    CHECK(r.closed(CloseReason::InputBudget) == 1);
    CHECK(s[0]->shut);  // the oldest went
    CHECK_FALSE(s[3]->shut);
    CHECK(r.engine->held_input() <= l.max_input_bytes);
    // Completing a message still works for the survivors.
    s[3]->send(big.substr(60000));
    CHECK(r.handler.answered == 1);
}

TEST_CASE("more than one read plus one message held closes the connection") {
    TcpLimits l;
    l.max_pending_bytes = 4096;
    Rig<dptest::EchoHandler> r(l);
    ScriptStream* s = r.accept();
    s->take_limit = 0;
    s->send(messages(1, 1000, 20));  // pauses, holding the rest
    REQUIRE_FALSE(s->reading);
    // A stream that delivers more while paused (libuv does not) cannot make it hold more than
    // one read and one message.
    s->send(std::string(140000, 'a'));
    CHECK(r.closed(CloseReason::Oversized) == 1);
    CHECK(r.stats.oversized_input.value() == 1);
    CHECK(r.engine->held_input() == 0);
}

TEST_CASE("output for the process is bounded: connections with unsent answers stop being read") {
    TcpLimits l;
    l.max_output_bytes = 64 * 1024;
    l.max_pending_bytes = 1 << 20;
    Rig<dptest::EchoHandler> r(l);
    ScriptStream* a = r.accept();
    ScriptStream* b = r.accept();
    a->take_limit = 0;
    b->take_limit = 0;
    a->send(messages(1, 2000, 40));
    CHECK(r.engine->pending_output() >= 64 * 1024);
    b->send(messages(1, 1, 40));  // its first answer stays unsent: over the budget, b waits
    b->send(messages(2, 1, 40));
    CHECK_FALSE(b->reading);
    a->take_limit = b->take_limit = SIZE_MAX;
    for (int i = 0; i < 200 && (a->async || b->async); ++i) {
        a->complete_write();
        b->complete_write();
    }
    CHECK(tags(b->taken) == std::vector<uint16_t>{1, 2});
    CHECK(r.engine->pending_output() == 0);
}

TEST_CASE("a failed write closes the connection, counted as error") {
    Rig<dptest::EchoHandler> r;
    ScriptStream* s = r.accept();
    s->fail = -104;  // ECONNRESET
    s->send(message(1));
    CHECK(s->closed);
    CHECK(r.closed(CloseReason::Error) == 1);
    s->finish_close();
}

TEST_CASE("answers to a connection that closed meanwhile are dropped; it is freed after the last") {
    Rig<dptest::LaterHandler> r;
    ScriptStream* s = r.accept();
    const bool& alive = r.alive.back();
    s->send(messages(1, 3));
    s->end(-104);  // reset with three queries out
    CHECK(s->closed);
    s->finish_close();
    CHECK(alive);
    r.handler.answer_one();
    r.handler.answer_one(true);
    CHECK(alive);
    r.handler.answer_one();
    r.engine->flush();
    CHECK_FALSE(alive);
    CHECK(r.engine->open_connections() == 0);
    CHECK(r.stats.open.value() == 0);
}

TEST_CASE("a lowered connection cap on reload evicts down to it") {
    Rig<dptest::EchoHandler> r;
    for (int i = 0; i < 5; ++i) r.accept();
    TcpLimits l;
    l.max_connections = 2;
    r.engine->reconfigure(l);
    CHECK(r.engine->active_connections() == 2);
    CHECK(r.closed(CloseReason::Evicted) == 3);
}

TEST_CASE("random chunkings, partial writes and completions: every answer once, in order") {
    std::mt19937 rng(20261201);
    for (int round = 0; round < 200; ++round) {
        TcpLimits l;
        l.max_pending_bytes = 512 + rng() % 8192;
        l.max_outstanding = 1 + rng() % 64;
        Rig<dptest::LaterHandler> r(l);
        ScriptStream* s = r.accept();
        const int n = 1 + static_cast<int>(rng() % 300);
        std::string in;
        for (int i = 0; i < n; ++i) in += message(static_cast<uint16_t>(i), 12 + rng() % 200);
        size_t off = 0;
        for (int step = 0; step < 100000 && (off < in.size() || !r.handler.held.empty() || s->async); ++step) {
            switch (rng() % 4) {
                case 0:
                    if (off < in.size() && s->reading) {
                        const size_t k = std::min<size_t>(in.size() - off, 1 + rng() % 700);
                        s->send(in.substr(off, k));
                        off += k;
                    }
                    break;
                case 1:
                    r.handler.answer_one();
                    break;
                case 2:
                    s->take_limit = rng() % 3 == 0 ? 0 : rng() % 2000;
                    r.engine->flush();
                    break;
                case 3:
                    s->take_limit = rng() % 2000;
                    s->complete_write();
                    break;
            }
        }
        // The peer reads everything now: what is still held gets answered.
        s->take_limit = SIZE_MAX;
        r.engine->flush();
        for (int i = 0; i < 100000 && (s->async || !r.handler.held.empty() || off < in.size()); ++i) {
            if (off < in.size() && s->reading) {
                s->send(in.substr(off));
                off = in.size();
            }
            s->complete_write();
            r.handler.answer_one();
            r.engine->flush();
        }
        std::vector<uint16_t> want;
        for (int i = 0; i < n; ++i) want.push_back(static_cast<uint16_t>(i));
        REQUIRE(tags(s->taken) == want);
        CHECK(r.engine->held_input() == 0);
        CHECK(r.engine->pending_output() == 0);
    }
}
