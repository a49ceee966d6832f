// Reading PolicySettings from JSON configuration (kept apart from the answer logic).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "dns/policy.hpp"

namespace dp::dns {

// Applies one top-level configuration key if it is a policy setting.
// Returns false when `key` is not a policy key; throws ConfigError naming the key on a bad value.
bool apply_policy_key(PolicySettings& s, const std::string& key, const nlohmann::json& value);

// Helpers shared by every JSON configuration reader of the project.
uint32_t json_u32(const nlohmann::json& v, const std::string& key, uint64_t min, uint64_t max);
std::string json_string(const nlohmann::json& v, const std::string& key);
bool json_bool(const nlohmann::json& v, const std::string& key);
std::vector<std::string> json_strings(const nlohmann::json& v, const std::string& key);
// Reads a configuration file that must hold one JSON object; ConfigError names the file.
nlohmann::json read_json_object(const std::string& path);
// One command-line argument: "--flag=value", or "--flag value" for a flag in the caller's
// value-taking list (`valued`); other flags have an empty value.
struct Flag {
    std::string name, value;
    bool valued = false;
};
// argv as Flags in order; ConfigError for a value-taking flag at the end of the line.
// Which flags exist is the caller's business.
std::vector<Flag> split_flags(int argc, char** argv, std::initializer_list<const char*> takes_value);
// A decimal command-line value within [min, max]; ConfigError names the flag.
uint32_t flag_number(const std::string& flag, const std::string& v, uint64_t min, uint64_t max);

}  // namespace dp::dns
