// The worker's settings: JSON file plus command-line flags (flags win).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dns/policy.hpp"

namespace dp::worker {

struct WorkerConfig {
    dns::PolicySettings policy;
    std::string host = "127.0.0.1";
    uint16_t port = 53;
    bool udp = true;
    bool tcp = true;
    bool reuseport = false;
    std::string metrics;                 // ADDR:PORT of the Prometheus endpoint; empty: off
    uint32_t tcp_idle_timeout_ms = 30000;  // longer than CoreDNS's expire (10 s) + its cleanup tick
    uint32_t tcp_max_connections = 10000;
    uint32_t tcp_max_pending_bytes = 256 * 1024;  // unsent answers per connection before reading pauses
    uint32_t tcp_backlog = 4096;
    uint32_t tcp_close_grace_ms = 5000;  // wait for the peer's FIN after ours before closing
    uint32_t shutdown_grace_ms = 5000;   // SIGTERM: time to flush pending answers
    uint32_t udp_rcvbuf = 4 * 1024 * 1024;

    std::string config_path;
    bool check_only = false;
};

enum class CliAction { Run, Help, Version };

// Reads argv (and the --config file it names). Throws dns::ConfigError with a one-line message.
CliAction load_config(int argc, char** argv, WorkerConfig& out);

const char* usage();

}  // namespace dp::worker
