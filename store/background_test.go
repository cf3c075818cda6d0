package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/diskfault"
)

// tableFault is a disk under the database in dir that fails the sstable
// creations, writes and syncs (diskfault.Table) that fail(n) says to,
// n counting the creations from 1; creates counts them.
func tableFault(dir string, creates *atomic.Int64, fail func(n int64) bool) vfs.FS {
	return diskfault.Inject(vfs.NewMem(), func(op errorfs.Op) bool {
		if !diskfault.Table(dir, op) {
			return false
		}
		n := creates.Load()
		if op.Kind == errorfs.OpCreate {
			n = creates.Add(1)
		}
		return fail(n)
	})
}

// openOn opens a database with genesis with opts and reports its disk
// failures on the returned channel.
func openOn(t *testing.T, dir string, opts Options) (*DB, chan error) {
	t.Helper()
	db, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	failures := make(chan error, 4)
	db.OnDiskFailure(func(err error) { failures <- err })
	return db, failures
}

// childReturned is what the child process of endsProcess prints when the
// call that must end it returned.
const childReturned = "the call returned:"

// endsProcess is the parent's side of a test of a disk failure that ends
// the process (which no test can survive in its own): it writes the dev
// genesis to a database in a new directory, runs the test again in a
// process of its own (this test binary) with $env naming that directory,
// for the child to open the database on a failing disk and make the call
// (what: the fatal message's subject) that must end the process, and to
// print childReturned should the call return. The process must end
// without it, its output holding each of want ($DIR in one standing for
// the directory); the database opened again
// on the repaired disk must hold what was written, with the same head;
// it is returned, closed at the test's end.
func endsProcess(t *testing.T, env, what string, want ...string) *DB {
	t.Helper()
	if testing.Short() {
		t.Skip("runs this test binary again")
	}
	dir := filepath.Join(t.TempDir(), "state")
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InitGenesis(genesis.Dev()); err != nil { // in the write-ahead log only
		t.Fatal(err)
	}
	head, _ := db.Head()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil || strings.Contains(string(out), childReturned) {
		t.Fatalf("%s returned (%v):\n%s", what, err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), strings.ReplaceAll(w, "$DIR", dir)) {
			t.Fatalf("the process ended (%v) without %q:\n%.4000s", err, w, out)
		}
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open on the repaired disk: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if got, _ := db.Head(); got != head {
		t.Fatalf("head %+v on the repaired disk, want %+v", got, head)
	}
	return db
}

// closeWithin closes db, failing t if Close does not return within d.
func closeWithin(t *testing.T, db *DB, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- db.Close() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("Close did not return within %s", d)
	}
}

// leastBackoff is the least time bgFailLimit failed jobs in a row take:
// the waits between them, 50 ms doubling up to 1 s.
func leastBackoff() time.Duration {
	var least time.Duration
	for i := 1; i < bgFailLimit; i++ {
		least += min(bgBackoff<<(i-1), bgMaxBackoff)
	}
	return least
}

// TestPersistentFlushFailureHalts: a disk that fails every sstable write
// makes Pebble retry the flush at once and for ever (DB.flush). The
// store backs the retries off, declares the disk failed after
// bgFailLimit failures in a row and tells the node (which halts), stops
// the retries for good (no more sstable is even created), refuses
// checkpoints, and changes no state; it still records a halt (the
// write-ahead log works), and it closes.
func TestPersistentFlushFailureHalts(t *testing.T) {
	const dir = "/state"
	var creates atomic.Int64
	var failing atomic.Bool
	db, failures := openOn(t, dir, Options{FS: tableFault(dir, &creates, func(int64) bool { return failing.Load() }), NoSync: true})
	head, _ := db.Head()
	failing.Store(true)
	before := creates.Load()
	start := time.Now()
	if _, err := db.pdb.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	var failure error
	select {
	case failure = <-failures:
	case <-time.After(60 * time.Second):
		t.Fatalf("no disk failure reported after %d flush tries", creates.Load()-before)
	}
	took := time.Since(start)
	if !errors.Is(failure, ErrDiskFailed) || !errors.Is(failure, errorfs.ErrInjected) || !strings.Contains(failure.Error(), "background jobs in a row failed") {
		t.Fatalf("reported %v; want ErrDiskFailed wrapping the disk's error", failure)
	}
	if least := leastBackoff(); took < least {
		t.Fatalf("%d tries in %s: not backed off (want at least %s)", bgFailLimit, took, least)
	}
	// No spinning: the next try waits for Close without creating a table.
	time.Sleep(300 * time.Millisecond)
	if tries := creates.Load() - before; tries != bgFailLimit {
		t.Fatalf("%d flush tries, want %d and then none", tries, bgFailLimit)
	}
	if err := db.DiskFailed(); !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("DiskFailed: %v", err)
	}
	if err := db.Checkpoint("/checkpoint"); !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("checkpoint on the failed disk: %v, want ErrDiskFailed", err)
	}
	if got, _ := db.Head(); got != head {
		t.Fatalf("head %+v after the failure, want %+v", got, head)
	}
	if err := db.RecordHalt(HaltRecord{Reason: failure.Error()}); err != nil {
		t.Fatalf("halt record with a working write-ahead log: %v", err)
	}
	if rec, err := db.HaltRecord(); err != nil || rec == nil {
		t.Fatalf("halt record: %v, %v", rec, err)
	}
	closeWithin(t, db, 10*time.Second)
	if tries := creates.Load() - before; tries > bgFailLimit+1 {
		t.Fatalf("%d flush tries after Close, want at most %d", tries, bgFailLimit+1)
	}
}

