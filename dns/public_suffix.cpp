#include "dns/public_suffix.hpp"

#include <libpsl.h>
#include <sys/stat.h>

#include <cstring>
#include <stdexcept>

namespace dp::dns {

PublicSuffix::PublicSuffix(const std::string& path, bool private_section, uint32_t memo_entries)
    : type_(private_section ? PSL_TYPE_ANY : PSL_TYPE_ICANN) {
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
        }
        if (!ctx_) {
            ctx_ = psl_latest(nullptr);
            source_ = std::string("newest of libpsl's built-in list and ") +
                      (dist && *dist ? dist : "(no system file)");
        }
    } else {
        ctx_ = psl_load_file(path.c_str());
        source_ = path;
    }
    if (!ctx_) throw std::runtime_error("cannot load Public Suffix List from '" + source_ + "'");
    if (memo_entries >= kWays) {
        size_t sets = 1;
        while (sets * 2 * kWays <= memo_entries) sets *= 2;
        memo_ = std::make_unique<Entry[]>(sets * kWays);  // zeroed: every entry empty
        set_mask_ = sets - 1;
    }
}

PublicSuffix::~PublicSuffix() { psl_free(ctx_); }

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
