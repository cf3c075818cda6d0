package consensus

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/internal/diskfault"
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
	disk := diskfault.Inject(mem, func(op errorfs.Op) bool { return failing.Load() && walWrite(op) })
	db, fsm := openFSM(t, "/state", store.Options{FS: disk, NoSync: true})
	defer func() {
		defer func() { recover() }() // a poisoned Pebble may panic closing
		db.Close()
	}()
	snaps, err := NewCheckpointStoreFS(mem, "/raft/snapshots", 2, testLogger(t))
	must(t, err)

	err = persistFailing(t, fsm, snaps, &failing) // must not panic
	if !errors.Is(err, ErrHalted) || fsm.Halted() == nil {
		t.Fatalf("Persist on a failing disk: %v, halted %v; want a halt", err, fsm.Halted())
	}
	noSnapshotKept(t, snaps)
}

// persistFailing takes fsm's snapshot at raft index 1 into snaps as raft
// does (FSM.Snapshot, then Persist into a new sink), the disk set failing
// between the two, and returns what Persist returned.
func persistFailing(t *testing.T, fsm *FSM, snaps *CheckpointStore, failing *atomic.Bool) error {
	t.Helper()
	snap, err := fsm.Snapshot()
	must(t, err)
	sink, err := snaps.Create(1, 1, 1, raft.Configuration{}, 1, nil)
	must(t, err)
	failing.Store(true)
	return snap.Persist(sink)
}

// noSnapshotKept fails the test unless snaps lists no snapshot.
func noSnapshotKept(t *testing.T, snaps *CheckpointStore) {
	t.Helper()
	if metas, err := snaps.List(); err != nil || len(metas) != 0 {
		t.Fatalf("snapshots kept: %v, %v", metas, err)
	}
}
