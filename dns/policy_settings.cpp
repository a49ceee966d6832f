#include "dns/policy_settings.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace dp::dns {

uint32_t json_u32(const nlohmann::json& v, const std::string& key, uint64_t min, uint64_t max) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
        throw ConfigError(key + ": expected a non-negative integer, got " + v.dump());
    const uint64_t n = v.get<uint64_t>();
    if (n < min || n > max)
        throw ConfigError(key + ": " + std::to_string(n) + " is out of range [" + std::to_string(min) + ", " +
                          std::to_string(max) + "]");
    return static_cast<uint32_t>(n);
}

std::string json_string(const nlohmann::json& v, const std::string& key) {
    if (!v.is_string()) throw ConfigError(key + ": expected a string, got " + v.dump());
    return v.get<std::string>();
}

bool json_bool(const nlohmann::json& v, const std::string& key) {
    if (!v.is_boolean()) throw ConfigError(key + ": expected true or false, got " + v.dump());
    return v.get<bool>();
}

std::vector<std::string> json_strings(const nlohmann::json& v, const std::string& key) {
    if (!v.is_array()) throw ConfigError(key + ": expected an array of strings, got " + v.dump());
    std::vector<std::string> r;
    for (const auto& e : v) r.push_back(json_string(e, key));
    return r;
}

nlohmann::json read_json_object(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw ConfigError("config: cannot read '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::parse_error& e) {
        const std::string what = e.what();
        throw ConfigError("config: '" + path + "' is not valid JSON: " + what.substr(what.find(']') + 2));
    }
    if (!j.is_object()) throw ConfigError("config: '" + path + "' must hold a JSON object");
    return j;
}

std::vector<Flag> split_flags(int argc, char** argv, std::initializer_list<const char*> takes_value) {
    auto needs_value = [&](const std::string& f) {
        for (const char* t : takes_value)
            if (f == t) return true;
        return false;
    };
    std::vector<Flag> out;
    for (int i = 1; i < argc; ++i) {
        Flag a{argv[i], "", false};
        const size_t eq = a.name.find('=');
        if (a.name.rfind("--", 0) == 0 && eq != std::string::npos) {
            a.value = a.name.substr(eq + 1);
            a.name.resize(eq);
            a.valued = needs_value(a.name);
        } else if (needs_value(a.name)) {
            if (i + 1 >= argc) throw ConfigError(a.name + ": missing value");
            a.value = argv[++i];
            a.valued = true;
        }
        out.push_back(std::move(a));
    }
    return out;
}

uint32_t flag_number(const std::string& flag, const std::string& v, uint64_t min, uint64_t max) {
    if (v.empty() || v.size() > 10 || v.find_first_not_of("0123456789") != std::string::npos)
        throw ConfigError(flag + ": '" + v + "' is not a number");
    const uint64_t n = std::stoull(v);
    if (n < min || n > max)
        throw ConfigError(flag + ": " + v + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) +
                          "]");
    return static_cast<uint32_t>(n);
}

bool apply_policy_key(PolicySettings& s, const std::string& key, const nlohmann::json& v) {
    constexpr uint64_t kTtlMax = 0x7FFFFFFF;  // RFC 2181 8
    if (key == "nameservers") {
        s.nameservers.clear();
        for (const auto& spec : json_strings(v, key)) s.nameservers.push_back(parse_nameserver(spec));
    } else if (key == "rua") {
        s.rua = json_string(v, key);
    } else if (key == "ruf") {
        s.ruf = json_string(v, key);
    } else if (key == "caa_iodef") {
        s.caa_iodef = json_string(v, key);
    } else if (key == "identity") {
        s.identity = json_string(v, key);
    } else if (key == "landing") {
        s.landing_a.clear();
        s.landing_aaaa.clear();
        for (const auto& a : json_strings(v, key))
            if (!parse_address(a, s.landing_a, s.landing_aaaa))
                throw ConfigError("landing: '" + a + "' is not an IPv4 or IPv6 address");
    } else if (key == "allow") {
        s.allow = json_strings(v, key);
    } else if (key == "deny") {
        s.deny = json_strings(v, key);
    } else if (key == "ttl") {
        s.ttl = json_u32(v, key, 0, kTtlMax);
    } else if (key == "ns_ttl") {
        s.ns_ttl = json_u32(v, key, 0, kTtlMax);
    } else if (key == "psl_file") {
        s.psl_file = json_string(v, key);
    } else if (key == "psl_memo_entries") {
        s.psl_memo_entries = json_u32(v, key, 0, 1u << 24);
    } else if (key == "psl_private") {
        s.psl_private = json_bool(v, key);
    } else if (key == "soa") {
        if (!v.is_object()) throw ConfigError("soa: expected an object, got " + v.dump());
        for (const auto& [k, x] : v.items()) {
            const std::string name = "soa." + k;
            if (k == "rname") s.soa_rname = json_string(x, name);
            else if (k == "ttl") s.soa_ttl = json_u32(x, name, 0, kTtlMax);
            else if (k == "serial") s.soa_serial = json_u32(x, name, 0, 0xFFFFFFFF);
            else if (k == "refresh") s.soa_refresh = json_u32(x, name, 0, kTtlMax);
            else if (k == "retry") s.soa_retry = json_u32(x, name, 0, kTtlMax);
            else if (k == "expire") s.soa_expire = json_u32(x, name, 0, kTtlMax);
            else if (k == "minimum") s.soa_minimum = json_u32(x, name, 0, kTtlMax);
            else throw ConfigError(name + ": unknown setting");
        }
    } else {
        return false;
    }
    return true;
}

}  // namespace dp::dns
