#include "net/serving_settings.hpp"

#include "net/sockets.hpp"

namespace dp::net {

using config::ConfigError;
using config::Reload;
using config::Unit;
using S = ServingSettings;

void check_host_port(const std::string& value, const std::string& key) {
    std::string host, err;
    uint16_t port = 0;
    if (!parse_host_port(value, host, port, err)) throw ConfigError(key + ": " + err);
}

namespace {
// The metrics endpoint is civetweb's (through prometheus-cpp), which Debian builds without IPv6.
void check_metrics_address(const std::string& value, const std::string& key) {
    check_host_port(value, key);
    if (value.find('[') != std::string::npos)
        throw ConfigError(key + ": " + config::quote(value) +
                          ": the metrics endpoint takes an IPv4 address (its HTTP server has no IPv6)");
}
}  // namespace

namespace {

// --udp / --tcp: serve only that transport; both flags: both.
config::Setting<S> only(const char* key, bool S::*field, uint8_t bit, const char* flag, const char* doc) {
    auto s = config::boolean<S>(key, field, Reload::Restart, doc);
    s.flag = flag;
    s.from_flag = [bit](S& t, const std::string&, const std::string&, bool) {
        t.only |= bit;
        t.udp = t.only & 1;
        t.tcp = t.only & 2;
    };
    return s;
}

std::vector<config::Setting<S>> declare() {
    using config::number;
    using config::with_flag;
    std::vector<config::Setting<S>> v;
    v.push_back(only("udp", &S::udp, 1, "--udp", "serve UDP (flag: UDP only)"));
    v.push_back(only("tcp", &S::tcp, 2, "--tcp", "serve TCP (flag: TCP only)"));
    v.push_back(with_flag(config::string<S>("metrics", &S::metrics, Reload::Restart,
                                            "Prometheus endpoint http://ADDR:PORT/metrics (IPv4; port 0: any free one)",
                                            check_metrics_address),
                          "--metrics", "ADDR:PORT"));
    v.push_back(number<S>("metrics_threads", &S::metrics_threads, 1, 64, Unit::Count, Reload::Restart,
                          "HTTP threads of the metrics endpoint (each slow client holds one until metrics_timeout)"));
    v.push_back(number<S>("metrics_timeout", &S::metrics_timeout_ms, 1, 60, Unit::SecondsAsMs, Reload::Restart,
                          "time a metrics client has to send its request and read the answer"));
    v.push_back(with_flag(number<S>("tcp_idle_timeout", &S::tcp_idle_timeout_ms, 1, 3600, Unit::SecondsAsMs, Reload::Live,
                                    "close a TCP connection idle this long (FIN); announced in edns-tcp-keepalive"),
                          "--idle-timeout", "SECONDS"));
    v.push_back(with_flag(number<S>("tcp_max_connections", &S::tcp_max_connections, 1, 1000000, Unit::Count,
                                    Reload::Live,
                                    "open TCP connections; at the cap the least recently active one is closed "
                                    "(also capped by the descriptors the process can give clients)"),
                          "--max-connections", "N"));
    v.push_back(number<S>("tcp_max_pending_bytes", &S::tcp_max_pending_bytes, 4096, 64u << 20, Unit::Bytes,
                          Reload::Live,
                          "unsent answer octets per connection before its queries are no longer read"));
    v.push_back(number<S>("tcp_message_timeout", &S::tcp_message_timeout_ms, 1, 300, Unit::SecondsAsMs, Reload::Live,
                          "time a client has to send a whole message once its first octet arrived"));
    v.push_back(number<S>("tcp_max_input_bytes", &S::tcp_max_input_bytes, 65536, uint64_t(1) << 34, Unit::Bytes,
                          Reload::Live,
                          "input held for incomplete messages, all connections together; over it the "
                          "connection holding the oldest incomplete message is closed"));
    v.push_back(number<S>("tcp_max_output_bytes", &S::tcp_max_output_bytes, 65536, uint64_t(1) << 34, Unit::Bytes,
                          Reload::Live,
                          "unsent answers, all connections together; over it connections with unsent "
                          "answers are not read until it halves"));
    v.push_back(number<S>("tcp_backlog", &S::tcp_backlog, 1, 65535, Unit::Count, Reload::Restart,
                          "listen backlog (the kernel caps it at net.core.somaxconn)"));
    v.push_back(number<S>("tcp_close_grace", &S::tcp_close_grace_ms, 0, 600, Unit::SecondsAsMs, Reload::Live,
                          "time to wait for the peer's FIN after ours (and for answers still due) before closing"));
    v.push_back(number<S>("shutdown_grace", &S::shutdown_grace_ms, 0, 600, Unit::SecondsAsMs, Reload::Live,
                          "SIGTERM: time given to pending answers before exiting"));
    v.push_back(number<S>("udp_rcvbuf", &S::udp_rcvbuf, 65536, 1u << 30, Unit::Bytes, Reload::Restart,
                          "UDP receive buffer (SO_RCVBUFFORCE when root)"));
    return v;
}

}  // namespace

const std::vector<config::Setting<S>>& serving_settings() {
    static const std::vector<config::Setting<S>> v = declare();
    return v;
}

}  // namespace dp::net
