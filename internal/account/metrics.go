package account

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics on maddy's openmetrics endpoint. Labels carry the account name
// and fixed words only: never an address, a host or anything secret.
var (
	messagesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "messages_total",
		Help: "Upstream messages by outcome: delivered, refused, too_large, adopted.",
	}, []string{"account", "outcome"})
	bytesDelivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "delivered_bytes_total",
		Help: "Bytes of the messages delivered into maddy.",
	}, []string{"account"})
	labelCopiesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "label_copies_total",
		Help: "Local copies of delivered messages stored for their further Gmail labels, without a download.",
	}, []string{"account"})
	pollsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "polls_total",
		Help: "Polls by result: ok, or the kind of error (auth, busy, folder, connection, delivery, internal).",
	}, []string{"account", "result"})
	pollDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "poll_duration_seconds",
		Help:    "Duration of polls.",
		Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 1800},
	}, []string{"account"})
	lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "last_success_timestamp_seconds",
		Help: "Unix time of the last successful poll.",
	}, []string{"account"})
	accountState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "state",
		Help: "1 for the account's current state (starting, polling, ok, idle, folder failing, backing off, auth failed, upstream busy, re-consent needed, over quota, throttled, paced), 0 for the others.",
	}, []string{"account", "state"})
	connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "connections",
		Help: "Upstream connections open now (polls and IDLE), at most max_connections.",
	}, []string{"account"})
	resumeAt = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "resume_timestamp_seconds",
		Help: "Unix time before which the account makes no connection (over quota, throttled, paced); 0 when not paused.",
	}, []string{"account"})
	budgetLeft = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "download_budget_left_bytes",
		Help: "What is left of the account's download_budget in the last 24 hours (accounts with a budget only).",
	}, []string{"account"})
	pendingBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "maddy", Subsystem: "remote_pull", Name: "pending_bytes",
		Help: "Bytes the upstream listings showed waiting for a download.",
	}, []string{"account"})
)

func init() {
	prometheus.MustRegister(messagesTotal, bytesDelivered, labelCopiesTotal, pollsTotal, pollDuration, lastSuccess, accountState,
		connections, resumeAt, budgetLeft, pendingBytes)
}

func setStateMetric(account, state string) {
	for _, s := range states {
		v := 0.0
		if string(s) == state {
			v = 1
		}
		accountState.WithLabelValues(account, string(s)).Set(v)
	}
}
