// Package dashconsole turns the Grafana dashboard
// (deploy/grafana/tally-dashboard.json) into a Prometheus console template
// (deploy/prometheus/consoles/tally.html) that shows the same panels: the
// same titles, in the same rows and places on Grafana's 24-column grid,
// drawing the same PromQL expressions with the dashboard's variables
// taken from the page's address. The console is how a site without
// Grafana sees the dashboard, and how the tests see it: Grafana cannot run
// on the project's machines (docs/operations.md, "Monitoring"), while
// Prometheus can, so e2e TestDashboard renders this console in Chromium
// against a real Prometheus and its screenshot is the dashboard's.
//
// The dashboard JSON is the one source of truth; the console is generated
// from it and checked in, and TestConsoleIsCurrent fails when the two
// drift apart. After editing the dashboard:
//
//	go generate ./internal/dashconsole
//
// The console renders the panel types the dashboard uses (row, stat,
// timeseries) and the units it uses; anything else is an error naming the
// panel, so that a panel is never silently left out.
package dashconsole

//go:generate go run ./cmd/dashconsole -dashboard ../../deploy/grafana/tally-dashboard.json -out ../../deploy/prometheus/consoles/tally.html
