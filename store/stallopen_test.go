package store

import (
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/internal/durable"
)

// TestOpenOnStalledDiskReported: a node started again on a disk that
// still stalls (its service manager restarts it serviceRestart after the
// watch ended it) must end again, not hang in Open: every sync of an
// existing database's disk is held from before Open, and the watch
// reports the first one Open meets (a directory's, the new write-ahead
// log's, the MANIFEST's or the OPTIONS file's) within the bound and a
// look of Pebble's check. Open returns once the disk answers.
func TestOpenOnStalledDiskReported(t *testing.T) {
	t.Parallel()
	const dir = "/data/state"
	const bound = MinMaxSyncDuration
	mem := vfs.NewMem()
	db, err := Open(dir, Options{FS: mem, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	fs := diskfault.Hold(mem, func(op errorfs.Op) bool {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			return true
		}
		return false
	}, release)
	stalls := make(chan *StallError, 4)
	type opened struct {
		db  *DB
		err error
	}
	done := make(chan opened, 1)
	start := time.Now()
	go func() {
		db, err := Open(dir, Options{FS: fs, Logger: slog.New(slog.DiscardHandler),
			Stalls: Stalls{MaxSyncDuration: bound, OnStall: func(e *StallError) { stalls <- e }}})
		done <- opened{db, err}
	}()
	select {
	case e := <-stalls:
		if elapsed := time.Since(start); elapsed < bound || e.Duration < bound || e.Path == "" || e.Op == "" {
			t.Errorf("stall %+v reported after %s: want a file's operation hung for the bound %s", e, elapsed, bound)
		}
		t.Logf("reported after %s: %s of %s", time.Since(start).Round(time.Millisecond), e.Op, e.Path)
	case o := <-done:
		t.Errorf("Open returned (%v) while every sync was held", o.err)
	case <-time.After(bound + 2*healthTick + 5*time.Second):
		t.Errorf("no stall reported within %s of an Open on a stalled disk", bound+2*healthTick+5*time.Second)
	}
	close(release)
	o := <-done
	if o.err != nil {
		t.Fatalf("Open once the disk answered: %v", o.err)
	}
	if err := o.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWatchedMkdirAllOnStalledDisk: the ancestors' syncs a start makes
// before its databases open (durable.MkdirAll) are reported within the
// bound on a disk that stalls when made through Stalls.Watch; through the
// file system as it is, nothing reports them (the start hangs, found by
// consensus.Start's and node.New's MkdirAll).
func TestWatchedMkdirAllOnStalledDisk(t *testing.T) {
	t.Parallel()
	const bound = MinMaxSyncDuration
	for _, watched := range []bool{true, false} {
		mem := vfs.NewMem()
		if err := mem.MkdirAll("/data", 0o700); err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		var fs vfs.FS = diskfault.Hold(mem, func(op errorfs.Op) bool { return op.Kind == errorfs.OpFileSync }, release)
		stalls := make(chan *StallError, 4)
		if watched {
			w, stop := Stalls{MaxSyncDuration: bound, OnStall: func(e *StallError) { stalls <- e }}.Watch(fs, "/data", slog.New(slog.DiscardHandler))
			defer stop.Close()
			fs = w
		}
		done := make(chan error, 1)
		go func() { done <- durable.MkdirAll(fs, "/data/raft") }()
		wait := bound + 2*healthTick + time.Second
		select {
		case e := <-stalls:
			if !watched || e.Duration < bound || e.Dir != "/data" || e.Op == "" || e.Path == "" {
				t.Errorf("watched %v: stall %+v: want a directory's sync hung for the bound %s", watched, e, bound)
			}
		case err := <-done:
			t.Errorf("watched %v: MkdirAll returned (%v) while every sync was held", watched, err)
		case <-time.After(wait):
			if watched {
				t.Errorf("no stall reported within %s of a watched MkdirAll on a stalled disk", wait)
			}
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("watched %v: MkdirAll once the disk answered: %v", watched, err)
		}
	}
}
