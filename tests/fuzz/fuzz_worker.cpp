// Fuzz target: the worker's message handler. Any bytes are a query as a client would send it
// over UDP and over TCP (Policy::respond, the one answer path of every transport); the answer
// must be well formed and within the transport's size, built in place over the query (as the
// UDP path does) it must equal the one built apart, and the TCP framing around it must stay
// inside its input.
#include <cstring>
#include <vector>

#include "dns/message.hpp"
#include "dns/policy.hpp"
#include "net/dns_stream.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using fuzz::check;

namespace {

const dp::dns::Policy& policy() {
    static dp::dns::Policy* p = [] {
        dp::dns::PolicySettings s;
        s.nameservers.push_back(dp::dns::parse_nameserver("ns1.park.example:192.0.2.1,2001:db8::1"));
        s.nameservers.push_back(dp::dns::parse_nameserver("ns2.example.com:192.0.2.2"));
        s.rua = "r@park.example";
        s.identity = "fuzz";
        s.caa_iodef = "mailto:x@park.example";
        dp::dns::parse_address("192.0.2.80", s.landing_a, s.landing_aaaa);
        return new dp::dns::Policy(s);
    }();
    return *p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static std::vector<uint8_t> out(65535);
    for (bool tcp : {false, true}) {
        dp::dns::Outcome o;
        const size_t n = policy().respond(data, size, out.data(), out.size(), dp::dns::Transport{tcp, 300}, o);
        check(n == 0 || n >= 12, "answer shorter than a header");
        check(tcp || n <= dp::dns::kUdpPayloadCap, "UDP answer over 1232 octets");
        check((n != 0) == o.answered, "outcome disagrees with the answer");
        if (n) {
            check(out[0] == data[0] && out[1] == data[1], "ID not copied");
            check(out[2] & 0x80, "QR not set");
            check(!(out[3] & 0x80), "RA set");
            size_t qend = 0;
            check(dp::dns::question_end(out.data(), n, qend), "answer's question cannot be walked");
            size_t opt_at, opt_len;
            check(dp::dns::find_opt(out.data(), n, qend, opt_at, opt_len), "answer's records cannot be walked");
        }
        // The worker answers UDP in place, over the query in its receive buffer: the same
        // answer, octet for octet.
        if (!tcp && size <= 4096) {
            static uint8_t in_place[4096];
            std::memcpy(in_place, data, size);
            dp::dns::Outcome o2;
            const size_t n2 = policy().respond(in_place, size, in_place, sizeof in_place, dp::dns::Transport{false, 300}, o2);
            check(n2 == n && std::memcmp(in_place, out.data(), n) == 0, "answer built in place differs");
        }
    }
    bool bad = false;
    const size_t used = dp::net::scan_frames(data, size, bad, [&](const uint8_t* m, size_t len) {
        check(m >= data && m + len <= data + size, "frame out of bounds");
        return true;
    });
    check(used <= size, "framing consumed more than given");
    return 0;
}
