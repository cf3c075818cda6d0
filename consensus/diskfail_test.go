package consensus

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/internal/diskfault"
)

// switchedDisk is an in-memory (crashable) file system on which, while
// fail is set, every operation the predicate fails picks fails as on a
// failing device, with EIO (errorfs.ErrInjected): the failing disk under
// a Raft log.
type switchedDisk struct {
	mem   *vfs.MemFS
	fail  atomic.Bool
	fails func(op errorfs.Op) bool
}

// newFailingDisk is a switchedDisk whose write-ahead log writes and syncs
// fail: what a failing device under the Raft log looks like to Pebble.
func newFailingDisk() *switchedDisk {
	return &switchedDisk{mem: vfs.NewCrashableMem(), fails: walWrite}
}

func (d *switchedDisk) fs() vfs.FS {
	return diskfault.Inject(d.mem, func(op errorfs.Op) bool { return d.fail.Load() && d.fails(op) })
}

// walWrite reports whether op writes or syncs a write-ahead log (a file
// named *.log) anywhere on the disk.
func walWrite(op errorfs.Op) bool {
	if !strings.HasSuffix(op.Path, ".log") {
		return false
	}
	switch op.Kind {
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		return true
	}
	return false
}

// diskFailures records what a store's failure hook (OnDiskFailure, hook)
// hears: how many times it was called, and the last error.
type diskFailures struct {
	n    atomic.Int32
	last atomic.Pointer[error]
}

func (f *diskFailures) hook(err error) {
	f.n.Add(1)
	f.last.Store(&err)
}

// newSwitchedDiskCluster is a test cluster of n nodes, each keeping its
// Raft log on a switchedDisk of its own that disk makes from the node's
// configuration, and its snapshots in memory; configure, if not nil,
// then sees each node's configuration.
func newSwitchedDiskCluster(t *testing.T, n int, disk func(cfg *Config) *switchedDisk, configure func(i int, cfg *Config)) (*testCluster, []*switchedDisk) {
	t.Helper()
	disks := make([]*switchedDisk, n)
	c := newTestClusterWith(t, n, func(i int, cfg *Config) {
		disks[i] = disk(cfg)
		cfg.FS, cfg.Snapshots = disks[i].fs(), raft.NewInmemSnapshotStore()
		if configure != nil {
			configure(i, cfg)
		}
	})
	return c, disks
}

