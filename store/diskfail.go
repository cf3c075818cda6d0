package store

import (
	"errors"
	"fmt"
	"runtime"
)

// A failed write-ahead log write on the state database's disk. Pebble
// v2.1.7 keeps a failed WAL write or sync as the log writer's error for
// good (record.LogWriter's flusher error), and what becomes of the
// commits after it depends on where they meet it:
//
//   - a synced commit gets it back from its sync, and Pebble calls
//     Logger.Fatalf ("pebble: fatal commit error") in the committing
//     goroutine, with no lock held: PebbleLogger panics with a
//     *FatalError, which guard turns into an error here;
//   - a commit that finds the memtable full (or a batch as large as half
//     a memtable), and a flush asked for (DB.Flush), rotates the
//     write-ahead log first (DB.makeRoomForWrite,
//     DB.rotateWAL): Pebble releases DB.mu, closes the old log (writing
//     its EOF trailer and syncing), and panics with the error, with
//     DB.mu unlocked; the deferred unlock of its caller then fails with
//     "fatal error: sync: unlock of unlocked mutex", which no recover
//     catches: the process ends (cockroachdb/pebble#5225, #5601; Pebble
//     calls Fatalf there since, which ends the process too).
//
// So once one commit failed, the database refuses every later write and
// checkpoint (DiskFailed) without calling Pebble: the commits that would
// have met a rotation (the halt record, a flush) are never made. What remains is a rotation that is itself the
// first write to meet the failure: the disk starts failing after the
// last commit synced, and the next commit fills the memtable (4 MiB of
// block writes, more than any one block). That one ends the process;
// docs/architecture.md ("Disk faults") says so, and
// TestWALRotationOnFailingDisk shows it.

// guard runs a Pebble write f of the node's database: refused once a
// commit failed, and a panic of Pebble's for a failed disk (a
// *FatalError, or an error Pebble panics with itself) an error wrapping
// ErrDiskFailed, after which every write is refused. Any other panic
// goes on.
func (d *DB) guard(f func() error) (err error) {
	if d.writesFailed.Load() {
		return *d.diskErr.Load()
	}
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		e, ok := r.(error)
		var re runtime.Error
		if !ok || errors.As(e, &re) {
			panic(r)
		}
		var fe *FatalError
		if !errors.As(e, &fe) {
			fe = &FatalError{Dir: d.dir, Msg: "panic: " + e.Error(), cause: e}
		}
		err = fmt.Errorf("%w: %w", ErrDiskFailed, fe)
		// Stored before writesFailed is set: a reader that sees the flag
		// finds the error.
		d.diskErr.CompareAndSwap(nil, &err)
		d.writesFailed.Store(true)
		d.log.Error("ALARM: state database disk failed a commit: refusing every further write", "dir", d.dir, "err", err, "alarm", "node_halted")
		go d.notifyFailure()
	}()
	return f()
}

// diskFailed records a persistent failure of the background jobs
// (background.go) and tells the hook.
func (d *DB) diskFailed(err error) {
	d.diskErr.CompareAndSwap(nil, &err)
	d.notifyFailure()
}

// notifyFailure calls the failure hook, if any, with the first failure.
func (d *DB) notifyFailure() {
	d.hookMu.Lock()
	hook := d.hook
	d.hookMu.Unlock()
	if hook != nil {
		hook(*d.diskErr.Load())
	}
}

// DiskFailed returns the database's disk failure (wrapping
// ErrDiskFailed), or nil: a commit failed (every write is refused since),
// or its background jobs failed for good (background.go).
func (d *DB) DiskFailed() error {
	if e := d.diskErr.Load(); e != nil {
		return *e
	}
	return nil
}

// OnDiskFailure sets what is called, in a goroutine of its own and at
// least once, when the database's disk fails (the
// node halts: consensus.NewFSM sets it); if it failed already, fn is
// called at once.
func (d *DB) OnDiskFailure(fn func(error)) {
	d.hookMu.Lock()
	d.hook = fn
	d.hookMu.Unlock()
	if d.DiskFailed() != nil {
		go d.notifyFailure()
	}
}
