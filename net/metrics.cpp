#include "net/metrics.hpp"

#include <prometheus/metric_family.h>

#include <stdexcept>

namespace dp::net {

MetricsRegistry::Family& MetricsRegistry::family(const std::string& name, const std::string& help,
                                                 prometheus::MetricType type) {
    for (auto& f : families_)
        if (f.name == name) return f;
    families_.push_back(Family{name, help, type, {}});
    return families_.back();
}

void MetricsRegistry::counter(const std::string& name, const std::string& help, const Labels& labels,
                              const Counter* c) {
    family(name, help, prometheus::MetricType::Counter).entries.push_back(Entry{labels, c, nullptr, nullptr});
}

void MetricsRegistry::gauge(const std::string& name, const std::string& help, const Labels& labels,
                            const Gauge* g) {
    family(name, help, prometheus::MetricType::Gauge).entries.push_back(Entry{labels, nullptr, g, nullptr});
}

void MetricsRegistry::histogram(const std::string& name, const std::string& help, const Labels& labels,
                                const Histogram* h) {
    family(name, help, prometheus::MetricType::Histogram).entries.push_back(Entry{labels, nullptr, nullptr, h});
}

std::vector<prometheus::MetricFamily> MetricsRegistry::Collect() const {
    std::vector<prometheus::MetricFamily> out;
    out.reserve(families_.size());
    for (const auto& f : families_) {
        prometheus::MetricFamily mf;
        mf.name = f.name;
        mf.help = f.help;
        mf.type = f.type;
        for (const auto& e : f.entries) {
            prometheus::ClientMetric m;
            for (const auto& [k, v] : e.labels) m.label.push_back({k, v});
            if (e.c) {
                m.counter.value = static_cast<double>(e.c->value());
            } else if (e.g) {
                m.gauge.value = static_cast<double>(e.g->value());
            } else if (e.h) {
                uint64_t cumulative = 0;
                for (size_t i = 0; i < Histogram::kBoundsNs.size(); ++i) {
                    cumulative += e.h->bucket(i);
                    prometheus::ClientMetric::Bucket b;
                    b.upper_bound = static_cast<double>(Histogram::kBoundsNs[i]) / 1e9;
                    b.cumulative_count = cumulative;
                    m.histogram.bucket.push_back(b);
                }
                cumulative += e.h->bucket(Histogram::kBoundsNs.size());
                prometheus::ClientMetric::Bucket inf;
                inf.upper_bound = std::numeric_limits<double>::infinity();
                inf.cumulative_count = cumulative;
                m.histogram.bucket.push_back(inf);
                m.histogram.sample_count = cumulative;
                m.histogram.sample_sum = static_cast<double>(e.h->sum_ns()) / 1e9;
            }
            mf.metric.push_back(std::move(m));
        }
        out.push_back(std::move(mf));
    }
    return out;
}

std::unique_ptr<prometheus::Exposer> serve_metrics(const std::string& addr_port,
                                                   std::shared_ptr<MetricsRegistry> registry) {
    std::unique_ptr<prometheus::Exposer> exposer;
    try {
        // civetweb wants IPv6 addresses in brackets, which is also how we take them.
        exposer = std::make_unique<prometheus::Exposer>(addr_port, 2);
    } catch (const std::exception& e) {
        throw std::runtime_error("metrics: cannot listen on " + addr_port + ": " + e.what());
    }
    exposer->RegisterCollectable(registry);
    return exposer;
}

}  // namespace dp::net
