package dashconsole

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Dashboard is the part of Grafana's dashboard JSON model the console
// shows (https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/).
type Dashboard struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Templating  struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
}

// Variable is a template variable. The console takes a query variable's
// value from the page's address (?name=REGEX) and uses its "All" value
// when the address has none.
type Variable struct {
	Name       string `json:"name"`
	Label      string `json:"label"`
	Type       string `json:"type"`
	IncludeAll bool   `json:"includeAll"`
	AllValue   string `json:"allValue"`
}

// Panel is a dashboard panel: a row, or a panel of queries.
type Panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	GridPos     struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	// Collapsed rows hold their panels.
	Collapsed   bool    `json:"collapsed"`
	Panels      []Panel `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Unit       string   `json:"unit"`
			Min        *float64 `json:"min"`
			Max        *float64 `json:"max"`
			Thresholds *struct {
				Mode  string `json:"mode"`
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []Target `json:"targets"`
}

// Target is one PromQL query of a panel.
type Target struct {
	RefID        string `json:"refId"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
	Hide         bool   `json:"hide"`
}

// unit is how the console shows values of one of Grafana's units: a stat
// with a Prometheus template function (and a suffix), a graph's axis and
// hover text with a JavaScript formatter (and units after the value).
type unit struct {
	statFunc, statSuffix string
	axis, hover          string
	yUnits               string
}

const (
	fmtHumanize = "PromConsole.NumberFormatter.humanize"
	fmtNoSmall  = "PromConsole.NumberFormatter.humanizeNoSmallPrefix"
	fmtExact    = "PromConsole.NumberFormatter.humanizeExact"
	fmt1024     = "PromConsole.NumberFormatter.humanize1024"
	// fmtPercent is defined by the console's own script: prom_console.js
	// has no percentage formatter.
	fmtPercent = "tallyPercent"
)

// units are the Grafana units the console renders ("" is Grafana's
// default, short).
var units = map[string]unit{
	"":            {statFunc: "humanize", axis: fmtNoSmall, hover: fmtExact},
	"short":       {statFunc: "humanize", axis: fmtNoSmall, hover: fmtExact},
	"none":        {statFunc: "humanize", axis: fmtNoSmall, hover: fmtExact},
	"s":           {statFunc: "humanizeDuration", axis: fmtHumanize, hover: fmtHumanize, yUnits: "s"},
	"percentunit": {statFunc: "humanizePercentage", axis: fmtPercent, hover: fmtPercent},
	"bytes":       {statFunc: "humanize1024", statSuffix: "B", axis: fmt1024, hover: fmt1024, yUnits: "B"},
	"ops":         {statFunc: "humanize", statSuffix: " ops/s", axis: fmtNoSmall, hover: fmtNoSmall, yUnits: " ops/s"},
	"reqps":       {statFunc: "humanize", statSuffix: " req/s", axis: fmtNoSmall, hover: fmtNoSmall, yUnits: " req/s"},
}

// grafanaColors are the named colors of Grafana's palette the thresholds
// may use; other names must be CSS colors.
var grafanaColors = map[string]string{
	"green": "#73BF69", "red": "#F2495C", "yellow": "#FADE2A", "orange": "#FF9830",
	"blue": "#5794F2", "purple": "#B877D9", "text": "#464C54", "transparent": "transparent",
	"dark-green": "#37872D", "dark-red": "#C4162A", "dark-yellow": "#E0B400", "dark-orange": "#FA6400",
}

var (
	// varRef is a Grafana variable reference: $name, ${name} or
	// ${name:format}.
	varRef = regexp.MustCompile(`\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)`)
	// legendLabel is a label in a legend format: {{label}}.
	legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	cssColor    = regexp.MustCompile(`^(#[0-9a-fA-F]{3,8}|[a-z]+)$`)
)

