package diskfault

import (
	"errors"
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestInject: the operations fail picks fail with EIO and change
// nothing; the others reach the disk below.
func TestInject(t *testing.T) {
	mem := vfs.NewMem()
	if err := mem.MkdirAll("/state", 0o755); err != nil {
		t.Fatal(err)
	}
	failing := false
	fs := Inject(mem, func(op errorfs.Op) bool { return failing && WAL("/state", op) })

	f, err := fs.Create("/state/000002.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := f.Write([]byte("kept")); err != nil {
		t.Fatalf("write before the fault: %v", err)
	}
	failing = true
	if _, err := f.Write([]byte("lost")); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("write on the failing log: %v, want errorfs.ErrInjected", err)
	}
	if err := f.Sync(); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("sync on the failing log: %v, want errorfs.ErrInjected", err)
	}
	f.Close()
	// Another file of the database (an sstable): not picked, written.
	g, err := fs.Create("/state/000005.sst", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatalf("create an sstable: %v", err)
	}
	if _, err := g.Write([]byte("table")); err != nil {
		t.Fatalf("write an sstable: %v", err)
	}
	g.Close()

	for name, want := range map[string]string{"/state/000002.log": "kept", "/state/000005.sst": "table"} {
		r, err := mem.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(got) != want {
			t.Fatalf("%s holds %q (%v), want %q", name, got, err, want)
		}
	}
}
