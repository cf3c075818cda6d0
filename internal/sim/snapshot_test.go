package sim

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tally-ledger/tally/store"
)

// snapshotSeeds pins seeds whose runs take Raft snapshots and in which a
// node restarted after a crash is brought back by InstallSnapshot (the
// leader's log no longer reaching it), with the invariants checked after
// every step as in any run.
var snapshotSeeds = []struct {
	seed   uint64
	faults map[Fault]int
}{
	{113, map[Fault]int{FaultCrash: 5, FaultRestart: 5}},
}

// snapshotKinds runs each pinned seed and asserts that snapshots were
// taken and installed into a restarted node.
func snapshotKinds(t *testing.T) {
	for _, ss := range snapshotSeeds {
		res := runOne(t, Config{Seed: ss.seed, Steps: *stepsFlag, Faults: ss.faults})
		if res.Snapshots == 0 || res.Rejoins == 0 {
			t.Errorf("seed %d (faults %v): %d snapshots taken, %d installed into a restarted node; want both", ss.seed, ss.faults, res.Snapshots, res.Rejoins)
		}
	}
}

// snapshotOnSlowDisk takes a snapshot of a state database on a slow disk
// (the checkpoint syncs the write-ahead log while it holds the database's
// lock) and installs another at the same time (ReplaceWith waits for
// that lock), as a node does when the leader's InstallSnapshot arrives
// while raft persists its own: both must finish, the install after the
// checkpoint. Seed 387 deadlocked the bubble there while the lock was a
// sync.RWMutex (store.TestSwapLockWaitsDurably): the install waiting on
// it was not durably blocked, so the clock never reached the end of the
// sync the checkpoint waited for.
func snapshotOnSlowDisk(t *testing.T) {
	t.Helper()
	sn := &simNode{fs: vfs.NewCrashableMem()}
	db, err := store.Open(stateDir, store.Options{FS: sn.disk(&instance{fs: sn.fs}, stateDir), Logger: slog.New(slog.DiscardHandler), CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g, err := simGenesis(3)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	installed := stateDir + ".install"
	if err := db.Checkpoint(installed); err != nil {
		t.Fatal(err)
	}
	const by = 400 * time.Millisecond
	sn.slow.set(by, time.Now().Add(time.Second))
	start := time.Now()
	taken := make(chan error, 1)
	go func() { taken <- db.Checkpoint("/persist") }()
	synctest.Wait() // the checkpoint holds the lock, its sync sleeps
	replaced := make(chan error, 1)
	go func() { replaced <- db.ReplaceWith(installed) }()
	if err := <-taken; err != nil {
		t.Fatalf("checkpoint on a slow disk: %v", err)
	}
	if err := <-replaced; err != nil {
		t.Fatalf("install during a checkpoint on a slow disk: %v", err)
	}
	if d := time.Since(start); d < by {
		t.Errorf("checkpoint and install took %s of simulated time on a disk slowed by %s", d, by)
	}
	if sn.slow.syncs.Load() == 0 {
		t.Error("the checkpoint's sync was not slowed: the check checked nothing")
	}
	if _, ok := db.Head(); !ok {
		t.Error("no head after the install")
	}
}
