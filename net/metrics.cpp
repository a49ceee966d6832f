#include "net/metrics.hpp"

#include <prometheus/metric_family.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "net/sockets.hpp"

namespace dp::net {

MetricsRegistry::Family& MetricsRegistry::family(const std::string& name, const std::string& help,
                                                 prometheus::MetricType type) {
    for (auto& f : families_)
        if (f.name == name) return f;
    families_.push_back(Family{name, help, type, Merge::Sum, {}});
    return families_.back();
}

void MetricsRegistry::counter(const std::string& name, const std::string& help, const Labels& labels,
                              const Counter* c) {
    family(name, help, prometheus::MetricType::Counter).entries.push_back(Entry{labels, c, nullptr, nullptr});
}

void MetricsRegistry::gauge(const std::string& name, const std::string& help, const Labels& labels,
                            const Gauge* g, Merge merge) {
    Family& f = family(name, help, prometheus::MetricType::Gauge);
    f.merge = merge;
    f.entries.push_back(Entry{labels, nullptr, g, nullptr});
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
        std::map<Labels, size_t> index;  // labels -> position in mf.metric (threads merge here)
        for (const auto& e : f.entries) {
            const auto [it, fresh] = index.emplace(e.labels, mf.metric.size());
            if (fresh) {
                prometheus::ClientMetric m;
                for (const auto& [k, v] : e.labels) m.label.push_back({k, v});
                if (e.g) m.gauge.value = static_cast<double>(e.g->value());
                if (e.h) {
                    for (size_t i = 0; i <= Histogram::kBoundsNs.size(); ++i) {
                        prometheus::ClientMetric::Bucket b;
                        b.upper_bound = i < Histogram::kBoundsNs.size()
                                            ? static_cast<double>(Histogram::kBoundsNs[i]) / 1e9
                                            : std::numeric_limits<double>::infinity();
                        m.histogram.bucket.push_back(b);
                    }
                }
                mf.metric.push_back(std::move(m));
            }
            prometheus::ClientMetric& m = mf.metric[it->second];
            if (e.c) {
                m.counter.value += static_cast<double>(e.c->value());
            } else if (e.g) {
                const double v = static_cast<double>(e.g->value());
                if (!fresh) m.gauge.value = f.merge == Merge::Min ? std::min(m.gauge.value, v) : m.gauge.value + v;
            } else if (e.h) {
                uint64_t cumulative = 0;
                for (size_t i = 0; i <= Histogram::kBoundsNs.size(); ++i) {
                    cumulative += e.h->bucket(i);
                    m.histogram.bucket[i].cumulative_count += cumulative;
                }
                m.histogram.sample_count += cumulative;
                m.histogram.sample_sum += static_cast<double>(e.h->sum_ns()) / 1e9;
            }
        }
        out.push_back(std::move(mf));
    }
    return out;
}

std::unique_ptr<prometheus::Exposer> serve_metrics(const std::string& addr_port,
                                                   std::shared_ptr<MetricsRegistry> registry, uint32_t threads,
                                                   uint32_t timeout_ms, std::string& bound) {
    std::string host, err;
    uint16_t port = 0;
    if (!parse_host_port(addr_port, host, port, err)) throw std::runtime_error("metrics: " + err);
    // civetweb only says it could not bind; find out why ourselves first.
    const int probe = bind_socket(host, port, SOCK_STREAM, false, err);
    if (probe < 0) throw std::runtime_error("metrics: " + err);
    ::close(probe);
    std::unique_ptr<prometheus::Exposer> exposer;
    const std::string timeout = std::to_string(timeout_ms);
    try {
        // civetweb wants IPv6 addresses in brackets, which is also how we take them.
        exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
            "listening_ports", format_host_port(host, port), "num_threads", std::to_string(threads),
            "request_timeout_ms", timeout, "keep_alive_timeout_ms", timeout});
    } catch (const std::exception& e) {
        throw std::runtime_error("metrics: cannot listen on " + format_host_port(host, port) + ": " + e.what());
    }
    exposer->RegisterCollectable(registry);
    const std::vector<int> ports = exposer->GetListeningPorts();
    bound = format_host_port(host, ports.empty() ? port : static_cast<uint16_t>(ports.front()));
    return exposer;
}

}  // namespace dp::net
