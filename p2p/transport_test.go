package p2p

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
)

// answerVotes grants every vote request tr receives until the test ends;
// hold, if not nil, is waited on before each answer.
func answerVotes(t *testing.T, tr raft.Transport, hold func()) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-done:
				return
			case rpc := <-tr.Consumer():
				go func() {
					if hold != nil {
						hold()
					}
					rpc.Respond(&raft.RequestVoteResponse{Term: 1, Granted: true}, nil)
				}()
			}
		}
	}()
}

// freeTCPAddr returns a loopback TCP multiaddr whose port was free a moment ago.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "/ip4/127.0.0.1/tcp/" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// TestRaftTransportSkipsDeadPooledStreams: node A holds three pooled Raft
// streams to node B (three vote requests in flight at once). B restarts
// on the same key and address. hashicorp/raft's NetworkTransport hands out
// a pooled stream of the dead connection and the vote request fails at
// once ("stream reset"): that is the lost vote the fault campaign saw.
// RaftTransport's vote request goes through on the first call: the dead
// streams are skipped and a fresh one is dialled.
func TestRaftTransportSkipsDeadPooledStreams(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	ida, idb := peerID(t, ka), peerID(t, kb)
	logger := hclog.NewNullLogger()
	cfg := RaftTransportConfig{MaxPool: 3, Timeout: 5 * time.Second, Logger: logger}
	const proto = "/tally/raft/test/1"

	a := newHost(t, ka, []string{tcpLoopback}, ida, idb)
	bAddr := freeTCPAddr(t)
	b, err := New(Config{Key: kb, ListenAddrs: []string{bAddr}, Allowed: []peer.ID{ida, idb}, Logger: testLogger(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	addPeers(t, a, b)
	ta := NewRaftTransport(a.StreamLayer(proto), cfg)
	t.Cleanup(func() { ta.Close() })
	tb := NewRaftTransport(b.StreamLayer(proto), cfg)

	// Three requests at once, answered together, leave three streams in
	// A's pool.
	var arrived sync.WaitGroup
	arrived.Add(3)
	answerVotes(t, tb, func() { arrived.Done(); arrived.Wait() })
	vote := func(tr interface {
		RequestVote(raft.ServerID, raft.ServerAddress, *raft.RequestVoteRequest, *raft.RequestVoteResponse) error
	}) error {
		var resp raft.RequestVoteResponse
		req := &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte(ida.String()), Addr: []byte(ida.String())}, Term: 2}
		if err := tr.RequestVote(raft.ServerID(idb.String()), raft.ServerAddress(idb.String()), req, &resp); err != nil {
			return err
		}
		if !resp.Granted {
			t.Fatal("vote not granted")
		}
		return nil
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := vote(ta); err != nil {
				t.Errorf("vote before the restart: %v", err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// B restarts: same key, same address.
	tb.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "A to see B gone", func() bool { return !connected(a, idb) })
	b2 := newHost(t, kb, []string{bAddr}, ida, idb)
	tb2 := NewRaftTransport(b2.StreamLayer(proto), cfg)
	t.Cleanup(func() { tb2.Close() })
	answerVotes(t, tb2, nil)
	waitFor(t, 10*time.Second, "A to reconnect to the restarted B", func() bool { return connected(a, idb) })

	// The plain NetworkTransport takes a dead pooled stream.
	if err := vote(ta.NetworkTransport); err == nil {
		t.Fatal("the plain NetworkTransport's vote request went through: the test did not leave dead streams in the pool")
	} else {
		t.Logf("plain NetworkTransport after the restart: %v", err)
	}
	// RaftTransport skips the remaining dead ones.
	if err := vote(ta); err != nil {
		t.Fatalf("RaftTransport's vote request after the restart: %v", err)
	}
}