// Generate returns the console template of the dashboard JSON data.
func Generate(data []byte) ([]byte, error) {
	var d Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	g := &generator{}
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			// The console's data source is the Prometheus serving it.
		case "query":
			if !v.IncludeAll {
				return nil, fmt.Errorf("variable %s: the console's default is the variable's All value, and it has none (includeAll)", v.Name)
			}
			all := v.AllValue
			if all == "" {
				all = ".*"
			}
			g.vars = append(g.vars, v)
			g.all = append(g.all, all)
		default:
			return nil, fmt.Errorf("variable %s: type %q: the console takes query variables only", v.Name, v.Type)
		}
	}
	var panels []Panel
	for _, p := range d.Panels {
		panels = append(panels, p)
		if p.Type == "row" && p.Collapsed {
			panels = append(panels, p.Panels...)
		}
	}
	// Grafana lays the panels out by position, whatever their order in
	// the file.
	slices.SortStableFunc(panels, func(a, b Panel) int {
		if a.GridPos.Y != b.GridPos.Y {
			return a.GridPos.Y - b.GridPos.Y
		}
		return a.GridPos.X - b.GridPos.X
	})
	if err := g.head(d); err != nil {
		return nil, err
	}
	for _, p := range panels {
		if err := g.panel(p); err != nil {
			return nil, fmt.Errorf("panel %d (%q): %w", p.ID, p.Title, err)
		}
	}
	g.tail()
	return g.out.Bytes(), nil
}

type generator struct {
	out  bytes.Buffer
	vars []Variable
	all  []string
}

func (g *generator) printf(format string, args ...any) { fmt.Fprintf(&g.out, format, args...) }

// text is s for HTML text or an attribute, refusing what the template
// would read as an action.
func text(s string) (string, error) {
	if strings.Contains(s, "{{") || strings.Contains(s, "}}") {
		return "", fmt.Errorf("%q: {{ and }} cannot be in a title or description", s)
	}
	return html.EscapeString(s), nil
}

// jsString is s as a JavaScript string literal in the template's text.
func jsString(s string) (string, error) {
	if strings.Contains(s, "{{") || strings.Contains(s, "}}") {
		return "", fmt.Errorf("%q: {{ and }} cannot be in the console's text", s)
	}
	b, err := json.Marshal(s) // escapes <, > and & as \u003c…
	return string(b), err
}

func (g *generator) head(d Dashboard) error {
	title, err := text(d.Title)
	if err != nil {
		return err
	}
	desc, err := text(d.Description)
	if err != nil {
		return err
	}
	var params []string
	for _, v := range g.vars {
		params = append(params, v.Name+"=REGEX")
	}
	g.printf(`{{/* GENERATED by go generate ./internal/dashconsole from
deploy/grafana/tally-dashboard.json: do not edit; edit the dashboard and
run go generate (internal/dashconsole's TestConsoleIsCurrent fails when
this file is not what the dashboard gives).

The Grafana dashboard as a Prometheus console (docs/operations.md,
"Monitoring"): every panel, with its title, in its row and place, drawing
its queries. It needs Prometheus' console library prom.lib
(--web.console.libraries: Debian's
/usr/share/doc/prometheus/examples/console_libraries, or console_libraries
in the upstream tarball). The dashboard's variables are the page's
parameters, regular expressions as Grafana puts them in the queries, each
its All value (.*) when left out:

  /consoles/tally.html?%s
*/}}
`, strings.Join(params, "&"))
	for i, v := range g.vars {
		g.printf("{{ $%s := or .Params.%s %s }}", v.Name, v.Name, strconv.Quote(g.all[i]))
	}
	g.printf(`<!doctype html>
<html lang="en">
<head>
<title>%s</title>
{{ template "prom_console_head" }}
<script>
// Grafana's percentunit: a fraction shown as a percentage.
function tallyPercent(y) { return PromConsole.NumberFormatter.humanizeNoSmallPrefix(y * 100) + "%%"; }
</script>
<style>
  .prom_console_content { padding-top: 60px; }
  .tally_vars { margin-bottom: 0.5em; color: #555; }
  .tally_vars code { margin-right: 1.5em; }
  .tally_grid { display: grid; grid-template-columns: repeat(24, minmax(0, 1fr)); grid-auto-rows: minmax(24px, auto); gap: 8px; }
  .tally_row { align-self: end; font-size: 1.2rem; font-weight: 500; margin: 0.6em 0 0; border-bottom: 1px solid #ccc; }
  .tally_panel { border: 1px solid #ddd; border-radius: 3px; padding: 4px 8px; min-width: 0; overflow: hidden; }
  .tally_panel h3 { font-size: 0.95rem; font-weight: 500; margin: 0 0 4px; }
  .tally_stat { display: block; font-size: 2rem; text-align: center; color: #fff; border-radius: 3px; padding: 0.2em; }
  .tally_stat:hover { color: #fff; }
  .tally_stat_label { display: block; text-align: center; color: #555; }
  .tally_nodata { display: block; text-align: center; color: #999; padding: 1em; }
  .tally_panel .prom_graph_table { width: 100%%; }
</style>
</head>
<body>
<nav class="navbar fixed-top navbar-expand-sm navbar-dark bg-dark">
  <a class="navbar-brand" href="{{ pathPrefix }}/consoles/{{ .Path }}">%s</a>
  <ul class="navbar-nav">
    <li class="nav-item"><a class="nav-link" href="{{ pathPrefix }}/alerts">Alerts</a></li>
    <li class="nav-item"><a class="nav-link" href="{{ pathPrefix }}/graph">Graph</a></li>
    <li class="nav-item"><a class="nav-link" href="{{ pathPrefix }}/targets">Targets</a></li>
  </ul>
</nav>

{{ template "prom_content_head" . }}
<h1 title="%s">%s</h1>
<div class="tally_vars">`, title, title, desc, title)
	for _, v := range g.vars {
		label := v.Label
		if label == "" {
			label = v.Name
		}
		l, err := text(label)
		if err != nil {
			return err
		}
		g.printf("\n  <span>%s (%s): <code>{{ $%s }}</code></span>", l, v.Name, v.Name)
	}
	g.printf("\n</div>\n\n<div class=\"tally_grid\">\n")
	return nil
}

