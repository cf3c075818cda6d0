package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-ledger/tally/internal/deploytest"
)

// TestDeployMetrics: every metric the node alert rules
// (deploy/prometheus/tally-node-rules.yml) and the Grafana dashboard
// (deploy/grafana/tally-dashboard.json) name, except the bridge's, the
// risk monitor's and the merchant notifier's (their tests check those), is one a running cluster node exports, so a renamed
// metric cannot leave an alert that never fires or an empty panel; the
// rules cover what operators asked for; the dashboard is a JSON model
// Grafana can import (deploytest.Dashboard). promtool checks and
// unit-tests the rules in make test.
func TestDeployMetrics(t *testing.T) {
	n := startTestnet(t, 1)[0]
	// A vector shows in a scrape once it has a child.
	n.memberChanges.WithLabelValues("test")
	exported := deploytest.Exposed(metricsOf(t, n))

	rules, err := deploytest.ReadRules(filepath.Join("..", "deploy", "prometheus", "tally-node-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || alerts[r.Alert] || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rule %q: an alert needs a unique name, a severity, a summary and a description", r.Alert)
			}
			alerts[r.Alert] = true
			names, err := deploytest.MetricNames(r.Expr)
			if err != nil || len(names) == 0 {
				t.Errorf("%s: expr %q: %v, names %v", r.Alert, r.Expr, err, names)
			}
			for _, name := range names {
				if !exported[name] {
					t.Errorf("%s uses %s, which the node does not export", r.Alert, name)
				}
			}
		}
	}
	for _, want := range []string{"TallyNodeHalted", "TallyNoLeader", "TallyCertificateLag", "TallyApplyLag", "TallyMempoolNearFull",
		"TallyRaftCommitSlow", "TallyDiskSpaceLow", "TallyDiskSpaceCritical", "TallyDiskUnreadable", "TallyNodeDown"} {
		if !alerts[want] {
			t.Errorf("no alert %s in the node rules", want)
		}
	}

	data, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "tally-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := deploytest.Dashboard(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if !strings.HasPrefix(name, "tally_bridge_") && !strings.HasPrefix(name, "tally_monitor_") && !strings.HasPrefix(name, "tally_merchant_") && !exported[name] {
			t.Errorf("the dashboard uses %s, which the node does not export", name)
		}
	}
	if free, size := diskSpace(n.cfg.DataDir); free <= 0 || size < free {
		t.Errorf("data dir disk: %v free of %v", free, size)
	}
}
