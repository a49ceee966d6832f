#include "dns/public_suffix.hpp"

#include <libpsl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>

namespace dp::dns {

PublicSuffix::PublicSuffix(const std::string& path, bool private_section, uint32_t memo_entries)
    : type_(private_section ? PSL_TYPE_ANY : PSL_TYPE_ICANN) {
    bool from_file = false;  // rules readable as text (load_rule_tree checks it is not a DAFSA)
    if (path.empty()) {
        // The newest list available wins. The system package ships the same list as a DAFSA
        // and as text; libpsl answers ~3x faster from the text form (sorted rules) than from a
        // DAFSA, so when that file is at least as new as the built-in list it is the one used.
        const char* dist = psl_dist_filename();
        std::string dat;
        if (dist && *dist) {
            dat = dist;
            const size_t dot = dat.rfind(".dafsa");
            if (dot != std::string::npos) dat.replace(dot, std::string::npos, ".dat");
        }
        struct stat st;
        if (!dat.empty() && stat(dat.c_str(), &st) == 0 && st.st_mtime >= psl_builtin_file_time()) {
            ctx_ = psl_load_file(dat.c_str());
            source_ = dat;
            from_file = ctx_ != nullptr;
        }
        if (!ctx_) {
            ctx_ = psl_latest(nullptr);
            source_ = std::string("newest of libpsl's built-in list and ") +
                      (dist && *dist ? dist : "(no system file)");
        }
    } else {
        ctx_ = psl_load_file(path.c_str());
        source_ = path;
        from_file = ctx_ != nullptr;
    }
    if (!ctx_) throw std::runtime_error("cannot load Public Suffix List from '" + source_ + "'");
    if (from_file) load_rule_tree(source_, private_section);
    if (memo_entries >= kWays) {
        size_t sets = 1;
        while (sets * 2 * kWays <= memo_entries) sets *= 2;
        memo_ = std::make_unique<Entry[]>(sets * kWays);  // zeroed: every entry empty
        set_mask_ = sets - 1;
    }
}

PublicSuffix::~PublicSuffix() { psl_free(ctx_); }

bool PublicSuffix::load_rule_tree(const std::string& path, bool private_section) {
    std::ifstream in(path);
    if (!in) return false;
    std::map<std::string, Below> nodes;  // suffixes with rules below them
    std::string line;
    bool first = true, in_private = false;
    while (std::getline(in, line)) {
        if (first && line.rfind(".DAFSA@PSL_", 0) == 0) return false;  // binary form
        first = false;
        if (line.rfind("//", 0) == 0) {
            if (line.find("===BEGIN PRIVATE DOMAINS===") != std::string::npos) in_private = true;
            if (line.find("===END PRIVATE DOMAINS===") != std::string::npos) in_private = false;
            continue;
        }
        std::string rule = line.substr(0, line.find_first_of(" \t\r"));
        if (rule.empty() || (in_private && !private_section)) continue;
        if (rule[0] == '!') rule.erase(0, 1);  // an exception has as many labels as its rule
        for (char& c : rule)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        // Every proper suffix of the rule has a rule below it. Walking from the right, stop at
        // the first label in UTF-8: the suffix right of it is Open (queries use ACE there).
        size_t end = rule.size();
        std::string suffix;
        while (true) {
            const size_t dot = rule.rfind('.', end - 1);
            const size_t start = dot == std::string::npos ? 0 : dot + 1;
            const std::string label = rule.substr(start, end - start);
            if (std::any_of(label.begin(), label.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
                if (!suffix.empty()) nodes[suffix] = Below::Open;
                break;
            }
            if (dot == std::string::npos) break;  // the whole rule: a leaf unless a longer rule says otherwise
            suffix = rule.substr(start);
            nodes.emplace(suffix, Below::Inner);  // an Open mark stays
            end = dot;
        }
    }
    if (nodes.empty()) return false;
    size_t size = 1;
    while (size < nodes.size() * 2) size *= 2;
    inner_.assign(size, Node{});
    inner_mask_ = size - 1;
    for (const auto& [suffix, below] : nodes) {
        uint64_t h = kHashSeed;
        for (size_t i = suffix.size(); i-- > 0;) h = hash_step(h, static_cast<uint8_t>(suffix[i]));
        size_t at = h & inner_mask_;
        while (inner_[at].below != Below::Leaf) at = (at + 1) & inner_mask_;
        inner_[at] = Node{h, below, suffix};
    }
    return true;
}

PublicSuffix::Below PublicSuffix::below(const char* suffix, size_t len, uint64_t hash) const {
    if (inner_.empty()) return Below::Open;
    for (size_t at = hash & inner_mask_; inner_[at].below != Below::Leaf; at = (at + 1) & inner_mask_) {
        const Node& n = inner_[at];
        if (n.hash == hash && n.suffix.size() == len && std::memcmp(n.suffix.data(), suffix, len) == 0) return n.below;
    }
    // No rule below it. A top-level label in ACE may still have rules the list spells in UTF-8.
    if (len >= 4 && std::memcmp(suffix, "xn--", 4) == 0 && !std::memchr(suffix, '.', len)) return Below::Open;
    return Below::Leaf;
}

bool PublicSuffix::is_public_suffix(const char* name, size_t len, uint64_t h) const {
    // The full key is compared, so a hash collision (even a crafted one) only costs a miss.
    if (!memo_ || len == 0 || len > kKey) return psl_is_public_suffix2(ctx_, name, type_) != 0;
    Entry* set = &memo_[(h & set_mask_) * kWays];
    for (size_t w = 0; w < kWays; ++w)
        if (set[w].hash == h && set[w].len == len && std::memcmp(set[w].key, name, len) == 0) return set[w].value;
    const bool v = psl_is_public_suffix2(ctx_, name, type_) != 0;
    Entry& e = set[next_way_++ % kWays];  // round-robin replacement
    e.hash = h;
    e.len = static_cast<uint8_t>(len);
    e.value = v;
    std::memcpy(e.key, name, len);
    return v;
}

}  // namespace dp::dns
