// The balancer's configuration reader: defaults, JSON keys (including the nested "cache" and
// "rate_limit" objects), flags over the file, one-line errors naming the setting, and the
// share of the process-wide limits each thread gets.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "balancer/balancer_config.hpp"
#include "balancer/engine.hpp"
#include "dns/policy.hpp"
#include "dns/policy_settings.hpp"

using namespace dp;
using namespace dp::balancer;

namespace {
using config::CliAction;

CliAction run(std::vector<std::string> args, BalancerConfig& c) {
    args.insert(args.begin(), "domain-park-balancer");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    config::Cli cli;
    return load_config(static_cast<int>(argv.size()), argv.data(), c, cli);
}

std::string message_of(std::vector<std::string> args) {
    BalancerConfig c;
    try {
        run(std::move(args), c);
    } catch (const dns::ConfigError& e) {
        return e.what();
    }
    return "";
}

struct TempFile {
    std::string path;
    explicit TempFile(const std::string& text) : path("/tmp/dp-unit-balancer-" + std::to_string(::getpid()) + ".json") {
        std::ofstream(path) << text;
    }
    ~TempFile() { std::remove(path.c_str()); }
};
}  // namespace

TEST_CASE("defaults") {
    BalancerConfig c;
    REQUIRE(run({"--worker", "127.0.0.1:5300"}, c) == CliAction::Run);
    CHECK(c.listen == std::vector<std::string>{"127.0.0.1:53"});
    CHECK(c.workers == std::vector<std::string>{"127.0.0.1:5300"});
    CHECK(c.serving.udp);
    CHECK(c.serving.tcp);
    CHECK(c.threads == 1);
    CHECK(c.deadline_ms == 1500);
    CHECK(c.cache.max_entries == 100000);
    CHECK(c.cache.max_ttl == 300);
    CHECK(c.cache.max_stale == 0);
    CHECK(c.rate_limit.requests_per_second == 0);
    CHECK(c.rate_limit.responses_per_second == 0);
    CHECK(c.rate_limit.slip == 2);
    CHECK(run({"--help"}, c) == CliAction::Help);
    CHECK(run({"--version"}, c) == CliAction::Version);
}

TEST_CASE("JSON file with nested cache and rate_limit objects; flags win") {
    TempFile f(R"({"listen": ["127.0.0.1:5353", "[::1]:5353"], "workers": ["127.0.0.1:5300", "127.0.0.1:5301"],
        "threads": 2, "deadline_ms": 900, "deadline_action": "drop",
        "cache": {"max_entries": 5000, "max_bytes": 1048576, "max_ttl": 60, "max_negative_ttl": 30,
                  "serve_stale": 86400, "stale_ttl": 10},
        "rate_limit": {"requests_per_second": 100, "requests_burst": 200, "ipv4_prefix": 32, "ipv6_prefix": 64,
                       "responses_per_second": 10, "nxdomains_per_second": 5, "window": 5, "slip": 3,
                       "log_only": true, "exempt": ["10.0.0.0/8", "2001:db8::/32"], "max_entries": 1024}})");
    BalancerConfig c;
    REQUIRE(run({"--config", f.path}, c) == CliAction::Run);
    CHECK(c.listen.size() == 2);
    CHECK(c.workers.size() == 2);
    CHECK(c.threads == 2);
    CHECK(c.deadline_ms == 900);
    CHECK(c.deadline_action == DeadlineAction::Drop);
    CHECK(c.cache.max_entries == 5000);
    CHECK(c.cache.max_bytes == 1048576);
    CHECK(c.cache.max_ttl == 60);
    CHECK(c.cache.max_negative_ttl == 30);
    CHECK(c.cache.max_stale == 86400);
    CHECK(c.cache.stale_ttl == 10);
    CHECK(c.rate_limit.requests_per_second == 100);
    CHECK(c.rate_limit.requests_burst == 200);
    CHECK(c.rate_limit.ipv4_prefix == 32);
    CHECK(c.rate_limit.ipv6_prefix == 64);
    CHECK(c.rate_limit.responses_per_second == 10);
    CHECK(c.rate_limit.nxdomains_per_second == 5);
    CHECK(c.rate_limit.window == 5);
    CHECK(c.rate_limit.slip == 3);
    CHECK(c.rate_limit.log_only);
    CHECK(c.rate_limit.exempt.size() == 2);
    CHECK(c.rate_limit.max_entries == 1024);

    REQUIRE(run({"--config", f.path, "--worker", "127.0.0.1:6000", "--threads", "1", "--cache-entries", "0",
                 "--serve-stale", "0", "--responses-per-second", "0", "--requests-per-second", "7"},
                c) == CliAction::Run);
    CHECK(c.workers == std::vector<std::string>{"127.0.0.1:6000"});  // a flag list replaces the file's
    CHECK(c.threads == 1);
    CHECK(c.cache.max_entries == 0);
    CHECK(c.cache.max_stale == 0);
    CHECK(c.rate_limit.responses_per_second == 0);
    CHECK(c.rate_limit.requests_per_second == 7);
    CHECK(c.cache.max_ttl == 60);  // the file's other cache settings stay
}

