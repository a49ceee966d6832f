// The worker's metrics (names in README "Metrics"). Bumped only by the loop thread.
#pragma once

#include "dns/policy.hpp"
#include "net/metrics.hpp"

namespace dp::worker {

enum class CloseReason : uint8_t { Idle, Evicted, Peer, Error, Shutdown, BadLength, Count };

struct WorkerMetrics {
    static constexpr int kTransports = 2;  // 0 udp, 1 tcp
    static constexpr int kQtypes = 19;
    static constexpr int kRcodes = 8;

    net::Counter queries[kTransports][kQtypes][kRcodes];
    net::Counter malformed[static_cast<int>(dns::Malformed::Count)];
    net::Counter dropped[kTransports];
    net::Counter bytes_in[kTransports], bytes_out[kTransports];
    net::Counter udp_truncated;
    net::Counter udp_send_failed;
    net::Counter tcp_accepted;
    net::Gauge tcp_open;
    net::Counter tcp_closed[static_cast<int>(CloseReason::Count)];
    net::Counter tcp_read_paused;
    net::Counter tcp_oversized_input;
    net::Counter reloads_ok, reloads_failed;
    net::Counter suffix_lookups[2];  // public-suffix lookups past the hot table: 0 memo, 1 libpsl
    net::Histogram duration[kTransports];

    void count(int transport, const dns::Outcome& o) {
        if (o.malformed != dns::Malformed::None) malformed[static_cast<int>(o.malformed)].inc();
        if (o.suffix_memo) suffix_lookups[0].inc(o.suffix_memo);
        if (o.suffix_libpsl) suffix_lookups[1].inc(o.suffix_libpsl);
        if (!o.answered) {
            dropped[transport].inc();
            return;
        }
        queries[transport][qtype_index(o.qtype)][rcode_index(o.rcode)].inc();
        if (o.truncated) udp_truncated.inc();
    }
    void close(CloseReason r) { tcp_closed[static_cast<int>(r)].inc(); }

    void register_all(net::MetricsRegistry& r) const;

    static int qtype_index(uint16_t t);
    static int rcode_index(uint16_t rc);
};

}  // namespace dp::worker
