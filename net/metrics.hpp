// Metrics shared by the worker and the balancer: counters the single query thread
// bumps with plain loads and stores (no locked instructions on the hot path), read
// by prometheus-cpp's HTTP thread at scrape time through a Collectable.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dp::net {

// One writer thread; relaxed load+store is race-free for a single writer and compiles to a plain add.
class Counter {
public:
    void inc(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    uint64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};

class Gauge {
public:
    void add(int64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    void set(int64_t n) { v_.store(n, std::memory_order_relaxed); }
    int64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<int64_t> v_{0};
};

// Latency histogram with fixed bounds from 1 µs to 1 s; observations in nanoseconds.
class Histogram {
public:
    static constexpr std::array<uint64_t, 16> kBoundsNs = {1000,    2500,     5000,     10000,    25000,    50000,
                                                           100000,  250000,   500000,   1000000,  2500000,  10000000,
                                                           50000000, 100000000, 500000000, 1000000000};
    void observe_ns(uint64_t ns, uint64_t count = 1) {
        size_t i = 0;
        while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
        buckets_[i].inc(count);
        sum_ns_.inc(ns * count);
    }
    uint64_t bucket(size_t i) const { return buckets_[i].value(); }
    uint64_t sum_ns() const { return sum_ns_.value(); }

private:
    std::array<Counter, kBoundsNs.size() + 1> buckets_;
    Counter sum_ns_;
};

using Labels = std::map<std::string, std::string>;

// Holds pointers to metrics owned elsewhere (they must outlive the registry) and turns
// them into Prometheus families when scraped. Several metrics registered under the same name
// and labels (one per thread) are reported as one: counters, histograms and gauges summed,
// or for gauges registered with `Merge::Min`, the smallest value.
class MetricsRegistry : public prometheus::Collectable {
public:
    enum class Merge : uint8_t { Sum, Min };
    void counter(const std::string& name, const std::string& help, const Labels& labels, const Counter* c);
    void gauge(const std::string& name, const std::string& help, const Labels& labels, const Gauge* g,
               Merge merge = Merge::Sum);
    void histogram(const std::string& name, const std::string& help, const Labels& labels, const Histogram* h);

    std::vector<prometheus::MetricFamily> Collect() const override;

private:
    struct Entry {
        Labels labels;
        const Counter* c = nullptr;
        const Gauge* g = nullptr;
        const Histogram* h = nullptr;
    };
    struct Family {
        std::string name, help;
        prometheus::MetricType type;
        Merge merge = Merge::Sum;
        std::vector<Entry> entries;
    };
    Family& family(const std::string& name, const std::string& help, prometheus::MetricType type);
    std::vector<Family> families_;
};

// Serves `registry` at http://ADDR:PORT/metrics on `threads` threads of its own; a client has
// `timeout_ms` to send its request and take the answer, so slow or hostile clients cannot hold
// the threads for long. Throws std::runtime_error naming the address and the reason when it
// cannot listen. `bound` is set to the address really listened on (port 0: the one chosen).
std::unique_ptr<prometheus::Exposer> serve_metrics(const std::string& addr_port,
                                                   std::shared_ptr<MetricsRegistry> registry, uint32_t threads,
                                                   uint32_t timeout_ms, std::string& bound);

}  // namespace dp::net
