package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/internal/diskfault"
)

// newReadFailingDisk is a switchedDisk whose sstable reads
// (diskfault.TableRead) of the database in dir fail: a read of the Raft
// log that misses the memtable and the block cache fails, as on a
// failing device, and Pebble returns the error to the reader.
func newReadFailingDisk(dir string) *switchedDisk {
	return &switchedDisk{mem: vfs.NewCrashableMem(), fails: func(op errorfs.Op) bool { return diskfault.TableRead(dir, op) }}
}

// bigLog is testLog(i) with 8 KiB of data: each entry fills a data block
// of its own (Pebble's are 4 KiB), so reading one entry does not bring
// its neighbours into the block cache.
func bigLog(i uint64) *raft.Log {
	l := testLog(i)
	l.Data = bytes.Repeat([]byte{byte(i)}, 8<<10)
	return l
}

// writeFlushedLog writes entries 1..20 and current term term to the
// Raft store in dir on disk, flushed into sstables and closed, so that a
// store opened again reads them from the (failing) disk.
func writeFlushedLog(t *testing.T, disk *switchedDisk, dir string, term uint64) {
	t.Helper()
	s, err := OpenRaftStore(dir, RaftStoreOptions{FS: disk.fs(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 20; i++ {
		if err := s.StoreLog(bigLog(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// openFlushedLog writes the flushed log of writeFlushedLog to a Raft
// store in dir on a disk failing reads once told (newReadFailingDisk),
// and opens the store again: its block cache is cold, the entries are in
// sstables. It returns the disk, the store (the caller closes it) and
// what the store's failure hook hears.
func openFlushedLog(t *testing.T, dir string, term uint64) (*switchedDisk, *RaftStore, *diskFailures) {
	t.Helper()
	disk := newReadFailingDisk(dir)
	writeFlushedLog(t, disk, dir, term)
	failures := new(diskFailures)
	s, err := OpenRaftStore(dir, RaftStoreOptions{FS: disk.fs(), Logger: testLogger(t), OnDiskFailure: failures.hook})
	if err != nil {
		t.Fatal(err)
	}
	return disk, s, failures
}

// TestRaftStoreReadFailure: a read of the Raft log the disk fails is the
// store's failure, as a failed write is: the error names the disk's
// (ErrDiskFailed wrapping EIO), the failure hook hears of it once, and
// every later write is refused (raft's current term dropped, as after a
// failed write), so the node writes nothing more. On the repaired disk
// the log is intact.
func TestRaftStoreReadFailure(t *testing.T) {
	const dir = "/raft/log"
	disk, s, failures := openFlushedLog(t, dir, 4)
	disk.fail.Store(true)
	var l raft.Log
	err := noPanic(t, "GetLog(10)", func() error { return s.GetLog(10, &l) })
	if !errors.Is(err, ErrDiskFailed) || !errors.Is(err, errorfs.ErrInjected) || errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog on a disk failing reads: %v, want ErrDiskFailed wrapping the disk's error", err)
	}
	if n := failures.n.Load(); n != 1 {
		t.Fatalf("failure hook called %d times, want once", n)
	}
	if p := failures.last.Load(); !errors.Is(*p, errorfs.ErrInjected) || !strings.Contains((*p).Error(), "get log 10") {
		t.Errorf("failure hook got %v, want the failed read named", *p)
	}
	if err := s.GetLog(11, &l); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("GetLog(11): %v, want ErrDiskFailed", err)
	}
	if n := failures.n.Load(); n != 1 {
		t.Errorf("failure hook called %d times after a second failed read, want once", n)
	}
	if err := s.StoreLog(bigLog(21)); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("StoreLog after a failed read: %v, want ErrDiskFailed", err)
	}
	if err := s.SetUint64([]byte("LastVoteTerm"), 5); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("SetUint64(LastVoteTerm) after a failed read: %v, want ErrDiskFailed", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 5); err != nil {
		t.Errorf("SetUint64(CurrentTerm) after a failed read: %v, want it dropped without an error", err)
	}
	if err := s.DeleteRange(1, 5); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("DeleteRange after a failed read: %v, want ErrDiskFailed", err)
	}

	if err := s.Close(); err != nil {
		t.Logf("close after the failure: %v", err)
	}

	disk.fail.Store(false)
	s2, first, last := reopenRepaired(t, disk, dir)
	if first != 1 || last != 20 {
		t.Fatalf("reopened log holds %d-%d, want 1-20", first, last)
	}
	for i := uint64(1); i <= 20; i++ {
		if err := s2.GetLog(i, &l); err != nil || !logsEqual(&l, bigLog(i)) {
			t.Fatalf("entry %d after the repair: %v", i, err)
		}
	}
	if term, err := s2.GetUint64([]byte("CurrentTerm")); err != nil || term != 4 {
		t.Errorf("current term %d, %v after the repair, want 4", term, err)
	}
	if _, err := s2.GetUint64([]byte("LastVoteTerm")); err == nil {
		t.Error("a vote refused on the failed store was stored")
	}
}

// TestRaftLogReadFailureHaltsNode: a node whose disk fails a read of its
// Raft log halts with the node's own alarm and reason (the halt record,
// "node halted" to clients), before hashicorp/raft sees the error, and
// leaves Raft; the rest of the cluster goes on; the node writes nothing
// more; after a restart on the repaired disk (the halt cleared, as an
// operator does) it comes back with its log intact and catches up.
//
// The leader meets the failure replicating entries a follower missed
// while it was cut off (raft v1.8.0 would log the error and try again
// for ever, keeping the lead); the follower meets it applying entries it
// had stored but not yet known committed (raft v1.8.0 panics there, in
// Raft.processLogs, and the process ends).
func TestRaftLogReadFailureHaltsNode(t *testing.T) {
	for _, role := range []string{"leader", "follower"} {
		t.Run(role, func(t *testing.T) {
			const n = 3
			cfgs := make([]Config, n)
			c, disks := newSwitchedDiskCluster(t, n, func(cfg *Config) *switchedDisk { return newReadFailingDisk(cfg.Dir + "/log") }, func(i int, cfg *Config) { cfgs[i] = *cfg })
			trans := func(i int) *raft.InmemTransport { return cfgs[i].Transport.(*raft.InmemTransport) }
			cut := func(f int) {
				trans(f).DisconnectAll()
				for i := range n {
					if i != f {
						trans(i).Disconnect(trans(f).LocalAddr())
					}
				}
			}
			join := func(f int) {
				for i := range n {
					if i != f {
						trans(i).Connect(trans(f).LocalAddr(), trans(f))
						trans(f).Connect(trans(i).LocalAddr(), trans(i))
					}
				}
			}
			l := c.leader()
			c.waitHeight(2)
			var k, f int // k: the node whose disk fails; f: the follower cut off
			switch role {
			case "leader":
				k, f = l, (l+1)%n
				cut(f)
				// Entries f misses, long enough ago to be flushed below.
				h, _ := c.dbs[k].Head()
				waitFor(t, 20*time.Second, "the others to go on without the cut-off follower", func() bool {
					hk, _ := c.dbs[k].Head()
					return hk.Number >= h.Number+5
				})
			case "follower":
				// Cut the follower off while it holds entries it does
				// not yet know committed: it applies them when it hears
				// from the leader again.
				k = (l + 1) % n
				f = k
				waitFor(t, 20*time.Second, "a follower holding entries it does not know committed", func() bool {
					cut(f)
					st := c.engines[f].Raft.Stats()
					if st["commit_index"] != st["last_log_index"] {
						return true
					}
					join(f)
					time.Sleep(time.Millisecond)
					return false
				})
			}
			// The entries are in sstables, which no read has brought into
			// the block cache; from now on the disk fails their reads.
			if err := c.engines[k].store.db.Flush(); err != nil {
				t.Fatal(err)
			}
			disks[k].fail.Store(true)
			join(f)

			waitFor(t, 20*time.Second, fmt.Sprintf("node %d to halt", k), func() bool { return c.engines[k].Halted() != nil })
			err := c.engines[k].Halted()
			if !errors.Is(err, ErrHalted) || !strings.Contains(err.Error(), "raft log") || !strings.Contains(err.Error(), errorfs.ErrInjected.Error()) {
				t.Errorf("halt reason %v, want ErrHalted naming the Raft log and the disk's error", err)
			}
			rec, rerr := c.dbs[k].HaltRecord()
			if rerr != nil || rec == nil || !strings.Contains(rec.Reason, "read") {
				t.Errorf("halt record %+v, %v, want the failed read", rec, rerr)
			}
			lastIndex := c.haltedNodeStaysOut(t, k, "failed a read")
			other := (k + 1) % n

			// The disk is repaired; the operator clears the halt and
			// starts the node again.
			disks[k].fail.Store(false)
			s, err := OpenRaftStore(cfgs[k].Dir+"/log", RaftStoreOptions{FS: disks[k].fs(), Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if last, _ := s.LastIndex(); last != lastIndex {
				t.Errorf("the failed node's log ends at %d after the restart, at %d when it halted", last, lastIndex)
			}
			first, _ := s.FirstIndex()
			var entry raft.Log
			for i := first; i <= lastIndex; i++ {
				if err := s.GetLog(i, &entry); err != nil {
					t.Fatalf("entry %d after the repair: %v", i, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.dbs[k].ClearHalt(); err != nil {
				t.Fatal(err)
			}
			e, err := Start(cfgs[k], c.dbs[k], c.pools[k], c.engines[k].FSM.senders)
			if err != nil {
				t.Fatalf("restart on the repaired disk: %v", err)
			}
			c.engines[k] = e
			join(k)
			h, _ := c.dbs[other].Head()
			waitFor(t, 20*time.Second, "the restarted node to catch up", func() bool {
				hk, _ := c.dbs[k].Head()
				return hk.Number >= h.Number
			})
			if e.Halted() != nil {
				t.Errorf("restarted node halted: %v", e.Halted())
			}
		})
	}
}

// TestNewRaftReadFailure: a failed read of the Raft log in NewRaft's scan
// of the log for configuration entries (where hashicorp/raft v1.8.0
// panics, api.go:615) is the store's failure, reported to the failure
// hook (the node's halt), and an error of the engine's newRaft instead of
// a panic that would end the process with raft's message.
func TestNewRaftReadFailure(t *testing.T) {
	disk, s, failures := openFlushedLog(t, "/raft/log", 3)
	defer s.Close()
	// Opening read the first and the last entry, and this the term
	// (NewRaft's first reads): the entries between are on the disk only.
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 3 {
		t.Fatalf("current term %d, %v", term, err)
	}
	disk.fail.Store(true)
	_, trans := raft.NewInmemTransport("")
	var r *raft.Raft
	err := noPanic(t, "NewRaft", func() (err error) {
		r, err = newRaft(testRaftConfig(t, "n1"), &raft.MockFSM{}, s, raft.NewInmemSnapshotStore(), trans)
		return err
	})
	if r != nil {
		r.Shutdown().Error()
		t.Fatal("NewRaft started on a log it could not read")
	}
	if !errors.Is(err, ErrDiskFailed) || !errors.Is(err, errorfs.ErrInjected) || !strings.Contains(err.Error(), "get log") {
		t.Fatalf("NewRaft on a log failing reads: %v, want ErrDiskFailed naming the failed read of an entry", err)
	}
	if n := failures.n.Load(); n != 1 {
		t.Errorf("failure hook called %d times, want once", n)
	}
}

// TestRaftStateReadFailureKeepsTheDiskError: a start whose first read of
// the Raft stable store fails (raft.HasExistingState reads the current
// term) fails with the store's failure, which keeps the disk's error in
// its chain: raft formats it with %v (found by the cluster simulator's
// raft-read-error fault, seed 39, where the start on the failing disk was
// not recognised as one).
func TestRaftStateReadFailureKeepsTheDiskError(t *testing.T) {
	const dir = "/raft/log"
	disk := newReadFailingDisk(dir)
	writeFlushedLog(t, disk, dir, 3)
	s, err := OpenRaftStore(dir, RaftStoreOptions{FS: disk.fs(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	disk.fail.Store(true)
	existing, err := existingState(s, raft.NewInmemSnapshotStore())
	if existing || !errors.Is(err, ErrDiskFailed) || !errors.Is(err, errorfs.ErrInjected) || !strings.Contains(err.Error(), "CurrentTerm") {
		t.Fatalf("existing state on a store failing reads: %v, %v; want ErrDiskFailed wrapping the disk's error, naming the read", existing, err)
	}
}
