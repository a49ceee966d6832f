package rrl

import (
	"github.com/coredns/coredns/plugin"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are registered with the default Prometheus registry, which the metrics plugin
// (prometheus directive) exports, like the stock plugins do. In report-only mode the dropped
// and slipped counters count what would have been dropped or slipped.
var (
	requestsDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rrl",
		Name:      "requests_dropped_total",
		Help:      "Counter of queries dropped because the client prefix exceeded requests-per-second.",
	}, []string{"server"})

	responsesDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rrl",
		Name:      "responses_dropped_total",
		Help:      "Counter of responses dropped by rate limiting, by response category.",
	}, []string{"server", "category"})

	responsesSlipped = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rrl",
		Name:      "responses_slipped_total",
		Help:      "Counter of rate-limited responses sent as an empty truncated (TC=1) reply, by response category.",
	}, []string{"server", "category"})

	responsesExempt = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rrl",
		Name:      "responses_exempt_total",
		Help:      "Counter of queries in the plugin's zones exempt from rate limiting (TCP clients).",
	}, []string{"server"})

	tableEvictions = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "rrl",
		Name:      "table_evictions_total",
		Help:      "Counter of accounts evicted, least recently used first, because the table was full (max-table-size).",
	}, []string{"server"})
)
