// Package deploytest checks the operator files under deploy/ (Prometheus
// rules, the Grafana dashboard) in the tests of the packages whose
// metrics they use: the node's tests check the node's metrics, the
// bridge's the bridge's. It is imported by tests only.
package deploytest
