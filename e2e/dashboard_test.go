package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/internal/deploytest"
	tnode "github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/wallet"
)

// The operator's view, checked against the real thing: a node (a
// one-validator testnet), a bank bridge in front of it, a risk monitor
// and a merchant notifier following it (e2e/dashmonitor_test.go,
// e2e/dashmerchant_test.go), scraped every
// second by a real Prometheus server (Debian's prometheus package, which
// `make deploy-check` installs) that loads the project's alert rules and
// serves its console (deploy/prometheus/consoles/tally.html). After a
// little traffic (transfers, deposits minted by the bridge, a withdrawal
// paid out, a JSON-RPC bound refusing a client, two monitor alerts, one
// acknowledged and one escalated to a freeze, an order paid and
// notified):
//
//   - every query of every panel of the Grafana dashboard
//     (deploy/grafana/tally-dashboard.json), with its variables set to the
//     jobs and instance scraped, returns data through Prometheus' HTTP API
//     (dashNoData lists the few that cannot here, with the reason), and
//     every label a legend names is on every series it draws;
//   - every alert rule loads and evaluates without error, and none fires
//     on the healthy node;
//   - the console page (deploy/prometheus/consoles/tally.html, generated
//     from the dashboard by internal/dashconsole: every panel, title and
//     query of it, in its rows and places) renders with the same variables
//     set, every panel there and every stat with a value, and headless
//     Chromium draws every graph (but those dashNoData leaves without
//     data, which say so), while three clients keep sending transfers;
//     with TALLY_SCREENSHOTS=DIR its screenshots go to DIR
//     (docs/img/dashboard-*.png);
//   - once the bridge and the node are stopped, TallyNodeDown,
//     TallyNoLeader and TallyBridgeDown become active, with annotations
//     whose every label resolved.
//
// Grafana itself is not run (it is in no registry this project can
// install from, and its license is the AGPL): its rendering of the JSON is
// not tested, its queries are, and the console draws its panels.

const (
	dashNodeJob   = "tally"
	dashBridgeJob = "tally-bridge"
)

// dashNoData are the dashboard queries ("panel title/refId") that return
// no series in this test, with the reason; any other query without data
// fails the test, and so does a listed one that has data (the list must
// stay true).
var dashNoData = map[string]string{
	"Raft membership changes/A":                "a one-validator chain never changes its Raft membership, and a counter vector has no series before its first change (e2e TestGovernanceValidatorChanges makes changes; node TestDeployMetrics checks the name)",
	"Bridge errors and failovers/A":            "no bridge worker fails in this test: tally_bridge_worker_errors_total{worker} has no series before a first error",
	"Bridge errors and failovers/C":            "no payout comes back and no deposit is reversed in this test: tally_bridge_unhandled_returns_total{kind} has no series before a first one",
	"Webhook deliveries and monitor errors/B":  "the test's webhook receiver takes every notification: tally_monitor_webhook_dropped_total{why} has no series before a first one given up (monitor TestWebhook* drop them)",
	"Webhook deliveries and monitor errors/C":  "no monitor worker fails in this test: tally_monitor_worker_errors_total{worker} has no series before a first error",
	"Merchant webhook deliveries and errors/B": "the test's webhook receiver takes every notification: tally_merchant_webhook_dropped_total{why} has no series before a first one given up (internal/outbox tests drop them)",
	"Merchant webhook deliveries and errors/C": "no notifier worker fails in this test: tally_merchant_worker_errors_total{worker} has no series before a first error",
}

