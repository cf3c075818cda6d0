package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/tally-ledger/tally/internal/diskfault"
)

// walFault is fs with the write-ahead log writes and syncs of the
// database in dir failing (diskfault.WAL) while failing is set.
func walFault(fs vfs.FS, dir string, failing *atomic.Bool) vfs.FS {
	return diskfault.Inject(fs, func(op errorfs.Op) bool { return failing.Load() && diskfault.WAL(dir, op) })
}

// TestWALFailureRefusesLaterWrites: once a commit met a failed
// write-ahead log (Pebble's "fatal commit error"), every later write and
// checkpoint is refused without reaching Pebble, however full the
// memtable: Pebble keeps the log's error, and a later commit that rotated
// the log would end the process ("unlock of unlocked mutex",
// diskfail.go). The first failure is an error wrapping ErrDiskFailed
// and the disk's error, reported to the failure hook; nothing changes.
func TestWALFailureRefusesLaterWrites(t *testing.T) {
	const dir = "/state"
	var failing atomic.Bool
	db, failures := openOn(t, dir, Options{FS: walFault(vfs.NewMem(), dir, &failing)})
	head, _ := db.Head()
	failing.Store(true)
	big := HaltRecord{Reason: "filler", Stack: strings.Repeat("x", MaxHaltStack)}
	err := db.RecordHalt(big)
	if !errors.Is(err, ErrDiskFailed) || !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("write on a failing write-ahead log: %v; want ErrDiskFailed wrapping the disk's error", err)
	}
	if reported := <-failures; !errors.Is(reported, ErrDiskFailed) {
		t.Fatalf("reported %v", reported)
	}
	// 64 MiB of writes: many memtables' worth, each a log rotation had
	// it reached Pebble.
	for i := range 4096 {
		if err := db.RecordHalt(big); !errors.Is(err, ErrDiskFailed) {
			t.Fatalf("write %d after the failure: %v; want it refused", i, err)
		}
	}
	if _, err := db.ClearHalt(); err != nil && !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("clear halt after the failure: %v", err)
	}
	if err := db.Checkpoint("/checkpoint"); !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("checkpoint after the failure: %v; want it refused", err)
	}
	if err := db.Flush(); !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("flush after the failure: %v; want it refused", err)
	}
	if got, _ := db.Head(); got != head {
		t.Fatalf("head %+v, want %+v", got, head)
	}
	defer func() { recover() }() // Pebble's commit pipeline is broken: closing it may panic
	db.Close()
}

const walRotationEnv = "TALLY_TEST_WAL_ROTATION_DIR"

// TestWALRotationOnFailingDisk shows what is left of the failing
// write-ahead log (diskfail.go): a commit whose log rotation is the
// first write to meet the failure ends the process, inside Pebble, with
// "fatal error: sync: unlock of unlocked mutex" (DB.rotateWAL panics
// with DB.mu released; cockroachdb/pebble#5225, #5601), which does not
// even print the disk's error. Here a batch of
// half a memtable or more, which Pebble rotates the log for, is that
// commit. The process ends (it runs in a process of its own: this test
// binary again) and the database opened again on the repaired disk holds
// what was synced before, with none of the batch.
func TestWALRotationOnFailingDisk(t *testing.T) {
	if dir := os.Getenv(walRotationEnv); dir != "" {
		var failing atomic.Bool
		db, err := Open(dir, Options{FS: walFault(vfs.Default, dir, &failing)})
		if err != nil {
			fmt.Println("open:", err)
			return
		}
		failing.Store(true)
		batch := db.pdb.NewBatch()
		_ = batch.Set([]byte("rotation-test"), make([]byte, 3<<20), nil) // > MemTableSize/2 (4 MiB memtables)
		err = db.guard(func() error { return batch.Commit(pebble.Sync) })
		fmt.Println(childReturned, err)
		return
	}
	// The disk's error itself is not printed: the runtime's fatal error
	// hides the panic value ("panic: (*withstack.withStack) 0x…").
	db := endsProcess(t, walRotationEnv, "the commit whose log rotation met the failing disk",
		"unlock of unlocked mutex", "rotateWAL")
	if v, err := db.get([]byte("rotation-test")); err != nil || v != nil {
		t.Fatalf("the failed batch: %d bytes, %v; want none", len(v), err)
	}
}
