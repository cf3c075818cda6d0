package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/diskfault"
)

// healthTick is how often Pebble's disk-health check looks at the
// operations under way (vfs.defaultTickInterval): a stall is reported at
// the first look after the bound has passed.
const healthTick = 2 * time.Second

// syncLog reports whether op syncs a write-ahead log of the database in
// dir: what every synced commit waits for.
func syncLog(dir string, op errorfs.Op) bool {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		return diskfault.WAL(dir, op)
	}
	return false
}

// lockedBuffer is a log's output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStallDetectedWithinBound: on real Pebble, a write-ahead log sync
// that does not return is reported once it has hung for the bound
// (store.max-sync-duration), at Pebble's next look (every 2 s), with the
// file, the operation and how long it hung, and an ALARM is logged; a
// sync held back for less than the bound is no stall. The commit waiting
// on the stalled sync returns once the disk answers.
func TestStallDetectedWithinBound(t *testing.T) {
	t.Parallel()
	const dir = "/state"
	// Twice the least bound, so that a short stall of a tenth of it stays
	// well under it on a loaded machine.
	const bound = 2 * MinMaxSyncDuration
	// Two stalls, each released by its own channel: a short one, then
	// one held until the test releases it.
	var shortHeld, longHeld atomic.Bool
	releaseShort, releaseLong := make(chan struct{}), make(chan struct{})
	fs := diskfault.Hold(vfs.NewMem(), func(op errorfs.Op) bool { return shortHeld.Load() && syncLog(dir, op) }, releaseShort)
	fs = diskfault.Hold(fs, func(op errorfs.Op) bool { return longHeld.Load() && syncLog(dir, op) }, releaseLong)
	var logs lockedBuffer
	stalls := make(chan *StallError, 8)
	db, err := Open(dir, Options{FS: fs, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Stalls: Stalls{MaxSyncDuration: bound, OnStall: func(e *StallError) { stalls <- e }}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}

	// A tenth of the bound: no stall, however many of Pebble's looks see
	// it.
	shortHeld.Store(true)
	wrote := make(chan error, 1)
	go func() { wrote <- db.RecordHalt(HaltRecord{Reason: "short"}) }()
	time.Sleep(bound / 10)
	shortHeld.Store(false)
	close(releaseShort)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	time.Sleep(healthTick + bound/10)
	select {
	case e := <-stalls:
		t.Fatalf("a sync held for %s reported as a stall: %v", bound/10, e)
	default:
	}

	// Held for good: reported once it has hung for the bound.
	longHeld.Store(true)
	start := time.Now()
	go func() { wrote <- db.RecordHalt(HaltRecord{Reason: "stalled"}) }()
	var e *StallError
	select {
	case e = <-stalls:
	case <-time.After(time.Minute):
		t.Fatalf("no stall reported after a minute of a held sync (bound %s)", bound)
	}
	elapsed := time.Since(start)
	if elapsed < bound || e.Duration < bound {
		t.Fatalf("stall reported after %s (its own measure %s), before the bound %s", elapsed, e.Duration, bound)
	}
	// Pebble looks every 2 s; the slack is for a loaded machine.
	if e.Duration > bound+healthTick+5*time.Second {
		t.Fatalf("stall reported after %s, long past the bound %s and Pebble's next look", e.Duration, bound)
	}
	if e.Op != "syncdata" && e.Op != "sync" || !strings.HasSuffix(e.Path, ".log") || e.Dir != dir || e.Max != bound {
		t.Fatalf("stall %+v: want a sync of the write-ahead log in %s", e, dir)
	}
	for _, w := range []string{"level=ERROR", "ALARM: disk stalled", "file=" + filepath.Base(e.Path), "op=" + e.Op, "alarm=disk_stalled", "max_sync_duration=2s"} {
		if !strings.Contains(logs.String(), w) {
			t.Fatalf("log lacks %q:\n%s", w, logs.String())
		}
	}
	longHeld.Store(false)
	close(releaseLong)
	if err := <-wrote; err != nil {
		t.Fatalf("the commit once the disk answered: %v", err)
	}
	time.Sleep(healthTick)
	select {
	case e := <-stalls:
		t.Fatalf("one stall reported twice: %v", e)
	default:
	}
}

// TestNoBoundWatchesNothing: store.max-sync-duration 0 leaves the file
// system as it is.
func TestNoBoundWatchesNothing(t *testing.T) {
	fs := vfs.NewMem()
	got, closer := Stalls{}.watch(fs, "/state", slog.Default())
	if got != fs {
		t.Fatalf("with no bound the file system is wrapped: %T", got)
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStallEndsTheProcess: with no OnStall, a stalled disk ends the
// process with exit status ExitDiskStalled, after the ALARM: Pebble's
// Close would wait for the hung sync, and so would a halt's record. The
// child opens the database on a disk whose log syncs never return.
func TestStallEndsTheProcess(t *testing.T) {
	if dir := os.Getenv("TALLY_STALL_DIR"); dir != "" {
		fs := diskfault.Hold(vfs.Default, func(op errorfs.Op) bool { return syncLog(dir, op) }, make(chan struct{}))
		db, err := Open(dir, Options{FS: fs, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), Stalls: Stalls{MaxSyncDuration: MinMaxSyncDuration}})
		if err != nil {
			t.Fatal(err)
		}
		err = db.RecordHalt(HaltRecord{Reason: "never synced"})
		t.Fatalf("%s %v", childReturned, err)
	}
	if testing.Short() {
		t.Skip("runs this test binary again")
	}
	dir := filepath.Join(t.TempDir(), "state")
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Were the stall not seen, the child would wait for ever.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TALLY_STALL_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != ExitDiskStalled || strings.Contains(string(out), childReturned) {
		t.Fatalf("child ended with %v, want exit status %d:\n%s", err, ExitDiskStalled, out)
	}
	for _, w := range []string{"level=ERROR", "ALARM: disk stalled", "alarm=disk_stalled", "tally: disk stalled: ", ".log has not returned for", "the process ends"} {
		if !strings.Contains(string(out), w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestIdleStallDetected: a database nothing writes to is still watched:
// its probe's synced no-op write (every quarter of the bound) meets the
// stalled disk, and the stall is reported once it has hung for the
// bound. Without the probe Pebble's check would see no operation under
// way, and the node would hang on its next write with nobody told.
func TestIdleStallDetected(t *testing.T) {
	t.Parallel()
	const dir = "/state"
	const bound = 2 * MinMaxSyncDuration
	var held atomic.Bool
	release := make(chan struct{})
	fs := diskfault.Hold(vfs.NewMem(), func(op errorfs.Op) bool { return held.Load() && syncLog(dir, op) }, release)
	stalls := make(chan *StallError, 4)
	db, err := Open(dir, Options{FS: fs, Logger: slog.New(slog.DiscardHandler),
		Stalls: Stalls{MaxSyncDuration: bound, OnStall: func(e *StallError) { stalls <- e }}})
	if err != nil {
		t.Fatal(err)
	}
	held.Store(true)
	start := time.Now()
	select {
	case e := <-stalls:
		if elapsed := time.Since(start); elapsed < bound || e.Duration < bound || !strings.HasSuffix(e.Path, ".log") {
			t.Fatalf("stall %+v reported after %s: want a log sync hung for the bound %s", e, elapsed, bound)
		}
	case <-time.After(time.Minute):
		t.Fatal("an idle database's stalled disk was not reported within a minute")
	}
	held.Store(false)
	close(release)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
