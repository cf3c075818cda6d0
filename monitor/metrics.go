package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the monitor's Prometheus metrics, in its own registry
// (deploy/prometheus/tally-monitor-rules.yml alerts on them).
type metrics struct {
	reg            *prometheus.Registry
	alerts         *prometheus.CounterVec // rule, severity
	actions        *prometheus.CounterVec // action
	errors         *prometheus.CounterVec // worker
	webhooks       *prometheus.CounterVec // result
	webhookDropped *prometheus.CounterVec // why
	freezes        *prometheus.CounterVec // result
	blocks         prometheus.Counter
	transfers      prometheus.Counter
	height, head   prometheus.Gauge
}

func newMetrics(m *Monitor) *metrics {
	x := &metrics{
		reg: prometheus.NewRegistry(),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_monitor_alerts_total",
			Help: "Alerts raised, by rule and severity (a firing absorbed by an unresolved alert of its rule and account is not counted)."}, []string{"rule", "severity"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_monitor_review_actions_total",
			Help: "Review actions taken, by action."}, []string{"action"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_monitor_worker_errors_total",
			Help: "Failed worker rounds, by worker (follower, webhook, freeze)."}, []string{"worker"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_monitor_webhook_attempts_total",
			Help: "Webhook POSTs, by result (delivered, failed)."}, []string{"result"}),
		webhookDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_monitor_webhook_dropped_total",
			Help: "Notifications given up, by why (max-age: failing for webhook.max-age; outbox-full: webhook.max-pending reached)."}, []string{"why"}),
		freezes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_monitor_freezes_total",
			Help: "Escalation freezes, by result (sent, done, failed)."}, []string{"result"}),
		blocks: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_monitor_blocks_total",
			Help: "Blocks judged."}),
		transfers: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_monitor_transfers_total",
			Help: "Transfers judged."}),
		height: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tally_monitor_height",
			Help: "The last block judged."}),
		head: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tally_monitor_node_head",
			Help: "The node's head when the follower last asked."}),
	}
	x.reg.MustRegister(x.alerts, x.actions, x.errors, x.webhooks, x.webhookDropped, x.freezes, x.blocks, x.transfers, x.height, x.head,
		&queueCollector{m: m},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_monitor_webhook_pending",
			Help: "Notifications in the outbox."}, func() float64 { return float64(m.pendingCount()) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return x
}

var (
	descUnresolved = prometheus.NewDesc("tally_monitor_unresolved_alerts",
		"Alerts open or acknowledged, by rule and severity.", []string{"rule", "severity"}, nil)
	descOldest = prometheus.NewDesc("tally_monitor_oldest_unresolved_alert_age_seconds",
		"Age of the oldest open or acknowledged alert (from its block's time); 0 when none.", nil, nil)
)

// queueCollector reads the queue at scrape time, so the gauges are what
// the review API lists.
type queueCollector struct{ m *Monitor }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUnresolved
	ch <- descOldest
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	as, err := c.m.store.Unresolved()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descUnresolved, err)
		return
	}
	counts := map[[2]string]int{}
	for _, r := range Rules {
		for _, s := range Severities {
			counts[[2]string{r, string(s)}] = 0
		}
	}
	oldest := 0.0
	now := c.m.now()
	for _, a := range as {
		counts[[2]string{a.Rule, string(a.Severity)}]++
		oldest = max(oldest, now.Sub(a.At).Seconds())
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descUnresolved, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, oldest)
}
