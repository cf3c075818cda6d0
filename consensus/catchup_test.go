package consensus

import (
	"io"
	"math/big"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/store"
)

// leaderChain is a leader's FSM that keeps the blocks it applies, to
// hand them to a follower.
type leaderChain struct {
	*fsmEnv
	val    *crypto.PrivateKey
	blocks [][]byte
}

func newLeaderChain(t *testing.T) *leaderChain {
	t.Helper()
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	return &leaderChain{fsmEnv: newFSMEnv(t), val: val}
}

// applyNew builds n blocks of two transfers, one on the other, on the
// leader's head, applies them and keeps them.
func (l *leaderChain) applyNew(n int) {
	for i := 0; i < n; i++ {
		b := l.block(l.val, 2)
		l.blocks = append(l.blocks, b)
		l.apply(b)
	}
}

// openFSM opens the state database at dir with opts, puts the dev
// genesis in it and returns it with an FSM on it: a follower's state,
// on the file system of opts (the caller closes the database).
func openFSM(t *testing.T, dir string, opts store.Options) (*store.DB, *FSM) {
	t.Helper()
	db, err := store.Open(dir, opts)
	must(t, err)
	must(t, db.InitGenesis(genesis.Dev()))
	return db, NewFSM(db, chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 64), testLogger(t), nil, nil)
}

// persistAt persists snap as the leader's Raft snapshot at raft index
// index (term 1), in a checkpoint store of its own, and returns the store
// and the snapshot's ID: the leader's side of an install.
func persistAt(t *testing.T, snap raft.FSMSnapshot, index uint64) (*CheckpointStore, string) {
	t.Helper()
	src, err := NewCheckpointStore(t.TempDir(), 1, testLogger(t))
	must(t, err)
	sink, err := src.Create(1, index, 1, raft.Configuration{}, 1, nil)
	must(t, err)
	must(t, snap.Persist(sink))
	return src, sink.ID()
}

// streamInto gives store the snapshot id of src the way raft installs
// one from the leader (a tar stream into a sink, closed), without the
// FSM.Restore that follows: what a crash (or a failing disk) between the
// two leaves behind. It returns the snapshot's ID in store.
func streamInto(t *testing.T, src *CheckpointStore, id string, store *CheckpointStore) string {
	t.Helper()
	meta, rc, err := src.Open(id)
	must(t, err)
	in, err := store.Create(1, meta.Index, meta.Term, raft.Configuration{}, 1, nil)
	must(t, err)
	_, err = io.Copy(in, rc)
	must(t, err)
	must(t, rc.Close())
	must(t, in.Close())
	return in.ID()
}

// installOnly gives store the snapshot of leader's state at raft index
// index as raft installs one from the leader, without the FSM.Restore
// (streamInto). It returns the snapshot ID.
func installOnly(t *testing.T, leader *fsmEnv, store *CheckpointStore, index uint64) string {
	t.Helper()
	snap, err := leader.fsm.Snapshot()
	must(t, err)
	src, id := persistAt(t, snap, index)
	return streamInto(t, src, id, store)
}

// TestCatchUpSnapshotInstallCutShort: a snapshot installed into the store
// whose restore never ran is restored before raft starts, so the state is
// not left behind the index raft resumes from (the cluster simulator's seed
// 9: the node halted at the first block after the snapshot). The snapshot
// stays streamable (reading its head in place changes nothing), and a
// state already at the snapshot's head is left alone, even when the
// snapshot's index is past its last block (entries that were no blocks).
func TestCatchUpSnapshotInstallCutShort(t *testing.T) {
	leader := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	for i := 0; i < 4; i++ {
		leader.apply(leader.block(val, 3))
	}

	// The follower lives on an in-memory file system, as in the simulator.
	fs := vfs.NewMem()
	db, fsm := openFSM(t, "/state", store.Options{FS: fs, NoSync: true})
	defer db.Close()
	snaps, err := NewCheckpointStoreFS(fs, "/raft/snapshots", 2, testLogger(t))
	must(t, err)

	id := installOnly(t, leader, snaps, leader.index)
	restored, err := catchUpSnapshot(snaps, fsm, db, testLogger(t))
	must(t, err)
	lh, _ := leader.db.Head()
	fh, _ := db.Head()
	if !restored || fh != lh {
		t.Fatalf("restored %v, follower head %+v, want the snapshot's %+v", restored, fh, lh)
	}
	// Still streamable: its size is what its meta.json says.
	meta, rc, err := snaps.Open(id)
	must(t, err)
	n, err := io.Copy(io.Discard, rc)
	must(t, err)
	must(t, rc.Close())
	if n != meta.Size {
		t.Fatalf("snapshot streams %d bytes, meta says %d", n, meta.Size)
	}

	// Nothing to do at the snapshot's head, whether the snapshot's index is
	// the state's last block or past it.
	for _, index := range []uint64{leader.index, leader.index + 3} {
		installOnly(t, leader, snaps, index)
		restored, err := catchUpSnapshot(snaps, fsm, db, testLogger(t))
		must(t, err)
		if restored {
			t.Fatalf("snapshot at raft index %d restored again over a state at its head", index)
		}
	}
	if fh2, _ := db.Head(); fh2 != lh {
		t.Fatalf("head moved to %+v", fh2)
	}
}

// TestRestoreKeepsStateAheadOfSnapshot: a snapshot from the leader that
// is behind the follower's state (the leader lost track of the follower's
// log and its entries were compacted) leaves the state as it is, instead
// of taking it back to the snapshot's height until the later blocks are
// applied again (the cluster simulator's seed 157: a node went from height
// 20 to 16).
func TestRestoreKeepsStateAheadOfSnapshot(t *testing.T) {
	leader := newLeaderChain(t)
	leader.applyNew(3)
	snap, err := leader.fsm.Snapshot()
	must(t, err)
	snaps, id := persistAt(t, snap, leader.index) // at height 3
	leader.applyNew(2)

	follower := newFSMEnv(t) // at height 5
	for _, b := range leader.blocks {
		follower.apply(b)
	}
	before, _ := follower.db.Head()
	restored := false
	follower.fsm.onRestored = func() { restored = true }
	_, rc, err := snaps.Open(id)
	must(t, err)
	must(t, follower.fsm.Restore(rc))
	after, _ := follower.db.Head()
	if after != before || restored || before.Number != 5 {
		t.Fatalf("head %+v → %+v (restored %v), want the state at height 5 kept", before, after, restored)
	}
	if _, err := follower.db.FS().Stat(follower.db.Dir() + ".restore"); err == nil {
		t.Fatal("the extracted snapshot was left beside the state")
	}
	// Raft now takes the FSM to be at the snapshot's index and hands it
	// the entries after it again: each is a no-op, and the next one
	// applies on the kept state.
	for i, b := range leader.blocks[3:] {
		if res := follower.fsm.Apply(&raft.Log{Index: uint64(4 + i), Type: raft.LogCommand, Data: b}); res != nil {
			t.Fatalf("raft index %d applied again after the restore: %v", 4+i, res)
		}
	}
	if h, _ := follower.db.Head(); h != before {
		t.Fatalf("head %+v after the entries were handed again, want %+v", h, before)
	}
	leader.applyNew(1)
	res := follower.apply(leader.blocks[5])
	if a, ok := res.(*store.Applied); !ok || a.Block.Number() != 6 {
		t.Fatalf("the block after the kept state: %v, want block 6 applied", res)
	}
}
