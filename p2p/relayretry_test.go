package p2p

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// leaderNet is a BatchTransport to one leader that records what reaches
// it per protocol.
type leaderNet struct {
	mu   sync.Mutex
	got  map[protocol.ID][]string
	seen chan struct{}
}

func (l *leaderNet) RoundTrip(_ context.Context, _ peer.ID, proto protocol.ID, raws [][]byte) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range raws {
		l.got[proto] = append(l.got[proto], string(r))
	}
	select {
	case l.seen <- struct{}{}:
	default:
	}
	return make([]string, len(raws)), nil
}

func (l *leaderNet) received(proto protocol.ID) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got[proto]...)
}

// TestRelayOutlastsNoLeader: a pending transaction re-sent to a new
// leader (Send) is kept retrying while no leader can be reached, past the
// bound of a client's forward, until one appears (before, it was dropped
// after 10 s like a client's forward, and waited for the next leader
// change); one that leaves the pool meanwhile is not sent at all; and
// the retry ends at the relay bound (p2p.reforward-retry).
func TestRelayOutlastsNoLeader(t *testing.T) {
	net := &leaderNet{got: map[protocol.ID][]string{}, seen: make(chan struct{}, 1)}
	var hasLeader atomic.Bool
	fw := NewForwarderOver(net, "self", func() (peer.ID, bool) { return "leader", hasLeader.Load() }, nil, 100, testLogger())
	defer fw.Close()
	fw.retryFor = 100 * time.Millisecond // a client's forward gives up after this
	fw.SetRelayRetry(time.Minute)
	var pending atomic.Bool
	pending.Store(true)
	if err := fw.SendKeeping([]byte("kept"), nil); err != nil {
		t.Fatal(err)
	}
	if err := fw.SendKeeping([]byte("included meanwhile"), pending.Load); err != nil {
		t.Fatal(err)
	}
	if err := fw.Forward(context.Background(), []byte("client")); err == nil {
		t.Fatal("a client's forward without a leader succeeded")
	}
	time.Sleep(500 * time.Millisecond) // five times the client's bound, with no leader
	// Left the pool: every try from now on drops it, the one that finds
	// the leader included.
	pending.Store(false)
	hasLeader.Store(true)
	deadline := time.After(30 * time.Second)
	for len(net.received(RelayProtocol)) == 0 {
		select {
		case <-net.seen:
		case <-deadline:
			t.Fatal("the relayed transaction never reached the leader that appeared")
		}
	}
	if got := net.received(RelayProtocol); len(got) != 1 || got[0] != "kept" {
		t.Fatalf("relayed %q, want only the transaction still pending", got)
	}
	if got := net.received(ForwardProtocol); len(got) != 0 {
		t.Fatalf("the client's forward reached the leader after it gave up: %q", got)
	}

	// The relay bound: with no leader for longer, the retry ends. (The
	// delivery above marks forwarding as working again.)
	for deadline := time.Now().Add(30 * time.Second); fw.down.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("forwarding not marked as working again")
		}
	}
	hasLeader.Store(false)
	fw.SetRelayRetry(200 * time.Millisecond)
	if err := fw.Send([]byte("late")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !fw.down.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the relay did not give up at p2p.reforward-retry")
		}
	}
	hasLeader.Store(true)
	if err := fw.Forward(context.Background(), []byte("probe")); err != nil {
		t.Fatal(err) // delivered once the relay gave up and freed its sender
	}
	for _, r := range net.received(RelayProtocol) {
		if r == "late" {
			t.Fatal("a relay past p2p.reforward-retry was still delivered")
		}
	}
}
