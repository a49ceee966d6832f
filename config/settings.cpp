#include "config/settings.hpp"

#include <fstream>
#include <sstream>
#include <vector>

namespace dp::config {

std::string printable(std::string_view text, size_t max) {
    std::string r;
    for (size_t i = 0; i < text.size(); ++i) {
        if (i == max) {
            r += "...";
            break;
        }
        const unsigned char c = static_cast<unsigned char>(text[i]);
        r += (c < 0x20 || c == 0x7F) ? '?' : static_cast<char>(c);
    }
    return r;
}

std::string quote(std::string_view text, size_t max) {
    std::string r(1, '\'');
    r += printable(text, max);
    r += '\'';
    return r;
}

std::string quote_json(const nlohmann::json& v, size_t max) {
    // Values reach here only after read_json_file's depth limit, so dump() stays shallow.
    std::string text = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (text.size() > max) text = text.substr(0, max) + "...";
    return text;
}

namespace {
constexpr size_t kMaxFileSize = 1 << 20;
constexpr int kMaxDepth = 16;
}  // namespace

nlohmann::json parse_json_text(const std::string& text, const std::string& origin) {
    // Per open container: the keys met so far (arrays hold none).
    std::vector<std::set<std::string>> keys;
    const auto check = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using E = nlohmann::json::parse_event_t;
        switch (event) {
            case E::object_start:
            case E::array_start:
                if (depth >= kMaxDepth)
                    throw ConfigError("config: " + origin + " nests deeper than " + std::to_string(kMaxDepth) + " levels");
                keys.emplace_back();
                break;
            case E::object_end:
            case E::array_end:
                if (!keys.empty()) keys.pop_back();
                break;
            case E::key: {
                const std::string k = parsed.get<std::string>();
                if (!keys.empty() && !keys.back().insert(k).second)
                    throw ConfigError("config: " + origin + ": key " + quote(k) + " appears twice in one object");
                break;
            }
            case E::value: break;
        }
        return true;
    };
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text, check);
    } catch (const nlohmann::json::exception& e) {  // parse errors, and numbers too large for any type
        const std::string what = e.what();
        const size_t at = what.find(']');
        throw ConfigError("config: " + origin + " is not valid JSON: " +
                          quote(at == std::string::npos ? what : what.substr(at + 2), 120));
    }
    if (!j.is_object()) throw ConfigError("config: " + origin + " must hold a JSON object");
    return j;
}

nlohmann::json read_json_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError("config: cannot read " + quote(path, 200));
    std::string text(kMaxFileSize + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    const size_t n = static_cast<size_t>(in.gcount());
    if (n > kMaxFileSize) throw ConfigError("config: " + quote(path, 200) + " is larger than 1 MiB");
    text.resize(n);
    return parse_json_text(text, quote(path, 200));
}

std::vector<Flag> split_flags(int argc, char** argv, const std::vector<std::string>& takes_value) {
    auto needs_value = [&](const std::string& f) {
        for (const auto& t : takes_value)
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
            a.valued = true;
        } else if (needs_value(a.name)) {
            if (i + 1 >= argc) throw ConfigError(a.name + ": missing value");
            a.value = argv[++i];
            a.valued = true;
        }
        a.name = printable(a.name, 48);  // it may be echoed in an error line
        out.push_back(std::move(a));
    }
    return out;
}

uint64_t json_number(const nlohmann::json& v, const std::string& key, uint64_t min, uint64_t max) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
        throw ConfigError(key + ": expected a non-negative integer, got " + quote_json(v));
    const uint64_t n = v.get<uint64_t>();
    if (n < min || n > max)
        throw ConfigError(key + ": " + std::to_string(n) + " is out of range [" + std::to_string(min) + ", " +
                          std::to_string(max) + "]");
    return n;
}

std::string json_string(const nlohmann::json& v, const std::string& key) {
    if (!v.is_string()) throw ConfigError(key + ": expected a string, got " + quote_json(v));
    return v.get<std::string>();
}

bool json_bool(const nlohmann::json& v, const std::string& key) {
    if (!v.is_boolean()) throw ConfigError(key + ": expected true or false, got " + quote_json(v));
    return v.get<bool>();
}

std::vector<std::string> json_strings(const nlohmann::json& v, const std::string& key) {
    if (!v.is_array()) throw ConfigError(key + ": expected an array of strings, got " + quote_json(v));
    std::vector<std::string> r;
    for (const auto& e : v) r.push_back(json_string(e, key));
    return r;
}

uint64_t flag_number(const std::string& flag, const std::string& v, uint64_t min, uint64_t max) {
    if (v.empty() || v.size() > 10 || v.find_first_not_of("0123456789") != std::string::npos)
        throw ConfigError(flag + ": " + quote(v) + " is not a number");
    const uint64_t n = std::stoull(v);
    if (n < min || n > max)
        throw ConfigError(flag + ": " + v + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) +
                          "]");
    return n;
}

}  // namespace dp::config
