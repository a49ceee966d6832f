#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "dns/policy.hpp"
#include "worker/worker_config.hpp"

using namespace dp;

namespace {
config::CliAction run(std::vector<std::string> args, worker::WorkerConfig& c) {
    args.insert(args.begin(), "domain-park-worker");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    config::Cli cli;
    return worker::load_config(static_cast<int>(argv.size()), argv.data(), c, cli);
}

void write_file(const char* path, const std::string& text) {
    std::ofstream f(path);
    f << text;
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
                c) == config::CliAction::Run);
    CHECK(c.policy.nameservers.size() == 2);
    CHECK(c.policy.rua == "a@example.net");
    CHECK(c.policy.ruf == "f@example.net");
    CHECK(c.host == "::1");
    CHECK(c.port == 5300);
    CHECK(c.serving.tcp);
    CHECK_FALSE(c.serving.udp);
}

TEST_CASE("flags override the JSON file") {
    const char* path = "/tmp/dp-unit-config.json";
    {
        std::ofstream f(path);
        f << R"({"nameservers": ["ns1.file.example:192.0.2.9"], "rua": "file@example.net", "port": 5301,
                 "soa": {"serial": 2026112701, "minimum": 300}, "tcp_idle_timeout": 45, "deny": ["bad.example"]})";
    }
    worker::WorkerConfig c;
    REQUIRE(run({"--config", path, "--rua", "flag@example.net"}, c) == config::CliAction::Run);
    CHECK(c.policy.nameservers.at(0).name == "ns1.file.example");
    CHECK(c.policy.rua == "flag@example.net");
    CHECK(c.port == 5301);
    CHECK(c.policy.soa_serial == 2026112701u);
    CHECK(c.policy.soa_minimum == 300);
    CHECK(c.serving.tcp_idle_timeout_ms == 45000);
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

TEST_CASE("dmarc_tags: read from the file and --dmarc-tags, refused at read time with one short line") {
    worker::WorkerConfig c;
    REQUIRE(run({"-n", "ns1.example.net", "--dmarc-tags", "p=reject;"}, c) == config::CliAction::Run);
    CHECK(c.policy.dmarc_tags == "p=reject;");
    CHECK(worker::WorkerConfig{}.policy.dmarc_tags == "p=reject; sp=reject; np=reject; adkim=s; aspf=s;");
    CHECK(message_of({"-n", "ns1.example.net", "--dmarc-tags", "sp=reject; p=reject"}).find("dmarc_tags: p must come first") !=
          std::string::npos);
    const std::string m = message_of({"-n", "ns1.example.net", "--dmarc-tags", "p=" + std::string(3000, 'x')});
    CHECK(m.find("dmarc_tags") != std::string::npos);
    CHECK(m.size() < 200);
    const char* path = "/tmp/dp-unit-dmarc.json";
    write_file(path, R"({"nameservers": ["ns1.example.net"], "dmarc_tags": "p=reject; rua=mailto:a@b.example"})");
    CHECK(message_of({"--config", path}).find("dmarc_tags: 'rua' is not set here") != std::string::npos);
    std::remove(path);
}

TEST_CASE("cookie settings: file only, secrets checked when read") {
    const char* path = "/tmp/dp-unit-cookies.json";
    write_file(path, R"({"nameservers": ["ns1.example.net"], "cookies": false,
                         "cookie_secret": "e5e973e5a6b2a43f48e7dc849e37bfcf",
                         "cookie_secret_previous": "445536bcd2513298075a5d379663c962"})");
    worker::WorkerConfig c;
    REQUIRE(run({"--config", path}, c) == config::CliAction::Run);
    CHECK_FALSE(c.policy.cookies.enabled);
    CHECK(c.policy.cookies.secret == "e5e973e5a6b2a43f48e7dc849e37bfcf");
    CHECK(c.policy.cookies.previous == "445536bcd2513298075a5d379663c962");
    CHECK(worker::WorkerConfig{}.policy.cookies.enabled);
    write_file(path, R"({"nameservers": ["ns1.example.net"], "cookie_secret": "e5e973"})");
    CHECK(message_of({"--config", path}).find("cookie_secret: expected 32 hexadecimal digits") != std::string::npos);
    write_file(path, R"({"nameservers": ["ns1.example.net"], "cookie_secret_previous": "e5e973e5a6b2a43f48e7dc849e37bfcf"})");
    CHECK(message_of({"--config", path}).find("cookie_secret_previous: set without cookie_secret") != std::string::npos);
    std::remove(path);
    // A secret on the command line would be visible to every user of the machine: no flag.
    CHECK(message_of({"-n", "ns1.example.net", "--cookie-secret", "e5e973e5a6b2a43f48e7dc849e37bfcf"})
              .find("unknown option") != std::string::npos);
    for (const auto& s : worker::worker_schema().settings())
        if (s.key.rfind("cookie", 0) == 0) CHECK(s.flag.empty());
}

