package durable

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestMkdirAllSurvivesCrash: a file synced inside directories MkdirAll
// created is still there after a power cut (vfs.CrashClone keeps exactly
// what was synced); the same file under directories made by a plain
// MkdirAll is not, which is what the test would see without the parent
// syncs.
func TestMkdirAllSurvivesCrash(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mkdir   func(fs vfs.FS, dir string) error
		survive bool
	}{
		{"durable.MkdirAll", MkdirAll, true},
		{"vfs MkdirAll", func(fs vfs.FS, dir string) error { return fs.MkdirAll(dir, 0o700) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			if err := fs.MkdirAll("/srv", 0o700); err != nil {
				t.Fatal(err)
			}
			root, err := fs.OpenDir("/") // /srv is durable, as on a real machine
			if err != nil {
				t.Fatal(err)
			}
			if err := root.Sync(); err != nil {
				t.Fatal(err)
			}
			root.Close()
			if err := tc.mkdir(fs, "/srv/tally/data/raft"); err != nil {
				t.Fatal(err)
			}
			f, err := fs.Create("/srv/tally/data/raft/log", vfs.WriteCategoryUnspecified)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("entry")); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			dir, err := fs.OpenDir("/srv/tally/data/raft")
			if err != nil {
				t.Fatal(err)
			}
			if err := dir.Sync(); err != nil {
				t.Fatal(err)
			}
			dir.Close()
			crashed := fs.CrashClone(vfs.CrashCloneCfg{})
			_, err = crashed.Stat("/srv/tally/data/raft/log")
			if survived := err == nil; survived != tc.survive {
				t.Fatalf("file survived the crash: %v, want %v (stat: %v)", survived, tc.survive, err)
			}
		})
	}
}

// TestMkdirAllExisting: an existing directory is left as it is.
func TestMkdirAllExisting(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/a/b", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(fs, "/a/b"); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(fs, "/a/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat("/a/b/c"); err != nil {
		t.Fatal(err)
	}
}

// syncFails wraps fs so that the syncs of directory dir fail with EIO
// while *failing is set, as a failing device does (errorfs fails the sync
// before it reaches fs: the entries it would have made durable stay
// unsynced, as Linux leaves them after a failed fsync).
func syncFails(fs vfs.FS, dir string, failing *bool) vfs.FS {
	return errorfs.Wrap(fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if *failing && op.Kind == errorfs.OpFileSync && op.Path == dir {
			return syscall.EIO
		}
		return nil
	}))
}

// TestMkdirAllAfterFailedSync: a start whose sync of a new directory's
// parent failed ends with the error and leaves the directories in place,
// unsynced. The next start, on the repaired disk, finds them: it must
// sync them all the same, or a power cut takes them away with everything
// synced inside them (the file system keeps exactly what was synced:
// vfs.CrashClone, Linux's semantics of an unsynced directory entry).
// Each ancestor the first call made is failed in turn, and the case of a
// data directory made by someone else who did not sync it (systemd's
// StateDirectory=) is the same as a failed sync.
func TestMkdirAllAfterFailedSync(t *testing.T) {
	for _, failAt := range []string{"/srv/tally/data", "/srv/tally", "/srv", ""} {
		t.Run("fail "+failAt, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			if err := mem.MkdirAll("/srv", 0o700); err != nil {
				t.Fatal(err)
			}
			if err := SyncDir(mem, "/"); err != nil { // /srv is durable, as on a real machine
				t.Fatal(err)
			}
			failing := true
			fs := syncFails(mem, failAt, &failing)
			const dir = "/srv/tally/data/raft"
			if failAt == "" {
				// Someone else made the directories and synced nothing.
				if err := mem.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := MkdirAll(fs, dir); !errors.Is(err, syscall.EIO) {
				t.Fatalf("MkdirAll with the sync of %s failing: %v, want EIO", failAt, err)
			}
			failing = false // the disk is replaced; the node starts again
			if err := MkdirAll(fs, dir); err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(mem, dir+"/log", []byte("entry"), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := mem.CrashClone(vfs.CrashCloneCfg{}).Stat(dir + "/log"); err != nil {
				t.Fatalf("a file synced in %s did not survive a power cut: %v", dir, err)
			}
		})
	}
}

// TestMkdirAllSyncFails: a failed sync is MkdirAll's error, whichever
// ancestor it meets, the directories existing already or not.
func TestMkdirAllSyncFails(t *testing.T) {
	for _, exists := range []bool{false, true} {
		for _, failAt := range []string{"/a/b", "/a", "/"} {
			mem := vfs.NewMem()
			if exists {
				if err := mem.MkdirAll("/a/b/c", 0o700); err != nil {
					t.Fatal(err)
				}
			}
			failing := true
			if err := MkdirAll(syncFails(mem, failAt, &failing), "/a/b/c"); !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "sync "+failAt) {
				t.Errorf("exists %v, sync of %s failing: %v, want EIO naming it", exists, failAt, err)
			}
		}
	}
}

// TestMkdirAllUnreadableAncestor: an ancestor that existed and that the
// process may not open (a directory it may only traverse) is passed over;
// one that MkdirAll made must be synced, and failing to open it is an
// error.
func TestMkdirAllUnreadableAncestor(t *testing.T) {
	for _, tc := range []struct {
		existing string // made before the call
		denied   string // OpenDir fails with EACCES
		ok       bool
	}{
		{"/home/alice", "/home/alice", true},
		{"/home/alice", "/home", true},
		{"/home", "/home/alice", false},
	} {
		mem := vfs.NewMem()
		if err := mem.MkdirAll(tc.existing, 0o700); err != nil {
			t.Fatal(err)
		}
		fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
			if op.Kind == errorfs.OpOpenDir && op.Path == tc.denied {
				return &os.PathError{Op: "open", Path: op.Path, Err: syscall.EACCES}
			}
			return nil
		}))
		err := MkdirAll(fs, "/home/alice/tally")
		if (err == nil) != tc.ok {
			t.Errorf("existing %s, %s unreadable: %v, want ok %v", tc.existing, tc.denied, err, tc.ok)
		}
	}
}

// TestMkdirAllOnDisk: on the machine's own file system every ancestor, up
// to the root, can be opened and synced (fsync of a directory opened
// read-only), at the first call and at the next.
func TestMkdirAllOnDisk(t *testing.T) {
	dir := t.TempDir() + "/data/raft"
	for range 2 {
		if err := MkdirAll(vfs.Default, dir); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("stat %s: %v", dir, err)
	}
	// A relative data directory (tallyd --datadir data): its ancestors
	// up to the working directory.
	t.Chdir(t.TempDir())
	for _, rel := range []string{"data", "./data/raft", "data/snapshots/"} {
		if err := MkdirAll(vfs.Default, rel); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
	}
}

// TestMkdirAllSyncErrorNamesDirectory: the error of a failed sync, as
// os.File.Sync reports it, names the directory once.
func TestMkdirAllSyncErrorNamesDirectory(t *testing.T) {
	mem := vfs.NewMem()
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpFileSync && op.Path == "/var/lib" {
			return &os.PathError{Op: "sync", Path: op.Path, Err: syscall.EIO}
		}
		return nil
	}))
	err := MkdirAll(fs, "/var/lib/tally")
	if err == nil || err.Error() != "sync /var/lib: input/output error" {
		t.Fatalf("MkdirAll: %v, want sync /var/lib: input/output error", err)
	}
}
