package p2p

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tally-ledger/tally/crypto"
)

const (
	tcpLoopback  = "/ip4/127.0.0.1/tcp/0"
	quicLoopback = "/ip4/127.0.0.1/udp/0/quic-v1"
	testProto    = "/tally/test/1"
)

// testLogger writes the host's debug logs to stderr when P2P_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("P2P_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newKey(t *testing.T) *crypto.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func peerID(t *testing.T, k *crypto.PrivateKey) peer.ID {
	t.Helper()
	id, err := PeerIDFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newHost starts a host that is closed when the test ends.
func newHost(t *testing.T, k *crypto.PrivateKey, listen []string, allowed ...peer.ID) *Host {
	t.Helper()
	h, err := New(Config{Key: k, ListenAddrs: listen, Allowed: allowed, Logger: testLogger(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// addPeers tells a about every address of each of others.
// connectedPair is two hosts on TCP loopback, each allowing the other,
// with their peer IDs, once a holds a connection to b. Only a dials:
// were both to dial at once, a stream opened meanwhile would dial as well
// and could lose the race of simultaneous handshakes ("noise: message is
// too short", then "dial backoff"), which the node's callers ride out by
// retrying and a test asking once would not.
func connectedPair(t *testing.T) (a, b *Host, ida, idb peer.ID) {
	t.Helper()
	ka, kb := newKey(t), newKey(t)
	ida, idb = peerID(t, ka), peerID(t, kb)
	a = newHost(t, ka, []string{tcpLoopback}, idb)
	b = newHost(t, kb, []string{tcpLoopback}, ida)
	addPeers(t, a, b)
	for end := time.Now().Add(10 * time.Second); a.Libp2p().Network().Connectedness(idb) != network.Connected ||
		b.Libp2p().Network().Connectedness(ida) != network.Connected; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the two hosts did not connect within 10 s")
		}
	}
	return a, b, ida, idb
}

func addPeers(t *testing.T, a *Host, others ...*Host) {
	t.Helper()
	for _, o := range others {
		for _, addr := range o.Addrs() {
			if err := a.AddPeer(addr); err != nil {
				t.Fatalf("AddPeer(%s): %v", addr, err)
			}
		}
	}
}

func connected(a *Host, id peer.ID) bool {
	for _, p := range a.ConnectedPeers() {
		if p == id {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
