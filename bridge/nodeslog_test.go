package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// TestNodesDownLogOncePerInterval: with every endpoint down, each call
// tries them all again (a worker's round every tick); the log has the
// first "node unavailable" per endpoint, not one per call, and the call's
// error still says no node answered.
func TestNodesDownLogOncePerInterval(t *testing.T) {
	var urls []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, "http://"+ln.Addr().String())
		ln.Close() // nothing listens there now: connection refused
	}
	var buf bytes.Buffer
	n, err := dialNodes(context.Background(), urls, 2*time.Second, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	failovers := 0
	n.onFailover = func() { failovers++ }
	const calls = 20
	for range calls {
		if _, err := n.chainID(context.Background()); !errors.Is(err, errNoNode) {
			t.Fatalf("a call with every node down: %v", err)
		}
	}
	if failovers != 2*calls {
		t.Fatalf("%d failovers counted, want %d (the metric counts every one)", failovers, 2*calls)
	}
	for _, u := range urls {
		if got := strings.Count(buf.String(), fmt.Sprintf("node=%s ", u)); got != 1 {
			t.Errorf("endpoint %s down for %d calls logged %d times within 5 s, want 1:\n%s", u, calls, got, buf.String())
		}
	}
}
