// Reading PolicySettings from JSON configuration (kept apart from the answer logic).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <cstdint>
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
// A decimal command-line value within [min, max]; ConfigError names the flag.
uint32_t flag_number(const std::string& flag, const std::string& v, uint64_t min, uint64_t max);

}  // namespace dp::dns
