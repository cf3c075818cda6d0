package consensus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/store"
)

// Raft installs a snapshot from the leader in two steps: it makes the
// snapshot durable in the snapshot store, then hands its stream to
// FSM.Restore, which swaps the state database for it. A crash between the
// two, or a Restore that fails (a disk error while extracting), leaves a
// snapshot in the store that the state never received. On the next start
// raft (with NoSnapshotRestoreOnStart, as the state database is durable on
// its own) takes that snapshot's index as applied and replays only the
// entries after it: the state would miss every block up to the snapshot,
// and the node halts at the first block it cannot place. Found by the
// cluster simulator (internal/sim, seed 9 with snapshots).
//
// catchUpSnapshot closes that gap before raft starts: when the state's
// applied head is behind the state inside the newest snapshot, the snapshot
// is restored into the state first, as raft would have done. It reports
// whether it restored one.
func catchUpSnapshot(snaps raft.SnapshotStore, fsm *FSM, db *store.DB, log *slog.Logger) (bool, error) {
	dirs, ok := snaps.(interface {
		DataDir(id string) (string, error)
	})
	if !ok {
		return false, nil // not a checkpoint store: its snapshots cannot be read in place
	}
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return false, err
	}
	meta := metas[0]
	head, _ := db.Head()
	if meta.Index <= head.RaftIndex {
		return false, nil // the state is at or past the snapshot (the usual case)
	}
	// The snapshot's index is past the state's last block, which also
	// happens when the entries before the snapshot were not blocks (a
	// configuration change, a new leader's no-op): read the head inside it.
	dir, err := dirs.DataDir(meta.ID)
	if err != nil {
		return false, err
	}
	snapHead, err := checkpointHead(db, dir)
	if err != nil {
		return false, fmt.Errorf("snapshot %s: %w", meta.ID, err)
	}
	if snapHead.RaftIndex <= head.RaftIndex {
		return false, nil
	}
	log.Warn("state is behind the newest Raft snapshot (its install was cut short): restoring it",
		"snapshot", meta.ID, "state_height", head.Number, "state_raft_index", head.RaftIndex,
		"snapshot_height", snapHead.Number, "snapshot_raft_index", snapHead.RaftIndex)
	_, rc, err := snaps.Open(meta.ID)
	if err != nil {
		return false, err
	}
	if err := fsm.Restore(rc); err != nil {
		if errors.Is(err, ErrHalted) {
			return false, nil // a halted node takes no state until an operator acts
		}
		return false, fmt.Errorf("restore snapshot %s: %w", meta.ID, err)
	}
	return true, nil
}

// checkpointHead is the applied head of the state database checkpoint in
// dir (on db's file system), opened read-only. The snapshot must not change:
// its stream's size is fixed in its meta.json, and Pebble takes a LOCK file
// even to read, so the lock is taken in memory only (noLockFS).
func checkpointHead(db *store.DB, dir string) (store.Head, error) {
	cp, err := store.Open(dir, store.Options{FS: noLockFS{db.FS()}, ReadOnly: true, CacheSize: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return store.Head{}, err
	}
	defer cp.Close()
	head, _ := cp.Head()
	return head, nil
}

// noLockFS is a file system whose Lock creates no file: for reading a
// snapshot's checkpoint in place, which nothing ever opens to write.
type noLockFS struct{ vfs.FS }

func (noLockFS) Lock(string) (io.Closer, error) { return io.NopCloser(nil), nil }
