// Fuzz target: the balancer's upstream answer path. The input is a client's query and the
// answer a worker sends back for it (arbitrary bytes, or the real worker policy's answer with
// one octet changed): the query is remapped to an upstream ID, the answer matched to it by ID
// and question, stored in the answer cache and served from it again (the client's ID and
// name case restored, TTLs counted down, stale), classified for response rate limiting (keyed
// on the registrable domain), truncated for a small UDP client or given the balancer's
// keepalive for a TCP one, and SERVFAIL built when no answer comes; the client's DNS cookie is
// taken out at the front and added to whatever answer goes back (a slip becomes BADCOOKIE).
// Whatever the bytes, the balancer's state stays bounded and every message it sends is well
// formed.
#include <sys/socket.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "balancer/answer_cache.hpp"
#include "balancer/balancer_context.hpp"
#include "balancer/rate_limit.hpp"
#include "dns/message.hpp"
#include "dns/policy.hpp"
#include "net/sockets.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using fuzz::check;
namespace dns = dp::dns;
namespace bal = dp::balancer;

namespace {

const dns::Policy& policy() {
    static dns::Policy* p = [] {
        dns::PolicySettings s;
        s.nameservers.push_back(dns::parse_nameserver("ns1.park.example:192.0.2.1,2001:db8::1"));
        s.nameservers.push_back(dns::parse_nameserver("ns2.example.com:192.0.2.2"));
        s.rua = "r@park.example";
        return new dns::Policy(s);
    }();
    return *p;
}

struct State {
    bal::AnswerCache cache{[] {
        bal::CacheSettings cs;
        cs.max_entries = 512;  // small: eviction runs often
        cs.max_bytes = 64 * 1024;
        cs.max_stale = 60;
        return cs;
    }()};
    bal::RateLimitStats stats;
    std::unique_ptr<dns::PublicSuffix> psl = dns::load_suffix_list(dns::SuffixListSettings{});
    bal::ResponseLimiter rrl{[] {
        bal::RateLimitSettings r;
        r.responses_per_second = 3;
        r.slip = 2;
        r.max_entries = 64;
        return r;
    }(), stats, 7};
    uint64_t now_ms = 1000;
    bal::BalancerContext ctx;  // the fronts' share: the cookies and their counters
    State() {
        rrl.set_suffix_list(psl.get());
        ctx.cookies = dns::make_cookies({true, "e5e973e5a6b2a43f48e7dc849e37bfcf", ""});
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static State st;
    fuzz::Bytes in{data, size};
    const uint8_t flags = in.u8();
    const uint16_t upstream_id = in.u16();
    const size_t want_q = in.u16() % 600;
    size_t qlen_in = 0;
    const uint8_t* qsrc = in.take(want_q, qlen_in);
    static uint8_t query[4096], answer[65536], out[4096];
    std::memcpy(query, qsrc, qlen_in);
    size_t len = qlen_in;
    st.now_ms += 1 + (flags >> 4) * 700;

    // The front: responses and runts are dropped; a UDP client's keepalive option goes, and
    // every client's cookie (judged for its address).
    dns::Query q;
    dns::Malformed why;
    dns::ParseStatus ps = dns::parse_query(query, len, q, why);
    if (ps == dns::ParseStatus::Drop) return 0;
    const bool tcp_client = flags & 1;
    sockaddr_in client{};
    client.sin_family = AF_INET;
    client.sin_addr.s_addr = htonl(0xC0000200u | (flags & 0xC0));
    dns::ClientAddr from;
    from.octets = dp::net::address_octets(reinterpret_cast<const sockaddr*>(&client), from.len);
    dns::ClientCookie cookie;
    if (bal::has_front_options(q, ps, why, !tcp_client)) {
        const size_t before = len;
        len = bal::take_front_options(st.ctx, query, len, q, ps, why, from, !tcp_client, cookie);
        check(len <= before, "taking options out grew the query");
        check(ps != dns::ParseStatus::Drop, "taking options out made a query unanswerable");
        if (ps == dns::ParseStatus::Ok) {
            check(tcp_client || !q.edns_keepalive, "a keepalive option survived its removal");
            check(q.cookie_len == 0, "a cookie survived its removal");
        }
        check(cookie.len == 0 || dns::cookie_length_ok(cookie.len), "a kept cookie of a bad length");
    }
    const uint16_t client_id = q.id;
    const size_t qlen = q.question_ok ? q.question_end - dns::kHeaderSize : 0;

    // SERVFAIL when no worker answers in time.
    const size_t sf = dns::make_servfail(query, len, out, sizeof out);
    check(sf == 0 || (sf >= 12 && dns::get_u16(out) == client_id), "SERVFAIL without the client's ID");

    // The pool: the query goes out under an upstream ID; the worker answers.
    static uint8_t sent[4096];
    std::memcpy(sent, query, len);
    dns::put_u16(sent, upstream_id);
    size_t alen = 0;
    if (flags & 2) {
        dns::Outcome o;
        alen = policy().respond(sent, len, answer, sizeof answer, dns::Transport{true, 300}, o);
        if (alen && !in.done()) answer[in.u16() % alen] ^= in.u8();  // one octet changed
    } else {
        size_t got = 0;
        const uint8_t* a = in.rest(got);
        alen = std::min(got, sizeof answer);
        std::memcpy(answer, a, alen);
    }
    if (alen < dns::kHeaderSize) return 0;
    size_t qend = 0;
    const bool matched = dns::get_u16(answer) == upstream_id && dns::question_end(answer, alen, qend) &&
                         dns::same_question(query + dns::kHeaderSize, qlen, answer + dns::kHeaderSize,
                                            qend - dns::kHeaderSize);
    if (!matched) return 0;  // counted as unmatched, ignored

    // The cache: stored, then served to the same question (fresh and stale).
    if (bal::AnswerCache::cacheable_query(q, ps)) {
        st.cache.insert(q, answer, alen, st.now_ms);
        for (bool stale : {false, true}) {
            static uint8_t hit[bal::AnswerCache::kMaxAnswer];
            const size_t h = st.cache.lookup(q, st.now_ms + (stale ? 400000 : 1000), stale, hit, sizeof hit);
            check(h == 0 || (h >= 12 && h <= sizeof hit), "cached answer size");
            if (h) {
                check(dns::get_u16(hit) == client_id, "cached answer without the client's ID");
                check(h >= q.question_end &&
                          std::memcmp(hit + dns::kHeaderSize, query + dns::kHeaderSize, qlen) == 0,
                      "cached answer without the client's question, case as sent");
            }
        }
        check(st.cache.size() <= 512 && st.cache.bytes() <= 64 * 1024, "cache over its bounds");
    }

    // The client's cookie on an answer: only ever the one made for this client, within `cap`.
    auto with_cookie = [&](uint8_t* msg, size_t n, size_t cap) {
        const size_t r = dns::add_cookie(st.ctx.cookies, cookie, from, msg, n, cap);
        check(r == n || (cookie.len && r == n + 4 + dns::kClientCookie + dns::kServerCookie && r <= cap),
              "cookie added of the wrong size or past the room");
        if (r != n) {
            const uint8_t* v = msg + r - dns::kClientCookie - dns::kServerCookie;
            check(std::memcmp(v, cookie.value, dns::kClientCookie) == 0, "not the client's own cookie");
            check(st.ctx.cookies.check(v, dns::kClientCookie + dns::kServerCookie, from, dns::cookie_clock()) ==
                      dns::CookieVerdict::Valid,
                  "a server cookie not valid for the client it was made for");
        }
        return r;
    };

    // Delivery: the client's ID back; UDP: RRL, truncation to the client's size; TCP: keepalive.
    if (tcp_client) {
        if (q.edns_keepalive) dns::set_keepalive(answer, alen, 70);
        dns::put_u16(answer, client_id);
        with_cookie(answer, alen, sizeof answer);
    } else {
        bal::ResponseClass rc;
        bal::classify(answer, alen, rc);
        check(rc.name_len <= sizeof rc.name, "classified name length");
        const bal::RrlVerdict v = st.rrl.check(reinterpret_cast<const sockaddr*>(&client), rc, st.now_ms);
        const uint16_t limit = q.edns ? std::clamp<uint16_t>(q.edns_udp_size, 512, dns::kUdpPayloadCap) : 512;
        const size_t room = cookie.len ? 4 + dns::kClientCookie + dns::kServerCookie : 0;
        if (v == bal::RrlVerdict::Slip || alen + room > limit) {
            size_t t = dns::truncate_answer(answer, alen, out, limit);
            check(t == 0 || (t >= 12 && t <= limit), "truncated answer over the client's size");
            if (t) check(out[2] & 0x02, "truncated answer without TC");
            if (t && v == bal::RrlVerdict::Slip && cookie.len && dns::make_badcookie(out, t))
                check((out[3] & 0x0F) == (dns::rcode::BADCOOKIE & 0x0F) && !(out[2] & 0x06), "BADCOOKIE header");
            if (t) t = with_cookie(out, t, limit);
        } else {
            std::memcpy(out, answer, alen);
            with_cookie(out, alen, limit);
        }
    }
    return 0;
}