func TestDashboard(t *testing.T) {
	skipShort(t)
	promBin := requirePrometheus(t)
	consoleLibs := requireConsoleLibraries(t)
	chromium := requireChromium(t)
	began := time.Now()
	buildTally(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}

	// One validator; http.max-filters-per-ip = 1 so that a second filter
	// is refused and the refusals panel has a bound to show.
	c := newTestCluster(t, 1, func(_ int, cfg *tnode.Config) { cfg.HTTP.MaxFiltersPerIP = 1 })
	c.startAll()
	c.waitLeader(ctx, []int{0}, "", 30*time.Second)
	e, _, keys, _ := setupBridge(t, ctx, c, "e2e-dashboard-hmac-secret-0123456789", 2, account)
	mon := startDashMonitor(t, c.specs[0].RPC)
	shop := startDashMerchant(t, c.specs[0].RPC)
	t.Logf("node, bridge, monitor and merchant notifier up after %v", time.Since(began).Round(time.Millisecond))

	nodeTarget := strings.TrimPrefix(c.specs[0].RPC, "http://")
	bridgeTarget := strings.TrimPrefix(e.bridgeURL, "http://")
	prom := startPrometheus(t, promBin, consoleLibs, root, nodeTarget, bridgeTarget, mon.target, shop.target)
	promStarted := time.Now()
	// Prometheus applies new targets every few seconds: the counters must
	// be scraped before the traffic moves them, or their first sample is
	// already past it and their rates show nothing.
	pollUntil(t, 30*time.Second, func() string { return "Prometheus scraping the node, the bridge, the monitor and the notifier" }, func() bool {
		res, err := prom.query(`up == 1`)
		return err == nil && len(res) == 4
	})

	// ---- traffic ----
	cl, err := wallet.Dial(ctx, c.specs[0].RPC)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sender := clusterDevKeys(t, 5, 6)[0]
	for i, to := range randomAddrs(10) {
		tx, err := cl.Transfer(ctx, sender, to, big.NewInt(1e15))
		if err != nil {
			t.Fatalf("transfer %d: %v", i, err)
		}
		if r, err := cl.WaitReceipt(ctx, tx.Hash()); err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("transfer %d: receipt %v: %v", i, r, err)
		}
	}
	e.deposit([]depReq{{Account: account(0), Amount: "12.50", Reference: "DASH-1"}, {Account: account(1), Amount: "7.00", Reference: "DASH-2"}})
	op, err := wallet.AssetOp(brHKD, "requestWithdrawal", big.NewInt(300), [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := cl.Send(ctx, keys[0], op)
	if err != nil {
		t.Fatalf("requestWithdrawal: %v", err)
	}
	if r, err := cl.WaitReceipt(ctx, tx.Hash()); err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("requestWithdrawal: receipt %v: %v", r, err)
	}
	var f1, f2 string
	if err := cl.Call(ctx, &f1, "eth_newBlockFilter"); err != nil {
		t.Fatalf("first eth_newBlockFilter: %v", err)
	}
	if err := cl.Call(ctx, &f2, "eth_newBlockFilter"); err == nil || !strings.Contains(err.Error(), "http.max-filters-per-ip") {
		t.Fatalf("a second filter with http.max-filters-per-ip = 1: %q, %v", f2, err)
	}
	pollUntil(t, 60*time.Second, func() string {
		return fmt.Sprintf("2 deposits minted and a payout closed (bridge status %+v)", e.status())
	}, func() bool {
		s := e.status()
		return s.Deposits["minted"] == 2 && s.Payouts["closed"] == 1
	})
	mon.raiseAlerts(ctx, cl)
	shop.sell(ctx, cl)
	t.Logf("traffic done after %v", time.Since(began).Round(time.Millisecond))

	// ---- (a) every dashboard query returns data ----
	// Light traffic goes on while the dashboards are read, so that the
	// rates they show (and the screenshots) are of a chain at work.
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	var loaders sync.WaitGroup
	for _, key := range clusterDevKeys(t, 6, 9) {
		loaders.Add(1)
		go func() {
			defer loaders.Done()
			for _, to := range randomAddrs(2000) {
				if _, err := cl.Transfer(loadCtx, key, to, big.NewInt(1e15)); err != nil && loadCtx.Err() == nil {
					t.Errorf("background transfer: %v", err)
					return
				}
				select {
				case <-loadCtx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	go func() { loaders.Wait(); close(loadDone) }()
	defer func() { stopLoad(); <-loadDone }()

	// The dashboard with one value picked for each variable: exact
	// values, not "All" (.*), so that a wrong label name matches nothing.
	panels := dashboardQueries(t, prom, filepath.Join(root, "deploy", "grafana", "tally-dashboard.json"), map[string]string{
		"job":          dashNodeJob,
		"instance":     nodeTarget,
		"bridge_job":   dashBridgeJob,
		"monitor_job":  dashMonitorJob,
		"merchant_job": dashMerchantJob,
	})

	// ---- (b) the rules load, evaluate, and none fires ----
	rules := ruleNames(t, root)
	pollUntil(t, 30*time.Second, func() string { return "every rule evaluated without error: " + prom.ruleHealth(rules) }, func() bool {
		return prom.ruleHealth(rules) == ""
	})
	for _, a := range prom.alerts() {
		if a.State == "firing" || slices.Contains([]string{"TallyNodeHalted", "TallyNoLeader", "TallyNodeDown", "TallyBridgeDown"}, a.Labels["alertname"]) {
			t.Errorf("alert %s is %s on a healthy node and bridge: %v", a.Labels["alertname"], a.State, a.Annotations)
		}
	}

	// ---- the console: the dashboard as Prometheus draws it ----
	// deploy/prometheus/consoles/tally.html is generated from the
	// dashboard (internal/dashconsole checks it shows every panel and
	// query); here Prometheus renders it with the variables set as above
	// and Chromium draws it.
	console := prom.url + "/consoles/tally.html?job=" + url.QueryEscape(dashNodeJob) + "&instance=" + url.QueryEscape(nodeTarget) +
		"&bridge_job=" + url.QueryEscape(dashBridgeJob) + "&monitor_job=" + url.QueryEscape(dashMonitorJob) +
		"&merchant_job=" + url.QueryEscape(dashMerchantJob)
	checkConsole(t, console, panels)
	shotDir := os.Getenv("TALLY_SCREENSHOTS")
	if shotDir != "" {
		// The pictures for docs/ show a minute and a half of load, so
		// that the rates over [1m] and [5m] windows have settled.
		time.Sleep(time.Until(promStarted.Add(90 * time.Second)))
	} else {
		shotDir = t.TempDir()
	}
	// The graphs over the time Prometheus has run (the console's own time
	// control, kept in the URL's fragment), so the test's data fills them.
	span := "#pctc" + url.PathEscape(fmt.Sprintf(`{"duration":%d,"endTime":0}`, int(time.Since(promStarted).Seconds())+5))
	// Chromium draws every graph; a graph still loading when the page's
	// time budget ran out (a loaded machine) is looked at again.
	var problems []string
	for attempt := 1; attempt <= 3; attempt++ {
		dom := chromiumRun(t, chromium, consoleSize, "--dump-dom", console+span)
		problems = drawnGraphs(dom, panels)
		if len(problems) == 0 || !strings.Contains(dom, "prom_graph_loading") {
			break
		}
		t.Logf("attempt %d: Chromium's time budget ran out with a graph still loading", attempt)
	}
	for _, p := range problems {
		t.Error(p)
	}
	dashScreenshot(t, chromium, console+span, filepath.Join(shotDir, "dashboard-console.png"), consoleSize)

	// ---- (c) down: the alerts that say so become active ----
	stopLoad()
	<-loadDone
	e.bridge.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.bridge.done:
	case <-time.After(30 * time.Second):
		t.Errorf("the bridge did not stop within 30 s of SIGTERM")
		e.bridge.kill()
	}
	c.stop(0)
	want := []string{"TallyNodeDown", "TallyNoLeader", "TallyBridgeDown"}
	var active map[string]dashAlert
	pollUntil(t, 30*time.Second, func() string { return fmt.Sprintf("alerts %v active (have %v)", want, active) }, func() bool {
		active = map[string]dashAlert{}
		for _, a := range prom.alerts() {
			active[a.Labels["alertname"]] = a
		}
		for _, w := range want {
			if _, ok := active[w]; !ok {
				return false
			}
		}
		return true
	})
	for name, a := range active {
		for k, v := range a.Annotations {
			if strings.Contains(v, "<no value>") {
				t.Errorf("alert %s: annotation %s names a label the alert does not have: %q", name, k, v)
			}
		}
		t.Logf("after the stop: %s %s: %s", name, a.State, a.Annotations["summary"])
	}
	dashScreenshot(t, chromium, prom.url+"/classic/alerts", filepath.Join(shotDir, "dashboard-alerts.png"), "1400,900")
	t.Logf("done after %v", time.Since(began).Round(time.Millisecond))
}

// requirePrometheus returns the Prometheus server binary ($TALLY_PROMETHEUS,
// default `prometheus` on the PATH) or fails saying how to install it.
func requirePrometheus(t *testing.T) string {
	t.Helper()
	name := os.Getenv("TALLY_PROMETHEUS")
	if name == "" {
		name = "prometheus"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("the dashboard test needs the Prometheus server (%s, TALLY_PROMETHEUS): `make deploy-check` installs Debian's prometheus package (apt-get install prometheus): %v", name, err)
	}
	return path
}

// requireConsoleLibraries returns the directory of Prometheus' console
// library prom.lib: $TALLY_PROMETHEUS_CONSOLE_LIBRARIES, or where Debian's
// package puts it.
func requireConsoleLibraries(t *testing.T) string {
	t.Helper()
	dirs := []string{"/usr/share/doc/prometheus/examples/console_libraries", "/usr/share/prometheus/console_libraries", "/etc/prometheus/console_libraries"}
	if d := os.Getenv("TALLY_PROMETHEUS_CONSOLE_LIBRARIES"); d != "" {
		dirs = []string{d}
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "prom.lib")); err == nil {
			return d
		}
	}
	t.Fatalf("no Prometheus console library prom.lib in %v (TALLY_PROMETHEUS_CONSOLE_LIBRARIES): Debian's prometheus package ships it (`make deploy-check` installs the package)", dirs)
	return ""
}

// promServer is a running Prometheus server.
type promServer struct {
	t    *testing.T
	url  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startPrometheus runs Prometheus on a free loopback port with a fresh
// storage dir, scraping the node (job tally), the bridge (job
// tally-bridge) and the monitor (job tally-monitor), both with the
// operator token, every second, evaluating the
// project's rules every second and serving its consoles, and waits until
// it is ready. A start that loses the race for its port is retried.
func startPrometheus(t *testing.T, bin, consoleLibs, root, nodeTarget, bridgeTarget, monitorTarget, merchantTarget string) *promServer {
	t.Helper()
	dir := t.TempDir()
	token := filepath.Join(dir, "bridge.token")
	if err := os.WriteFile(token, []byte(e2eOperatorToken), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Glob(filepath.Join(root, "deploy", "prometheus", "*-rules.yml"))
	if err != nil || len(rules) == 0 {
		t.Fatalf("no rule files under deploy/prometheus: %v", err)
	}
	q := func(ss ...string) string {
		b, _ := json.Marshal(ss)
		return string(b)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: %s
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: %s
  - job_name: %s
    authorization:
      credentials_file: %q
    static_configs:
      - targets: %s
  - job_name: %s
    authorization:
      credentials_file: %q
    static_configs:
      - targets: %s
  - job_name: %s
    authorization:
      credentials_file: %q
    static_configs:
      - targets: %s
`, q(rules...), dashNodeJob, q(nodeTarget), dashBridgeJob, token, q(bridgeTarget), dashMonitorJob, token, q(monitorTarget), dashMerchantJob, token, q(merchantTarget))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		p := &promServer{t: t, log: filepath.Join(dir, fmt.Sprintf("prometheus.%d.log", attempt)), done: make(chan struct{})}
		listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
		p.url = "http://" + listen
		f, err := os.Create(p.log)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data.%d", attempt)),
			"--web.listen-address="+listen, "--web.console.templates="+filepath.Join(root, "deploy", "prometheus", "consoles"),
			"--web.console.libraries="+consoleLibs)
		p.cmd.Stdout, p.cmd.Stderr = f, f
		if err := p.cmd.Start(); err != nil {
			f.Close()
			t.Fatalf("start %s: %v", bin, err)
		}
		go func() {
			p.err = p.cmd.Wait()
			f.Close()
			close(p.done)
		}()
		t.Cleanup(p.stop)
		err = p.waitReady(30 * time.Second)
		if err == nil {
			t.Logf("prometheus pid %d ready on %s (config %s)", p.cmd.Process.Pid, p.url, cfgPath)
			return p
		}
		if attempt < 3 && strings.Contains(tail(p.log, 20), "address already in use") {
			t.Logf("prometheus: port taken, retrying: %v", err)
			continue
		}
		t.Fatalf("prometheus: %v\n%s", err, tail(p.log, 30))
	}
}

func (p *promServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		resp, err := client.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/-/ready did not answer 200 within %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the server (SIGTERM, then SIGKILL after 10 s); its log's
// tail is printed if the test failed.
func (p *promServer) stop() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if p.t.Failed() {
		p.t.Logf("tail of prometheus log %s:\n%s", p.log, tail(p.log, 30))
	}
}

// get GETs path from the server's HTTP API and decodes its data field.
func (p *promServer) get(path string, data any) error {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(p.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status    string          `json:"status"`
		Error     string          `json:"error"`
		ErrorType string          `json:"errorType"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	if r.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, r.ErrorType, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// promSeries is one series of an instant query's result.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant query; a scalar result is one series without
// labels.
func (p *promServer) query(expr string) ([]promSeries, error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &d); err != nil {
		return nil, err
	}
	switch d.ResultType {
	case "vector":
		var out []promSeries
		return out, json.Unmarshal(d.Result, &out)
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return nil, err
		}
		return []promSeries{{Metric: map[string]string{}, Value: v}}, nil
	}
	return nil, fmt.Errorf("result type %s, want a vector or a scalar", d.ResultType)
}

type dashAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

// alerts are the active (pending and firing) alerts.
func (p *promServer) alerts() []dashAlert {
	p.t.Helper()
	var d struct {
		Alerts []dashAlert `json:"alerts"`
	}
	if err := p.get("/api/v1/alerts", &d); err != nil {
		p.t.Fatal(err)
	}
	return d.Alerts
}

// ruleHealth describes what is wrong with the loaded rules against want
// (every alert of the rule files): a missing or extra rule, one not yet
// evaluated or one whose evaluation failed; "" when all is well.
func (p *promServer) ruleHealth(want []string) string {
	var d struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get("/api/v1/rules", &d); err != nil {
		return err.Error()
	}
	var problems, have []string
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			have = append(have, r.Name)
			if r.Health != "ok" {
				problems = append(problems, fmt.Sprintf("%s: health %q %s", r.Name, r.Health, r.LastError))
			}
		}
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		problems = append(problems, fmt.Sprintf("loaded %v, the files have %v", have, want))
	}
	return strings.Join(problems, "; ")
}

// ruleNames are the alert names of deploy/prometheus/*-rules.yml, sorted.
func ruleNames(t *testing.T, root string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "deploy", "prometheus", "*-rules.yml"))
	var names []string
	for _, f := range files {
		rf, err := deploytest.ReadRules(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				names = append(names, r.Alert)
			}
		}
	}
	slices.Sort(names)
	return names
}

