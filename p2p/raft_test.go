package p2p

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tally-ledger/tally/crypto"
)

// countFSM counts applied entries.
type countFSM struct {
	mu sync.Mutex
	n  uint64
}

func (f *countFSM) Apply(*raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.n
}

func (f *countFSM) count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnapshot(f.count()), nil }

func (f *countFSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n = binary.BigEndian.Uint64(b[:])
	return nil
}

type countSnapshot uint64

func (s countSnapshot) Persist(sink raft.SnapshotSink) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(s))
	if _, err := sink.Write(b[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

type raftNode struct {
	host *Host
	raft *raft.Raft
	fsm  *countFSM
}

func startRaftNodes(t *testing.T, n int) []*raftNode {
	t.Helper()
	keys := make([]*crypto.PrivateKey, n)
	ids := make([]peer.ID, n)
	for i := range keys {
		keys[i] = newKey(t)
		ids[i] = peerID(t, keys[i])
	}
	hosts := make([]*Host, n)
	for i := range hosts {
		hosts[i] = newHost(t, keys[i], []string{tcpLoopback}, ids...)
	}
	var servers []raft.Server
	for i, h := range hosts {
		for j, o := range hosts {
			if i != j {
				addPeers(t, h, o)
			}
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(h.ID().String()), Address: raft.ServerAddress(h.ID().String())})
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: io.Discard, Level: hclog.Error})
	nodes := make([]*raftNode, n)
	for i, h := range hosts {
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(h.ID().String())
		conf.HeartbeatTimeout = 300 * time.Millisecond
		conf.ElectionTimeout = 300 * time.Millisecond
		conf.LeaderLeaseTimeout = 300 * time.Millisecond
		conf.CommitTimeout = 20 * time.Millisecond
		conf.Logger = logger
		trans := NewRaftTransport(h.StreamLayer("/tally/raft/test/1"), RaftTransportConfig{
			MaxPool: 3,
			Timeout: 2 * time.Second,
			Logger:  logger,
		})
		if trans.LocalAddr() != raft.ServerAddress(h.ID().String()) {
			t.Fatalf("transport address %s, want peer id %s", trans.LocalAddr(), h.ID())
		}
		store := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		fsm := &countFSM{}
		r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans)
		if err != nil {
			t.Fatalf("NewRaft: %v", err)
		}
		t.Cleanup(func() {
			if err := r.Shutdown().Error(); err != nil {
				t.Errorf("raft shutdown: %v", err)
			}
			_ = trans.Close()
		})
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatalf("BootstrapCluster: %v", err)
		}
		nodes[i] = &raftNode{host: h, raft: r, fsm: fsm}
	}
	return nodes
}

// waitLeader waits until exactly one of nodes is leader and returns it.
func waitLeader(t *testing.T, nodes []*raftNode) *raftNode {
	t.Helper()
	var leader *raftNode
	waitFor(t, 10*time.Second, "a single leader", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

func applyN(t *testing.T, r *raft.Raft, n int) {
	t.Helper()
	futures := make([]raft.ApplyFuture, n)
	for i := range futures {
		futures[i] = r.Apply(fmt.Appendf(nil, "entry %d", i), 2*time.Second)
	}
	for i, f := range futures {
		if err := f.Error(); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
}

func waitCount(t *testing.T, nodes []*raftNode, want uint64) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("every FSM to reach %d", want), func() bool {
		for _, n := range nodes {
			if n.fsm.count() != want {
				return false
			}
		}
		return true
	})
}

func others(nodes []*raftNode, not *raftNode) []*raftNode {
	var out []*raftNode
	for _, n := range nodes {
		if n != not {
			out = append(out, n)
		}
	}
	return out
}

func TestRaftOverLibp2p(t *testing.T) {
	nodes := startRaftNodes(t, 3)
	leader := waitLeader(t, nodes)
	applyN(t, leader.raft, 200)
	waitCount(t, nodes, 200)

	// Partition the leader from both followers, on both sides.
	rest := others(nodes, leader)
	for _, f := range rest {
		f.host.Isolate(leader.host.ID())
		leader.host.Isolate(f.host.ID())
	}
	// The old leader can no longer commit.
	stale := leader.raft.Apply([]byte("lost"), time.Second)
	staleErr := make(chan error, 1)
	go func() { staleErr <- stale.Error() }()

	newLeader := waitLeader(t, rest)
	applyN(t, newLeader.raft, 50)
	waitCount(t, rest, 250)

	select {
	case err := <-staleErr:
		if err == nil {
			t.Fatal("isolated old leader committed an entry")
		}
		if !errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, raft.ErrNotLeader) {
			t.Errorf("old leader's Apply failed with %v, want leadership lost / not leader", err)
		}
		t.Logf("old leader's Apply: %v", err)
	case <-time.After(5 * time.Second):
		t.Log("old leader's Apply still pending: it never committed")
	}
	if got := leader.fsm.count(); got != 200 {
		t.Fatalf("isolated old leader applied %d entries, want 200", got)
	}

	// Heal: everyone converges on the new entries and agrees on a leader.
	for _, f := range rest {
		f.host.Heal(leader.host.ID())
		leader.host.Heal(f.host.ID())
	}
	waitCount(t, nodes, 250)
	final := waitLeader(t, nodes)
	applyN(t, final.raft, 10)
	waitCount(t, nodes, 260)
}
