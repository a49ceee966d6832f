// The worker's settings: its own (listen address, SO_REUSEPORT), the serving settings it shares
// with the balancer (net/serving_settings.hpp) and the answers' (dns/policy_settings.hpp), all
// declared once; JSON file plus command-line flags (flags win).
#pragma once

#include <cstdint>
#include <string>

#include "config/settings.hpp"
#include "dns/policy.hpp"
#include "net/serving_settings.hpp"

namespace dp::worker {

struct WorkerConfig {
    std::string host = "127.0.0.1";
    uint16_t port = 53;
    bool reuseport = false;
    net::ServingSettings serving;
    dns::PolicySettings policy;
};

const config::Schema<WorkerConfig>& worker_schema();

// Reads argv (and the --config file it names). Throws config::ConfigError with a one-line message.
config::CliAction load_config(int argc, char** argv, WorkerConfig& out, config::Cli& cli);

std::string usage();

}  // namespace dp::worker
