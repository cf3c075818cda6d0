package node

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally/internal/logrepeat"
)

// lockedBuffer is a node's log, written by its goroutines, read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// peerFailureKind is the kind of a log line about failing to reach a peer:
// raft's message up to its first attribute ("failed to heartbeat to"), or
// the p2p dialer's lines, one kind whatever their level.
func peerFailureKind(line string) string {
	m := regexp.MustCompile(`msg="(?:raft: )?([^"=:]*)`).FindStringSubmatch(line)
	switch {
	case m == nil:
		return line
	case strings.HasPrefix(m[1], "p2p"):
		return "p2p dial"
	}
	return strings.TrimSpace(m[1])
}

var (
	suppressedAttr = regexp.MustCompile(`repeats_suppressed=([0-9]+)`)
	attemptAttr    = regexp.MustCompile(`attempt=([0-9]+) retry_in=[0-9.]+m?s`)
)

// TestUnreachablePeerLogs: a validator of a 3-node cluster on loopback
// stops. The other two retry it as they must (hashicorp/raft's leader
// heartbeats it every HeartbeatTimeout/2 at most and logs every failure;
// each node's libp2p dialer redials it with a backoff from 250 ms), but
// their logs carry, per kind of failure and peer, at most what logrepeat's
// doubling interval allows (the first line, then one at 5 s, 15 s, ...).
// The dialer's warning names the peer, the attempt count and the next
// retry's delay.
func TestUnreachablePeerLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	logs := make([]*lockedBuffer, 3)
	nodes := startTestnetLogging(t, 3, func(i int) io.Writer {
		logs[i] = &lockedBuffer{}
		return logs[i]
	})
	leader := leaderOf(t, nodes)
	down := (leader + 1) % 3
	downID := nodes[down].host.ID().String()
	marks := make([]int, 3) // where each log was when the validator stopped
	for i, l := range logs {
		marks[i] = len(l.String())
	}
	stopped := time.Now()
	nodes[down].Close()

	// failures are node i's lines since the stop about failing to reach
	// the stopped validator (as an operator sees them: Info and up).
	failures := func(i int) []string {
		var out []string
		for _, l := range strings.Split(logs[i].String()[marks[i]:], "\n") {
			if strings.Contains(l, downID) && (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "p2p: dial failed")) {
				out = append(out, l)
			}
		}
		return out
	}
	// Wait for a dialer's second line: a warning at least 5 s after its
	// first, with the attempt count and the retry delay.
	warning := ""
	for deadline := time.Now().Add(25 * time.Second); warning == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for i := range nodes {
			if i == down {
				continue
			}
			for _, l := range failures(i) {
				if m := attemptAttr.FindStringSubmatch(l); m != nil && m[1] != "1" && strings.Contains(l, "level=WARN") && strings.Contains(l, "peer="+downID) {
					warning = l
				}
			}
		}
	}
	elapsed := time.Since(stopped)
	if warning == "" {
		t.Fatalf("no warning names the stopped peer %s with the attempt count and retry delay in %v; leader's log:\n%s", downID, elapsed, logs[leader].String()[marks[leader]:])
	}
	t.Logf("after %v: %s", elapsed.Round(time.Millisecond), warning)

	for i := range nodes {
		if i == down {
			continue
		}
		byKind := map[string][]string{}
		for _, l := range failures(i) {
			byKind[peerFailureKind(l)] = append(byKind[peerFailureKind(l)], l)
		}
		for kind, ls := range byKind {
			if len(ls) > logrepeat.Bound(elapsed) {
				t.Errorf("node %d logged %d lines of %q about the stopped peer in %v; the backoff allows %d:\n%s",
					i, len(ls), kind, elapsed, logrepeat.Bound(elapsed), strings.Join(ls, "\n"))
			}
			for _, l := range ls {
				if !suppressedAttr.MatchString(l) {
					t.Errorf("node %d: a %q line does not say how many were held back: %s", i, kind, l)
				}
			}
		}
	}
}
