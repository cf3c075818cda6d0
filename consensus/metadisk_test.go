package consensus

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/store"
)

// testPebbleLogger is the Pebble logger of a test's own databases.
func testPebbleLogger(t testing.TB) pebble.Logger {
	return store.PebbleLogger(testLogger(t), "test", slog.LevelInfo)
}

// TestRaftStoreCreateOnFailingMetadataDisk: a node's first start creates
// its Raft log, and Pebble writes the first MANIFEST and its marker in
// Open's own goroutine, where a failed write or sync is fatal to it (its
// Logger's Fatalf, or a panic of its own for a failed directory sync).
// OpenRaftStore must return an error naming the directory and wrapping
// the disk's error, never panic: the node then refuses to start, saying
// why, and starts on the repaired disk.
func TestRaftStoreCreateOnFailingMetadataDisk(t *testing.T) {
	const dir = "/raft/log"
	failed := 0
	for n := 0; ; n++ {
		mem := vfs.NewCrashableMem()
		seen := 0
		fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
			if !diskfault.Metadata(dir, op) {
				return nil
			}
			seen++
			if seen-1 == n {
				return errorfs.ErrInjected
			}
			return nil
		}))
		s, err := noPanicOpen(t, dir, fs)
		if seen <= n {
			if err != nil {
				t.Fatalf("open with no fault hit: %v", err)
			}
			s.Close()
			break
		}
		if err != nil {
			failed++
			if !errors.Is(err, errorfs.ErrInjected) || !strings.Contains(err.Error(), dir) {
				t.Errorf("fault %d: error %q does not name %s and wrap the disk's error", n, err, dir)
			}
		} else {
			s.Close()
		}
		if s, err = OpenRaftStore(dir, RaftStoreOptions{FS: mem, Logger: testLogger(t)}); err != nil {
			t.Fatalf("fault %d: open on the repaired disk: %v", n, err)
		}
		if err := s.StoreLog(testLog(1)); err != nil {
			t.Fatalf("fault %d: append on the repaired disk: %v", n, err)
		}
		s.Close()
	}
	if failed == 0 {
		t.Fatal("no metadata fault made the open fail")
	}
}

func noPanicOpen(t *testing.T, dir string, fs vfs.FS) (s *RaftStore, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("OpenRaftStore panicked: %v", r)
		}
	}()
	return OpenRaftStore(dir, RaftStoreOptions{FS: fs, Logger: testLogger(t)})
}
