package bridge

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the bridge's Prometheus metrics, in its own registry. The
// backlog gauges read the store's counters at scrape time, so they are
// exactly what /v1/status shows.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec // endpoint, code
	entries   *prometheus.CounterVec // verdict
	refusals  *prometheus.CounterVec // kind
	txs       *prometheus.CounterVec // op (mint, settleWithdrawal, refundWithdrawal)
	orders    *prometheus.CounterVec // result (ok, error)
	errors    *prometheus.CounterVec // worker
	unhandled *prometheus.CounterVec // kind: payout-return, deposit-reversal
	failovers prometheus.Counter
	height    prometheus.Gauge
}

func newMetrics(s *Store) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_bridge_requests_total",
			Help: "Requests to the intake endpoints, by endpoint and HTTP status."}, []string{"endpoint", "code"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_bridge_entries_total",
			Help: "Notification entries and status items, by verdict."}, []string{"verdict"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_bridge_refusals_total",
			Help: "Refused inputs, by kind."}, []string{"kind"}),
		txs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_bridge_txs_sent_total",
			Help: "Transactions signed and sent, by operation."}, []string{"op"}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_bridge_payout_orders_total",
			Help: "Payout orders POSTed to the bank core, by result."}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_bridge_worker_errors_total",
			Help: "Failed worker rounds, by worker."}, []string{"worker"}),
		unhandled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_bridge_unhandled_returns_total",
			Help: "Returns of settled payouts and reversals of minted deposits the bridge could not act on by itself (raised to an operator), by kind."}, []string{"kind"}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_bridge_node_failovers_total",
			Help: "Calls moved to another node endpoint because one did not answer."}),
		height: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tally_bridge_processed_height",
			Help: "The last block the withdrawal follower has read."}),
	}
	m.reg.MustRegister(m.requests, m.entries, m.refusals, m.txs, m.orders, m.errors, m.unhandled, m.failovers, m.height,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, st := range DepositStatuses {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_bridge_deposits",
			Help: "Deposits by status.", ConstLabels: prometheus.Labels{"status": string(st)}},
			func() float64 { return float64(s.Counts().Deposits[st]) }))
	}
	for _, st := range PayoutStatuses {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_bridge_payouts",
			Help: "Payouts by status.", ConstLabels: prometheus.Labels{"status": string(st)}},
			func() float64 { return float64(s.Counts().Payouts[st]) }))
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
