#include "worker/worker_metrics.hpp"

#include <array>

namespace dp::worker {

namespace {
constexpr const char* kTransportNames[WorkerMetrics::kTransports] = {"udp", "tcp"};
struct TypeName {
    uint16_t type;
    const char* name;
};
// The types parking traffic is made of; everything else is "other".
constexpr TypeName kTypes[WorkerMetrics::kQtypes - 1] = {
    {1, "A"},    {2, "NS"},     {5, "CNAME"},  {6, "SOA"},   {12, "PTR"},  {15, "MX"},
    {16, "TXT"}, {28, "AAAA"},  {33, "SRV"},   {43, "DS"},   {48, "DNSKEY"}, {64, "SVCB"},
    {65, "HTTPS"}, {251, "IXFR"}, {252, "AXFR"}, {255, "ANY"}, {257, "CAA"}, {99, "SPF"}};
constexpr const char* kRcodeNames[WorkerMetrics::kRcodes] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                                             "NOTIMP",  "REFUSED", "BADVERS",  "other"};
}  // namespace

int WorkerMetrics::qtype_index(uint16_t t) {
    // Built once: type number -> index, so counting a query is one table load.
    static const auto table = [] {
        std::array<uint8_t, 258> m;
        m.fill(kQtypes - 1);
        for (int i = 0; i < kQtypes - 1; ++i) m[kTypes[i].type] = static_cast<uint8_t>(i);
        return m;
    }();
    return t < table.size() ? table[t] : kQtypes - 1;
}

int WorkerMetrics::rcode_index(uint16_t rc) {
    if (rc <= 5) return rc;
    if (rc == 16) return 6;
    return 7;
}

void WorkerMetrics::register_all(net::MetricsRegistry& r) const {
    for (int t = 0; t < kTransports; ++t) {
        for (int q = 0; q < kQtypes; ++q)
            for (int c = 0; c < kRcodes; ++c)
                r.counter("domain_park_queries_total", "Queries answered, by transport, query type and rcode",
                          {{"transport", kTransportNames[t]},
                           {"qtype", q < kQtypes - 1 ? kTypes[q].name : "other"},
                           {"rcode", kRcodeNames[c]}},
                          &queries[t][q][c]);
        r.counter("domain_park_dropped_total", "Messages received and not answered (responses, runts)",
                  {{"transport", kTransportNames[t]}}, &dropped[t]);
        r.counter("domain_park_received_bytes_total", "DNS payload octets received",
                  {{"transport", kTransportNames[t]}}, t == 0 ? &udp_bytes_in : &tcp.bytes_in);
        r.counter("domain_park_sent_bytes_total", "DNS payload octets sent", {{"transport", kTransportNames[t]}},
                  t == 0 ? &udp_bytes_out : &tcp.bytes_out);
        r.histogram("domain_park_query_duration_seconds",
                    "Time from receiving a batch of queries to handing its answers to the kernel",
                    {{"transport", kTransportNames[t]}}, &duration[t]);
    }
    for (int m = 1; m < static_cast<int>(dns::Malformed::Count); ++m)
        r.counter("domain_park_malformed_total", "Malformed messages, by reason",
                  {{"reason", dns::malformed_name(static_cast<dns::Malformed>(m))}}, &malformed[m]);
    for (int i = 0; i < 2; ++i)
        r.counter("domain_park_suffix_lookups_slow_total",
                  "Public-suffix lookups the rule table's hot lines could not answer, by what answered "
                  "(libpsl: 100-300 ns each)",
                  {{"path", i == 0 ? "memo" : "libpsl"}}, &suffix_lookups[i]);
    for (int i = 0; i < 4; ++i)
        r.counter("domain_park_cookies_total",
                  "Queries with a DNS cookie (RFC 7873), by what it proved: client_only (no server cookie), "
                  "valid (a server cookie of ours), invalid (someone else's, expired or another address), "
                  "malformed (FORMERR)",
                  {{"result", dns::kCookieResults[i]}}, &cookies[i]);
    r.counter("domain_park_udp_truncated_total", "UDP answers sent with TC=1 because they did not fit", {},
              &udp_truncated);
    r.counter("domain_park_udp_send_failed_total", "UDP answers the kernel refused (send buffer full)", {},
              &udp_send_failed);
    tcp.register_all(r, "domain_park_", "Client");
    r.counter("domain_park_config_reloads_total", "Configuration reloads (SIGHUP)", {{"result", "success"}},
              &reloads_ok);
    r.counter("domain_park_config_reloads_total", "Configuration reloads (SIGHUP)", {{"result", "failure"}},
              &reloads_failed);
    r.gauge("domain_park_config_restart_required",
            "1 when the last reload met settings that change only on restart (see the log)", {}, &restart_required);
}

}  // namespace dp::worker
