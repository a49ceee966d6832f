#include "dns/public_suffix.hpp"

#include <libpsl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string_view>

#include "dns/wire.hpp"

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
    // A file that is not a Public Suffix List still loads (libpsl skips what it cannot read, and
    // its implicit "*" rule makes every last label public), and the worker would then park
    // co.uk itself. Today's list has ~9,500 rules; a DAFSA does not say, so ask it instead.
    const int rules = psl_suffix_count(ctx_);
    if ((rules >= 0 && rules < kMinRules) || !psl_is_public_suffix2(ctx_, "co.uk", PSL_TYPE_ICANN) ||
        !psl_is_public_suffix2(ctx_, "com", PSL_TYPE_ICANN)) {
        psl_free(ctx_);
        ctx_ = nullptr;
        throw std::runtime_error("'" + source_ + "' is not a Public Suffix List (" +
                                 (rules >= 0 ? std::to_string(rules) + " rules; " : std::string()) +
                                 "a real list has thousands and knows co.uk)");
    }
    if (from_file) load_rule_tree(source_, private_section);
    hot_ = Pages<HotEntry>(kHotEntries);  // zeroed: every entry empty
    std::random_device rd;
    hot_seed_ = uint64_t(rd()) << 32 | rd();
    if (memo_entries >= kWays) {
        size_t sets = 1;
        while (sets * 2 * kWays <= memo_entries) sets *= 2;
        memo_ = Pages<Entry>(sets * kWays);  // zeroed: every entry empty
        set_mask_ = sets - 1;
    }
}

PublicSuffix::~PublicSuffix() { psl_free(ctx_); }

template <class T>
PublicSuffix::Pages<T>::Pages(size_t n) : bytes(n * sizeof(T)) {
    if (n == 0) return;
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    p = static_cast<T*>(m);  // page-aligned; zero pages until written
}

template <class T>
PublicSuffix::Pages<T>::~Pages() {
    if (p) munmap(p, bytes);
}

namespace {
bool has_8bit(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}
}  // namespace

bool PublicSuffix::ace_name(const std::string& name, std::string& out) {
    if (!has_8bit(name)) {
        out = name;
        return true;
    }
    std::string result, label, ace;
    for (size_t at = 0; at <= name.size();) {
        const size_t dot = std::min(name.find('.', at), name.size());
        label = name.substr(at, dot - at);
        if (has_8bit(label)) {
            if (!ace_label(label, ace)) return false;
            label = ace;
        }
        if (at) result.push_back('.');
        result.append(label);
        at = dot + 1;
    }
    out = result;
    return true;
}

bool PublicSuffix::ace_label(const std::string& utf8, std::string& out) {
    std::vector<uint32_t> cps;
    for (size_t i = 0; i < utf8.size();) {
        const auto c = static_cast<unsigned char>(utf8[i]);
        const int more = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (more < 0 || i + size_t(more) >= utf8.size() + (more == 0)) return false;  // cut short
        uint32_t cp = more == 0 ? c : c & (0x3F >> more);
        for (int k = 1; k <= more; ++k) {
            const auto cc = static_cast<unsigned char>(utf8[i + size_t(k)]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = cp << 6 | (cc & 0x3F);
        }
        cps.push_back(cp);
        i += 1 + size_t(more);
    }
    constexpr uint32_t base = 36, tmin = 1, tmax = 26, skew = 38, damp = 700;
    auto adapt = [&](uint32_t delta, uint32_t points, bool first) {
        delta = first ? delta / damp : delta / 2;
        delta += delta / points;
        uint32_t k = 0;
        while (delta > ((base - tmin) * tmax) / 2) {
            delta /= base - tmin;
            k += base;
        }
        return k + (base - tmin + 1) * delta / (delta + skew);
    };
    auto digit = [](uint32_t d) { return static_cast<char>(d < 26 ? 'a' + d : '0' + (d - 26)); };
    std::string enc;
    for (uint32_t cp : cps)
        if (cp < 0x80) enc.push_back(static_cast<char>(cp));
    const uint32_t b = static_cast<uint32_t>(enc.size());
    if (b > 0) enc.push_back('-');
    uint32_t n = 0x80, delta = 0, bias = 72, h = b;
    while (h < cps.size()) {
        uint32_t m = UINT32_MAX;
        for (uint32_t cp : cps)
            if (cp >= n && cp < m) m = cp;
        if (uint64_t(m - n) * (h + 1) + delta > UINT32_MAX) return false;
        delta += (m - n) * (h + 1);
        n = m;
        for (uint32_t cp : cps) {
            if (cp < n) ++delta;
            if (cp != n) continue;
            uint32_t q = delta;
            for (uint32_t k = base;; k += base) {
                const uint32_t t = k <= bias ? tmin : k >= bias + tmax ? tmax : k - bias;
                if (q < t) break;
                enc.push_back(digit(t + (q - t) % (base - t)));
                q = (q - t) / (base - t);
            }
            enc.push_back(digit(q));
            bias = adapt(delta, h + 1, h == b);
            delta = 0;
            ++h;
        }
        ++delta;
        ++n;
    }
    out = "xn--" + enc;
    return true;
}

bool PublicSuffix::load_rule_tree(const std::string& path, bool private_section) {
    std::ifstream in(path);
    if (!in) return false;
    struct Rules {
        Below below = Below::Inner;
        LabelFilter children{};
    };
    std::map<std::string, Rules> nodes;  // suffixes with rules below them
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
        for (char& c : rule) c = static_cast<char>(ascii_lower(static_cast<uint8_t>(c)));
        // Labels in UTF-8 are taken in their ACE form, as queries spell them; one that cannot
        // be converted leaves the suffix right of it Open.
        std::string ace;
        if (ace_name(rule, ace)) rule = ace;
        else ace_incomplete_ = true;
        // Every proper suffix of the rule has a rule below it, and the label left of it in the
        // rule goes into its filter. Walking from the right, stop at a label still in UTF-8:
        // the suffix right of it is Open.
        size_t end = rule.size();
        std::string suffix;  // right of the label at hand; empty for the rule's last label
        while (true) {
            const size_t dot = rule.rfind('.', end - 1);
            const size_t start = dot == std::string::npos ? 0 : dot + 1;
            const std::string label = rule.substr(start, end - start);
            const bool utf8 = has_8bit(label);
            if (!suffix.empty()) {
                Rules& node = nodes[suffix];
                if (utf8) node.below = Below::Open;
                if (label == "*") node.children.add_all();  // every label is a child
                else node.children.add(hash(label.data(), label.size()));
            }
            if (utf8 || dot == std::string::npos) break;
            suffix = rule.substr(start);
            end = dot;
        }
    }
    if (nodes.empty()) return false;
    size_t size = 1;
    while (size < nodes.size() * 2) size *= 2;
    inner_.assign(size, Node{});
    inner_mask_ = size - 1;
    for (const auto& [suffix, rules] : nodes) {
        const uint64_t h = hash(suffix.data(), suffix.size());
        size_t at = h & inner_mask_;
        while (inner_[at].below != Below::Leaf) at = (at + 1) & inner_mask_;
        inner_[at] = Node{h, rules.below, suffix, rules.children};
    }
    return true;
}

