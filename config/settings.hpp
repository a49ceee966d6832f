// Settings declared once. Every setting of a program is one declaration — JSON key, flag,
// type and range, default (read off the configuration record's own initializer), whether a
// SIGHUP reload applies it, one line of documentation — and from those declarations come the
// JSON reader, the flag reader, --help, the Markdown tables in the READMEs (--settings-table)
// and the reload's list of settings it could not apply. Shared declarations (the TCP/UDP
// serving settings of worker and balancer, the Public Suffix List settings) are written once
// and lifted into each program's record with Schema::section, so the two programs cannot drift.
//
// Errors are one line naming the setting, with any value quoted from the input cut short.
#pragma once

#include <nlohmann/json.hpp>

#include "config/error.hpp"

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dp::config {

// Input quoted into an error message, cut to at most `max` octets ("..." marks the cut) with
// control octets shown as '?', so an error line stays one short line whatever the input.
std::string quote(std::string_view text, size_t max = 48);
// The same without the quotes (flag names).
std::string printable(std::string_view text, size_t max = 48);
// A JSON value as text for an error message, cut the same way.
std::string quote_json(const nlohmann::json& v, size_t max = 48);

// Reads a configuration file that must hold one JSON object. Refuses (ConfigError naming the
// file) a file over 1 MiB, nesting deeper than 16 levels, and a key given twice in one object
// (the last would silently win, like a typo falling back to a default).
nlohmann::json read_json_file(const std::string& path);
// The same for text already read (tests, fuzzing); `origin` names it in errors.
nlohmann::json parse_json_text(const std::string& text, const std::string& origin);

// One command-line argument: "--flag=value", or "--flag value" for a flag in the caller's
// value-taking list (`valued`); other flags have an empty value.
struct Flag {
    std::string name, value;
    bool valued = false;
};
// argv as Flags in order; ConfigError for a value-taking flag at the end of the line.
std::vector<Flag> split_flags(int argc, char** argv, const std::vector<std::string>& takes_value);

// Typed readers shared by every declaration (and by custom settings).
uint64_t json_number(const nlohmann::json& v, const std::string& key, uint64_t min, uint64_t max);
std::string json_string(const nlohmann::json& v, const std::string& key);
bool json_bool(const nlohmann::json& v, const std::string& key);
std::vector<std::string> json_strings(const nlohmann::json& v, const std::string& key);
uint64_t flag_number(const std::string& flag, const std::string& v, uint64_t min, uint64_t max);

enum class Reload : uint8_t { Live, Restart };
// What a number counts; SecondsAsMs is given in seconds and stored in milliseconds.
enum class Unit : uint8_t { Count, Seconds, SecondsAsMs, Milliseconds, Bytes };

template <class T>
struct Setting {
    std::string key;         // JSON key; "a.b" is key b of the object under key a
    std::string flag;        // "--idle-timeout", or empty
    std::string short_flag;  // "-n", or empty
    std::string value_name;  // in --help: "SECONDS"; empty for a flag without a value
    std::string type;        // in the tables: "seconds, 1-3600"
    std::string default_text;  // empty: the value of a default-constructed record
    Reload reload = Reload::Live;
    std::string doc;  // one line
    std::function<void(T&, const nlohmann::json&, const std::string& key)> from_json;
    // `first`: the first use of this flag on the line (a repeatable flag replaces the file's list).
    std::function<void(T&, const std::string& value, const std::string& flag, bool first)> from_flag;
    std::function<std::string(const T&)> show;  // the value as text
    std::function<void(T& to, const T& from)> copy;  // takes this setting's value from another record
};

// Declaration helpers. `min`/`max` are in the unit the user writes.
template <class T, class N>
Setting<T> number(std::string key, N T::*field, uint64_t min, uint64_t max, Unit unit, Reload reload, std::string doc) {
    const uint64_t scale = unit == Unit::SecondsAsMs ? 1000 : 1;
    Setting<T> s;
    s.key = std::move(key);
    s.reload = reload;
    s.doc = std::move(doc);
    const char* unit_name = unit == Unit::Seconds || unit == Unit::SecondsAsMs ? "seconds"
                            : unit == Unit::Milliseconds                     ? "milliseconds"
                            : unit == Unit::Bytes                                           ? "bytes"
                                                                                            : "integer";
    s.type = std::string(unit_name) + ", " + std::to_string(min) + "-" + std::to_string(max);
    s.from_json = [=](T& t, const nlohmann::json& v, const std::string& k) {
        t.*field = static_cast<N>(json_number(v, k, min, max) * scale);
    };
    s.from_flag = [=](T& t, const std::string& v, const std::string& f, bool) {
        t.*field = static_cast<N>(flag_number(f, v, min, max) * scale);
    };
    s.show = [=](const T& t) { return std::to_string(static_cast<uint64_t>(t.*field) / scale); };
    s.copy = [=](T& to, const T& from) { to.*field = from.*field; };
    return s;
}

template <class T>
Setting<T> boolean(std::string key, bool T::*field, Reload reload, std::string doc) {
    Setting<T> s;
    s.key = std::move(key);
    s.reload = reload;
    s.doc = std::move(doc);
    s.type = "true or false";
    s.from_json = [=](T& t, const nlohmann::json& v, const std::string& k) { t.*field = json_bool(v, k); };
    s.from_flag = [=](T& t, const std::string&, const std::string&, bool) { t.*field = true; };
    s.show = [=](const T& t) { return std::string(t.*field ? "true" : "false"); };
    s.copy = [=](T& to, const T& from) { to.*field = from.*field; };
    return s;
}

// `check` (may be empty) validates a value, throwing ConfigError naming `key`.
using Check = std::function<void(const std::string& value, const std::string& key)>;

template <class T>
Setting<T> string(std::string key, std::string T::*field, Reload reload, std::string doc, Check check = {}) {
    Setting<T> s;
    s.key = std::move(key);
    s.reload = reload;
    s.doc = std::move(doc);
    s.type = "string";
    s.from_json = [=](T& t, const nlohmann::json& v, const std::string& k) {
        std::string x = json_string(v, k);
        if (check) check(x, k);
        t.*field = std::move(x);
    };
    s.from_flag = [=](T& t, const std::string& v, const std::string& f, bool) {
        if (check) check(v, f);
        t.*field = v;
    };
    s.show = [=](const T& t) { return t.*field; };
    s.copy = [=](T& to, const T& from) { to.*field = from.*field; };
    return s;
}

// A list; as a flag it is repeatable and the first use replaces the file's list.
template <class T>
Setting<T> strings(std::string key, std::vector<std::string> T::*field, Reload reload, std::string doc,
                   Check check = {}) {
    Setting<T> s;
    s.key = std::move(key);
    s.reload = reload;
    s.doc = std::move(doc);
    s.type = "list of strings";
    s.from_json = [=](T& t, const nlohmann::json& v, const std::string& k) {
        std::vector<std::string> x = json_strings(v, k);
        if (check)
            for (const auto& e : x) check(e, k);
        t.*field = std::move(x);
    };
    s.from_flag = [=](T& t, const std::string& v, const std::string& f, bool first) {
        if (check) check(v, f);
        if (first) (t.*field).clear();
        (t.*field).push_back(v);
    };
    s.show = [=](const T& t) {
        std::string r;
        for (const auto& e : t.*field) r += (r.empty() ? "" : " ") + e;
        return r;
    };
    s.copy = [=](T& to, const T& from) { to.*field = from.*field; };
    return s;
}

// A setting of any other type F: `parse` turns one JSON value (or, for a flag, its text as a
// JSON string) into F, throwing ConfigError naming the key; `show` writes F as text.
template <class T, class F>
Setting<T> custom(std::string key, F T::*field, std::string type, Reload reload, std::string doc,
                  std::function<F(const nlohmann::json&, const std::string& key)> parse,
                  std::function<std::string(const F&)> show) {
    Setting<T> s;
    s.key = std::move(key);
    s.reload = reload;
    s.doc = std::move(doc);
    s.type = std::move(type);
    s.from_json = [=](T& t, const nlohmann::json& v, const std::string& k) { t.*field = parse(v, k); };
    s.from_flag = [=](T& t, const std::string& v, const std::string& f, bool) { t.*field = parse(nlohmann::json(v), f); };
    s.show = [=](const T& t) { return show(t.*field); };
    s.copy = [=](T& to, const T& from) { to.*field = from.*field; };
    return s;
}

// A list of elements of type E, each read from a string by `parse` (which throws ConfigError
// naming the key it is given) and written back by `show`. As a flag it is repeatable and the
// first use replaces the file's list.
template <class T, class E>
Setting<T> parsed_list(std::string key, std::vector<E> T::*field, std::string type, Reload reload, std::string doc,
                       std::function<E(const std::string& text, const std::string& key)> parse,
                       std::function<std::string(const E&)> show) {
    Setting<T> s;
    s.key = std::move(key);
    s.reload = reload;
    s.doc = std::move(doc);
    s.type = std::move(type);
    s.from_json = [=](T& t, const nlohmann::json& v, const std::string& k) {
        std::vector<E> x;
        for (const auto& text : json_strings(v, k)) x.push_back(parse(text, k));
        t.*field = std::move(x);
    };
    s.from_flag = [=](T& t, const std::string& v, const std::string& f, bool first) {
        if (first) (t.*field).clear();
        (t.*field).push_back(parse(v, f));
    };
    s.show = [=](const T& t) {
        std::string r;
        for (const auto& e : t.*field) {
            if (!r.empty()) r += ' ';
            r += show(e);
        }
        return r;
    };
    s.copy = [=](T& to, const T& from) { to.*field = from.*field; };
    return s;
}

// Sets the flag and value name of a declaration (chained after a helper above).
template <class T>
Setting<T> with_flag(Setting<T> s, std::string flag, std::string value_name = "", std::string short_flag = "") {
    s.flag = std::move(flag);
    s.value_name = std::move(value_name);
    s.short_flag = std::move(short_flag);
    return s;
}
template <class T>
Setting<T> with_default(Setting<T> s, std::string text) {
    s.default_text = std::move(text);
    return s;
}

// Declarations made for a part S of a record T (a member holding a shared group of settings),
// as declarations of T.
template <class T, class S>
std::vector<Setting<T>> lift(S T::*member, const std::vector<Setting<S>>& part) {
    std::vector<Setting<T>> out;
    for (const Setting<S>& p : part) {
        Setting<T> s;
        s.key = p.key;
        s.flag = p.flag;
        s.short_flag = p.short_flag;
        s.value_name = p.value_name;
        s.type = p.type;
        s.default_text = p.default_text;
        s.reload = p.reload;
        s.doc = p.doc;
        if (p.from_json)
            s.from_json = [member, f = p.from_json](T& t, const nlohmann::json& v, const std::string& k) {
                f(t.*member, v, k);
            };
        if (p.from_flag)
            s.from_flag = [member, f = p.from_flag](T& t, const std::string& v, const std::string& fl, bool first) {
                f(t.*member, v, fl, first);
            };
        s.show = [member, f = p.show](const T& t) { return f(t.*member); };
        s.copy = [member, f = p.copy](T& to, const T& from) { f(to.*member, from.*member); };
        out.push_back(std::move(s));
    }
    return out;
}

enum class CliAction { Run, Help, Version, SettingsTable, SettingsJson };

// All the settings of one program's configuration record T.
template <class T>
class Schema {
public:
    Schema& add(Setting<T> s) {
        settings_.push_back(std::move(s));
        return *this;
    }
    // Declarations made for a part S of the record (a shared group), lifted into T.
    template <class S>
    Schema& section(S T::*member, const std::vector<Setting<S>>& part) {
        for (auto& s : lift(member, part)) settings_.push_back(std::move(s));
        return *this;
    }
    const std::vector<Setting<T>>& settings() const { return settings_; }

    // Applies a JSON object: every key must be a declared setting (or an object holding some).
    void apply_json(T& t, const nlohmann::json& obj, const std::string& prefix = "") const {
        for (const auto& [k, v] : obj.items()) {
            const std::string key = prefix + k;
            if (const Setting<T>* s = find_key(key)) {
                if (!s->from_json) throw ConfigError(key + ": not a configuration-file setting");
                s->from_json(t, v, key);
            } else if (has_group(key)) {
                if (!v.is_object()) throw ConfigError(key + ": expected an object, got " + quote_json(v));
                apply_json(t, v, key + ".");
            } else {
                throw ConfigError(printable(key) + ": unknown setting");
            }
        }
    }

    // Flags this schema declares that take a value (for split_flags).
    std::vector<std::string> value_flags() const {
        std::vector<std::string> r;
        for (const auto& s : settings_) {
            if (s.value_name.empty()) continue;
            if (!s.flag.empty()) r.push_back(s.flag);
            if (!s.short_flag.empty()) r.push_back(s.short_flag);
        }
        return r;
    }

    // Applies the flags in order; returns those it does not declare.
    std::vector<Flag> apply_flags(T& t, const std::vector<Flag>& flags) const {
        std::vector<Flag> rest;
        std::set<const Setting<T>*> seen;
        for (const Flag& f : flags) {
            const Setting<T>* s = find_flag(f.name);
            if (!s || !s->from_flag) {
                rest.push_back(f);
                continue;
            }
            if (!s->value_name.empty() && !f.valued) throw ConfigError(f.name + ": missing value");
            if (s->value_name.empty() && f.valued) throw ConfigError(f.name + ": takes no value");
            s->from_flag(t, f.value, f.name, seen.insert(s).second);
        }
        return rest;
    }

    // The option lines of --help, in declaration order. (Built by appending: g++ 12 warns
    // falsely, -Wrestrict, about `"literal" + std::string` chains.)
    std::string help() const {
        std::string r;
        for (const auto& s : settings_) {
            if (s.flag.empty()) continue;
            std::string left = "  ";
            if (s.short_flag.empty()) left += "    ";
            else left.append(s.short_flag).append(", ");
            left += s.flag;
            if (!s.value_name.empty()) left.append(" ").append(s.value_name);
            if (left.size() < 29) left.resize(29, ' ');
            else left.append("\n").append(29, ' ');
            r.append(left).append(s.doc).append(" (default ").append(default_of(s)).append(")\n");
        }
        return r;
    }

    // The Markdown table of every setting (README).
    std::string markdown() const {
        std::string r = "| JSON key | flag | type | default | on SIGHUP | meaning |\n| --- | --- | --- | --- | --- | --- |\n";
        for (const auto& s : settings_) {
            std::string flag;
            if (!s.flag.empty()) {
                flag = "`";
                if (!s.short_flag.empty()) flag.append(s.short_flag).append("`/`");
                flag += s.flag;
                if (!s.value_name.empty()) flag.append(" ").append(s.value_name);
                flag += "`";
            }
            r.append("| `").append(s.key).append("` | ").append(flag).append(" | ").append(s.type).append(" | ");
            r.append(default_of(s)).append(" | ").append(s.reload == Reload::Live ? "applied" : "restart");
            r.append(" | ").append(s.doc).append(" |\n");
        }
        return r;
    }

    // Every setting as JSON, for tools (the Ansible role asks which settings need a restart):
    // [{"key", "flag", "short_flag", "type", "default", "reload": "applied"|"restart", "doc"}].
    std::string json() const {
        nlohmann::json a = nlohmann::json::array();
        for (const auto& s : settings_)
            a.push_back({{"key", s.key}, {"flag", s.flag}, {"short_flag", s.short_flag}, {"type", s.type},
                         {"default", default_of(s)}, {"reload", s.reload == Reload::Live ? "applied" : "restart"},
                         {"doc", s.doc}});
        return a.dump(2) + "\n";
    }

    // For a reload: the restart-only settings whose new value differs get the running value
    // back in `next`; their keys are returned (for the log line and the metric).
    std::vector<std::string> keep_restart_only(T& next, const T& running) const {
        std::vector<std::string> kept;
        for (const auto& s : settings_) {
            if (s.reload != Reload::Restart || s.show(next) == s.show(running)) continue;
            s.copy(next, running);
            kept.push_back(s.key);
        }
        return kept;
    }

    std::string default_of(const Setting<T>& s) const {
        if (!s.default_text.empty()) return s.default_text;
        const std::string v = s.show(T{});
        return v.empty() ? "none" : v;
    }

private:
    const Setting<T>* find_key(const std::string& key) const {
        for (const auto& s : settings_)
            if (s.key == key) return &s;
        return nullptr;
    }
    const Setting<T>* find_flag(const std::string& f) const {
        for (const auto& s : settings_)
            if ((!s.flag.empty() && s.flag == f) || (!s.short_flag.empty() && s.short_flag == f)) return &s;
        return nullptr;
    }
    bool has_group(const std::string& key) const {
        for (const auto& s : settings_)
            if (s.key.size() > key.size() && s.key.compare(0, key.size(), key) == 0 && s.key[key.size()] == '.')
                return true;
        return false;
    }

    std::vector<Setting<T>> settings_;
};

// What a program's command line asks for beyond the settings: the configuration file,
// --check-config, --help, --version, --settings-table.
struct Cli {
    std::string config_path;
    bool check_only = false;
};

// --help: what the program does, the options every program has, its settings' flags, signals.
template <class T>
std::string usage(const Schema<T>& schema, const std::string& synopsis, const std::string& signals) {
    std::string r = synopsis;
    r += "\n  -c, --config FILE          JSON configuration file; flags below override it\n"
         "      --check-config         validate the configuration and exit (0 valid, 2 invalid)\n";
    r += schema.help();
    r += "      --settings-table       print every setting as a Markdown table and exit\n"
         "      --settings-json        print every setting as JSON (key, flag, type, default, reload, doc) and exit\n"
         "  -h, --help                 this text\n"
         "      --version              print the version\n";
    r += signals;
    return r;
}

// Reads argv and the file it names into `out` through `schema`: defaults, then the file,
// then the flags in order (flags win). A flag no setting declares goes to `on_other`, which
// returns false when it does not know it either (an error).
template <class T>
CliAction load_command_line(const Schema<T>& schema, int argc, char** argv, T& out, Cli& cli,
                            const std::function<bool(T&, const Flag&)>& on_other = {}) {
    std::vector<std::string> valued = schema.value_flags();
    valued.push_back("-c");
    valued.push_back("--config");
    const std::vector<Flag> flags = split_flags(argc, argv, valued);
    std::vector<Flag> settings_flags;
    cli = Cli{};
    for (const Flag& f : flags) {
        if (f.name == "-h" || f.name == "--help") return CliAction::Help;
        if (f.name == "--version") return CliAction::Version;
        if (f.name == "--settings-table") return CliAction::SettingsTable;
        if (f.name == "--settings-json") return CliAction::SettingsJson;
        if (f.name == "--check-config") cli.check_only = true;
        else if (f.name == "-c" || f.name == "--config") cli.config_path = f.value;
        else settings_flags.push_back(f);
    }
    T t;
    if (!cli.config_path.empty()) schema.apply_json(t, read_json_file(cli.config_path));
    for (const Flag& f : schema.apply_flags(t, settings_flags))
        if (!on_other || !on_other(t, f)) throw ConfigError(f.name + ": unknown option (see --help)");
    out = std::move(t);
    return CliAction::Run;
}

}  // namespace dp::config
