// Command dashconsole writes the Prometheus console of a Grafana dashboard
// (package dashconsole): go generate ./internal/dashconsole runs it.
package main