TEST_CASE("bad configuration names the setting") {
    CHECK(message_of({}).find("workers") != std::string::npos);
    CHECK(message_of({"--worker", "127.0.0.1:5300", "--threads", "0"}).find("--threads") != std::string::npos);
    CHECK(message_of({"--worker", "127.0.0.1:5300", "--threads", "65"}).find("--threads") != std::string::npos);
    CHECK(message_of({"--worker", "localhost:5300"}).find("--worker") != std::string::npos);
    CHECK(message_of({"--worker", "127.0.0.1:5300", "--cache-entries", "lots"}).find("--cache-entries") !=
          std::string::npos);
    CHECK(message_of({"--worker", "127.0.0.1:5300", "--bogus"}).find("--bogus") != std::string::npos);
    const std::pair<const char*, const char*> bad_files[] = {
        {R"({"workers": ["127.0.0.1:5300"], "cache": {"max_entry": 5}})", "cache.max_entry"},
        {R"({"workers": ["127.0.0.1:5300"], "cache": {"max_ttl": 0}})", "cache.max_ttl"},
        {R"({"workers": ["127.0.0.1:5300"], "cache": 5})", "cache"},
        {R"({"workers": ["127.0.0.1:5300"], "rate_limit": {"slip": 11}})", "rate_limit.slip"},
        {R"({"workers": ["127.0.0.1:5300"], "rate_limit": {"ipv4_prefix": 33}})", "rate_limit.ipv4_prefix"},
        {R"({"workers": ["127.0.0.1:5300"], "rate_limit": {"exempt": ["10.0.0.1/8"]}})", "rate_limit.exempt"},
        {R"({"workers": ["127.0.0.1:5300"], "rate_limit": {"exempt": "10.0.0.0/8"}})", "rate_limit.exempt"},
        {R"({"workers": ["127.0.0.1:5300"], "rate_limit": {"log_only": "yes"}})", "rate_limit.log_only"},
        {R"({"workers": ["127.0.0.1:5300"], "threads": 100})", "threads"},
        {R"({"workers": ["127.0.0.1:5300"], "deadline_action": "panic"})", "deadline_action"},
        {R"({"workers": ["127.0.0.1:5300", "127.0.0.1:5300"]})", "listed twice"},
        {R"({"workers": ["127.0.0.1:5300"], "health_backoff_min_ms": 500, "health_backoff_max_ms": 100})",
         "health_backoff_max_ms"},
        {R"({"workers": ["127.0.0.1:5300"],})", "not valid JSON"},
        {R"({"workers": ["127.0.0.1:5300"], "cache": {"max_ttl": 60, "max_ttl": 61}})", "appears twice"},
        {R"({"workers": ["127.0.0.1:5300"], "upstream_connections": 4, "upstream_max_connections": 2})",
         "upstream_max_connections"},
        {R"({"workers": ["127.0.0.1:5300"], "cookie_secret": "abc"})", "cookie_secret"},
        {R"({"workers": ["127.0.0.1:5300"], "cookie_secret_previous": "e5e973e5a6b2a43f48e7dc849e37bfcf"})",
         "cookie_secret_previous: set without cookie_secret"},
        {R"({"workers": ["127.0.0.1:5300"], "cookies": "yes"})", "cookies"},
    };
    for (const auto& row : bad_files) {  // not a structured binding: clang 14 cannot capture one in INFO
        const char* text = row.first;
        const char* word = row.second;
        TempFile f(text);
        const std::string msg = message_of({"--config", f.path});
        INFO(text);
        CHECK(msg.find(word) != std::string::npos);
        CHECK(msg.find('\n') == std::string::npos);
    }
}

