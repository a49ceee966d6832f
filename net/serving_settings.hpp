// The serving settings the worker and the balancer share — transports, TCP connection
// limits and timeouts, buffers, the metrics endpoint — declared once (config/settings.hpp)
// and used by both programs' readers, help and README tables.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/settings.hpp"

namespace dp::net {

struct ServingSettings {
    bool udp = true;
    bool tcp = true;
    uint8_t only = 0;     // --udp / --tcp seen on the command line (bit 0 / bit 1)
    std::string metrics;  // ADDR:PORT of the Prometheus endpoint; empty: off
    uint32_t metrics_threads = 8;
    uint32_t metrics_timeout_ms = 3000;
    uint32_t tcp_idle_timeout_ms = 30000;  // longer than CoreDNS's expire (10 s) + its cleanup tick
    uint32_t tcp_max_connections = 10000;
    uint32_t tcp_max_pending_bytes = 256 * 1024;
    uint32_t tcp_message_timeout_ms = 5000;
    uint64_t tcp_max_input_bytes = 64u << 20;
    uint64_t tcp_max_output_bytes = 64u << 20;
    uint32_t tcp_backlog = 4096;
    uint32_t tcp_close_grace_ms = 5000;
    uint32_t shutdown_grace_ms = 5000;
    uint32_t udp_rcvbuf = 4 * 1024 * 1024;
};

const std::vector<config::Setting<ServingSettings>>& serving_settings();

// An ADDR:PORT or [V6]:PORT value; throws ConfigError naming `key`.
void check_host_port(const std::string& value, const std::string& key);

}  // namespace dp::net
