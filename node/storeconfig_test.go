package node

import (
	"testing"
	"time"

	"github.com/tally-ledger/tally/store"
)

// TestStoreMaxSyncDurationConfig: [store] max-sync-duration defaults to
// CockroachDB's 20 s, reaches the watch of both databases' disks
// (Config.Stalls), takes 0 to watch nothing, and is refused below 1 s
// naming the key and what it takes.
func TestStoreMaxSyncDurationConfig(t *testing.T) {
	cfg := DefaultConfig()
	if got := cfg.Stalls().MaxSyncDuration; got != store.DefaultMaxSyncDuration {
		t.Fatalf("default store.max-sync-duration %s", got)
	}
	for _, c := range []struct {
		toml string
		want time.Duration
	}{{"\"45s\"", 45 * time.Second}, {"\"1s\"", time.Second}, {"\"0s\"", 0}} {
		cfg := DefaultConfig()
		if err := decodeConfig([]byte("[store]\nmax-sync-duration = "+c.toml+"\n"), &cfg); err != nil || cfg.Stalls().MaxSyncDuration != c.want {
			t.Errorf("max-sync-duration = %s: %v, %s; want %s", c.toml, err, cfg.Stalls().MaxSyncDuration, c.want)
		}
	}
	for _, c := range []struct{ toml, want string }{
		{"\"500ms\"", "key store.max-sync-duration: 500ms: must be 0 (not watched) or at least 1s"},
		{"\"-20s\"", "key store.max-sync-duration: -20s: must be 0 (not watched) or at least 1s"},
		{"\"soon\"", "key store.max-sync-duration"},
		{"20", "key store.max-sync-duration"},
	} {
		cfg := DefaultConfig()
		if err := decodeConfig([]byte("[store]\nmax-sync-duration = "+c.toml+"\n"), &cfg); err == nil || err.Error()[:min(len(err.Error()), len(c.want))] != c.want {
			t.Errorf("max-sync-duration = %s: %v; want %q", c.toml, err, c.want)
		}
	}
}
