#include "worker/worker_config.hpp"

#include "dns/policy_settings.hpp"
#include "net/sockets.hpp"

namespace dp::worker {

using config::ConfigError;
using config::Reload;
using W = WorkerConfig;

const config::Schema<WorkerConfig>& worker_schema() {
    static const config::Schema<W> schema = [] {
        config::Schema<W> s;
        s.add(config::with_flag(
            config::string<W>("host", &W::host, Reload::Restart, "listen address, IPv4 or IPv6 (:: for all)",
                              [](const std::string& v, const std::string& k) {
                                  sockaddr_storage ss;
                                  socklen_t len;
                                  if (!net::make_sockaddr(v, 53, ss, len))
                                      throw ConfigError(k + ": " + config::quote(v) + " is not an IPv4 or IPv6 address");
                              }),
            "--host", "ADDR"));
        s.add(config::with_flag(config::number<W>("port", &W::port, 1, 65535, config::Unit::Count, Reload::Restart,
                                                  "listen port (UDP and TCP)"),
                                "--port", "N"));
        s.add(config::with_flag(config::boolean<W>("reuseport", &W::reuseport, Reload::Restart,
                                                   "SO_REUSEPORT, so several workers share one address:port"),
                                "--reuseport"));
        s.section(&W::serving, net::serving_settings());
        s.section(&W::policy, dns::policy_settings());
        return s;
    }();
    return schema;
}

std::string usage() {
    return config::usage(worker_schema(),
                         "usage: domain-park-worker [options]\n"
                         "Answers DNS queries for parked domains (SPF -all, DMARC reject, null MX, CAA deny, ...).\n",
                         "Signals: SIGHUP reloads the configuration file and flags; SIGTERM/SIGINT drain and exit.\n");
}

config::CliAction load_config(int argc, char** argv, WorkerConfig& out, config::Cli& cli) {
    WorkerConfig c;
    const config::CliAction a = config::load_command_line(worker_schema(), argc, argv, c, cli);
    if (a != config::CliAction::Run) return a;
    if (!c.serving.udp && !c.serving.tcp) throw ConfigError("udp/tcp: both are off; nothing to serve");
    out = std::move(c);
    return a;
}

}  // namespace dp::worker
