// respond_bench: the worker's own cost per query, without sockets or the kernel.
//
// Builds every query of a mix file (as dns_load sends them: EDNS, UDP size 1232) and times
// Policy::respond over all of them, round after round, on one thread. It reports ns per query
// (best round and median) and a checksum of the answers, so a faster build that answers
// differently shows up. Pin it (`taskset -c 1`) and compare two builds in the same minute:
// this machine kind has no hardware counters, and at saturation ~90% of a UDP query's cost
// is kernel time, so this isolates the part our code decides.
//
//   respond_bench -f MIX [-r ROUNDS] [--memo N]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "bench/mix_query.hpp"
#include "dns/policy.hpp"

namespace {

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "respond_bench: %s\n", msg.c_str());
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string mix_file;
    int rounds = 20;
    uint32_t memo = 65536;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value");
            return argv[++i];
        };
        if (a == "-f") mix_file = value();
        else if (a == "-r") rounds = std::max(1, std::atoi(value().c_str()));
        else if (a == "--memo") memo = static_cast<uint32_t>(std::strtoul(value().c_str(), nullptr, 10));
        else die("unknown argument " + a + " (usage: respond_bench -f MIX [-r ROUNDS] [--memo N])");
    }
    if (mix_file.empty()) die("-f MIX is required");

    std::ifstream in(mix_file);
    if (!in) die("cannot open " + mix_file);
    std::vector<std::vector<uint8_t>> queries;
    std::string line;
    mixq::MixLine ml;
    while (std::getline(in, line)) {
        const mixq::LineStatus st = mixq::parse_line(line, ml);
        if (st == mixq::LineStatus::Skip) continue;
        uint16_t qtype = 0, qlen = 0;
        std::vector<uint8_t> q;  // as dns_load sends it: EDNS, UDP size 1232
        if (st == mixq::LineStatus::Bad || !mixq::parse_type(ml.type, qtype) ||
            !mixq::build_query(ml.name, qtype, 1232, q, qlen, ml.malform)) {
            die("bad mix line: " + line);
        }
        queries.push_back(std::move(q));
    }
    if (queries.empty()) die(mix_file + " holds no queries");

    dp::dns::PolicySettings s;
    s.nameservers = {dp::dns::parse_nameserver("ns1.park.example:192.0.2.53,2001:db8::53"),
                     dp::dns::parse_nameserver("ns2.park.example:192.0.2.54")};
    s.rua = "dmarc@park.example";
    s.identity = "bench";
    s.psl.memo_entries = memo;
    const dp::dns::Policy policy(s);

    std::vector<uint8_t> out(dp::dns::kUdpPayloadCap);
    const dp::dns::Transport udp{false, 0};
    std::vector<double> ns;
    uint64_t checksum = 0;
    for (int r = 0; r <= rounds; ++r) {  // round 0 warms the memo and the caches
        uint64_t sum = 0;
        const auto t0 = std::chrono::steady_clock::now();
        for (const auto& q : queries) {
            dp::dns::Outcome o;
            const size_t n = policy.respond(q.data(), q.size(), out.data(), out.size(), udp, o);
            sum = sum * 31 + n + out[3] + (n ? out[n - 1] : 0);
        }
        const auto t1 = std::chrono::steady_clock::now();
        if (r == 0) {
            checksum = sum;
            continue;
        }
        if (sum != checksum) die("answers differ between rounds");
        ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(queries.size()));
    }
    std::sort(ns.begin(), ns.end());
    std::printf("{\"queries\":%zu,\"rounds\":%d,\"best_ns\":%.1f,\"median_ns\":%.1f,\"checksum\":\"%016llx\"}\n",
                queries.size(), rounds, ns.front(), ns[ns.size() / 2], static_cast<unsigned long long>(checksum));
}
