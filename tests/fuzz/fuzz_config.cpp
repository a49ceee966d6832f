// Fuzz target: the configuration readers of both programs. The first octet picks the reader:
// a JSON file for the worker or the balancer (config::parse_json_text, then the program's
// schema), or a command line for either (NUL-separated arguments through load_config, with
// no --config so nothing outside the input is read). Whatever the input, the readers end in a
// record or in one ConfigError: one line, short, naming what is wrong; no other exception, no
// crash, no unbounded recursion (files nest at most 16 levels).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "balancer/balancer_config.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "worker/worker_config.hpp"

using fuzz::check;

namespace {

void check_message(const dp::config::ConfigError& e) {
    const std::string m = e.what();
    if (m.empty() || m.size() >= 600 || m.find('\n') != std::string::npos)
        std::fprintf(stderr, "bad error message (%zu octets): %s\n", m.size(), m.c_str());
    check(!m.empty() && m.size() < 600, "error message empty or too long");
    check(m.find('\n') == std::string::npos, "error message over one line");
}

template <class T>
void exercise(const dp::config::Schema<T>& schema, const T& record) {
    // Everything the record holds can be shown (tables, reload diffs) and taken back.
    T other;
    for (const auto& s : schema.settings()) (void)s.show(record);
    (void)schema.keep_restart_only(other, record);
}

template <class T>
void from_json(const dp::config::Schema<T>& schema, const std::string& text) {
    try {
        const nlohmann::json j = dp::config::parse_json_text(text, "fuzz");
        T t;
        schema.apply_json(t, j);
        exercise(schema, t);
    } catch (const dp::config::ConfigError& e) {
        check_message(e);
    }
}

template <class T, class Load>
void from_argv(const dp::config::Schema<T>& schema, const uint8_t* p, size_t n, Load load) {
    std::vector<std::string> args{"fuzz"};
    std::string cur;
    for (size_t i = 0; i < n && args.size() < 64; ++i) {
        if (p[i] == 0) {
            args.push_back(cur);
            cur.clear();
        } else {
            cur.push_back(static_cast<char>(p[i]));
        }
    }
    if (!cur.empty()) args.push_back(cur);
    for (auto& a : args)
        if (a == "-c" || a.rfind("--config", 0) == 0) a = "--check-config";  // read nothing outside the input
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    T t;
    dp::config::Cli cli;
    try {
        if (load(static_cast<int>(argv.size()), argv.data(), t, cli) == dp::config::CliAction::Run) exercise(schema, t);
    } catch (const dp::config::ConfigError& e) {
        check_message(e);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 4) {
        case 0: from_json(dp::worker::worker_schema(), text); break;
        case 1: from_json(dp::balancer::balancer_schema(), text); break;
        case 2:
            from_argv(dp::worker::worker_schema(), data + 1, size - 1,
                      [](int c, char** v, dp::worker::WorkerConfig& t, dp::config::Cli& cli) {
                          return dp::worker::load_config(c, v, t, cli);
                      });
            break;
        case 3:
            from_argv(dp::balancer::balancer_schema(), data + 1, size - 1,
                      [](int c, char** v, dp::balancer::BalancerConfig& t, dp::config::Cli& cli) {
                          return dp::balancer::load_config(c, v, t, cli);
                      });
            break;
    }
    return 0;
}