// TestCloseDuringFailingFlushDeclaresNothing: a node stopped while its
// disk fails a flush (one failure short of the limit) is stopping, not
// halting: the retries Close cuts short count for nothing, and no disk
// failure is declared (before, they reached the limit inside Close and
// the node raised a halt it could not even record: the database was
// closed; found by the cluster simulator's table-disk-error fault).
func TestCloseDuringFailingFlushDeclaresNothing(t *testing.T) {
	const dir = "/state"
	var creates atomic.Int64
	var failing atomic.Bool
	db, failures := openOn(t, dir, Options{FS: tableFault(dir, &creates, func(int64) bool { return failing.Load() }), NoSync: true})
	failing.Store(true)
	before := creates.Load()
	if _, err := db.pdb.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for creates.Load()-before < bgFailLimit-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d flush tries in 60 s", creates.Load()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	bg := db.bg
	closeWithin(t, db, 10*time.Second) // Pebble's Close waits for the flush
	select {
	case <-bg.stop:
		t.Fatalf("a disk failure declared while closing: %v", bg.cause)
	case err := <-failures:
		t.Fatalf("a disk failure reported while closing: %v", err)
	default:
	}
}

// TestTransientFlushFailureRecovers: a disk that fails a few sstable
// writes and then works again is no failure: Pebble's retry flushes the
// same memtable, and the store reports nothing.
func TestTransientFlushFailureRecovers(t *testing.T) {
	const dir = "/state"
	var creates atomic.Int64
	var from atomic.Int64
	from.Store(1 << 62)
	db, failures := openOn(t, dir, Options{FS: tableFault(dir, &creates, func(n int64) bool { return n >= from.Load() && n < from.Load()+bgFailLimit-2 }), NoSync: true})
	defer closeWithin(t, db, 10*time.Second)
	from.Store(creates.Load() + 1)
	flushed, err := db.pdb.AsyncFlush()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-flushed:
	case err := <-failures:
		t.Fatalf("a transient failure was reported: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the flush did not succeed once the disk worked again")
	}
	if tries := creates.Load() - from.Load() + 1; tries != bgFailLimit-1 {
		t.Fatalf("%d tries, want %d (%d failed)", tries, bgFailLimit-1, bgFailLimit-2)
	}
	if err := db.DiskFailed(); err != nil {
		t.Fatalf("DiskFailed after a transient failure: %v", err)
	}
	if err := db.Checkpoint("/checkpoint"); err != nil {
		t.Fatalf("checkpoint after a transient failure: %v", err)
	}
}

const openFlushEnv = "TALLY_TEST_OPEN_FLUSH_DIR"

// TestOpenOnFailingTableDisk: a restart whose flush of the replayed
// write-ahead log fails every sstable write. Open waits for that flush,
// which Pebble retries for ever, so nothing in the process can stop it:
// after bgFailLimit failures in a row the process ends, naming the
// database and the disk failure (it runs in a process of its own: this
// test binary again), and the database opened on the repaired disk holds
// what was written.
func TestOpenOnFailingTableDisk(t *testing.T) {
	if dir := os.Getenv(openFlushEnv); dir != "" {
		db, err := Open(dir, Options{FS: diskfault.Inject(vfs.Default, func(op errorfs.Op) bool { return diskfault.Table(dir, op) })})
		if err == nil {
			db.Close()
		}
		fmt.Println(childReturned, err)
		return
	}
	endsProcess(t, openFlushEnv, "Open on a disk failing its flushes",
		"pebble database $DIR failed", "before Open returned", "failed background jobs in a row")
}