const PublicSuffix::Node* PublicSuffix::find(const char* suffix, size_t len, uint64_t hash) const {
    if (inner_.empty()) return nullptr;
    for (size_t at = hash & inner_mask_; inner_[at].below != Below::Leaf; at = (at + 1) & inner_mask_) {
        const Node& n = inner_[at];
        if (n.hash == hash && n.suffix.size() == len && std::memcmp(n.suffix.data(), suffix, len) == 0) return &n;
    }
    return nullptr;
}

PublicSuffix::Info PublicSuffix::slow_info(const char* suffix, size_t len, bool& keep, Source& from) const {
    const uint64_t h = hash(suffix, len);
    Info v{};  // no children, Leaf, not public
    const bool one_label = !std::memchr(suffix, '.', len);
    const Node* n = find(suffix, len, h);
    if (inner_.empty()) {
        v.below = Below::Open;  // no readable rules: every longer suffix has to be asked about
    } else if (n) {
        v.below = n->below;
        v.children = n->children;
    } else if (ace_incomplete_ && one_label && len >= 4 && std::memcmp(suffix, "xn--", 4) == 0) {
        v.below = Below::Open;  // a top-level label in ACE: the list may have rules below it we could not convert
    }
    if (v.below == Below::Open) v.children.add_all();
    bool asked_libpsl = false;
    v.is_public = is_public_suffix(suffix, len, h, &asked_libpsl);
    from = asked_libpsl ? Source::Libpsl : Source::Memo;
    // Worth a line of the hot table: suffixes many names share. A registrable domain asked
    // about under an Open suffix is not one of them; keeping it would evict those that are.
    keep = n || one_label || v.is_public;
    return v;
}

bool PublicSuffix::is_public_suffix(const char* name, size_t len, uint64_t h, bool* asked_libpsl) const {
    // The full key is compared, so a hash collision (even a crafted one) only costs a miss.
    if (!memo_ || len == 0 || len > kKey) {
        if (asked_libpsl) *asked_libpsl = true;
        return psl_is_public_suffix2(ctx_, name, type_) != 0;
    }
    Entry* set = &memo_[(h & set_mask_) * kWays];
    for (size_t w = 0; w < kWays; ++w)
        if (set[w].hash == h && set[w].len == len && std::memcmp(set[w].key, name, len) == 0) return set[w].value;
    if (asked_libpsl) *asked_libpsl = true;
    const bool v = psl_is_public_suffix2(ctx_, name, type_) != 0;
    Entry& e = set[next_way_++ % kWays];  // round-robin replacement
    e.hash = h;
    e.len = static_cast<uint8_t>(len);
    e.value = v;
    std::memcpy(e.key, name, len);
    return v;
}

}  // namespace dp::dns
