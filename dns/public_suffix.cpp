#include "dns/public_suffix.hpp"

#include <libpsl.h>

#include <stdexcept>

namespace dp::dns {

PublicSuffix::PublicSuffix(const std::string& path, bool private_section)
    : type_(private_section ? PSL_TYPE_ANY : PSL_TYPE_ICANN) {
    if (path.empty()) {
        // psl_latest picks whichever of the distribution file and the built-in list is newer,
        // so a machine with a fresher `publicsuffix` package gets the fresher rules.
        ctx_ = psl_latest(nullptr);
        const char* dist = psl_dist_filename();
        source_ = std::string("newest of built-in list and ") + (dist && *dist ? dist : "(no system file)");
    } else {
        ctx_ = psl_load_file(path.c_str());
        source_ = path;
    }
    if (!ctx_) throw std::runtime_error("cannot load Public Suffix List from '" + source_ + "'");
}

PublicSuffix::~PublicSuffix() { psl_free(ctx_); }

bool PublicSuffix::is_public_suffix(const char* name) const {
    return psl_is_public_suffix2(ctx_, name, type_) != 0;
}

}  // namespace dp::dns
