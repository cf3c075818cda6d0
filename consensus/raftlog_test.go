package consensus

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/internal/logrepeat"
)

// TestRaftLoggerLevels: hashicorp/raft's lines keep their level, except
// the election warning when no leader was known (every start), which is
// information; losing a known leader is still a warning. The calls are
// raft.go's own (hashicorp/raft v1.8.0).
func TestRaftLoggerLevels(t *testing.T) {
	for _, c := range []struct {
		name string
		log  func(hclog.Logger)
		want string
	}{
		{"first election", func(l hclog.Logger) {
			l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", raft.ServerAddress(""), "last-leader-id", raft.ServerID(""))
		}, "level=INFO"},
		{"first election, plain strings", func(l hclog.Logger) {
			l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "", "last-leader-id", "")
		}, "level=INFO"},
		{"leader lost", func(l hclog.Logger) {
			l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", raft.ServerAddress("16Uiu2HAm"), "last-leader-id", raft.ServerID("16Uiu2HAm"))
		}, "level=WARN"},
		{"other warning", func(l hclog.Logger) { l.Warn("failed to contact", "server-id", "x", "time", "1s") }, "level=WARN"},
		{"error", func(l hclog.Logger) { l.Error("failed to appendEntries to", "peer", "x") }, "level=ERROR"},
		{"info", func(l hclog.Logger) { l.Info("entering leader state", "leader", "x") }, "level=INFO"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			c.log(NewRaftLogger(slog.New(slog.NewTextHandler(&buf, nil)), slog.LevelInfo))
			if got := buf.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, c.want) || !strings.Contains(got, "component=raft") {
				t.Fatalf("logged %q, want one line at %s", got, c.want)
			}
		})
	}
}

// TestRaftLoggerRepeats: a peer down for a minute makes hashicorp/raft
// warn about once a second; the log gets the first warning, then one per
// doubling backoff with the count suppressed, not sixty lines. Another
// peer's warnings and information lines are not held back, and a warning
// quiet for repeatForget starts afresh.
func TestRaftLoggerRepeats(t *testing.T) {
	now := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	w := &slogWriter{l: slog.New(slog.NewTextHandler(&buf, nil)), repeats: logrepeat.New(func() time.Time { return now })}
	// hclog's line for raft.go's heartbeat failure, with its changing backoff.
	fail := func(peer string, ms int) {
		fmt.Fprintf(w, "[ERROR] raft: failed to heartbeat to: peer=%s backoff time=%dms\n  error=\n  | p2p: dial %s: no addresses\n", peer, ms, peer)
	}
	for s := 0; s < 60; s++ {
		fail("16Uiu2HAmA", 10*(s%25+1))
		// raft.go's "failed to contact" counts up in ms, then in s.
		fmt.Fprintf(w, "[WARN]  raft: failed to contact: server-id=16Uiu2HAmC time=%v\n", time.Duration(s)*time.Second+time.Duration(s)*time.Millisecond)
		if s == 30 {
			fail("16Uiu2HAmB", 10)
			fmt.Fprintf(w, "[INFO]  raft: entering follower state\n")
		}
		now = now.Add(time.Second)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var a []string
	for _, l := range lines {
		if strings.Contains(l, "16Uiu2HAmA") && !strings.HasPrefix(l, "  ") {
			a = append(a, l)
		}
	}
	// Logged at 0 s, 5 s (4 suppressed), 15 s (9), 35 s (19); 24 held.
	if len(a) != 4 || !strings.Contains(a[1], "repeats_suppressed=4") || !strings.Contains(a[2], "repeats_suppressed=9") ||
		!strings.Contains(a[3], "repeats_suppressed=19") {
		t.Fatalf("60 failures in 60 s logged as %d lines:\n%s", len(a), strings.Join(a, "\n"))
	}
	if n := strings.Count(buf.String(), "16Uiu2HAmC"); n != 4 {
		t.Fatalf("\"failed to contact\" logged %d times in 60 s, want 4:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "16Uiu2HAmB") || !strings.Contains(buf.String(), "entering follower state") {
		t.Fatalf("another peer's warning or an information line was held back:\n%s", buf.String())
	}
	buf.Reset()
	now = now.Add(logrepeat.Forget + time.Second)
	fail("16Uiu2HAmA", 10)
	if got := buf.String(); !strings.Contains(got, "16Uiu2HAmA") || !strings.Contains(got, "repeats_suppressed=0") {
		t.Fatalf("a warning after a quiet spell: %q", got)
	}
}
