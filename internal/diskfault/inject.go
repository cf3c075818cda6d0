package diskfault

import (
	"runtime"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// Inject is fs with every operation that fail picks failing as a failing
// device fails it, with EIO (errorfs.ErrInjected), and every other
// passed through: the failing disk of the stores' tests, fail being one
// of this package's kinds under the test's own condition (a switch, a
// count).
func Inject(fs vfs.FS, fail func(op errorfs.Op) bool) vfs.FS {
	return errorfs.Wrap(fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if fail(op) {
			return errorfs.ErrInjected
		}
		return nil
	}))
}

// Hold is fs with every operation that hold picks held back until
// release is closed, as a stalled device holds an fsync for minutes
// without an error; every other operation passes through. The stalled
// disk of the stores' tests (store.Stalls).
func Hold(fs vfs.FS, hold func(op errorfs.Op) bool, release <-chan struct{}) vfs.FS {
	return errorfs.Wrap(fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if hold(op) {
			<-release
		}
		return nil
	}))
}

// OnStack reports whether the calling goroutine runs the function named
// suffix (its package path's tail and name, "pebble/v2.(*DB).rotateWAL"),
// above the caller's own frame: an injector tells by it which of Pebble's
// paths an operation comes from (a write-ahead log's rotation, a flush).
func OnStack(suffix string) bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, suffix) {
			return true
		}
		if !more {
			return false
		}
	}
}
