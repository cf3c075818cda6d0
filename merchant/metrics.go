package merchant

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the notifier's Prometheus metrics, in its own registry.
type metrics struct {
	reg            *prometheus.Registry
	events         *prometheus.CounterVec // event
	errors         *prometheus.CounterVec // worker
	webhooks       *prometheus.CounterVec // result
	webhookDropped *prometheus.CounterVec // why
	unmatched      prometheus.Counter
	height         prometheus.Gauge
}

func newMetrics(n *Notifier) *metrics {
	x := &metrics{
		reg: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_merchant_order_events_total",
			Help: "Payments and refunds matched to orders, by event (order.paid, order.partially_paid, order.overpaid, order.refunded, order.disputed, order.dispute_closed, order.expired)."}, []string{"event"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_merchant_worker_errors_total",
			Help: "Failed worker rounds, by worker (follower, webhook)."}, []string{"worker"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_merchant_webhook_attempts_total",
			Help: "Webhook POSTs, by result (delivered, failed)."}, []string{"result"}),
		webhookDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_merchant_webhook_dropped_total",
			Help: "Notifications given up, by why (max-age: failing for webhook.max-age; outbox-full: webhook.max-pending reached)."}, []string{"why"}),
		unmatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_merchant_unmatched_total",
			Help: "Payments to and refunds from the payees under a reference no order has, or in another asset or to another payee than the order's."}),
		height: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tally_merchant_height",
			Help: "The last block read."}),
	}
	x.reg.MustRegister(x.events, x.errors, x.webhooks, x.webhookDropped, x.unmatched, x.height,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_merchant_webhook_pending",
			Help: "Notifications in the outbox."}, func() float64 {
			if n.outbox == nil {
				return 0
			}
			return float64(n.outbox.Pending())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_merchant_orders",
			Help: "Orders registered (orders.max bounds them)."}, func() float64 {
			count, err := n.store.Orders()
			if err != nil {
				return math.NaN()
			}
			return float64(count)
		}),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return x
}
