package merchant

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-ledger/tally/internal/deploytest"
)

// TestDashboardMetrics: every tally_merchant_ metric the Grafana dashboard
// (deploy/grafana/tally-dashboard.json) queries is one the notifier
// exports (a typo draws an empty panel), and every one it exports is on
// the dashboard; e2e TestDashboard runs the queries against a real
// Prometheus scraping a real notifier.
func TestDashboardMetrics(t *testing.T) {
	e := newEnv(t)
	n, err := New(e.cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, v := range []*prometheus.CounterVec{n.metrics.events, n.metrics.errors, n.metrics.webhooks, n.metrics.webhookDropped} {
		v.WithLabelValues("x")
	}
	mfs, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
	}
	dash, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "tally-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	unknown, unshown, shown, err := deploytest.ServiceMetrics(dash, "tally_merchant_", exported)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range unknown {
		t.Errorf("the dashboard uses %s, which the notifier does not export", name)
	}
	for _, name := range unshown {
		t.Errorf("the notifier exports %s, which no dashboard panel shows", name)
	}
	if shown == 0 {
		t.Fatal("the dashboard shows no tally_merchant_ metric")
	}
}
