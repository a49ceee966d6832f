#include "worker/worker_config.hpp"


#include <nlohmann/json.hpp>

#include "dns/policy_settings.hpp"
#include "net/sockets.hpp"

namespace dp::worker {

using dns::ConfigError;

const char* usage() {
    return R"(usage: domain-park-worker [options]
Answers DNS queries for parked domains (SPF -all, DMARC reject, null MX, CAA deny, ...).

  -c, --config FILE          JSON configuration file; flags below override it
      --check-config         validate the configuration and exit (0 valid, 2 invalid)
      --host ADDR            listen address, IPv4 or IPv6 (default 127.0.0.1)
      --port N               listen port (default 53)
      --udp                  serve UDP only          --tcp   serve TCP only (default: both)
      --reuseport            SO_REUSEPORT, so several workers can share one address:port
  -n, --nameserver NAME[:ADDR[,ADDR...]]
                             a name server of the parked zones (repeatable, at least one;
                             the first is the SOA mname); addresses become glue
      --rua EMAIL            DMARC aggregate report address
      --ruf EMAIL            DMARC failure report address
      --identity TEXT        answer NSID and CHAOS id.server/hostname.bind with TEXT
      --metrics ADDR:PORT    serve Prometheus metrics at http://ADDR:PORT/metrics (default off)
      --idle-timeout SECONDS close TCP connections idle this long (default 30)
      --max-connections N    TCP connection cap; at the cap the least recently active one is closed (default 10000)
      --psl-file PATH        Public Suffix List file (default: newest of system and built-in)
      --psl-private          also treat the list's private section as public suffixes
  -h, --help                 this text
      --version              print the version
Signals: SIGHUP reloads the configuration file and flags; SIGTERM/SIGINT drain and exit.
)";
}

namespace {

void apply_worker_key(WorkerConfig& c, const std::string& key, const nlohmann::json& v) {
    using dns::json_bool;
    using dns::json_string;
    using dns::json_u32;
    if (key == "host") c.host = json_string(v, key);
    else if (key == "port") c.port = static_cast<uint16_t>(json_u32(v, key, 1, 65535));
    else if (key == "udp") c.udp = json_bool(v, key);
    else if (key == "tcp") c.tcp = json_bool(v, key);
    else if (key == "reuseport") c.reuseport = json_bool(v, key);
    else if (key == "metrics") c.metrics = json_string(v, key);
    else if (key == "tcp_idle_timeout") c.tcp_idle_timeout_ms = json_u32(v, key, 1, 3600) * 1000;
    else if (key == "tcp_max_connections") c.tcp_max_connections = json_u32(v, key, 1, 1000000);
    else if (key == "tcp_max_pending_bytes") c.tcp_max_pending_bytes = json_u32(v, key, 4096, 64 << 20);
    else if (key == "tcp_backlog") c.tcp_backlog = json_u32(v, key, 1, 65535);
    else if (key == "tcp_close_grace") c.tcp_close_grace_ms = json_u32(v, key, 0, 600) * 1000;
    else if (key == "shutdown_grace") c.shutdown_grace_ms = json_u32(v, key, 0, 600) * 1000;
    else if (key == "udp_rcvbuf") c.udp_rcvbuf = json_u32(v, key, 65536, 1u << 30);
    else throw ConfigError(key + ": unknown setting");
}

void load_file(const std::string& path, WorkerConfig& c) {
    const nlohmann::json j = dns::read_json_object(path);
    for (const auto& [key, value] : j.items())
        if (!dns::apply_policy_key(c.policy, key, value)) apply_worker_key(c, key, value);
}

}  // namespace

CliAction load_config(int argc, char** argv, WorkerConfig& out) {
    WorkerConfig c;
    std::vector<std::pair<std::string, std::string>> flags;  // applied after the file
    bool only_udp = false, only_tcp = false;
    const std::initializer_list<const char*> takes_value = {"-c",         "--config",   "--host",     "--port",         "-n",
                              "--nameserver", "--rua",      "--ruf",      "--identity",     "--metrics",
                              "--idle-timeout", "--max-connections", "--psl-file"};
    for (const auto& [f, v, valued] : dns::split_flags(argc, argv, takes_value)) {
        if (f == "-h" || f == "--help") return CliAction::Help;
        if (f == "--version") return CliAction::Version;
        if (f == "--check-config") c.check_only = true;
        else if (f == "--udp") only_udp = true;
        else if (f == "--tcp") only_tcp = true;
        else if (f == "--reuseport") c.reuseport = true;
        else if (f == "--psl-private") c.policy.psl_private = true;
        else if (f == "-c" || f == "--config") c.config_path = v;
        else if (valued) flags.emplace_back(f, v);
        else throw ConfigError(f + ": unknown option (see --help)");
    }
    const bool check_only = c.check_only, reuseport = c.reuseport, psl_private = c.policy.psl_private;
    const std::string path = c.config_path;
    if (!path.empty()) load_file(path, c);
    c.check_only = check_only;
    c.config_path = path;
    if (reuseport) c.reuseport = true;
    if (psl_private) c.policy.psl_private = true;
    if (only_udp || only_tcp) {
        c.udp = only_udp;
        c.tcp = only_tcp;
    }
    bool ns_from_flags = false;
    for (const auto& [f, v] : flags) {
        if (f == "--host") c.host = v;
        else if (f == "--port") c.port = static_cast<uint16_t>(dns::flag_number(f, v, 1, 65535));
        else if (f == "-n" || f == "--nameserver") {
            if (!ns_from_flags) c.policy.nameservers.clear();  // flags replace the file's list
            ns_from_flags = true;
            c.policy.nameservers.push_back(dns::parse_nameserver(v));
        } else if (f == "--rua") c.policy.rua = v;
        else if (f == "--ruf") c.policy.ruf = v;
        else if (f == "--identity") c.policy.identity = v;
        else if (f == "--metrics") c.metrics = v;
        else if (f == "--idle-timeout") c.tcp_idle_timeout_ms = dns::flag_number(f, v, 1, 3600) * 1000;
        else if (f == "--max-connections") c.tcp_max_connections = dns::flag_number(f, v, 1, 1000000);
        else if (f == "--psl-file") c.policy.psl_file = v;
    }
    if (!c.udp && !c.tcp) throw ConfigError("udp/tcp: both are off; nothing to serve");
    sockaddr_storage ss;
    socklen_t len;
    if (!net::make_sockaddr(c.host, c.port, ss, len))
        throw ConfigError("host: '" + c.host + "' is not an IPv4 or IPv6 address");
    if (!c.metrics.empty()) {
        std::string h, err;
        uint16_t p;
        if (!net::parse_host_port(c.metrics, h, p, err)) throw ConfigError("metrics: " + err);
    }
    out = std::move(c);
    return CliAction::Run;
}

}  // namespace dp::worker
