package store_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/store"
)

// metadataFault fails the nth metadata write (from 0) of the Pebble
// database in dir (diskfault.Metadata: its MANIFEST, marker, OPTIONS and
// temporary files, and the syncs of dir) with EIO, and counts every such
// write in seen.
func metadataFault(fs vfs.FS, dir string, n int, seen *int) vfs.FS {
	return errorfs.Wrap(fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !diskfault.Metadata(dir, op) {
			return nil
		}
		*seen++
		if *seen-1 == n {
			return errorfs.ErrInjected
		}
		return nil
	}))
}

// TestCreateOnFailingMetadataDisk: a node's first start creates its
// database, and Pebble writes the first MANIFEST, its marker and the
// OPTIONS file in Open's own goroutine, where a failed MANIFEST write or
// sync is fatal to it (its Logger's Fatalf). Open must return an error
// naming the directory and wrapping the disk's error, never panic (the
// node would crash instead of refusing to start, saying why), and the
// node started again on the repaired disk creates its database.
func TestCreateOnFailingMetadataDisk(t *testing.T) {
	const dir = "/state"
	failed := 0
	for n := 0; ; n++ {
		mem := vfs.NewCrashableMem()
		seen := 0
		db, err := openNoPanic(t, dir, metadataFault(mem, dir, n, &seen))
		if seen <= n {
			if err != nil {
				t.Fatalf("open with no fault hit: %v", err)
			}
			db.Close()
			break
		}
		if err == nil {
			// Pebble went on past a failed write it can do without.
			db.Close()
		} else {
			failed++
			if !errors.Is(err, errorfs.ErrInjected) || !strings.Contains(err.Error(), dir) {
				t.Errorf("fault %d: error %q does not name %s and wrap the disk's error", n, err, dir)
			}
			if g := granters(); g != 0 {
				t.Errorf("fault %d: %d compaction granters left running after the failed Open", n, g)
			}
		}
		db, err = store.Open(dir, store.Options{FS: mem})
		if err != nil {
			t.Fatalf("fault %d (%v): open on the repaired disk: %v", n, err, err)
		}
		if err := db.InitGenesis(genesis.Dev()); err != nil {
			t.Fatalf("fault %d: genesis on the repaired disk: %v", n, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if failed == 0 {
		t.Fatal("no metadata fault made Open fail")
	}
	t.Logf("%d metadata faults at creation, each refused with an error", failed)
}

// granters counts the goroutines granting a store's compactions (one per
// open database): a failed Open must leave none, though Pebble does not
// unregister the scheduler it registered before failing.
func granters() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "store.(*compactionGate).granter(")
}

func openNoPanic(t *testing.T, dir string, fs vfs.FS) (db *store.DB, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Open panicked: %v", r)
		}
	}()
	return store.Open(dir, store.Options{FS: fs})
}

// restartEnv, when set, makes TestRestartOnFailingMetadataDisk the
// restarted node: it opens the database in the directory it names with
// the metadata fault of restartFaultEnv.
const (
	restartEnv      = "TALLY_TEST_METADISK_DIR"
	restartFaultEnv = "TALLY_TEST_METADISK_FAULT"
)

// TestRestartOnFailingMetadataDisk: a node restarted on a disk that fails
// its metadata writes. Open replays the write-ahead log and flushes it in
// a background goroutine, which records the new table in the MANIFEST: a
// failure there is fatal to Pebble where nobody can recover it, so the
// process ends (store.FatalError), naming the database and the disk's
// error; a failure in Open's own goroutine is an error of Open. Either
// way the node does not come up, and the database opened again on the
// repaired disk holds what it held. Each restart runs in a process of its
// own (this test binary again), since it may end.
func TestRestartOnFailingMetadataDisk(t *testing.T) {
	if dir := os.Getenv(restartEnv); dir != "" {
		n, _ := strconv.Atoi(os.Getenv(restartFaultEnv))
		seen := 0
		db, err := store.Open(dir, store.Options{FS: metadataFault(vfs.Default, dir, n, &seen)})
		if err == nil {
			db.Close()
		}
		fmt.Printf("seen=%d err=%v\n", seen, err)
		return
	}
	if testing.Short() {
		t.Skip("runs this test binary once per fault")
	}
	dir := filepath.Join(t.TempDir(), "state")
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	want, _ := db.Head()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ended, refused := 0, 0
	for n := 0; ; n++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRestartOnFailingMetadataDisk$", "-test.count=1")
		cmd.Env = append(os.Environ(), restartEnv+"="+dir, restartFaultEnv+"="+strconv.Itoa(n))
		out, err := cmd.CombinedOutput()
		switch {
		case err != nil:
			// The process ended on Pebble's fatal error: it must say so,
			// naming the database (PebbleLogger), or, where Pebble
			// panics itself (a failed directory sync moving a marker),
			// with the disk's error.
			ended++
			named := strings.Contains(string(out), "pebble database "+dir+" failed") || strings.Contains(string(out), "atomicfs.(*Marker).Move")
			if !named || !strings.Contains(string(out), errorfs.ErrInjected.Error()) {
				t.Fatalf("fault %d: the process ended (%v) without naming the database and the disk's error:\n%s", n, err, out)
			}
		case strings.Contains(string(out), fmt.Sprintf("seen=%d ", n)) && strings.Contains(string(out), "err=<nil>"):
			t.Logf("%d metadata faults at restart: %d ended the process, %d were errors of Open", n, ended, refused)
			if ended+refused == 0 {
				t.Fatal("no metadata fault stopped the restart")
			}
			return
		case strings.Contains(string(out), "err=<nil>"):
			// Pebble went on past a failed write it can do without.
		default:
			refused++
			if !strings.Contains(string(out), dir) || !strings.Contains(string(out), errorfs.ErrInjected.Error()) {
				t.Fatalf("fault %d: Open failed without naming %s and the disk's error:\n%s", n, dir, out)
			}
		}
		db, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatalf("fault %d: open on the repaired disk: %v", n, err)
		}
		got, _ := db.Head()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("fault %d: head %+v on the repaired disk, want %+v", n, got, want)
		}
		if n > 200 {
			t.Fatal("more than 200 metadata writes at one restart")
		}
	}
}
