package dashconsole

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	dashboardPath = filepath.Join("..", "..", "deploy", "grafana", "tally-dashboard.json")
	consolePath   = filepath.Join("..", "..", "deploy", "prometheus", "consoles", "tally.html")
)

// TestConsoleIsCurrent: the checked-in console is what the dashboard
// gives.
func TestConsoleIsCurrent(t *testing.T) {
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Generate(data)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(consolePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatalf("%s is not what %s gives: run go generate ./internal/dashconsole", consolePath, dashboardPath)
	}
}

// sample is what the stub of Prometheus' query function returns.
type sample struct {
	Labels map[string]string
	Value  float64
}

// render executes a console as Prometheus does (html/template, its
// function names), with prom.lib's templates stubbed, with params as the
// page's address gives them; query answers value for every expression
// and records them.
func render(t *testing.T, console []byte, params map[string]string, value *float64) (string, []string) {
	t.Helper()
	var queried []string
	funcs := template.FuncMap{
		"query": func(q string) []sample {
			queried = append(queried, q)
			if value == nil {
				return nil
			}
			return []sample{{Labels: map[string]string{"instance": "n1"}, Value: *value}}
		},
		"graphLink":          func(q string) string { return "/graph?g0.expr=" + q },
		"pathPrefix":         func() string { return "" },
		"humanize":           func(v float64) string { return fmtFloat(v) },
		"humanizeDuration":   func(v float64) string { return fmtFloat(v) + "s" },
		"humanizePercentage": func(v float64) string { return fmtFloat(v*100) + "%" },
		"humanize1024":       func(v float64) string { return fmtFloat(v) },
	}
	tmpl, err := template.New("console").Funcs(funcs).Option("missingkey=zero").Parse(string(console) + `
{{ define "prom_console_head" }}<!-- head -->{{ end }}
{{ define "prom_content_head" }}<!-- content head -->{{ end }}
{{ define "prom_content_tail" }}<!-- content tail -->{{ end }}
{{ define "tail" }}</body></html>{{ end }}`)
	if err != nil {
		t.Fatalf("the console does not parse as Prometheus parses it: %v", err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, map[string]any{"Params": params, "Path": "tally.html"}); err != nil {
		t.Fatalf("the console does not render: %v", err)
	}
	return out.String(), queried
}

func fmtFloat(v float64) string { b, _ := json.Marshal(v); return string(b) }

// graphArrays are a rendered console's graphs' expr and name arrays.
var graphArrays = regexp.MustCompile(`(?m)^\s*(expr|name): \[(.*(?:\n\s+".*)*)\],$`)

// jsStrings decodes a list of JavaScript string literals as html/template
// writes them (JSON, with \u escapes).
func jsStrings(t *testing.T, list string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte("["+list+"]"), &out); err != nil {
		t.Fatalf("not a list of strings: %s: %v", list, err)
	}
	return out
}

// TestConsoleShowsEveryPanel renders the generated console with each
// variable set and checks it against the dashboard: every panel's title
// in the dashboard's order, each stat's query run by the page, each
// graph's queries and legends given to prom_console.js, with the
// variables replaced as Grafana replaces them.
func TestConsoleShowsEveryPanel(t *testing.T) {
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	console, err := Generate(data)
	if err != nil {
		t.Fatal(err)
	}
	var d Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	params := map[string]string{"job": "tally", "instance": `127\.0\.0\.1:9545`, "bridge_job": "tally-bridge", "monitor_job": "tally-monitor", "merchant_job": "tally-merchant"}
	subst := func(expr string) string {
		return varRef.ReplaceAllStringFunc(expr, func(m string) string {
			sm := varRef.FindStringSubmatch(m)
			return params[sm[1]+sm[2]]
		})
	}
	one := 1.0
	page, queried := render(t, console, params, &one)

	var wantStats, wantExprs, wantNames, titles []string
	for _, p := range d.Panels {
		titles = append(titles, p.Title)
		for _, tg := range p.Targets {
			switch p.Type {
			case "stat":
				wantStats = append(wantStats, subst(tg.Expr))
			case "timeseries":
				wantExprs = append(wantExprs, subst(tg.Expr))
				wantNames = append(wantNames, legendLabel.ReplaceAllString(tg.LegendFormat, "[[ $1 ]]"))
			default:
				t.Fatalf("panel %q has queries and type %s", p.Title, p.Type)
			}
		}
	}
	if !slices.Equal(queried, wantStats) {
		t.Errorf("the page queries\n%q\nthe dashboard's stats\n%q", queried, wantStats)
	}
	var exprs, names []string
	for _, m := range graphArrays.FindAllStringSubmatch(page, -1) {
		if m[1] == "expr" {
			exprs = append(exprs, jsStrings(t, m[2])...)
		} else {
			names = append(names, jsStrings(t, m[2])...)
		}
	}
	if !slices.Equal(exprs, wantExprs) || !slices.Equal(names, wantNames) {
		t.Errorf("the page's graphs draw\n%q named %q\nthe dashboard's\n%q named %q", exprs, names, wantExprs, wantNames)
	}
	var pageTitles []string
	for _, m := range regexp.MustCompile(`<(?:h2 class="tally_row"|h3)[^>]*>([^<]*)</h[23]>`).FindAllStringSubmatch(page, -1) {
		pageTitles = append(pageTitles, m[1])
	}
	if !slices.Equal(pageTitles, titles) {
		t.Errorf("the page's titles\n%q\nthe dashboard's\n%q", pageTitles, titles)
	}
	// Each panel in its place on Grafana's grid.
	for _, p := range d.Panels {
		want := fmt.Sprintf(`id="panel-%d" style="grid-column: %d / span %d; grid-row: %d / span %d;"`,
			p.ID, p.GridPos.X+1, p.GridPos.W, p.GridPos.Y+1, p.GridPos.H)
		if strings.Count(page, want) != 1 {
			t.Errorf("panel %d %q is not placed at its gridPos %+v: no %s", p.ID, p.Title, p.GridPos, want)
		}
	}

	// The variables' defaults are Grafana's All; a parameter is text in
	// the page, never markup.
	page, queried = render(t, console, map[string]string{"job": `"><script>x</script>`}, nil)
	if !strings.Contains(queried[0], `job=~"\"><script>x</script>"`) && !strings.Contains(queried[0], `job=~""><script>x</script>"`) {
		t.Errorf("first query with a hostile job: %s", queried[0])
	}
	if strings.Contains(page, "<script>x</script>") {
		t.Errorf("a parameter was written into the page as markup")
	}
	if !strings.Contains(queried[0], `instance=~".*"`) {
		t.Errorf("instance left out is not All (.*): %s", queried[0])
	}
	if !strings.Contains(page, `<span class="tally_nodata">No data</span>`) {
		t.Errorf("a stat without data does not say so")
	}
}

