#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "dns/policy.hpp"
#include "worker/worker_config.hpp"

using namespace dp;

namespace {
worker::CliAction run(std::vector<std::string> args, worker::WorkerConfig& c) {
    args.insert(args.begin(), "domain-park-worker");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return worker::load_config(static_cast<int>(argv.size()), argv.data(), c);
}

std::string message_of(std::vector<std::string> args) {
    worker::WorkerConfig c;
    try {
        run(std::move(args), c);
        dns::Policy p(c.policy);
    } catch (const dns::ConfigError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("name server specs") {
    auto ns = dns::parse_nameserver("NS1.Example.net:192.0.2.1,2001:db8::1");
    CHECK(ns.name == "ns1.example.net");
    CHECK(ns.v4.size() == 1);
    CHECK(ns.v6.size() == 1);
    CHECK(dns::parse_nameserver("ns2.example.net").v4.empty());
    CHECK_THROWS_WITH_AS(dns::parse_nameserver("192.0.2.1"), doctest::Contains("bare address"), dns::ConfigError);
    CHECK_THROWS_AS(dns::parse_nameserver("2001:db8::1"), dns::ConfigError);
    CHECK_THROWS_AS(dns::parse_nameserver("ns1.example.net:300.1.1.1"), dns::ConfigError);
    CHECK_THROWS_AS(dns::parse_nameserver("ns1.example.net:"), dns::ConfigError);
    CHECK_THROWS_AS(dns::parse_nameserver("ns1..example.net"), dns::ConfigError);
}

TEST_CASE("flags compatible with the original domain-park") {
    worker::WorkerConfig c;
    REQUIRE(run({"-n", "ns1.example.net:192.0.2.1", "--nameserver", "ns2.example.net", "--rua", "a@example.net",
                 "--ruf=f@example.net", "--host", "::1", "--port", "5300", "--tcp"},
                c) == worker::CliAction::Run);
    CHECK(c.policy.nameservers.size() == 2);
    CHECK(c.policy.rua == "a@example.net");
    CHECK(c.policy.ruf == "f@example.net");
    CHECK(c.host == "::1");
    CHECK(c.port == 5300);
    CHECK(c.tcp);
    CHECK_FALSE(c.udp);
}

TEST_CASE("flags override the JSON file") {
    const char* path = "/tmp/dp-unit-config.json";
    {
        std::ofstream f(path);
        f << R"({"nameservers": ["ns1.file.example:192.0.2.9"], "rua": "file@example.net", "port": 5301,
                 "soa": {"serial": 2026112701, "minimum": 300}, "tcp_idle_timeout": 45, "deny": ["bad.example"]})";
    }
    worker::WorkerConfig c;
    REQUIRE(run({"--config", path, "--rua", "flag@example.net"}, c) == worker::CliAction::Run);
    CHECK(c.policy.nameservers.at(0).name == "ns1.file.example");
    CHECK(c.policy.rua == "flag@example.net");
    CHECK(c.port == 5301);
    CHECK(c.policy.soa_serial == 2026112701u);
    CHECK(c.policy.soa_minimum == 300);
    CHECK(c.tcp_idle_timeout_ms == 45000);
    CHECK(c.policy.deny.size() == 1);
    std::remove(path);
}

TEST_CASE("bad configuration names the setting") {
    CHECK(message_of({}).find("nameservers") != std::string::npos);
    CHECK(message_of({"-n", "192.0.2.1"}).find("bare address") != std::string::npos);
    CHECK(message_of({"-n", "ns1.example.net", "--port", "70000"}).find("--port") != std::string::npos);
    CHECK(message_of({"-n", "ns1.example.net", "--bogus"}).find("--bogus") != std::string::npos);
    CHECK(message_of({"-n", "ns1.example.net", "--host", "localhost"}).find("host") != std::string::npos);
    CHECK(message_of({"-n", "ns1.example.net", "--metrics", "9153"}).find("metrics") != std::string::npos);
    CHECK(message_of({"--config", "/nonexistent/x.json"}).find("cannot read") != std::string::npos);
    const char* path = "/tmp/dp-unit-bad.json";
    {
        std::ofstream f(path);
        f << R"({"nameservers": ["ns1.example.net"], "soa": {"serail": 1}})";
    }
    CHECK(message_of({"--config", path}).find("soa.serail") != std::string::npos);
    {
        std::ofstream f(path);
        f << R"({"nameservers": ["ns1.example.net"], "ttl": -5})";
    }
    CHECK(message_of({"--config", path}).find("ttl") != std::string::npos);
    {
        std::ofstream f(path);
        f << R"({"nameservers": ["ns1.example.net"],})";
    }
    CHECK(message_of({"--config", path}).find("not valid JSON") != std::string::npos);
    std::remove(path);
}
