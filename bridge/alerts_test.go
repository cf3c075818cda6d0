package bridge

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/tally-ledger/tally/internal/deploytest"
	kv "github.com/tally-ledger/tally/internal/pebblekv"
)

// alertRules is the shape of a Prometheus rules file with alerting rules
// (https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/).
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules checks deploy/prometheus/tally-bridge-rules.yml as
// `promtool check rules` would, with Prometheus's own PromQL parser: the
// YAML strict (an unknown field is an error), every expression PromQL
// that yields a vector, every `for` a Prometheus duration, every
// annotation a template Prometheus can expand, and every tally_bridge_
// metric an expression names one this bridge exports (a renamed metric
// cannot leave an alert that never fires).
func TestAlertRules(t *testing.T) {
	path := filepath.Join("..", "deploy", "prometheus", "tally-bridge-rules.yml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf alertRules
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s, err := OpenStore(t.TempDir(), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := newMetrics(s, time.Now)
	// A vector shows in a scrape once it has a child.
	m.requests.WithLabelValues("x", "200")
	for _, v := range []interface {
		WithLabelValues(...string) prometheus.Counter
	}{m.entries, m.refusals, m.txs, m.orders, m.errors, m.unhandled} {
		v.WithLabelValues("x")
	}
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
	}
	// Prometheus expands annotations with these variables defined and its
	// template functions; parsing needs the names only.
	funcs := template.FuncMap{"humanizeDuration": func(any) string { return "" }, "humanize": func(any) string { return "" }}
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}"
	alerts := map[string]bool{}
	p := parser.NewParser(parser.Options{})
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a name and rules are required", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || alerts[r.Alert] || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q: an alert needs a unique name, a severity and a summary", r.Alert)
			}
			alerts[r.Alert] = true
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: expr: %v", r.Alert, err)
				continue
			}
			if vt := expr.Type(); vt != parser.ValueTypeVector {
				t.Errorf("%s: expr is a %s, an alert needs an instant vector", r.Alert, vt)
			}
			named := false
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok && strings.HasPrefix(vs.Name, "tally_bridge_") {
					named = true
					if !exported[vs.Name] {
						t.Errorf("%s uses %s, which the bridge does not export", r.Alert, vs.Name)
					}
				}
				return nil
			})
			if !named {
				t.Errorf("%s: names no tally_bridge_ metric", r.Alert)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", r.Alert, err)
				}
			}
			for k, v := range r.Annotations {
				if _, err := template.New(k).Funcs(funcs).Parse(defs + v); err != nil {
					t.Errorf("%s: annotation %s: %v", r.Alert, k, err)
				}
			}
		}
	}
	for _, want := range []string{"TallyBridgeDepositWaiting", "TallyBridgePayoutWaiting", "TallyBridgeBacklog", "TallyBridgeFollowerBehind"} {
		if !alerts[want] {
			t.Errorf("no alert %s in %s", want, path)
		}
	}

	// The Grafana dashboard's bridge panels too (node/deploy_test.go
	// checks the rest of it).
	dash, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "tally-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := deploytest.Dashboard(dash)
	if err != nil {
		t.Fatal(err)
	}
	bridgePanels := 0
	for _, name := range names {
		if strings.HasPrefix(name, "tally_bridge_") {
			bridgePanels++
			if !exported[name] {
				t.Errorf("the dashboard uses %s, which the bridge does not export", name)
			}
		}
	}
	if bridgePanels == 0 {
		t.Error("the dashboard shows no bridge metric")
	}
}

// TestOldestUnresolvedGauges: the age gauges read the oldest deposit and
// payout still waiting, 0 when none waits, and a store written before
// held deposits were indexed is indexed at open.
func TestOldestUnresolvedGauges(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	gauges := func(s *Store) (dep, pay float64) {
		t.Helper()
		mfs, err := newMetrics(s, func() time.Time { return now }).reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			switch mf.GetName() {
			case "tally_bridge_oldest_unresolved_deposit_age_seconds":
				dep = mf.GetMetric()[0].GetGauge().GetValue()
			case "tally_bridge_oldest_unresolved_payout_age_seconds":
				pay = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return dep, pay
	}
	if d, p := gauges(s); d != 0 || p != 0 {
		t.Fatalf("empty store: %v, %v; want 0, 0", d, p)
	}
	dep := func(ref string, st DepositStatus, age time.Duration) *Deposit {
		k := DepositKey{Account: "A", Ref: ref}
		return &Deposit{BankRef: k.BankRef(common.Address{1}, "HKD"), Key: k, Ref: ref, Status: st, ReceivedAt: now.Add(-age)}
	}
	if _, err := s.AddDeposits([]*Deposit{dep("MINTED", DepositMinted, 5*time.Hour), dep("HELD", DepositHeld, 2*time.Hour),
		dep("NEW", DepositAccepted, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddPayouts([]*Payout{{ID: 1, Status: PayoutClosed, CreatedAt: now.Add(-9 * time.Hour)},
		{ID: 2, Status: PayoutOrdered, CreatedAt: now.Add(-3 * time.Hour)}, {ID: 3, Status: PayoutNew, CreatedAt: now.Add(-time.Minute)}}, 1); err != nil {
		t.Fatal(err)
	}
	if d, p := gauges(s); d != 7200 || p != 10800 {
		t.Fatalf("gauges %v, %v; want 7200 (the held deposit), 10800 (the ordered payout)", d, p)
	}
	// A store from before held deposits were indexed.
	if err := s.db.DeleteRange(prefixDepQueue, kv.UpperBound(prefixDepQueue), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Delete(keyUnresolvedIndexed, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if d, _ := gauges(s); d != 0 {
		t.Fatalf("index removed, gauge %v", d)
	}
	s.Close()
	if s, err = OpenStore(dir, 10, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d, _ := gauges(s); d != 7200 {
		t.Fatalf("reopened store: deposit gauge %v, want 7200", d)
	}
}