// TestPersistentCompactionReadFailureHalts: on a disk whose sstable reads
// fail, every compaction fails reading its inputs, before it creates a
// table (so before beforeTable), and Pebble picks an L0 compaction again
// as soon as one failed (its problem spans spare only the tables below
// L0: DB.handleCompactFailure). Before the store scheduled compactions
// itself, that loop ran about 945,000 compactions in 3 minutes (the
// cluster simulator's seed 458) and never stopped. Now the retries are
// backed off, the disk is declared failed after bgFailLimit of them in a
// row (while flushes, which read no table, go on working), and no
// compaction runs after that.
func TestPersistentCompactionReadFailureHalts(t *testing.T) {
	const dir = "/state"
	var reads atomic.Int64
	var failing atomic.Bool
	fs := diskfault.Inject(vfs.NewMem(), func(op errorfs.Op) bool {
		if !failing.Load() || !diskfault.TableRead(dir, op) {
			return false
		}
		reads.Add(1)
		return true
	})
	db, failures := openOn(t, dir, Options{FS: fs, NoSync: true})
	failing.Store(true)
	start := time.Now()
	// Overlapping tables in L0, as many as Pebble's L0CompactionThreshold
	// and one more: a compaction into the level below, which reads them.
	flushOverlapping(t, db, 5)
	var failure error
	select {
	case failure = <-failures:
	case <-time.After(60 * time.Second):
		t.Fatalf("no disk failure reported after %d failed table reads", reads.Load())
	}
	took := time.Since(start)
	if !errors.Is(failure, ErrDiskFailed) || !errors.Is(failure, errorfs.ErrInjected) || !strings.Contains(failure.Error(), "compaction") {
		t.Fatalf("reported %v; want ErrDiskFailed wrapping the failed compaction's error", failure)
	}
	if least := leastBackoff(); took < least {
		t.Fatalf("failure declared after %s and %d failed reads: compactions not backed off (want at least %s)", took, reads.Load(), least)
	}
	// No compaction after the failure: no table is read any more.
	n := reads.Load()
	time.Sleep(300 * time.Millisecond)
	if more := reads.Load() - n; more > 0 {
		t.Fatalf("%d table reads failed in the 300 ms after the disk failure: compactions still retried", more)
	}
	closeWithin(t, db, 10*time.Second)
}

// TestTransientCompactionFailureRecovers: compactions that fail reading
// a table a few times and then succeed are no disk failure: the backoff
// lets them run again, the compaction is done, and the run of failures
// ends.
func TestTransientCompactionFailureRecovers(t *testing.T) {
	const dir = "/state"
	var failing atomic.Bool
	fs := diskfault.Inject(vfs.NewMem(), func(op errorfs.Op) bool {
		return failing.Load() && diskfault.TableRead(dir, op)
	})
	db, failures := openOn(t, dir, Options{FS: fs, NoSync: true})
	defer closeWithin(t, db, 10*time.Second)
	failing.Store(true)
	compactionRun := func() int {
		db.bg.mu.Lock()
		defer db.bg.mu.Unlock()
		return db.bg.run[compactionJob]
	}
	flushOverlapping(t, db, 5)
	deadline := time.Now().Add(60 * time.Second)
	for compactionRun() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no compaction failed twice in 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	failing.Store(false)
	for compactionRun() > 0 || db.pdb.Metrics().Compact.Count == 0 {
		select {
		case err := <-failures:
			t.Fatalf("a transient failure was reported: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("compactions not done once the disk worked again: %d failed in a row", compactionRun())
		}
	}
	if err := db.DiskFailed(); err != nil {
		t.Fatalf("DiskFailed after a transient failure: %v", err)
	}
}

// flushOverlapping flushes n overlapping tables into L0 of db, failing t
// if a flush (which reads no table) is not done within 60 s.
func flushOverlapping(t *testing.T, db *DB, n int) {
	t.Helper()
	for i := range n {
		for _, k := range []string{"a", "m", "z"} {
			if err := db.pdb.Set([]byte(fmt.Sprintf("%s%d", k, i)), []byte("v"), nil); err != nil {
				t.Fatal(err)
			}
		}
		flushed, err := db.pdb.AsyncFlush()
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-flushed:
		case <-time.After(60 * time.Second):
			t.Fatalf("flush %d not done in 60 s", i)
		}
	}
}