TEST_CASE("the configuration file: duplicate keys, deep nesting and size are refused with one short line") {
    const char* path = "/tmp/dp-unit-shape.json";
    write_file(path, R"({"nameservers": ["ns1.example.net"], "port": 5300, "port": 5301})");
    std::string m = message_of({"--config", path});
    CHECK(m.find("'port' appears twice") != std::string::npos);
    write_file(path, R"({"nameservers": ["ns1.example.net"], "soa": {"ttl": 1, "ttl": 2}})");
    CHECK(message_of({"--config", path}).find("'ttl' appears twice") != std::string::npos);
    // Keys repeated in different objects are fine.
    write_file(path, R"({"nameservers": ["ns1.example.net"], "ttl": 60, "soa": {"ttl": 30}})");
    CHECK(message_of({"--config", path}).empty());
    // 200,000 levels: no stack overflow, one line.
    write_file(path, std::string(200000, '[') + std::string(200000, ']'));
    m = message_of({"--config", path});
    CHECK(m.find("nests deeper than 16 levels") != std::string::npos);
    CHECK(m.size() < 300);
    write_file(path, "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}");
    CHECK(message_of({"--config", path}).find("nests deeper") != std::string::npos);
    // A long bad value is cut in the message.
    write_file(path, R"({"nameservers": ["ns1.example.net"], "port": ")" + std::string(5000, 'x') + R"("})");
    m = message_of({"--config", path});
    CHECK(m.find("port: expected a non-negative integer") != std::string::npos);
    CHECK(m.size() < 200);
    write_file(path, "{\"nameservers\": [\"ns1.example.net\"], \"rua\": \"" + std::string(2u << 20, 'a') + "\"}");
    CHECK(message_of({"--config", path}).find("larger than 1 MiB") != std::string::npos);
    std::remove(path);
}

TEST_CASE("flag values are cut in messages too") {
    const std::string m = message_of({"-n", "ns1.example.net", "--port", std::string(3000, '9')});
    CHECK(m.find("--port") != std::string::npos);
    CHECK(m.size() < 200);
    const std::string h = message_of({"-n", "ns1.example.net", "--host", std::string(3000, 'h')});
    CHECK(h.find("host") != std::string::npos);
    CHECK(h.size() < 200);
}

TEST_CASE("reload: restart-only settings keep their running values and are named") {
    worker::WorkerConfig running, next;
    REQUIRE(run({"-n", "ns1.example.net", "--port", "5300", "--idle-timeout", "30"}, running) ==
            config::CliAction::Run);
    REQUIRE(run({"-n", "ns2.example.net", "--port", "5301", "--idle-timeout", "7", "--metrics", "127.0.0.1:9999"},
                next) == config::CliAction::Run);
    const auto kept = worker::worker_schema().keep_restart_only(next, running);
    CHECK(kept == std::vector<std::string>{"port", "metrics"});
    CHECK(next.port == 5300);
    CHECK(next.serving.metrics.empty());
    CHECK(next.serving.tcp_idle_timeout_ms == 7000);  // live: applied
    CHECK(next.policy.nameservers.at(0).name == "ns2.example.net");
}

TEST_CASE("help and the settings table come from the declarations") {
    const std::string help = worker::usage();
    const std::string table = worker::worker_schema().markdown();
    for (const auto& s : worker::worker_schema().settings()) {
        CAPTURE(s.key);
        CHECK(table.find("| `" + s.key + "` |") != std::string::npos);
        if (!s.flag.empty()) CHECK(help.find(s.flag) != std::string::npos);
    }
    CHECK(table.find("| `tcp_idle_timeout` | `--idle-timeout SECONDS` | seconds, 1-3600 | 30 | applied |") !=
          std::string::npos);
    CHECK(table.find("| `port` | `--port N` | integer, 1-65535 | 53 | restart |") != std::string::npos);
}
