// Registrable domain lookup (Public Suffix List) through libpsl.
#pragma once

#include <string>

struct psl_ctx_st;

namespace dp::dns {

class PublicSuffix {
public:
    // Empty path: the newest of the system's publicsuffix package file and libpsl's
    // built-in list. Otherwise the given file (.dat or .dafsa). Throws std::runtime_error
    // naming the file when it cannot be loaded.
    PublicSuffix(const std::string& path, bool private_section);
    ~PublicSuffix();
    PublicSuffix(const PublicSuffix&) = delete;
    PublicSuffix& operator=(const PublicSuffix&) = delete;

    // `name` is lower-case presentation form without the trailing dot.
    bool is_public_suffix(const char* name) const;
    // Where the list came from, for the start-up log line.
    const std::string& source() const { return source_; }

private:
    psl_ctx_st* ctx_ = nullptr;
    int type_;
    std::string source_;
};

}  // namespace dp::dns