TEST_CASE("each thread gets its share of the process-wide limits") {
    BalancerConfig c;
    REQUIRE(run({"--worker", "127.0.0.1:5300"}, c) == CliAction::Run);
    c.threads = 4;
    c.max_inflight = 16384;
    c.serving.tcp_max_connections = 10001;
    c.cache.max_entries = 100000;
    c.cache.max_bytes = 64u << 20;
    c.rate_limit.requests_per_second = 10;
    c.rate_limit.responses_per_second = 0;
    c.rate_limit.max_entries = 65536;
    const BalancerConfig t = thread_share(c, 4);
    CHECK(t.max_inflight == 4096);
    CHECK(t.serving.tcp_max_connections == 2501);  // rounded up: the total is never below the setting
    CHECK(t.cache.max_entries == 25000);
    CHECK(t.cache.max_bytes == (16u << 20));
    CHECK(t.rate_limit.requests_per_second == 3);
    CHECK(t.rate_limit.responses_per_second == 0);  // off stays off
    CHECK(t.rate_limit.max_entries == 16384);
    const BalancerConfig one = thread_share(c, 1);
    CHECK(one.max_inflight == 16384);
    CHECK(one.cache.max_entries == 100000);
}

TEST_CASE("the serving settings are the worker's: one declaration, same keys, flags and ranges") {
    const auto& serving = net::serving_settings();
    const std::string table = balancer_schema().markdown();
    for (const auto& s : serving) {
        CAPTURE(s.key);
        CHECK(table.find("| `" + s.key + "` |") != std::string::npos);
    }
    BalancerConfig c;
    REQUIRE(run({"--worker", "127.0.0.1:5300", "--idle-timeout", "12", "--max-connections", "77", "--tcp"}, c) ==
            CliAction::Run);
    CHECK(c.serving.tcp_idle_timeout_ms == 12000);
    CHECK(c.serving.tcp_max_connections == 77);
    CHECK_FALSE(c.serving.udp);
    CHECK(message_of({"--worker", "127.0.0.1:5300", "--idle-timeout", "0"}).find("--idle-timeout") !=
          std::string::npos);
}

TEST_CASE("the cookie settings are the worker's: one declaration, applied on reload") {
    const std::string table = balancer_schema().markdown();
    for (const auto& s : dns::cookie_settings()) {
        CAPTURE(s.key);
        CHECK(table.find("| `" + s.key + "` |  |") != std::string::npos);  // no flag: secrets stay off the command line
        CHECK(s.reload == config::Reload::Live);
    }
    TempFile f(R"({"workers": ["127.0.0.1:5300"], "cookie_secret": "e5e973e5a6b2a43f48e7dc849e37bfcf"})");
    BalancerConfig c;
    REQUIRE(run({"--config", f.path}, c) == CliAction::Run);
    CHECK(c.cookies.enabled);
    CHECK(c.cookies.secret == "e5e973e5a6b2a43f48e7dc849e37bfcf");
    CHECK(dns::make_cookies(c.cookies).enabled());
}

TEST_CASE("reload keeps restart-only settings and names them") {
    BalancerConfig running, next;
    REQUIRE(run({"--worker", "127.0.0.1:5300", "--threads", "2"}, running) == CliAction::Run);
    REQUIRE(run({"--worker", "127.0.0.1:5301", "--threads", "3", "--listen", "127.0.0.1:5999", "--max-connections",
                 "5"},
                next) == CliAction::Run);
    const auto kept = balancer_schema().keep_restart_only(next, running);
    CHECK(kept == std::vector<std::string>{"listen", "threads"});
    CHECK(next.threads == 2);
    CHECK(next.listen == running.listen);
    CHECK(next.workers == std::vector<std::string>{"127.0.0.1:5301"});
    CHECK(next.serving.tcp_max_connections == 5);  // applied on reload now
}