func (g *generator) tail() {
	g.printf(`</div>

{{ template "prom_content_tail" . }}
{{ template "tail" }}
`)
}

// place is the CSS grid position of Grafana's gridPos.
func place(p Panel) string {
	return fmt.Sprintf("grid-column: %d / span %d; grid-row: %d / span %d;", p.GridPos.X+1, p.GridPos.W, p.GridPos.Y+1, p.GridPos.H)
}

func (g *generator) panel(p Panel) error {
	if p.ID < 1 || p.GridPos.W < 1 || p.GridPos.H < 1 {
		return fmt.Errorf("needs an id and a gridPos")
	}
	title, err := text(p.Title)
	if err != nil {
		return err
	}
	if p.Type == "row" {
		g.printf("<h2 class=\"tally_row\" id=\"panel-%d\" style=\"%s\">%s</h2>\n", p.ID, place(p), title)
		return nil
	}
	u, ok := units[p.FieldConfig.Defaults.Unit]
	if !ok {
		return fmt.Errorf("unit %q: the console knows %v", p.FieldConfig.Defaults.Unit, knownUnits())
	}
	var targets []Target
	for _, t := range p.Targets {
		if !t.Hide {
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		return fmt.Errorf("no query")
	}
	desc, err := text(p.Description)
	if err != nil {
		return err
	}
	g.printf("<div class=\"tally_panel tally_panel_%s\" id=\"panel-%d\" style=\"%s\" title=\"%s\">\n<h3>%s</h3>\n", p.Type, p.ID, place(p), desc, title)
	switch p.Type {
	case "stat":
		err = g.stat(p, targets, u)
	case "timeseries":
		err = g.timeseries(p, targets, u)
	default:
		err = fmt.Errorf("type %q: the console renders row, stat and timeseries panels", p.Type)
	}
	if err != nil {
		return err
	}
	g.printf("</div>\n")
	return nil
}

func knownUnits() []string {
	var out []string
	for k := range units {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// query is the template pipeline that gives a target's expression with
// the dashboard's variables replaced by the page's parameters.
func (g *generator) query(t Target) (string, error) {
	var format strings.Builder
	var args []string
	last := 0
	for _, m := range varRef.FindAllStringSubmatchIndex(t.Expr, -1) {
		format.WriteString(strings.ReplaceAll(t.Expr[last:m[0]], "%", "%%"))
		last = m[1]
		var name string
		if m[2] >= 0 {
			name = t.Expr[m[2]:m[3]] // ${name}
		} else {
			name = t.Expr[m[4]:m[5]] // $name
		}
		if !slices.ContainsFunc(g.vars, func(v Variable) bool { return v.Name == name }) {
			return "", fmt.Errorf("query %s: $%s is not one of the dashboard's query variables", t.RefID, name)
		}
		i := slices.Index(args, "$"+name)
		if i < 0 {
			args = append(args, "$"+name)
			i = len(args) - 1
		}
		fmt.Fprintf(&format, "%%[%d]s", i+1)
	}
	format.WriteString(strings.ReplaceAll(t.Expr[last:], "%", "%%"))
	if len(args) == 0 {
		return strconv.Quote(t.Expr), nil
	}
	return "printf " + strconv.Quote(format.String()) + " " + strings.Join(args, " "), nil
}

// stat shows each query's value, colored by the thresholds as Grafana's
// background color mode does.
func (g *generator) stat(p Panel, targets []Target, u unit) error {
	color, err := thresholdColor(p)
	if err != nil {
		return err
	}
	for _, t := range targets {
		q, err := g.query(t)
		if err != nil {
			return err
		}
		label := ""
		if len(targets) > 1 {
			l, err := text(t.LegendFormat)
			if err != nil {
				return err
			}
			label = `<span class="tally_stat_label">` + legendLabel.ReplaceAllString(l, "{{ .Labels.$1 }}") + `</span>`
		}
		suffix, err := text(u.statSuffix)
		if err != nil {
			return err
		}
		g.printf(`{{ $q := %s }}{{ range query $q }}<a class="tally_stat" style="background-color: %s" href="{{ pathPrefix }}{{ graphLink $q }}">{{ %s .Value }}%s</a>%s{{ else }}<span class="tally_nodata">No data</span>{{ end }}`+"\n",
			q, color, u.statFunc, suffix, label)
	}
	return nil
}

// thresholdColor is the template text of the color of .Value: the last
// absolute threshold step it reaches, as Grafana has it.
func thresholdColor(p Panel) (string, error) {
	th := p.FieldConfig.Defaults.Thresholds
	if th == nil || len(th.Steps) == 0 {
		return grafanaColors["blue"], nil
	}
	if th.Mode != "absolute" {
		return "", fmt.Errorf("thresholds mode %q: the console takes absolute thresholds", th.Mode)
	}
	css := func(c string) (string, error) {
		if v, ok := grafanaColors[c]; ok {
			return v, nil
		}
		if !cssColor.MatchString(c) {
			return "", fmt.Errorf("threshold color %q is neither a Grafana color name nor a CSS color", c)
		}
		return c, nil
	}
	base, err := css(th.Steps[0].Color)
	if err != nil {
		return "", err
	}
	if len(th.Steps) == 1 {
		return base, nil
	}
	var b strings.Builder
	for i := len(th.Steps) - 1; i >= 1; i-- {
		s := th.Steps[i]
		if s.Value == nil {
			return "", fmt.Errorf("threshold step %d has no value", i)
		}
		c, err := css(s.Color)
		if err != nil {
			return "", err
		}
		kw := "else if"
		if i == len(th.Steps)-1 {
			kw = "if"
		}
		fmt.Fprintf(&b, "{{ %s ge .Value %s }}%s", kw, floatLiteral(*s.Value), c)
	}
	fmt.Fprintf(&b, "{{ else }}%s{{ end }}", base)
	return b.String(), nil
}

// floatLiteral is v as a template float constant (1 would be an int,
// which ge refuses to compare with a float64).
func floatLiteral(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEnN") {
		s += ".0"
	}
	return s
}

// timeseries draws the queries with prom_console.js, one line per series
// named by the target's legend format.
func (g *generator) timeseries(p Panel, targets []Target, u unit) error {
	var exprs, names []string
	for _, t := range targets {
		q, err := g.query(t)
		if err != nil {
			return err
		}
		exprs = append(exprs, "{{ "+q+" }}")
		if t.LegendFormat == "" {
			return fmt.Errorf("query %s: no legendFormat: the console names series by it", t.RefID)
		}
		n, err := jsString(legendLabel.ReplaceAllString(t.LegendFormat, "[[ $1 ]]"))
		if err != nil {
			return err
		}
		names = append(names, n)
	}
	hoverUnits, err := jsString(u.yUnits)
	if err != nil {
		return err
	}
	// Grafana's grid rows are 30 px; the title, axis and legend take
	// the rest of the panel.
	height := max(p.GridPos.H*30-80, 60)
	g.printf(`<div id="graph-%d"></div>
<script>
new PromConsole.Graph({
  node: document.querySelector("#graph-%d"),
  expr: [%s],
  name: [%s],
`, p.ID, p.ID, strings.Join(exprs, ",\n         "), strings.Join(names, ", "))
	if v := p.FieldConfig.Defaults.Min; v != nil {
		g.printf("  min: %s,\n", strconv.FormatFloat(*v, 'g', -1, 64))
	}
	if v := p.FieldConfig.Defaults.Max; v != nil {
		g.printf("  max: %s,\n", strconv.FormatFloat(*v, 'g', -1, 64))
	}
	// prom_console.js titles the axis with the units, "(s)", and writes
	// them after each hovered value.
	g.printf(`  height: %d,
  yUnits: %s,
  yAxisFormatter: %s,
  yHoverFormatter: %s
})
</script>
`, height, hoverUnits, u.axis, u.hover)
	return nil
}
