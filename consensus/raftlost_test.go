package consensus

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/mempool"
)

// TestStartRefusesLostRaftState: a node whose Raft directory is empty
// (lost, wiped by an operator, a replaced disk) while its state database
// applied Raft entries forgot the term and vote in its stable store; with
// them gone it could vote twice in a term. Start refuses, naming the
// directory, instead of bootstrapping again as a first start does; with
// FreshRaft it starts as a fresh member: no bootstrap configuration of
// its own, it waits for the leader. A first start (nothing applied)
// still bootstraps.
func TestStartRefusesLostRaftState(t *testing.T) {
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	id := raft.ServerID("n0")
	start := func(e *fsmEnv, fresh bool) (*Engine, error) {
		_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		senders := chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 16)
		return Start(Config{Dir: "/data/raft", FS: vfs.NewCrashableMem(), Snapshots: raft.NewInmemSnapshotStore(), LocalID: id, Transport: trans,
			Bootstrap: []raft.Server{{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)}}, Key: val, Logger: testLogger(t), FreshRaft: fresh},
			e.db, mempool.New(mempool.DefaultConfig, e.db, senders), senders)
	}
	servers := func(eng *Engine) int {
		f := eng.Raft.GetConfiguration()
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		return len(f.Configuration().Servers)
	}

	// A first start bootstraps.
	first := newFSMEnv(t)
	eng, err := start(first, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := servers(eng); n != 1 {
		t.Fatalf("a first start has %d servers, want its bootstrap configuration", n)
	}
	if err := eng.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// A node that applied Raft entries, on an empty Raft directory.
	e := newFSMEnv(t)
	if err, ok := e.apply(e.block(val, 1)).(error); ok {
		t.Fatalf("apply: %v", err)
	}
	if head, _ := e.db.Head(); head.RaftIndex == 0 {
		t.Fatal("nothing applied")
	}
	if _, err := start(e, false); !errors.Is(err, ErrRaftStateLost) || !strings.Contains(err.Error(), "/data/raft") || !strings.Contains(err.Error(), "--raft-fresh") {
		t.Fatalf("start on a lost Raft directory: %v, want ErrRaftStateLost naming /data/raft and the way out", err)
	}
	eng, err = start(e, true)
	if err != nil {
		t.Fatalf("start as a fresh member: %v", err)
	}
	defer eng.Shutdown()
	if n := servers(eng); n != 0 {
		t.Fatalf("a fresh member bootstrapped a configuration of %d servers; it must wait for the leader", n)
	}
	if eng.Raft.State() != raft.Follower {
		t.Fatalf("a fresh member is %s", eng.Raft.State())
	}
}