// TestStatColors: a stat's background is the color of the highest
// threshold its value reaches, as in Grafana.
func TestStatColors(t *testing.T) {
	dash := `{"title": "T", "templating": {"list": []}, "panels": [
  {"id": 1, "type": "stat", "title": "S", "gridPos": {"h": 4, "w": 6, "x": 0, "y": 0},
   "fieldConfig": {"defaults": {"unit": "short", "thresholds": {"mode": "absolute", "steps": [
     {"color": "red", "value": null}, {"color": "green", "value": 1}, {"color": "#123456", "value": 2.5}]}}},
   "targets": [{"refId": "A", "expr": "up", "legendFormat": "x"}]}]}`
	console, err := Generate([]byte(dash))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		v    float64
		want string
	}{{-3, grafanaColors["red"]}, {0, grafanaColors["red"]}, {1, grafanaColors["green"]}, {2.4, grafanaColors["green"]}, {2.5, "#123456"}, {99, "#123456"}} {
		page, _ := render(t, console, nil, &c.v)
		if !strings.Contains(page, "background-color: "+c.want+`"`) {
			t.Errorf("value %v: want background %s in\n%s", c.v, c.want, page)
		}
	}
}

// TestGenerateRefuses: what the console cannot show is an error naming
// the panel, never a panel silently left out.
func TestGenerateRefuses(t *testing.T) {
	const good = `{"title": "T",
  "templating": {"list": [{"name": "datasource", "type": "datasource"}, {"name": "job", "type": "query", "includeAll": true, "allValue": ".*"}]},
  "panels": [
    {"id": 1, "type": "row", "title": "R", "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}},
    {"id": 2, "type": "timeseries", "title": "A", "gridPos": {"h": 8, "w": 12, "x": 0, "y": 1}, "fieldConfig": {"defaults": {"unit": "ops"}},
     "targets": [{"refId": "A", "expr": "rate(x{job=~\"$job\"}[1m]) * 100 % 7", "legendFormat": "{{instance}}"}]}]}`
	console, err := Generate([]byte(good))
	if err != nil {
		t.Fatalf("good dashboard: %v", err)
	}
	page, _ := render(t, console, map[string]string{"job": "j"}, nil)
	m := graphArrays.FindStringSubmatch(page)
	if m == nil || jsStrings(t, m[2])[0] != `rate(x{job=~"j"}[1m]) * 100 % 7` {
		t.Fatalf("expr with %% and a variable: %v\n%s", m, page)
	}
	for _, c := range []struct{ old, new, want string }{
		{`"type": "timeseries"`, `"type": "gauge"`, `panel 2 ("A"): type "gauge"`},
		{`"unit": "ops"`, `"unit": "watt"`, `unit "watt"`},
		{`$job`, `$node`, "$node is not one of the dashboard's query variables"},
		{`$job`, `$__rate_interval`, "$__rate_interval"},
		{`"legendFormat": "{{instance}}"`, `"legendFormat": ""`, "no legendFormat"},
		{`"title": "A"`, `"title": "{{ evil }}"`, "cannot be in a title"},
		{`"includeAll": true`, `"includeAll": false`, "variable job"},
		{`"type": "datasource"`, `"type": "custom"`, `type "custom"`},
		{`"id": 2,`, `"id": 0,`, "needs an id"},
		{`{"title": "T"`, `[{"title": "T"`, "dashboard"},
	} {
		bad := strings.Replace(good, c.old, c.new, 1)
		if bad == good {
			t.Fatalf("mutation %q not applied", c.old)
		}
		if _, err := Generate([]byte(bad)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q -> %q: error %v, want it to mention %q", c.old, c.new, err, c.want)
		}
	}
}
