package consensus

import (
	"math/big"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/mempool"
)

// TestRaftStateSurvivesCrashAfterFirstStart: a power cut right after a
// node's first start keeps its Raft state. Start creates the Raft
// directory; unless the directory's creation is synced in its parent, a
// crash loses it with the synced log inside, and the node restarts with
// no vote and no log and bootstraps again (found by the cluster
// simulator: nodes then voted twice in a term and two blocks were applied
// at one height).
func TestRaftStateSurvivesCrashAfterFirstStart(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	fs := vfs.NewCrashableMem()
	id := raft.ServerID("n0")
	_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	senders := chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 16)
	eng, err := Start(Config{Dir: "/data/raft", FS: fs, Snapshots: raft.NewInmemSnapshotStore(), LocalID: id, Transport: trans,
		Bootstrap: []raft.Server{{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)}}, Key: val, Logger: testLogger(t)},
		e.db, mempool.New(mempool.DefaultConfig, e.db, senders), senders)
	if err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // exactly what was synced
	if err := eng.Shutdown(); err != nil {
		t.Fatal(err)
	}
	store, err := OpenRaftStore("/data/raft/log", RaftStoreOptions{FS: crashed, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	existing, err := raft.HasExistingState(store, store, raft.NewInmemSnapshotStore())
	if err != nil {
		t.Fatal(err)
	}
	if !existing {
		t.Fatal("the Raft state of a started node is gone after a crash: its directory was not synced in its parent")
	}
}
