package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	kv "github.com/tally-ledger/tally/internal/pebblekv"
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

func newMetrics(s *Store, now func() time.Time) *metrics {
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
	// The ages of the oldest unresolved records, for alerts
	// (deploy/prometheus/tally-bridge-rules.yml): 0 when none is waiting.
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_bridge_oldest_unresolved_deposit_age_seconds",
		Help: "Age of the oldest deposit not yet minted, reversed or returned (accepted, held, submitted, reversing, return-due); 0 when none."},
		func() float64 {
			d, _, err := s.OldestUnresolved()
			if err != nil {
				return -1
			}
			return ageSeconds(now(), d)
		}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_bridge_oldest_unresolved_payout_age_seconds",
		Help: "Age of the oldest payout not closed on chain, since its withdrawal was seen; 0 when none."},
		func() float64 {
			_, p, err := s.OldestUnresolved()
			if err != nil {
				return -1
			}
			return ageSeconds(now(), p)
		}))
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

// unresolvedDeposits are the deposit statuses that wait for something
// (the outbox, an operator, the chain); their oldest is reported.
var unresolvedDeposits = []DepositStatus{DepositAccepted, DepositHeld, DepositSubmitted, DepositReversing, DepositReturnDue}

// keyUnresolvedIndexed marks a store whose held, reversing and
// return-due deposits are in the q/d/ index (a store written before the
// index covered them is indexed once, at open).
var keyUnresolvedIndexed = []byte("m/unresolved-indexed")

// indexUnresolved adds the q/d/ entries of held, reversing and
// return-due deposits to a store written before they were indexed.
func (s *Store) indexUnresolved() error {
	done, err := s.get(keyUnresolvedIndexed)
	if err != nil || done != nil {
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefixDeposit, UpperBound: kv.UpperBound(prefixDeposit)})
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for it.First(); it.Valid(); it.Next() {
		var d Deposit
		if err := json.Unmarshal(it.Value(), &d); err != nil {
			it.Close()
			return fmt.Errorf("index deposits: decode %x: %w", it.Key(), err)
		}
		if queuedDeposit(d.Status) {
			if err := b.Set(kv.Cat(depQueuePrefix(d.Status), kv.BE8(d.Seq)), d.BankRef[:], nil); err != nil {
				it.Close()
				return err
			}
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("index deposits: %w", err)
	}
	if err := b.Set(keyUnresolvedIndexed, []byte{1}, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// OldestUnresolved returns when the oldest unresolved deposit arrived and
// the oldest unresolved payout was seen (zero times when there is none):
// the first of each status's index, deposits by arrival, payouts by
// withdrawal id (their creation order, but for a payout an operator
// recorded late by cancelling it).
func (s *Store) OldestUnresolved() (deposit, payout time.Time, err error) {
	for _, st := range unresolvedDeposits {
		ds, err := s.QueuedDeposits(st, 1)
		if err != nil {
			return deposit, payout, err
		}
		if len(ds) == 1 && (deposit.IsZero() || ds[0].ReceivedAt.Before(deposit)) {
			deposit = ds[0].ReceivedAt
		}
	}
	for _, st := range PayoutStatuses {
		if st == PayoutClosed {
			continue
		}
		ps, err := s.QueuedPayouts(st, 1)
		if err != nil {
			return deposit, payout, err
		}
		if len(ps) == 1 && (payout.IsZero() || ps[0].CreatedAt.Before(payout)) {
			payout = ps[0].CreatedAt
		}
	}
	return deposit, payout, nil
}

// ageSeconds is how long ago t was, 0 for the zero time.
func ageSeconds(now, t time.Time) float64 {
	if t.IsZero() || now.Before(t) {
		return 0
	}
	return now.Sub(t).Seconds()
}
