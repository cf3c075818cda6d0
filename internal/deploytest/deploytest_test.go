package deploytest

import (
	"slices"
	"strings"
	"testing"
)

// TestDashboard: a well-formed dashboard gives its metric names; each
// defect Grafana would trip on is named.
func TestDashboard(t *testing.T) {
	const good = `{"uid": "tally-x", "title": "T", "schemaVersion": 39,
  "templating": {"list": [{"name": "job", "type": "query", "query": {"query": "label_values(tally_block_height, job)"}}]},
  "panels": [
    {"id": 1, "type": "row", "title": "R", "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}},
    {"id": 2, "type": "timeseries", "title": "A", "gridPos": {"h": 8, "w": 12, "x": 0, "y": 1}, "datasource": {"type": "prometheus", "uid": "${job}"},
     "targets": [{"refId": "A", "expr": "rate(tally_txs_applied_total{job=~\"$job\"}[1m])"}]},
    {"id": 3, "type": "stat", "title": "B", "gridPos": {"h": 8, "w": 12, "x": 12, "y": 1}, "datasource": {"type": "prometheus", "uid": "x"},
     "targets": [{"refId": "A", "expr": "tally_mempool_size / tally_mempool_capacity"}]}]}`
	names, err := Dashboard([]byte(good))
	if err != nil || !slices.Equal(names, []string{"tally_block_height", "tally_mempool_capacity", "tally_mempool_size", "tally_txs_applied_total"}) {
		t.Fatalf("good dashboard: %v, %v", names, err)
	}
	for _, c := range []struct{ old, new, want string }{
		{`"uid": "tally-x"`, `"uid": "tally x"`, "uid"},
		{`"schemaVersion": 39`, `"schemaVersion": 16`, "schemaVersion"},
		{`"id": 3,`, `"id": 2,`, "unique"},
		{`"type": "stat"`, `"type": "graph"`, "known type"},
		{`"x": 12, "y": 1`, `"x": 11, "y": 1`, "overlaps"},
		{`"w": 12, "x": 12`, `"w": 13, "x": 12`, "outside"},
		{`"refId": "A", "expr": "tally_mempool_size`, `"refId": "", "expr": "tally_mempool_size`, "refId"},
		{`rate(tally_txs_applied_total{job=~\"$job\"}[1m])`, `rate(tally_txs_applied_total{job=~\"$node\"}[1m])`, "$node"},
		{`tally_mempool_size / tally_mempool_capacity`, `tally_mempool_size / `, "parse error"},
		{`label_values(tally_block_height, job)`, `up`, "label_values"},
		{`"type": "prometheus", "uid": "x"`, `"type": "loki", "uid": "x"`, "prometheus datasource"},
		{`{"uid"`, `[{"uid"`, "dashboard"},
	} {
		bad := strings.Replace(good, c.old, c.new, 1)
		if bad == good {
			t.Fatalf("mutation %q not applied", c.old)
		}
		if _, err := Dashboard([]byte(bad)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q -> %q: error %v, want it to mention %q", c.old, c.new, err, c.want)
		}
	}
}

func TestExposed(t *testing.T) {
	got := Exposed("# HELP a x\n# TYPE a counter\na 1\nb{x=\"1\"} 2\nh_bucket{le=\"1\"} 3\n")
	if len(got) != 3 || !got["a"] || !got["b"] || !got["h_bucket"] {
		t.Fatalf("%v", got)
	}
}