// reopenRepaired opens the Raft store in dir on disk again, the disk
// repaired, for the rest of the test, and returns it with the first and
// the last index of its log.
func reopenRepaired(t *testing.T, disk *switchedDisk, dir string) (s *RaftStore, first, last uint64) {
	t.Helper()
	s, err := OpenRaftStore(dir, RaftStoreOptions{FS: disk.fs(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("reopen on the repaired disk: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	first, _ = s.FirstIndex()
	last, _ = s.LastIndex()
	return s, first, last
}

// haltedNodeStaysOut checks node k of c, halted on its Raft log's disk:
// it leaves Raft, the rest of the cluster goes on while k applies nothing
// more, and k's Shutdown returns (failing the test with hangs, the way
// the node's disk failed, if not). It returns the last index of k's Raft
// log once k had left Raft.
func (c *testCluster) haltedNodeStaysOut(t *testing.T, k int, hangs string) (lastIndex uint64) {
	t.Helper()
	waitFor(t, 10*time.Second, "the failed node to leave Raft", func() bool { return c.engines[k].State() == raft.Shutdown })
	stopped, _ := c.dbs[k].Head()
	lastIndex, _ = c.engines[k].store.LastIndex()
	other := (k + 1) % len(c.engines)
	waitFor(t, 20*time.Second, "the rest of the cluster to go on", func() bool {
		h, _ := c.dbs[other].Head()
		return h.Number >= stopped.Number+3
	})
	if h, _ := c.dbs[k].Head(); h.Number != stopped.Number {
		t.Errorf("the failed node applied on: %d → %d", stopped.Number, h.Number)
	}
	done := make(chan error, 1)
	go func() { done <- c.engines[k].Shutdown() }()
	select {
	case err := <-done:
		t.Logf("shutdown of the failed node: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("Shutdown hangs on a node whose Raft log %s", hangs)
	}
	return lastIndex
}

// noPanic runs f and turns a panic into a test failure naming what.
func noPanic(t *testing.T, what string, f func() error) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s panicked: %v", what, r)
		}
	}()
	return f()
}

// TestRaftStoreDiskFailure: a write the disk refuses is an error that
// names the disk failure, never a panic (Pebble answers a failed WAL
// write with Fatalf, which a caller in a hashicorp/raft goroutine could
// not recover: the process would end); the store reports it once to its
// failure hook and refuses every later write, since Pebble's commit
// pipeline is unusable after a failed commit; what was synced before is
// still there when the store is opened again on the repaired disk.
// raft's current term is the exception: its write is dropped without an
// error, at the failure and after it, since raft panics on that error
// (found by the cluster simulator, seed 116: the term was the first
// write to meet the failing disk).
func TestRaftStoreDiskFailure(t *testing.T) {
	disk := newFailingDisk()
	var failures diskFailures
	s, err := OpenRaftStore("/raft/log", RaftStoreOptions{FS: disk.fs(), Logger: testLogger(t), OnDiskFailure: failures.hook})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3; i++ {
		if err := s.StoreLog(testLog(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	disk.fail.Store(true)
	if err := noPanic(t, "SetUint64(CurrentTerm)", func() error { return s.SetUint64([]byte("CurrentTerm"), 5) }); err != nil {
		t.Errorf("storing raft's current term on a failing disk: %v, want it dropped without an error", err)
	}
	writes := []struct {
		name string
		f    func() error
	}{
		{"StoreLogs", func() error { return s.StoreLogs([]*raft.Log{testLog(4), testLog(5)}) }},
		{"StoreLog", func() error { return s.StoreLog(testLog(4)) }},
		{"Set", func() error { return s.Set([]byte("LastVoteCand"), []byte("n2")) }},
		{"SetUint64", func() error { return s.SetUint64([]byte("LastVoteTerm"), 5) }},
		{"DeleteRange", func() error { return s.DeleteRange(2, 3) }},
	}
	if err := noPanic(t, "SetUint64(CurrentTerm) after", func() error { return s.SetUint64([]byte("CurrentTerm"), 6) }); err != nil {
		t.Errorf("storing raft's current term after the failure: %v, want it dropped without an error", err)
	}
	for _, w := range writes {
		err := noPanic(t, w.name, w.f)
		if !errors.Is(err, ErrDiskFailed) || !errors.Is(err, errorfs.ErrInjected) {
			t.Errorf("%s on a failed disk: %v, want ErrDiskFailed wrapping the disk's error", w.name, err)
		}
	}
	disk.fail.Store(false)
	// The disk works again, but this store's Pebble does not: it keeps
	// refusing until it is reopened.
	if err := noPanic(t, "StoreLog after the disk recovered", func() error { return s.StoreLog(testLog(4)) }); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("StoreLog on a store whose disk failed: %v, want ErrDiskFailed", err)
	}
	if n := failures.n.Load(); n != 1 {
		t.Errorf("failure hook called %d times, want once", n)
	}
	if p := failures.last.Load(); p == nil || !errors.Is(*p, ErrDiskFailed) {
		t.Errorf("failure hook got %v", p)
	}
	// Reads still answer from what the store holds.
	if last, _ := s.LastIndex(); last != 3 {
		t.Errorf("last index %d after failed writes, want 3", last)
	}
	var l raft.Log
	if err := s.GetLog(3, &l); err != nil || l.Index != 3 {
		t.Errorf("GetLog(3) after the failure: %+v, %v", l, err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Logf("close after the failure: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs after a disk failure")
	}

	s2, first, last := reopenRepaired(t, disk, "/raft/log")
	if first != 1 || last != 3 {
		t.Errorf("reopened log holds %d-%d, want the synced 1-3", first, last)
	}
	if term, err := s2.GetUint64([]byte("CurrentTerm")); err != nil || term != 4 {
		t.Errorf("reopened current term %d, %v, want 4", term, err)
	}
	if err := s2.StoreLog(testLog(4)); err != nil {
		t.Errorf("StoreLog on the reopened store: %v", err)
	}
}

// TestRaftLogDiskFailureHaltsNode: when the disk under a node's Raft log
// fails, the node halts as it does on a broken invariant (the alarm, the
// halt record kept in the state database across restarts, "node halted"
// to every client) and leaves Raft, whose log it can no longer keep;
// the process goes on, and so does the rest of the cluster. Today Pebble's
// Fatalf panics in a hashicorp/raft goroutine and ends the process.
func TestRaftLogDiskFailureHaltsNode(t *testing.T) {
	for _, role := range []string{"leader", "follower"} {
		t.Run(role, func(t *testing.T) {
			c, disks := newSwitchedDiskCluster(t, 3, func(*Config) *switchedDisk { return newFailingDisk() }, func(_ int, cfg *Config) { cfg.NoSync = false })
			l := c.leader()
			c.waitHeight(2)
			k := l
			if role == "follower" {
				k = (l + 1) % 3
			}
			disks[k].fail.Store(true)
			waitFor(t, 10*time.Second, fmt.Sprintf("node %d to halt", k), func() bool { return c.engines[k].Halted() != nil })
			if err := c.engines[k].Halted(); !errors.Is(err, ErrHalted) || !strings.Contains(err.Error(), "raft log") {
				t.Errorf("halt reason %v, want ErrHalted naming the Raft log", err)
			}
			rec, err := c.dbs[k].HaltRecord()
			if err != nil || rec == nil || !strings.Contains(rec.Reason, "raft log") {
				t.Errorf("halt record %+v, %v", rec, err)
			}
			c.haltedNodeStaysOut(t, k, "failed")
		})
	}
}
