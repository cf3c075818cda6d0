package consensus

import (
	"bytes"
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tally-ledger/tally/internal/logrepeat"
)

// NewRaftLogger returns an hclog.Logger (what hashicorp/raft and its
// network transport log through) that forwards each line to slog at the
// level hclog tagged it with.
func NewRaftLogger(l *slog.Logger, level slog.Level) hclog.Logger {
	hl := hclog.Info
	switch {
	case level <= slog.LevelDebug:
		hl = hclog.Debug
	case level >= slog.LevelError:
		hl = hclog.Error
	case level >= slog.LevelWarn:
		hl = hclog.Warn
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:            "raft",
		Level:           hl,
		Output:          &slogWriter{l: l.With("component", "raft"), repeats: logrepeat.New(time.Now)},
		DisableTime:     true,
		IncludeLocation: false,
	})
}

// slogWriter is where hclog writes raft's lines. A warning or error that
// repeats (hashicorp/raft retries a heartbeat to an unreachable peer every
// HeartbeatTimeout/2 at most, its appends after a backoff capped near 10 s,
// and logs each failure) is held back per kind and peer by logrepeat: the
// first, then one per doubling interval with the count held back.
type slogWriter struct {
	l       *slog.Logger
	repeats *logrepeat.Limiter
}

func (w *slogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for tag, lv := range map[string]slog.Level{"[ERROR]": slog.LevelError, "[WARN]": slog.LevelWarn, "[DEBUG]": slog.LevelDebug, "[TRACE]": slog.LevelDebug, "[INFO]": slog.LevelInfo} {
		if i := bytes.Index(line, []byte(tag)); i >= 0 {
			level = lv
			line = bytes.TrimSpace(line[i+len(tag):])
			break
		}
	}
	if level == slog.LevelWarn && isFirstElection(line) {
		level = slog.LevelInfo
	}
	if level < slog.LevelWarn {
		w.l.Log(context.Background(), level, string(line))
		return len(p), nil
	}
	// Every warning and error carries repeats_suppressed (0 on the first of
	// its kind), as the dialer's and the bridge's lines do: a reader sees
	// that repeats are held back and how many a line stands for.
	if ok, suppressed := w.repeats.Allow(repeatKey(line)); ok {
		w.l.Log(context.Background(), level, string(line), "repeats_suppressed", suppressed)
	}
	return len(p), nil
}

// repeatKey is the kind of a warning: its first line up to the error
// text, without numbers (the peer stays in it).
func repeatKey(line []byte) string {
	first, _, _ := bytes.Cut(line, []byte("\n"))
	first, _, _ = bytes.Cut(first, []byte(" error="))
	return logrepeat.Kind(string(first))
}

// isFirstElection reports whether line is hashicorp/raft's warning that it
// starts an election while it knew no leader: that is how every node comes
// up (a dev node on each start), and the further rounds of an election
// already warned about. The warning that a known leader went silent (its
// id after last-leader-id=) stays a warning, once per episode.
func isFirstElection(line []byte) bool {
	return bytes.Contains(line, []byte("heartbeat timeout reached, starting election")) &&
		(bytes.HasSuffix(line, []byte("last-leader-id=")) || bytes.HasSuffix(line, []byte(`last-leader-id=""`)))
}
