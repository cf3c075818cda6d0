package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/state"
)

// TestBadInvocations: a typo on the command line or in the config file
// stops tallyd before it opens anything, with a message naming the flag or key.
func TestBadInvocations(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.toml")
	os.WriteFile(typo, []byte("[http]\nprot = 8545\n"), 0o600)
	badValue := filepath.Join(dir, "bad.toml")
	os.WriteFile(badValue, []byte("[builder]\nblock-interval = \"fast\"\n"), 0o600)
	corsAny := filepath.Join(dir, "cors.toml")
	os.WriteFile(corsAny, []byte("[http]\ncors-origins = [\"*\"]\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--http.port", "x"}, "http.port"},
		{[]string{"--dev", "--http.port", "70000"}, "http.port"},
		{[]string{"--dev", "--log.level", "loud"}, "log.level"},
		{[]string{"--config", typo}, "unknown key http.prot"},
		{[]string{"--config", badValue}, "builder.block-interval"},
		{[]string{"--config", filepath.Join(dir, "missing.toml")}, "read config"},
		{[]string{"--config", corsAny}, "key http.cors-origins[0]: \"*\" (any web page may call this node) is only accepted with --dev"},
		// With --dev the same file passes: the flag counts before validation,
		// and the next mistake is the one reported.
		{[]string{"--config", corsAny, "--dev", "--http.port", "70000"}, "key http.port: 70000 out of range"},
		{[]string{}, "--datadir"},
		{[]string{"--dev", "extra"}, "unexpected argument"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(c.args, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), c.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"--help"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "--datadir") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// TestClearHalt: --clear-halt removes a stopped node's halt record (saying
// what it held) and exits; a second run finds none; it needs a data dir
// holding a node's state.
func TestClearHalt(t *testing.T) {
	dir := t.TempDir()
	db, err := state.Open(node.StateDir(dir), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordHalt(state.HaltRecord{Height: 7, RaftIndex: 9, Entry: 10, Reason: "panic applying raft index 10: boom"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--clear-halt"}, 2, "--clear-halt needs --datadir"},
		{[]string{"--datadir", filepath.Join(dir, "nowhere"), "--clear-halt"}, 1, "no node state in data dir"},
		{[]string{"--datadir", dir, "--clear-halt"}, 0, "reason=\"panic applying raft index 10: boom\""},
		{[]string{"--datadir", dir, "--clear-halt"}, 0, "no halt record"},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Fatalf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}
