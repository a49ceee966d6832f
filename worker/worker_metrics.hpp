// The worker's metrics (names in README "Metrics"). Bumped only by the loop thread.
#pragma once

#include "dns/policy.hpp"
#include "net/metrics.hpp"
#include "net/tcp_engine.hpp"

namespace dp::worker {

struct WorkerMetrics {
    static constexpr int kTransports = 2;  // 0 udp, 1 tcp
    static constexpr int kQtypes = 19;
    static constexpr int kRcodes = 8;

    net::Counter queries[kTransports][kQtypes][kRcodes];
    net::Counter malformed[static_cast<int>(dns::Malformed::Count)];
    net::Counter dropped[kTransports];
    net::Counter udp_bytes_in, udp_bytes_out;
    net::Counter udp_truncated;
    net::Counter udp_send_failed;
    net::TcpStats tcp;  // connections, their limits, TCP payload octets (the engine's)
    net::Counter reloads_ok, reloads_failed;
    net::Gauge restart_required;  // 1 while the file asks for settings only a restart applies
    net::Counter suffix_lookups[2];  // public-suffix lookups past the hot table: 0 memo, 1 libpsl
    net::Counter cookies[4];         // by dns::CookieVerdict (None unused), and [0]: malformed
    net::Histogram duration[kTransports];

    void count(int transport, const dns::Outcome& o) {
        if (o.malformed != dns::Malformed::None) malformed[static_cast<int>(o.malformed)].inc();
        if (o.cookie != dns::CookieVerdict::None) cookies[static_cast<int>(o.cookie)].inc();
        if (o.malformed == dns::Malformed::Cookie) cookies[0].inc();
        if (o.suffix_memo) suffix_lookups[0].inc(o.suffix_memo);
        if (o.suffix_libpsl) suffix_lookups[1].inc(o.suffix_libpsl);
        if (!o.answered) {
            dropped[transport].inc();
            return;
        }
        queries[transport][qtype_index(o.qtype)][rcode_index(o.rcode)].inc();
        if (o.truncated) udp_truncated.inc();
    }

    void register_all(net::MetricsRegistry& r) const;

    static int qtype_index(uint16_t t);
    static int rcode_index(uint16_t rc);
};

}  // namespace dp::worker
