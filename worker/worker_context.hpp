// What the worker's transports share: the current policy (swapped on SIGHUP) and metrics.
#pragma once

#include <memory>

#include "dns/policy.hpp"
#include "worker/worker_config.hpp"
#include "worker/worker_metrics.hpp"

namespace dp::worker {

struct WorkerContext {
    std::unique_ptr<dns::Policy> policy;
    WorkerConfig config;
    WorkerMetrics metrics;
};

// Monotonic clock in nanoseconds (vDSO, no system call).
uint64_t now_ns();

}  // namespace dp::worker