// grafanaVar is a Grafana template variable reference: $name, ${name} or
// ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)`)

// labelValuesDef is a Grafana variable query label_values(selector, label).
var labelValuesDef = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// legendLabel is a label a Grafana legend format names: {{label}}.
var legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// grafanaRegex is a value of a multi-value variable as Grafana puts it in
// a PromQL query: regex-escaped, and the backslashes escaped again for
// the PromQL string.
func grafanaRegex(v string) string { return strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`) }

// dashboardQueries checks the dashboard at path with each variable set to
// the value in picked: every variable's query (label_values) offers that
// value; every panel query, with the variables substituted (and Grafana's
// interval variables set as Grafana would for a 15 s scrape), returns
// data before the deadline; the legends' labels are on the series; and
// dashNoData holds. It returns the dashboard's panels.
func dashboardQueries(t *testing.T, p *promServer, path string, picked map[string]string) []dashPanel {
	t.Helper()
	vars := map[string]string{}
	for k, v := range picked {
		vars[k] = grafanaRegex(v)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []dashPanel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	builtin := map[string]string{"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600"}
	substitute := func(where, expr string) string {
		return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
			sm := grafanaVar.FindStringSubmatch(m)
			v := sm[1] + sm[2]
			if val, ok := vars[v]; ok {
				return val
			}
			if val, ok := builtin[v]; ok {
				return val
			}
			t.Errorf("%s: variable $%s has no value in the test", where, v)
			return m
		})
	}

	// The variables' own queries offer the values picked.
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesDef.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		match, label := substitute("variable "+v.Name, m[1]), m[2]
		var offered []string
		pollUntil(t, 30*time.Second, func() string {
			return fmt.Sprintf("variable %s (label_values(%s, %s)) to offer %q: offers %q", v.Name, match, label, picked[v.Name], offered)
		}, func() bool {
			err := p.get("/api/v1/label/"+label+"/values?match[]="+url.QueryEscape(match), &offered)
			return err == nil && slices.Contains(offered, picked[v.Name])
		})
	}
	type target struct{ name, expr, legend string }
	var targets []target
	for _, pn := range d.Panels {
		for _, tg := range pn.Targets {
			name := pn.Title + "/" + tg.RefID
			targets = append(targets, target{name, substitute(name, tg.Expr), tg.LegendFormat})
		}
	}
	if len(targets) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	results := map[string][]promSeries{}
	errs := map[string]error{}
	missing := func() []string {
		var out []string
		for _, tg := range targets {
			if _, allowed := dashNoData[tg.name]; allowed {
				continue
			}
			if len(results[tg.name]) == 0 {
				out = append(out, tg.name)
			}
		}
		return out
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		for _, tg := range targets {
			if len(results[tg.name]) > 0 {
				continue
			}
			results[tg.name], errs[tg.name] = p.query(tg.expr)
		}
		if len(missing()) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, tg := range targets {
		res := results[tg.name]
		reason, allowed := dashNoData[tg.name]
		switch {
		case errs[tg.name] != nil:
			t.Errorf("panel query %s: %s: %v", tg.name, tg.expr, errs[tg.name])
		case len(res) == 0 && !allowed:
			t.Errorf("panel query %s returns no data: %s", tg.name, tg.expr)
		case len(res) > 0 && allowed:
			t.Errorf("panel query %s returns data but dashNoData says it cannot (%s): update the list", tg.name, reason)
		}
		for _, m := range legendLabel.FindAllStringSubmatch(tg.legend, -1) {
			for _, s := range res {
				if _, ok := s.Metric[m[1]]; !ok {
					t.Errorf("panel query %s: the legend %q names label %s, which its series %v does not have (Grafana draws it empty)", tg.name, tg.legend, m[1], s.Metric)
					break
				}
			}
		}
	}
	t.Logf("%d dashboard queries checked, %d without data as listed", len(targets), len(dashNoData))
	return d.Panels
}

// dashPanel is a panel of the Grafana dashboard.
type dashPanel struct {
	ID      int    `json:"id"`
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		RefID        string `json:"refId"`
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

// noData says whether none of the panel's queries has data here
// (dashNoData).
func (p dashPanel) noData() bool {
	for _, tg := range p.Targets {
		if _, ok := dashNoData[p.Title+"/"+tg.RefID]; !ok {
			return false
		}
	}
	return len(p.Targets) > 0
}

// consoleSize is the Chromium window the console is drawn in: the whole
// dashboard (its 24-column grid is about 4,750 px high at this width).
const consoleSize = "1400,5100"

// consolePanel is the part of a console page (as served, or as Chromium
// drew it) from panel id's element to the next panel's.
func consolePanel(page string, id int) (string, bool) {
	start := strings.Index(page, fmt.Sprintf(`id="panel-%d"`, id))
	if start < 0 {
		return "", false
	}
	rest := page[start+1:]
	if end := strings.Index(rest, `id="panel-`); end >= 0 {
		rest = rest[:end]
	}
	return rest, true
}

