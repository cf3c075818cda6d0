// Package wallettest starts a real tallyd dev node for integration tests of
// the wallet package and of the tools built on it (the CLI, the bridge, the
// benchmark). It builds cmd/tallyd from this module, so a test always runs
// against the node in the same tree, and it listens on 127.0.0.1 only.
package wallettest
