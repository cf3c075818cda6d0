package durable

import (
	"fmt"
	"os"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// MkdirAll creates dir and its missing parents and syncs the parent
// of each directory it created, so that a power cut cannot take the new
// directories away with everything synced inside them. Pebble syncs only
// the nearest existing ancestor of the directory it opens: without this the
// Raft directory created at a node's first start could vanish in a crash,
// and the node would come back with no Raft state: no log, no vote, a
// fresh bootstrap (found by the cluster simulator, seeds 2, 5 and 12); and
// a data dir created by the node's first start could vanish whole.
func MkdirAll(fs vfs.FS, dir string) error { return MkdirAllPerm(fs, dir, 0o700) }

// MkdirAllPerm is MkdirAll creating the directories with perm (before the
// umask).
func MkdirAllPerm(fs vfs.FS, dir string, perm os.FileMode) error {
	var created []string
	for d := dir; ; d = fs.PathDir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		} else if !oserror.IsNotExist(err) {
			return err
		}
		created = append(created, d)
		if fs.PathDir(d) == d {
			break
		}
	}
	if err := fs.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range created {
		parent, err := fs.OpenDir(fs.PathDir(d))
		if err != nil {
			return err
		}
		err = parent.Sync()
		if cerr := parent.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", fs.PathDir(d), err)
		}
	}
	return nil
}
