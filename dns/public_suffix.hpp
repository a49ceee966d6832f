// Registrable domain lookup (Public Suffix List) through libpsl.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dns/hash.hpp"

struct psl_ctx_st;

namespace dp::dns {

struct SuffixListSettings {
    std::string file;              // empty: newest of system file and built-in list
    bool private_section = false;  // also treat the list's private section as suffixes
    uint32_t memo_entries = 65536;  // public-suffix answers memoized (64 B each); 0: none
};

class PublicSuffix {
public:
    // Empty path: the newest of the system's publicsuffix package file (its text form when it
    // is as new as the rest) and libpsl's built-in list; otherwise the given file (.dat or
    // .dafsa). `memo_entries` sizes the lookup memo (0: none). Throws std::runtime_error
    // naming the file when it cannot be loaded.
    PublicSuffix(const std::string& path, bool private_section, uint32_t memo_entries);
    ~PublicSuffix();
    PublicSuffix(const PublicSuffix&) = delete;
    PublicSuffix& operator=(const PublicSuffix&) = delete;

    // `name` is lower-case presentation form without the trailing dot, `len` its length.
    // A libpsl lookup costs 100-300 ns and a query needs several, so answers are memoized in a
    // bounded 4-way set-associative table (names over 54 octets always ask libpsl). The memo
    // belongs to this instance: a reload starts afresh.
    // `hash` is hash(name, len).
    bool is_public_suffix(const char* name, size_t len, uint64_t hash, bool* asked_libpsl = nullptr) const;
    // The key of a name suffix in the memo and the rule table. A query asks about only the one
    // to three suffixes that can be public, so hashing each afresh costs less than folding a
    // hash over every octet.
    static uint64_t hash(const char* s, size_t n) { return word_hash(s, n, 0x243F6A8885A308D3ull); }
    // The ACE form ("xn--" + Punycode, RFC 3492 6.3) of a label in UTF-8, as queries spell
    // it; false for malformed UTF-8. The list spells some rules in UTF-8 (under jp, no, it,
    // ...); libpsl answers for their ACE forms, and so must the rule table.
    static bool ace_label(const std::string& utf8, std::string& out);
    // `name` with each label in UTF-8 in its ACE form; false if one is malformed.
    static bool ace_name(const std::string& name, std::string& out);
    // Where the list came from, for the start-up log line.
    const std::string& source() const { return source_; }

    // Rules of today's list have at most 5 labels; a name suffix with more than this many
    // labels is taken not to be a public suffix without asking libpsl.
    static constexpr int kMaxSuffixLabels = 8;
    // A list with fewer rules than this is refused (the real one has ~9,500).
    static constexpr int kMinRules = 1000;

    // Whether a public suffix can be longer than a given one, judged from the list's rules:
    // Leaf when no rule has more labels below it (so no longer name suffix needs asking
    // about), Inner when some rule does, Open when that cannot be told from here (the list
    // came from a DAFSA or libpsl's built-in copy, or rules below it are spelled in UTF-8
    // while queries spell them in ACE). The name suffixes unique to one query (the
    // registrable domain and longer) are then never looked up.
    enum class Below : uint8_t { Leaf, Inner, Open };

