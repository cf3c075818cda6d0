package store

import (
	"fmt"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ReplaceWith swaps the database for the Pebble checkpoint in src (a
// snapshot installed from the leader), which must be on the same file
// system. The replaced data is kept in dir+".old" until the new one is
// loaded, and Open finishes or undoes a swap that a crash cut short. The
// checkpoint must come from the same genesis; its head may be behind or
// ahead of the current one. Readers wait while the files are swapped.
func (d *DB) ReplaceWith(src string) error {
	before, err := d.Genesis()
	if err != nil {
		return err
	}
	if err := d.swap(src); err != nil {
		return fmt.Errorf("replace state: %w", err)
	}
	if err := d.load(); err != nil {
		return fmt.Errorf("replace state: %w", err)
	}
	after, err := d.Genesis()
	if err != nil {
		return fmt.Errorf("replace state: snapshot: %w", err)
	}
	if after.Hash() != before.Hash() {
		return fmt.Errorf("replace state: %w: snapshot %s, node %s", ErrGenesisMismatch, after.Hash(), before.Hash())
	}
	return d.opts.fs().RemoveAll(d.dir + ".old")
}

func (d *DB) swap(src string) (err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.dir + ".old"
	fs := d.opts.fs()
	// Pebble is closed once Close returns, even with an error (a WAL sync
	// failing on a bad disk).
	defer func() {
		if err != nil {
			d.reopenReadOnly(old)
		}
	}()
	if err := d.closePebble(); err != nil {
		return err
	}
	if err := fs.RemoveAll(old); err != nil {
		return err
	}
	if err := fs.Rename(d.dir, old); err != nil {
		return err
	}
	if err := fs.Rename(src, d.dir); err != nil {
		return err
	}
	pdb, bg, err := d.openPebble(d.dir, d.opts)
	if err != nil {
		return err
	}
	d.pdb, d.bg = pdb, bg
	d.blocks.Purge()
	d.receipts.Purge()
	return nil
}

// reopenReadOnly follows a swap that failed once the database was closed
// (a disk error): the node halts on the error, and meanwhile its readers
// must find a database, not a closed Pebble, which panics. The data at
// dir, or moved aside to old, is opened read-only (no write to fail); if
// even that fails the database stays closed and Close skips it.
func (d *DB) reopenReadOnly(old string) {
	ro := d.opts
	ro.ReadOnly = true
	for _, dir := range []string{d.dir, old} {
		if pdb, _, err := d.openPebble(dir, ro); err == nil {
			d.pdb, d.bg = pdb, nil
			return
		}
	}
	d.closed = true
}

// recoverReplace completes or undoes a ReplaceWith that a crash cut short:
// if dir is missing, the data moved aside is put back.
func recoverReplace(fs vfs.FS, dir string) error {
	old := dir + ".old"
	if _, err := fs.Stat(dir); oserror.IsNotExist(err) {
		if _, err := fs.Stat(old); err == nil {
			return fs.Rename(old, dir)
		}
		return nil
	}
	return fs.RemoveAll(old)
}
