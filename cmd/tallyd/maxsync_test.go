package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestMaxSyncDurationMessage: a store.max-sync-duration below the least
// bound stops tallyd before it opens anything (exit 2, which systemd does
// not restart), naming the key, the value and what it takes.
func TestMaxSyncDurationMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.toml")
	if err := os.WriteFile(path, []byte("[store]\nmax-sync-duration = \"100ms\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	code := run([]string{"--config", path, "--dev"}, io.Discard, &stderr)
	if want := "tallyd: key store.max-sync-duration: 100ms: must be 0 (not watched) or at least 1s\n"; code != 2 || stderr.String() != want {
		t.Fatalf("exit %d, stderr\n %q\nwant\n %q", code, stderr.String(), want)
	}
}
