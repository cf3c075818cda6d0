package consensus

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
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
		Output:          &slogWriter{l: l.With("component", "raft"), repeats: newRepeats(time.Now)},
		DisableTime:     true,
		IncludeLocation: false,
	})
}

type slogWriter struct {
	l       *slog.Logger
	repeats *repeats
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
	if ok, suppressed := w.repeats.allow(repeatKey(line)); ok {
		if suppressed > 0 {
			w.l.Log(context.Background(), level, string(line), "repeats_suppressed", suppressed)
		} else {
			w.l.Log(context.Background(), level, string(line))
		}
	}
	return len(p), nil
}

// Repeated warnings: hashicorp/raft logs every failed heartbeat and
// append to an unreachable peer, about once a second for as long as the
// peer is down. The first is logged, then one per backoff interval
// (doubling from repeatFirst up to repeatMax) carrying how many were
// suppressed; a warning not seen for repeatForget starts afresh.
const (
	repeatFirst  = 5 * time.Second
	repeatMax    = 5 * time.Minute
	repeatForget = 2 * repeatMax
	// repeatKeys bounds the warnings tracked (one per kind and peer).
	repeatKeys = 1024
)

type repeats struct {
	mu   sync.Mutex
	now  func() time.Time
	keys map[string]*repeat
}

type repeat struct {
	next, last time.Time
	every      time.Duration
	suppressed int
}

func newRepeats(now func() time.Time) *repeats {
	return &repeats{now: now, keys: map[string]*repeat{}}
}

// allow reports whether a warning of kind key is logged now, and how many
// of its kind were suppressed since the last one logged.
func (r *repeats) allow(key string) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	e := r.keys[key]
	if e == nil || now.Sub(e.last) > repeatForget {
		if e == nil && len(r.keys) >= repeatKeys {
			for k, old := range r.keys {
				if now.Sub(old.last) > repeatForget {
					delete(r.keys, k)
				}
			}
			if len(r.keys) >= repeatKeys {
				return true, 0 // too many kinds to track: log them all
			}
		}
		r.keys[key] = &repeat{next: now.Add(repeatFirst), last: now, every: repeatFirst}
		return true, 0
	}
	e.last = now
	if now.Before(e.next) {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.suppressed = 0
	e.every = min(2*e.every, repeatMax)
	e.next = now.Add(e.every)
	return true, n
}

// digits (with a unit: 250ms, 1.5s) are left out of a warning's kind:
// the backoff and elapsed times in hashicorp/raft's messages change from
// one repeat to the next.
var digits = regexp.MustCompile(`[0-9][0-9.]*[a-zµ]*`)

// repeatKey is the kind of a warning: its first line up to the error
// text, without numbers (the peer stays in it).
func repeatKey(line []byte) string {
	first, _, _ := bytes.Cut(line, []byte("\n"))
	first, _, _ = bytes.Cut(first, []byte(" error="))
	return digits.ReplaceAllString(string(first), "")
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
