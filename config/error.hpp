// The one error type of configuration reading: a setting that cannot be used. Its message is
// one line naming the setting; programs print it and exit with code 2.
#pragma once

#include <stdexcept>

namespace dp::config {

struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace dp::config
