package durable

import (
	"errors"
	"fmt"
	"os"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// MkdirAll creates dir and its missing parents and syncs every ancestor of
// dir (up to the root, or to the working directory for a relative dir),
// so that a power cut cannot take dir away with everything synced
// inside it. Pebble syncs only the nearest existing ancestor of the
// directory it opens: without this the Raft directory created at a node's
// first start could vanish in a crash, and the node would come back with
// no Raft state: no log, no vote, a fresh bootstrap (found by the cluster
// simulator, seeds 2, 5 and 12); and a data dir created by the node's
// first start could vanish whole.
//
// The ancestors are synced at every call, not only those whose entries
// this call made:
//
//   - a directory that exists may still be unsynced: made by an earlier
//     start whose sync failed (the error ended that start, and a sync
//     that failed made nothing durable), or by someone else (systemd's
//     StateDirectory=, an operator's mkdir), who does not sync it;
//   - syncing a directory whose entries are all durable already costs
//     next to nothing, and a node creates its directories once per start.
//
// An ancestor that existed before the call and that the process may not
// open (no read permission: a directory it may only traverse) is passed
// over: the process cannot sync it, and this call did not make it.
func MkdirAll(fs vfs.FS, dir string) error { return MkdirAllPerm(fs, dir, 0o700) }

// MkdirAllPerm is MkdirAll creating the directories with perm (before the
// umask).
func MkdirAllPerm(fs vfs.FS, dir string, perm os.FileMode) error {
	created := map[string]bool{}
	for d := dir; ; d = fs.PathDir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		} else if !oserror.IsNotExist(err) {
			return err
		}
		created[d] = true
		if fs.PathDir(d) == d {
			break
		}
	}
	if err := fs.MkdirAll(dir, perm); err != nil {
		return err
	}
	for d := dir; fs.PathDir(d) != d; d = fs.PathDir(d) {
		p := fs.PathDir(d)
		if err := SyncDir(fs, p); err != nil {
			if !created[p] && errors.Is(err, os.ErrPermission) {
				continue
			}
			if pe := (*os.PathError)(nil); errors.As(err, &pe) {
				return err // it names the directory already: "sync /var/lib: input/output error"
			}
			return fmt.Errorf("sync %s: %w", p, err)
		}
	}
	return nil
}

// SyncDir fsyncs directory dir, so that the entries created, renamed or
// removed in it are durable.
func SyncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
