package sim

import (
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// A simulated node's disk is its in-memory file system (sn.fs, which a
// crash clones) seen through errorfs, which consults the node's disk
// faults before every operation: the state database (stateDir) and the
// Raft log (raftDir) each get their own view, so that a fault can hit one
// store and not the other, as a failing device under one of them would.
//
// Faults touch the write-ahead logs (the *.log files) only, and of them
// only writes and syncs:
//
//   - a disk error fails them with EIO (errorfs.ErrInjected). Pebble
//     answers a failed WAL write or sync with its "fatal commit error" in
//     the goroutine that committed; the node must turn it into a halt
//     (state: the FSM; Raft log: consensus.RaftStore's disk-failure hook).
//     Pebble's MANIFEST and its flushes fail in Pebble's own background
//     goroutines, where no caller can recover them, in a node as here;
//     they are not injected.
//   - a slow disk makes each WAL sync take simulated time: the op sleeps
//     on the bubble's clock before it runs. This works because the WAL's
//     sync runs in Pebble's log flusher goroutine with no lock held
//     (record.LogWriter.flushLoop releases its mutex around flushPending),
//     and the committers wait for it on a sync.WaitGroup, which synctest
//     counts as durably blocked; every goroutine of the bubble then
//     blocks durably and the clock can move on. Sleeping anywhere a mutex
//     is held that another goroutine may wait for (a Pebble flush holding
//     DB.mu, the MANIFEST writer) would deadlock the bubble: a goroutine
//     waiting on a sync.Mutex is never durably blocked, so the clock would
//     never reach the sleeper's wake-up.

// slowDisk is a slow-disk fault: until until, each WAL sync of the node
// takes by longer.
type slowDisk struct {
	by    atomic.Int64 // time.Duration
	until atomic.Int64 // UnixNano of the bubble's clock
	// syncs and stalled count the syncs delayed and the simulated time
	// they were held back (for Result).
	syncs, stalled atomic.Int64
}

func (d *slowDisk) set(by time.Duration, until time.Time) {
	d.by.Store(int64(by))
	d.until.Store(until.UnixNano())
}

func (d *slowDisk) clear() { d.until.Store(0) }

// latency is how long a sync takes now beyond its own time (0: not slow).
func (d *slowDisk) latency() time.Duration {
	if time.Now().UnixNano() >= d.until.Load() {
		return 0
	}
	return time.Duration(d.by.Load())
}

// disk is the node's file system as the store in dir sees it, with the
// node's disk faults injected.
func (sn *simNode) disk(dir string) vfs.FS {
	failing := &sn.diskErr
	if dir == raftDir {
		failing = &sn.raftDiskErr
	}
	return errorfs.Wrap(sn.fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !strings.HasPrefix(op.Path, dir+"/") || !strings.HasSuffix(op.Path, ".log") {
			return nil
		}
		switch op.Kind {
		case errorfs.OpFileWrite, errorfs.OpFileWriteAt:
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if d := sn.slow.latency(); d > 0 && inLogFlusher() {
				time.Sleep(d)
				sn.slow.syncs.Add(1)
				sn.slow.stalled.Add(int64(d))
			}
		default:
			return nil
		}
		if failing.Load() {
			return errorfs.ErrInjected
		}
		return nil
	}))
}

// Bounds of a slow-disk fault.
const (
	maxSyncLatency = 400 * time.Millisecond
	maxSlowFor     = 20 * time.Second
)

// slowDisk makes a random up node's syncs slow for a while.
func (s *Sim) slowDisk() {
	up := s.upNodes()
	if len(up) == 0 {
		return
	}
	sn := s.nodes[up[s.rng.IntN(len(up))]]
	by := time.Duration(1 + s.rng.Int64N(int64(maxSyncLatency)))
	d := time.Duration(1 + s.rng.Int64N(int64(maxSlowFor)))
	sn.slow.set(by, time.Now().Add(d))
	s.count(FaultSlowDisk)
	s.record("slow-disk n%d: syncs %s slower for %s", sn.id, by, d)
}

// diskError makes a random up node's state database (FaultDiskError) or
// Raft log (FaultRaftDiskError) fail its writes until the node halts on
// it; the invariants then stop the node, and a restart brings it back on
// the repaired disk with its halt cleared.
func (s *Sim) diskError(f Fault) {
	up := s.upNodes()
	if len(up) == 0 {
		return
	}
	sn := s.nodes[up[s.rng.IntN(len(up))]]
	if f == FaultRaftDiskError {
		sn.raftDiskErr.Store(true)
	} else {
		sn.diskErr.Store(true)
	}
	s.count(f)
	s.record("%s n%d", f, sn.id)
}

// diskFailing reports whether one of the node's stores has a failing disk.
func (sn *simNode) diskFailing() bool { return sn.diskErr.Load() || sn.raftDiskErr.Load() }

// repairDisk ends the node's disk errors: the operator replaced the disk
// (the files stay as they were, what was synced and what was written
// since).
func (sn *simNode) repairDisk() {
	sn.diskErr.Store(false)
	sn.raftDiskErr.Store(false)
}

// inLogFlusher reports whether the calling goroutine is Pebble's WAL
// flusher (record.LogWriter.flushLoop), where a sync runs with no lock
// held that another goroutine may wait on. A WAL is synced elsewhere too:
// closing a database syncs it in the closing goroutine, and a snapshot
// restore closes the state database under store.DB's lock, which readers
// (the vote relay) wait on; slowing that sync would deadlock the bubble.
func inLogFlusher() bool {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "record.(*LogWriter).flushLoop") {
			return true
		}
		if !more {
			return false
		}
	}
}
