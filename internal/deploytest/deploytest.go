package deploytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// RuleFile is a Prometheus rules file
// (https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/).
type RuleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []Rule `yaml:"rules"`
	} `yaml:"groups"`
}

// Rule is one alerting rule.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// ReadRules decodes a rules file strictly (an unknown field is an error,
// as promtool has it).
func ReadRules(path string) (*RuleFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rf RuleFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &rf, nil
}

// MetricNames returns the metric names a PromQL expression selects.
func MetricNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, nil
}

// labelValues matches a Grafana variable query label_values(metric, label).
var labelValues = regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?, *[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// gridWidth is the width of Grafana's dashboard grid.
const gridWidth = 24

// panelTypes are the panel types the dashboard may use (Grafana's core
// panels).
var panelTypes = map[string]bool{"row": true, "timeseries": true, "stat": true, "gauge": true, "bargauge": true, "table": true, "text": true}

// Dashboard checks a Grafana dashboard's JSON model
// (https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/)
// as Grafana needs it to import it and draw every panel: a title and a
// uid Grafana accepts, a schemaVersion, panels with unique ids, known
// types and titles, laid out inside the 24-column grid without
// overlapping, each query with a unique refId and a PromQL expression
// that parses, and every $variable defined in templating. It returns the
// metric names the dashboard uses, sorted.
func Dashboard(data []byte) ([]string, error) {
	var d struct {
		UID           string            `json:"uid"`
		Title         string            `json:"title"`
		SchemaVersion int               `json:"schemaVersion"`
		Panels        []json.RawMessage `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if d.Title == "" || !regexp.MustCompile(`^[a-zA-Z0-9_-]{1,40}$`).MatchString(d.UID) || d.SchemaVersion < 30 || len(d.Panels) == 0 {
		return nil, fmt.Errorf("dashboard: needs a title, a uid of 1-40 letters, digits, - or _, schemaVersion >= 30 and panels (title %q, uid %q, schemaVersion %d, %d panels)",
			d.Title, d.UID, d.SchemaVersion, len(d.Panels))
	}
	names := map[string]bool{}
	vars := map[string]bool{"__interval": true, "__rate_interval": true, "__range": true}
	for _, v := range d.Templating.List {
		if v.Name == "" || v.Type == "" || vars[v.Name] {
			return nil, fmt.Errorf("templating: variable %q: needs a unique name and a type", v.Name)
		}
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			return nil, fmt.Errorf("templating: variable %s: query: %w", v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			return nil, fmt.Errorf("templating: variable %s: %q is not label_values(metric, label)", v.Name, q.Query)
		}
		names[m[1]] = true
	}
	type rect struct{ x, y, w, h int }
	var placed []rect
	ids := map[int]bool{}
	varRef := regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)`)
	for i, raw := range d.Panels {
		var p struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct {
				H, W, X, Y int
			} `json:"gridPos"`
			Datasource *struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("panel %d: %w", i, err)
		}
		where := fmt.Sprintf("panel %d (%q)", p.ID, p.Title)
		if p.ID < 1 || ids[p.ID] {
			return nil, fmt.Errorf("%s: ids must be unique and positive", where)
		}
		ids[p.ID] = true
		if !panelTypes[p.Type] || p.Title == "" {
			return nil, fmt.Errorf("%s: type %q: needs a known type and a title", where, p.Type)
		}
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > gridWidth {
			return nil, fmt.Errorf("%s: gridPos %+v is outside the %d-column grid", where, g, gridWidth)
		}
		r := rect{g.X, g.Y, g.W, g.H}
		for _, o := range placed {
			if r.x < o.x+o.w && o.x < r.x+r.w && r.y < o.y+o.h && o.y < r.y+r.h {
				return nil, fmt.Errorf("%s: gridPos %+v overlaps another panel", where, g)
			}
		}
		placed = append(placed, r)
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || len(p.Targets) == 0 {
			return nil, fmt.Errorf("%s: needs a prometheus datasource and targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				return nil, fmt.Errorf("%s: refId %q: each target needs a unique refId", where, tg.RefID)
			}
			refs[tg.RefID] = true
			for _, m := range varRef.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] {
					return nil, fmt.Errorf("%s: %q uses $%s, which templating does not define", where, tg.Expr, m[1])
				}
			}
			used, err := MetricNames(tg.Expr)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %w", where, tg.Expr, err)
			}
			if len(used) == 0 {
				return nil, fmt.Errorf("%s: %q selects no metric", where, tg.Expr)
			}
			for _, n := range used {
				names[n] = true
			}
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Exposed returns the metric names in a Prometheus text exposition (a
// /metrics scrape), histogram series included (name_bucket, _sum, _count).
func Exposed(scrape string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(scrape, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		names[name] = true
	}
	return names
}

// ServiceMetrics compares a service's own metrics on a dashboard (those
// named with prefix, "tally_monitor_") with those it exports: unknown
// are the ones the dashboard queries that the service does not export
// (a renamed metric leaves an empty panel), unshown the ones it exports
// that no panel shows; shown counts the service's metrics the dashboard
// queries. Dashboard checks the model first.
func ServiceMetrics(dashboard []byte, prefix string, exported map[string]bool) (unknown, unshown []string, shown int, err error) {
	names, err := Dashboard(dashboard)
	if err != nil {
		return nil, nil, 0, err
	}
	queried := map[string]bool{}
	for _, name := range names {
		if strings.HasPrefix(name, prefix) {
			queried[name] = true
			if !exported[name] {
				unknown = append(unknown, name)
			}
		}
	}
	for name := range exported {
		if strings.HasPrefix(name, prefix) && !queried[name] {
			unshown = append(unshown, name)
		}
	}
	sort.Strings(unshown)
	return unknown, unshown, len(queried), nil
}
