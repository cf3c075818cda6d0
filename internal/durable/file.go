package durable

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// WriteFile makes name hold data, durably and whole: data goes to a
// temporary file beside it, which is synced, renamed over name, and the
// directory synced. After a power cut name holds either its old contents
// or data, never a prefix, an empty file or nothing at all (a plain
// os.WriteFile leaves each of those possible until the kernel writes its
// cache back, seconds later).
//
// The file gets mode perm on a file system with modes (a file of the
// operating system's); it is set before data is written, so a secret is
// never readable with the looser mode Create gives.
func WriteFile(fs vfs.FS, name string, data []byte, perm os.FileMode) error {
	tmp := name + ".tmp"
	if err := WriteSynced(fs, tmp, data, perm); err != nil {
		_ = fs.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := fs.Rename(tmp, name); err != nil {
		_ = fs.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := SyncDir(fs, fs.PathDir(name)); err != nil {
		return fmt.Errorf("write %s: sync %s: %w", name, fs.PathDir(name), err)
	}
	return nil
}

// WriteSynced writes data to a new file name and syncs the file (not its
// directory: WriteFile does both), with mode perm as WriteFile sets it.
func WriteSynced(fs vfs.FS, name string, data []byte, perm os.FileMode) error {
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if fd := f.Fd(); fd != vfs.InvalidFd {
		if err := syscall.Fchmod(int(fd), uint32(perm.Perm())); err != nil {
			f.Close()
			return fmt.Errorf("chmod %s: %w", name, err)
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadFile reads the whole file name on fs.
func ReadFile(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
