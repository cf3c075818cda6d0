package consensus

import (
	"errors"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/store"
)

// TestPersistOnFailingDiskHalts: taking a snapshot while the state
// database's disk fails its WAL writes makes Pebble panic ("fatal commit
// error") in raft's snapshot goroutine, which would end the process; the
// FSM halts instead, as it does when applying a block fails that way, and
// no snapshot is kept. Found by the cluster simulator (disk-error fault
// with snapshots).
func TestPersistOnFailingDiskHalts(t *testing.T) {
	mem := vfs.NewMem()
	var failing atomic.Bool
	disk := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !failing.Load() || !strings.HasSuffix(op.Path, ".log") {
			return nil
		}
		switch op.Kind {
		case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			return errorfs.ErrInjected
		}
		return nil
	}))
	db, err := store.Open("/state", store.Options{FS: disk, NoSync: true})
	must(t, err)
	defer func() {
		defer func() { recover() }() // a poisoned Pebble may panic closing
		db.Close()
	}()
	must(t, db.InitGenesis(genesis.Dev()))
	fsm := NewFSM(db, chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 64), testLogger(t), nil, nil)
	snaps, err := NewCheckpointStoreFS(mem, "/raft/snapshots", 2, testLogger(t))
	must(t, err)

	snap, err := fsm.Snapshot()
	must(t, err)
	sink, err := snaps.Create(1, 1, 1, raft.Configuration{}, 1, nil)
	must(t, err)
	failing.Store(true)
	err = snap.Persist(sink) // must not panic
	if !errors.Is(err, ErrHalted) || fsm.Halted() == nil {
		t.Fatalf("Persist on a failing disk: %v, halted %v; want a halt", err, fsm.Halted())
	}
	if metas, err := snaps.List(); err != nil || len(metas) != 0 {
		t.Fatalf("snapshots kept: %v, %v", metas, err)
	}
}
