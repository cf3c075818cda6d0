// Package service is the run shape of the project's chain-following
// services, the risk monitor (package monitor) and the merchant notifier
// (package merchant), defined once: learning the chain from a node with
// retries, an HTTP API served in the background, workers that run rounds
// until stopped (a failing round logged once per doubling interval and
// counted), a graceful stop, and Run, the whole of their commands. What
// each service does in its rounds stays in its own package.
package service
