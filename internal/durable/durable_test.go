package durable

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
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
