package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
	return os.RemoveAll(d.dir + ".old")
}

func (d *DB) swap(src string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.dir + ".old"
	if err := d.pdb.Close(); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(d.dir, old); err != nil {
		return err
	}
	if err := os.Rename(src, d.dir); err != nil {
		return err
	}
	pdb, err := openPebble(d.dir, d.opts)
	if err != nil {
		return err
	}
	d.pdb = pdb
	d.blocks.Purge()
	d.receipts.Purge()
	return nil
}

// recoverReplace completes or undoes a ReplaceWith that a crash cut short:
// if dir is missing, the data moved aside is put back.
func recoverReplace(dir string) error {
	old := dir + ".old"
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(old); err == nil {
			return os.Rename(old, dir)
		}
		return nil
	}
	return os.RemoveAll(old)
}