// TestPersistentDirSyncFailureStopsFlushes: a flush that writes no table
// still syncs the database's directory when an object was made or
// removed since its last good sync (here a compaction's removed inputs),
// so on a directory whose syncs fail it fails before any table creation
// could make it wait (beforeTable), and Pebble tried it again at once,
// for ever, also after the disk's failure was declared (the cluster
// simulator's seed 747 at e92e4d7: an empty flush asked for just before
// the fault; the flush goroutines spun until the watchdog stopped the
// run). The directory's syncs are backed off after a failed one, and a
// failing one waits for Close once the failure is declared.
func TestPersistentDirSyncFailureStopsFlushes(t *testing.T) {
	const dir = "/state"
	var syncs atomic.Int64
	var failing atomic.Bool
	fs := diskfault.Inject(vfs.NewMem(), func(op errorfs.Op) bool {
		// The flush's sync (compactAndWrite), not the write-ahead log's
		// rotation, on which Pebble panics.
		if op.Kind != errorfs.OpFileSync || filepath.Clean(op.Path) != dir || !failing.Load() || !diskfault.OnStack("pebble/v2.(*DB).compactAndWrite") {
			return false
		}
		syncs.Add(1)
		return true
	})
	db, failures := openOn(t, dir, Options{FS: fs, NoSync: true})
	defer closeWithin(t, db, 10*time.Second)
	// Two tables, compacted into one: the compaction removes its inputs
	// after its own directory sync, which leaves a change to sync.
	for _, k := range []string{"a", "b"} {
		if err := db.pdb.Set([]byte(k), []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		if err := db.pdb.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.pdb.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(tables(t, fs, dir)) > 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the compaction's inputs are still there: %v", tables(t, fs, dir))
		}
	}
	failing.Store(true)
	start := time.Now()
	if _, err := db.pdb.AsyncFlush(); err != nil { // an empty memtable: no table
		t.Fatal(err)
	}
	var failure error
	select {
	case failure = <-failures:
	case <-time.After(60 * time.Second):
		t.Fatalf("no disk failure reported after %d directory syncs", syncs.Load())
	}
	if !errors.Is(failure, ErrDiskFailed) || !errors.Is(failure, errorfs.ErrInjected) {
		t.Fatalf("reported %v; want ErrDiskFailed wrapping the disk's error", failure)
	}
	if took, least := time.Since(start), leastBackoff(); took < least {
		t.Fatalf("%d failed flushes in %s: not backed off (want at least %s)", syncs.Load(), took, least)
	}
	before := syncs.Load()
	time.Sleep(300 * time.Millisecond)
	if n := syncs.Load() - before; n > 1 {
		t.Fatalf("%d directory syncs in 300 ms after the disk's failure was declared: Pebble's retries spin", n)
	}
}

// tables lists the sstables in dir.
func tables(t *testing.T, fs vfs.FS, dir string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n, ".sst") {
			out = append(out, n)
		}
	}
	return out
}

// TestDirSyncGate: after a failed sync of the database's directory the
// next waits out the backoff; a good one ends it; once the failure is
// declared, a sync that fails returns only at Close, one that succeeds at
// once.
func TestDirSyncGate(t *testing.T) {
	b := newBackground("/state", slog.New(slog.DiscardHandler), nil)
	b.open()
	fail := func() error { return errorfs.ErrInjected }
	ok := func() error { return nil }
	if err := b.dirSync(fail); err == nil {
		t.Fatal("a failed sync returned nil")
	}
	start := time.Now()
	if err := b.dirSync(fail); err == nil || time.Since(start) < bgBackoff {
		t.Fatalf("second failed sync after %s (%v), want an error after at least %s", time.Since(start), err, bgBackoff)
	}
	if err := b.dirSync(ok); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	b.dirSync(fail)
	if took := time.Since(start); took >= bgBackoff {
		t.Fatalf("a failure after a good sync waited %s", took)
	}
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- b.dirSync(fail) }()
	select {
	case err := <-done:
		t.Fatalf("a failing sync after the declared failure returned before Close: %v", err)
	case <-time.After(bgMaxBackoff + 200*time.Millisecond):
	}
	okDone := make(chan error, 1)
	go func() { okDone <- b.dirSync(ok) }()
	select {
	case err := <-okDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a good sync after the declared failure waited")
	}
	b.close()
	select {
	case err := <-done:
		if !errors.Is(err, errorfs.ErrInjected) {
			t.Fatalf("released sync: %v, want the disk's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the failing sync did not return at Close")
	}
}