    // What a query needs to know about one name suffix: Below, is_public_suffix(), and
    // whether one given label can stand left of it in a rule (`child`). A query asks about
    // a handful of suffixes shared by many names (com, uk, co.uk, ...) and, between two
    // batches of queries, the kernel's work evicts the CPU caches, so these answers sit in a
    // small table of their own, one 64-octet line per suffix, with a 256-bit filter of the
    // labels rules have left of it (all bits when a wildcard rule covers every label). The
    // filter spares asking about the registrable domain itself: under `fr`, `park-1.fr` is
    // no rule (its label is not in the filter of `fr`), so it is not public and nothing
    // below it is.
    enum class Source : uint8_t { Table, Memo, Libpsl };
    struct Verdict {
        Below below;
        bool is_public;
        // False when no rule has the label of `child_hash` (hash() of its lower-case text)
        // left of this suffix: that longer suffix is then not public and has nothing below
        // it. True may be a false positive.
        bool child;
        Source source;  // where the answer came from, for metrics
    };
    // `suffix` must be readable for kPadded octets, zero after its `len` (registrable_labels'
    // buffer is); longer suffixes are answered without the table.
    static constexpr size_t kPadded = 24;
    Verdict verdict(const char* suffix, size_t len, uint64_t child_hash) const {
        if (len == 0 || len > kPadded) {
            bool keep;
            Source from;
            return slow_info(suffix, len, keep, from).verdict(child_hash, from);
        }
        uint64_t k[3];
        std::memcpy(k, suffix, sizeof k);
        uint64_t h = (k[0] ^ hot_seed_) * 0x9E3779B97F4A7C15ull;
        h ^= (k[1] + len) * 0xC2B2AE3D27D4EB4Full;
        h ^= k[2] * 0x165667B19E3779F9ull;
        h ^= h >> 32;
        HotEntry& e = hot_[h & (kHotEntries - 1)];
        if (e.info.key_len != len || e.key[0] != k[0] || e.key[1] != k[1] || e.key[2] != k[2]) {
            bool keep;
            Source from;
            const Info info = slow_info(suffix, len, keep, from);
            if (!keep) return info.verdict(child_hash, from);
            e.info = info;  // direct-mapped: the newest suffix takes the line
            e.info.key_len = static_cast<uint8_t>(len);
            std::memcpy(e.key, k, sizeof k);
            return e.info.verdict(child_hash, from);
        }
        return e.info.verdict(child_hash, Source::Table);
    }

private:
    // Zero-filled pages straight from the kernel, so the tables cost memory only where they
    // are written (the memo is rarely used now that the rule table answers most queries).
    template <class T>
    struct Pages {
        T* p = nullptr;
        size_t bytes = 0;
        explicit Pages(size_t n = 0);
        ~Pages();
        Pages(const Pages&) = delete;
        Pages& operator=(const Pages&) = delete;
        Pages& operator=(Pages&& o) noexcept {
            std::swap(p, o.p);
            std::swap(bytes, o.bytes);
            return *this;
        }
        T& operator[](size_t i) const { return p[i]; }
        explicit operator bool() const { return p != nullptr; }
    };
    // A 256-bit filter of label hashes (two bits per label): the labels rules have left of a
    // suffix. No false negatives; all bits set stands for "any label".
    struct LabelFilter {
        uint64_t w[4];
        static unsigned bit(uint64_t h, int i) { return (h >> (8 * i)) & 255; }
        void add(uint64_t h) {
            for (int i = 0; i < 2; ++i) w[bit(h, i) >> 6] |= 1ull << (bit(h, i) & 63);
        }
        void add_all() { w[0] = w[1] = w[2] = w[3] = ~0ull; }
        bool may_hold(uint64_t h) const {
            return (w[bit(h, 0) >> 6] >> (bit(h, 0) & 63) & 1) && (w[bit(h, 1) >> 6] >> (bit(h, 1) & 63) & 1);
        }
    };
    struct Info {
        LabelFilter children;  // the labels rules have left of this suffix
        Below below;
        bool is_public;
        uint8_t key_len;  // in the hot table: the suffix's length (0: empty entry)
        Verdict verdict(uint64_t child_hash, Source from) const {
            return {below, is_public, children.may_hold(child_hash), from};
        }
    };
    // The answers without the hot table; `keep`: worth a line in it; `from`: memo or libpsl.
    Info slow_info(const char* suffix, size_t len, bool& keep, Source& from) const;
    struct alignas(64) HotEntry {
        Info info;
        uint64_t key[3];  // the suffix, zero-padded
    };
    static_assert(sizeof(HotEntry) == 64);
    static constexpr size_t kHotEntries = 2048;  // 128 KiB
    Pages<HotEntry> hot_;  // kHotEntries, a power of two
    uint64_t hot_seed_ = 0;  // random: collisions cannot be planned from outside

    static constexpr size_t kKey = 54;
    static constexpr size_t kWays = 4;
    struct alignas(64) Entry {
        uint64_t hash;
        uint8_t len;  // 0: empty
        bool value;
        char key[kKey];
    };

    psl_ctx_st* ctx_ = nullptr;
    int type_;
    std::string source_;
    Pages<Entry> memo_;
    size_t set_mask_ = 0;  // sets - 1; sets is a power of two
    mutable uint32_t next_way_ = 0;

    // Reads the rules from the text form of the list at `path` into inner_; false (and no
    // table: every suffix Open) for a DAFSA or an unreadable file.
    bool load_rule_tree(const std::string& path, bool private_section);
    struct Node {
        uint64_t hash = 0;
        Below below = Below::Leaf;  // Leaf: empty slot
        std::string suffix;
        LabelFilter children{};  // as Info::children
    };
    const Node* find(const char* suffix, size_t len, uint64_t hash) const;
    bool ace_incomplete_ = false;  // a rule's UTF-8 label could not be converted to ACE
    std::vector<Node> inner_;  // open addressing by hash: the suffixes with rules below them
    size_t inner_mask_ = 0;
};

}  // namespace dp::dns