// checkConsole GETs the console page as Prometheus renders it: HTTP 200,
// every panel of the dashboard there with its title, and every stat with
// a value (polled: the first scrapes may be missing).
func checkConsole(t *testing.T, page string, panels []dashPanel) {
	t.Helper()
	var problems []string
	pollUntil(t, 30*time.Second, func() string { return page + ": " + strings.Join(problems, "; ") }, func() bool {
		problems = nil
		resp, err := http.Get(page)
		if err != nil {
			problems = append(problems, err.Error())
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d: %s", page, resp.StatusCode, b)
		}
		for _, p := range panels {
			part, ok := consolePanel(string(b), p.ID)
			switch {
			case !ok || !strings.Contains(part, ">"+html.EscapeString(p.Title)+"</h"):
				problems = append(problems, fmt.Sprintf("panel %d %q is not on the page", p.ID, p.Title))
			case p.Type == "stat" && (strings.Count(part, `class="tally_stat"`) < len(p.Targets) || strings.Contains(part, "tally_nodata")):
				problems = append(problems, fmt.Sprintf("stat %q has no value", p.Title))
			}
		}
		return len(problems) == 0
	})
	t.Logf("console: all %d panels on the page, every stat with a value", len(panels))
}

// drawnGraphs checks the console's DOM as Chromium drew it: every graph
// drawn (an SVG, no error, not loading), but those whose queries all have
// no data here, which say so.
func drawnGraphs(dom string, panels []dashPanel) []string {
	var problems []string
	n := 0
	for _, p := range panels {
		if p.Type != "timeseries" {
			continue
		}
		n++
		part, ok := consolePanel(dom, p.ID)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("graph %q is not in the page Chromium drew", p.Title))
		case p.noData():
			if !strings.Contains(part, "No timeseries returned") {
				problems = append(problems, fmt.Sprintf("graph %q, whose queries have no data here, does not say so", p.Title))
			}
		case !strings.Contains(part, "<svg") || strings.Contains(part, "prom_graph_error") || strings.Contains(part, "prom_graph_loading"):
			problems = append(problems, fmt.Sprintf("Chromium did not draw graph %q (an error shown: %v, still loading: %v)", p.Title,
				strings.Contains(part, "prom_graph_error"), strings.Contains(part, "prom_graph_loading")))
		}
	}
	if n == 0 {
		problems = append(problems, "the dashboard has no graph")
	}
	return problems
}

// chromiumRun runs headless Chromium on a fresh profile in a window of
// size ("W,H") with args and returns its standard output.
func chromiumRun(t *testing.T, chromium, size string, args ...string) string {
	t.Helper()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir(),
		"--window-size=" + size, "--virtual-time-budget=10000"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tailString(stderr.String(), 20))
	}
	return stdout.String()
}

// dashScreenshot saves a PNG of page at size ("W,H").
func dashScreenshot(t *testing.T, chromium, page, file, size string) {
	t.Helper()
	chromiumRun(t, chromium, size, "--screenshot="+file, page)
	b, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot %s: not a PNG (%d bytes, %v)", file, len(b), err)
	}
	t.Logf("screenshot %s (%d bytes)", file, len(b))
}

// tailString is the last n lines of s.
func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
