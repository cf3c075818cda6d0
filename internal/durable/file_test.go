package durable

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// durableRoot returns a crashable file system whose /srv survives a power
// cut, as on a real machine.
func durableRoot(t *testing.T) *vfs.MemFS {
	t.Helper()
	fs := vfs.NewCrashableMem()
	if err := fs.MkdirAll("/srv", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(fs, "/"); err != nil {
		t.Fatal(err)
	}
	return fs
}

// crash returns what a power cut leaves of fs: exactly what was synced.
func crash(fs *vfs.MemFS) *vfs.MemFS {
	return fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0, RNG: rand.New(rand.NewPCG(1, 1))})
}

// TestWriteFileSurvivesCrash: what WriteFile wrote is there, whole, after
// a power cut; what a plain create-and-write wrote is not (the test would
// pass without the syncs otherwise).
func TestWriteFileSurvivesCrash(t *testing.T) {
	plain := func(fs vfs.FS, name string, data []byte, _ os.FileMode) error {
		f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			return err
		}
		return f.Close()
	}
	for _, tc := range []struct {
		name    string
		write   func(fs vfs.FS, name string, data []byte, perm os.FileMode) error
		survive bool
	}{
		{"durable.WriteFile", WriteFile, true},
		{"plain write", plain, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := durableRoot(t)
			if err := tc.write(fs, "/srv/nodekey", []byte("0xkey\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadFile(crash(fs), "/srv/nodekey")
			if survived := err == nil && string(got) == "0xkey\n"; survived != tc.survive {
				t.Fatalf("after a power cut: %q, %v; want it kept: %v", got, err, tc.survive)
			}
		})
	}
}

// TestWriteFileFailureKeepsOld: a write that fails on its way (the
// temporary file's sync) leaves the old contents in place and no
// temporary file; the error names the file.
func TestWriteFileFailureKeepsOld(t *testing.T) {
	mem := durableRoot(t)
	if err := WriteFile(mem, "/srv/nodekey", []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpFileSync && strings.HasSuffix(op.Path, ".tmp") {
			return errorfs.ErrInjected
		}
		return nil
	}))
	err := WriteFile(fs, "/srv/nodekey", []byte("new"), 0o600)
	if err == nil || !strings.Contains(err.Error(), "/srv/nodekey") {
		t.Fatalf("WriteFile on a failing disk: %v, want an error naming the file", err)
	}
	for _, m := range []*vfs.MemFS{mem, crash(mem)} {
		if got, err := ReadFile(m, "/srv/nodekey"); err != nil || string(got) != "old" {
			t.Fatalf("after the failed write: %q, %v; want the old contents", got, err)
		}
	}
	if _, err := mem.Stat("/srv/nodekey.tmp"); err == nil {
		t.Fatal("temporary file left behind")
	}
}

// TestWriteFileMode: on the operating system's file system the file has
// exactly perm whatever the umask, when made and when replaced.
func TestWriteFileMode(t *testing.T) {
	name := filepath.Join(t.TempDir(), "nodekey")
	for _, data := range []string{"first", "second"} {
		if err := WriteFile(vfs.Default, name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
		}
		if b, _ := os.ReadFile(name); string(b) != data {
			t.Fatalf("contents %q, want %q", b, data)
		}
	}
}
