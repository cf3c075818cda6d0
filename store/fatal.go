package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// FatalError is an error Pebble cannot go on from, reported through its
// Logger's Fatalf: a failed write-ahead log commit, a failed MANIFEST
// write or sync, a failed move of the marker naming the current MANIFEST
// (Pebble v2's CURRENT file), corruption. Pebble's own logger ends the
// process there, and Pebble relies on it: after a failed MANIFEST write
// it does not know what the file holds, and only the recovery of the
// next Open sorts it out (versionSet.UpdateVersionLocked).
//
// PebbleLogger panics with a *FatalError instead, so that a caller can
// turn it into an error where Pebble failed in the caller's own goroutine
// (RecoverFatal): Open refuses to start (every Open writes a MANIFEST),
// a failed commit halts the node (the FSM recovers the panic; the Raft
// log store turns it into consensus.ErrDiskFailed). Where Pebble fails in
// one of its background goroutines (a flush or compaction recording its
// new files in the MANIFEST, among them the flush of the write-ahead log
// replayed at Open) nothing can recover it: the panic ends the process,
// as Pebble's own logger would, naming the database and the error. That
// is the node's halt on a failing disk: it cannot go on without its
// database, and its supervisor restarts it on the files as the disk
// holds them; once the disk is repaired, Open recovers and Raft brings
// the node up to date. (The database cannot be kept open in the halted
// process instead: the flush Pebble abandoned stays in progress for
// good, so its Close would wait for ever.)
type FatalError struct {
	// Dir is the database's directory, Msg Pebble's message.
	Dir, Msg string
	cause    error // the first error among Fatalf's arguments (the disk's)
}

func (e *FatalError) Error() string {
	return fmt.Sprintf("pebble database %s failed: %s", e.Dir, e.Msg)
}

// Unwrap returns the disk's error (errors.Is(err, syscall.EIO) holds for
// a failing device).
func (e *FatalError) Unwrap() error { return e.cause }

// PebbleLogger is the pebble.Logger of the database in dir: its messages
// go to l (Infof at infoLevel, Errorf as errors), and Fatalf logs an
// alarm and panics with a *FatalError (see there).
func PebbleLogger(l *slog.Logger, dir string, infoLevel slog.Level) pebble.Logger {
	return pebbleLogger{l: l, dir: dir, info: infoLevel}
}

type pebbleLogger struct {
	l    *slog.Logger
	dir  string
	info slog.Level
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Log(context.Background(), p.info, fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	err := &FatalError{Dir: p.dir, Msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if e, ok := a.(error); ok {
			err.cause = e
			break
		}
	}
	p.l.Error("ALARM: database failed: Pebble cannot go on; the node stops (restart it once the disk is repaired)",
		"component", "pebble", "dir", p.dir, "err", err.Msg, "alarm", "node_halted")
	panic(err)
}

// RecoverFatal, deferred, turns a panic of the deferring function whose
// value is an error into its error *err, a *FatalError of the database in
// dir: PebbleLogger's, or a disk error Pebble panics with itself (a failed
// directory sync when it moves a marker: "fsync errors are
// unrecoverable"). Any other panic goes on. Deferred around Pebble calls
// that run in the caller's goroutine (Open, commits) only: a failure
// there leaves nothing behind that goes on with a broken database.
func RecoverFatal(dir string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	e, ok := r.(error)
	if !ok {
		panic(r)
	}
	var fe *FatalError
	if !errors.As(e, &fe) {
		fe = &FatalError{Dir: dir, Msg: "panic: " + e.Error(), cause: e}
	}
	*err = fe
}
