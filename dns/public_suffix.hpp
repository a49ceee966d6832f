// Registrable domain lookup (Public Suffix List) through libpsl.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>
#include <string>

struct psl_ctx_st;

namespace dp::dns {

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
    // `hash` is hash_step folded over the name's octets from the last to the first, starting
    // from kHashSeed, so callers walking a name right to left hash every suffix in one pass.
    bool is_public_suffix(const char* name, size_t len, uint64_t hash) const;
    static constexpr uint64_t kHashSeed = 14695981039346656037ull;  // FNV-1a
    static uint64_t hash_step(uint64_t h, uint8_t c) { return (h ^ c) * 1099511628211ull; }
    // Where the list came from, for the start-up log line.
    const std::string& source() const { return source_; }

    // Rules of today's list have at most 5 labels; a name suffix with more than this many
    // labels is taken not to be a public suffix without asking libpsl.
    static constexpr int kMaxSuffixLabels = 8;

    // Whether a public suffix can be longer than `suffix` (lower-case text, `hash` as for
    // is_public_suffix), judged from the list's rules: Leaf when no rule has more labels below
    // it (so no longer name suffix needs asking about), Inner when some rule does, Open when
    // that cannot be told from here (the list came from a DAFSA or libpsl's built-in copy, or
    // rules below it are spelled in UTF-8 while queries spell them in ACE). The name suffixes
    // unique to one query (the registrable domain and longer) are then never looked up, so the
    // memo holds only suffixes that matter and stays in the CPU's cache.
    enum class Below : uint8_t { Leaf, Inner, Open };
    Below below(const char* suffix, size_t len, uint64_t hash) const;

private:
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
    std::unique_ptr<Entry[]> memo_;
    size_t set_mask_ = 0;  // sets - 1; sets is a power of two
    mutable uint32_t next_way_ = 0;

    // Reads the rules from the text form of the list at `path` into inner_; false (and no
    // table: every suffix Open) for a DAFSA or an unreadable file.
    bool load_rule_tree(const std::string& path, bool private_section);
    struct Node {
        uint64_t hash = 0;
        Below below = Below::Leaf;  // Leaf: empty slot
        std::string suffix;
    };
    std::vector<Node> inner_;  // open addressing by hash: the suffixes with rules below them
    size_t inner_mask_ = 0;
};

}  // namespace dp::dns
