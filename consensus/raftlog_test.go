package consensus

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
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
