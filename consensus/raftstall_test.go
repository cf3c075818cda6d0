package consensus

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/store"
)

// TestRaftStoreStallDetected: the Raft log's disk is watched for stalls
// as the state database's is (RaftStoreOptions.Stalls): a StoreLogs
// whose write-ahead log sync hangs, as raft's main goroutine on a
// stalled leader does while its heartbeats go on, is reported once it
// has hung for the bound, naming the log's file. Without the watch the
// call would wait as long as the disk does.
func TestRaftStoreStallDetected(t *testing.T) {
	t.Parallel()
	const dir = "/raft/log"
	const bound = store.MinMaxSyncDuration
	s, holding, release, stalls := stallingRaftStore(t, dir, bound)
	defer s.Close()
	holding.Store(true)
	start := time.Now()
	stored := make(chan error, 1)
	go func() {
		stored <- s.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("block")}})
	}()
	select {
	case e := <-stalls:
		if elapsed := time.Since(start); elapsed < bound || e.Duration < bound {
			t.Fatalf("stall reported after %s (its own measure %s), before the bound %s", elapsed, e.Duration, bound)
		}
		if e.Dir != dir || e.Path == "" || e.Op == "" {
			t.Fatalf("stall %+v: want the Raft log's file and operation", e)
		}
	case err := <-stored:
		t.Fatalf("StoreLogs returned (%v) while its sync was held", err)
	case <-time.After(time.Minute):
		t.Fatal("no stall reported after a minute of a held sync")
	}
	holding.Store(false)
	close(release)
	if err := <-stored; err != nil {
		t.Fatalf("StoreLogs once the disk answered: %v", err)
	}
}

// TestIdleRaftStoreStallDetected: a Raft log nothing writes to (a
// follower of a leader whose builder hangs) is still watched: its probe's
// synced no-op write (store.Prober) meets the stalled disk.
func TestIdleRaftStoreStallDetected(t *testing.T) {
	t.Parallel()
	const dir = "/raft/log"
	const bound = 2 * store.MinMaxSyncDuration
	s, holding, release, stalls := stallingRaftStore(t, dir, bound)
	holding.Store(true)
	start := time.Now()
	select {
	case e := <-stalls:
		if elapsed := time.Since(start); elapsed < bound || e.Duration < bound || e.Dir != dir {
			t.Fatalf("stall %+v reported after %s: want the Raft log's sync hung for the bound %s", e, elapsed, bound)
		}
	case <-time.After(time.Minute):
		t.Fatal("an idle Raft log's stalled disk was not reported within a minute")
	}
	holding.Store(false)
	close(release)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// stallingRaftStore opens a Raft store in dir watched for stalls of
// bound: while holding is set its write-ahead log syncs hang until
// release is closed, and the stalls reported arrive on stalls.
func stallingRaftStore(t *testing.T, dir string, bound time.Duration) (*RaftStore, *atomic.Bool, chan struct{}, chan *store.StallError) {
	t.Helper()
	holding := new(atomic.Bool)
	release := make(chan struct{})
	fs := diskfault.Hold(vfs.NewMem(), func(op errorfs.Op) bool {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			return holding.Load() && diskfault.WAL(dir, op)
		}
		return false
	}, release)
	stalls := make(chan *store.StallError, 4)
	s, err := OpenRaftStore(dir, RaftStoreOptions{FS: fs, Logger: testLogger(t),
		Stalls: store.Stalls{MaxSyncDuration: bound, OnStall: func(e *store.StallError) { stalls <- e }}})
	if err != nil {
		t.Fatal(err)
	}
	return s, holding, release, stalls
}
