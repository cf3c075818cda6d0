// Package wallettest starts a real tallyd dev node for integration tests of
// the wallet package and of the tools built on it (the CLI, the bridge, the
// benchmark). It builds cmd/tallyd from this module, so a test always runs
// against the node in the same tree, and it listens on 127.0.0.1 only.
//
// The built commands are kept in the user's cache directory
// (~/.cache/tally-test), one entry per test package and checkout, so that
// go build can skip the cgo link when nothing changed. The cache prunes
// itself (cache.go): an entry some test process holds is never removed;
// the others go once unused for CacheMaxAge, or, while the cache is larger
// than CacheMaxBytes, longest unused first once idle for CacheMinIdle.
package wallettest
