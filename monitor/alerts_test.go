package monitor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/internal/deploytest"
)

// TestAlertRules: every tally_monitor_ metric that
// deploy/prometheus/tally-monitor-rules.yml or the Grafana dashboard
// names is one the monitor exports (a renamed metric cannot leave an
// alert that never fires or an empty panel), and the dashboard shows
// every one; promtool checks the rules and runs their unit tests (make
// deploy-check).
func TestAlertRules(t *testing.T) {
	ch := chaintest.New(t)
	m := openOn(t, ch, testConfig(t))
	for _, v := range []*prometheus.CounterVec{m.metrics.actions, m.metrics.errors, m.metrics.webhooks, m.metrics.webhookDropped, m.metrics.freezes} {
		v.WithLabelValues("x")
	}
	m.metrics.alerts.WithLabelValues("x", "y")
	mfs, err := m.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
	}
	rf, err := deploytest.ReadRules(filepath.Join("..", "deploy", "prometheus", "tally-monitor-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			names, err := deploytest.MetricNames(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
			}
			for _, name := range names {
				if strings.HasPrefix(name, "tally_monitor_") {
					n++
					if !exported[name] {
						t.Errorf("%s uses %s, which the monitor does not export", r.Alert, name)
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("the rules name no tally_monitor_ metric")
	}

	// The Grafana dashboard's monitor panels too (node/deploy_test.go
	// checks the node's, bridge/alerts_test.go the bridge's).
	dash, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "tally-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Every metric the monitor exports of its own is on the dashboard.
	unknown, unshown, _, err := deploytest.ServiceMetrics(dash, "tally_monitor_", exported)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range unknown {
		t.Errorf("the dashboard uses %s, which the monitor does not export", name)
	}
	for _, name := range unshown {
		t.Errorf("the monitor exports %s, which no dashboard panel shows", name)
	}
}

// TestQueueMetrics: the unresolved gauges count open and acknowledged
// alerts by rule and severity, and the queue age is the oldest one's age
// from its block's time; a closed alert leaves both.
func TestQueueMetrics(t *testing.T) {
	ch := chaintest.New(t)
	ch.Apply(ch.Tx(7, addr(8), cny(25000), nil)) // new payee
	ch.Apply(ch.Tx(2, addr(3), cny(30000), nil)) // new payee
	m := openOn(t, ch, testConfig(t))
	catchUp(t, m)
	as := allAlerts(t, m)
	if len(as) != 2 {
		t.Fatalf("%d alerts, want 2", len(as))
	}
	now := as[0].At.Add(time.Hour)
	m.now = func() time.Time { return now }
	gauge := func() (unresolved, age float64) {
		mfs, err := m.metrics.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, x := range mf.GetMetric() {
				switch mf.GetName() {
				case "tally_monitor_unresolved_alerts":
					labels := map[string]string{}
					for _, l := range x.GetLabel() {
						labels[l.GetName()] = l.GetValue()
					}
					if labels["rule"] == RuleNewPayee && labels["severity"] == string(SeverityMedium) {
						unresolved = x.GetGauge().GetValue()
					}
				case "tally_monitor_oldest_unresolved_alert_age_seconds":
					age = x.GetGauge().GetValue()
				}
			}
		}
		return unresolved, age
	}
	if u, a := gauge(); u != 2 || a != 3600 {
		t.Fatalf("unresolved %v, age %v; want 2, 3600", u, a)
	}
	if _, err := m.Review(as[0].ID, "alice", ActionDismiss, "known payee"); err != nil {
		t.Fatal(err)
	}
	if u, a := gauge(); u != 1 || a != 3600-1 {
		t.Fatalf("after a dismissal: unresolved %v, age %v; want 1, 3599 (the second alert is a block later)", u, a)
	}
}
