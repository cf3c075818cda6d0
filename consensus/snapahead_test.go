package consensus

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/store"
)

// TestSnapshotCarriesEntriesPastItsIndex: raft labels a snapshot with the
// index the FSM had applied when it asked for it (FSM.Snapshot), and the
// FSM takes the state's checkpoint later, in Persist, while raft's FSM
// goroutine goes on applying: the checkpoint may hold entries past the
// label. A follower that installs it and loses power before its Raft log
// reaches those entries comes back, on its durable disks, with a state
// past both its log and the snapshot's index (the cluster simulator's seed
// 47 with the OnWake hooks of branch simrepro-hooks: a snapshot labelled
// 17 held index 18, and the restarted n1's Raft log and snapshot ended at
// 17). That is no lost log entry: the entries past the label are ones the
// snapshot's source applied, hence committed, and raft hands the same
// committed entries again after the snapshot, which the FSM skips as
// applied; the state then goes on exactly as the source's.
func TestSnapshotCarriesEntriesPastItsIndex(t *testing.T) {
	leader := newLeaderChain(t)
	leader.applyNew(3)
	snap, err := leader.fsm.Snapshot()
	must(t, err)
	label := leader.index // what raft names the snapshot after: 3
	leader.applyNew(1)    // raft's FSM goroutine applies index 4 while Persist waits
	src, id := persistAt(t, snap, label)
	snap.Release()

	// The follower, on a crashable in-memory disk with its writes synced
	// as a node's are, applied indexes 1 and 2 from its own Raft log.
	fs := vfs.NewCrashableMem()
	db, fsm := openFSM(t, "/data/state", store.Options{FS: fs})
	logs, err := OpenRaftStore("/data/raft/log", RaftStoreOptions{FS: fs, Logger: testLogger(t)})
	must(t, err)
	snaps, err := NewCheckpointStoreFS(fs, "/data/raft/snapshots", 2, testLogger(t))
	must(t, err)
	for i, b := range leader.blocks[:2] {
		l := &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: b}
		must(t, logs.StoreLog(l))
		if _, ok := fsm.Apply(l).(*store.Applied); !ok {
			t.Fatalf("follower did not apply raft index %d", l.Index)
		}
	}
	// It installs the leader's snapshot as raft does: the stream into its
	// store, closed, then FSM.Restore.
	_, rc, err := snaps.Open(streamInto(t, src, id, snaps))
	must(t, err)
	must(t, fsm.Restore(rc))

	// Power cut: only what was synced is left.
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	must(t, logs.Close())
	must(t, db.Close())
	db, err = store.Open("/data/state", store.Options{FS: crashed})
	must(t, err)
	defer db.Close()
	logs, err = OpenRaftStore("/data/raft/log", RaftStoreOptions{FS: crashed, Logger: testLogger(t)})
	must(t, err)
	defer logs.Close()
	snaps, err = NewCheckpointStoreFS(crashed, "/data/raft/snapshots", 2, testLogger(t))
	must(t, err)
	metas, err := snaps.List()
	must(t, err)
	lastLog, err := logs.LastIndex()
	must(t, err)
	head, _ := db.Head()
	// raft.NewRaft resumes from the newest snapshot's index or the log's
	// last index, whichever is higher (Raft.getLastIndex).
	if len(metas) != 1 {
		t.Fatalf("after the crash: %d snapshots, want the installed one", len(metas))
	}
	if metas[0].Index != label || lastLog != 2 || head.RaftIndex != label+1 {
		t.Fatalf("after the crash: snapshot at %d, Raft log ends at %d, state at raft index %d; want the snapshot at %d, the log at 2, the state at %d",
			metas[0].Index, lastLog, head.RaftIndex, label, label+1)
	}

	// Raft hands index 4 again (after the snapshot's index): applied
	// already, nothing changes; index 5 then applies on it as on the
	// leader, to the same block hash and state root.
	fsm = NewFSM(db, fsm.senders, testLogger(t), nil, nil)
	if res := fsm.Apply(&raft.Log{Index: label + 1, Term: 1, Type: raft.LogCommand, Data: leader.blocks[3]}); res != nil {
		t.Fatalf("raft index %d, in the state from the snapshot, applied again: %v", label+1, res)
	}
	if h, _ := db.Head(); h != head {
		t.Fatalf("head moved from %+v to %+v on an applied entry", head, h)
	}
	leader.applyNew(1)
	if _, ok := fsm.Apply(&raft.Log{Index: label + 2, Term: 1, Type: raft.LogCommand, Data: leader.blocks[4]}).(*store.Applied); !ok {
		t.Fatalf("raft index %d not applied after the snapshot's state", label+2)
	}
	lh, _ := leader.db.Head()
	fh, _ := db.Head()
	if fh != lh {
		t.Fatalf("follower head %+v, leader %+v", fh, lh)
	}
}
