package store

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/state"
)

// TestReadFailureIsNoRejection: a block whose execution meets a failed
// read of the state (EIO on an sstable's block: Pebble returns the
// error to the reader, errorfs's Reads) is no rule the block breaks. The
// other nodes read the same state from their own disks and apply the
// block; a node that skipped it would part from them for good. The apply
// fails with an error of this node's storage (ErrStorage, which halts
// the node: consensus.FSM), nothing is recorded, and on the repaired
// disk the same entry applies.
func TestReadFailureIsNoRejection(t *testing.T) {
	var failing atomic.Bool
	var dir string
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && diskfault.TableRead(dir, op) {
			return errorfs.ErrInjected
		}
		return nil
	}))
	e := newEnvOpts(t, Options{FS: fs, NoSync: true, CacheSize: 1})
	dir = e.dir
	if err := e.db.Flush(); err != nil {
		t.Fatal(err)
	}
	to := common.Address{7}
	b := e.build(e.transfer(0, 0, to, 5)).Block
	e.db.Close()
	e.open() // a block cache of 1 byte: every read of the state reaches its sstables
	head, _ := e.db.Head()
	failing.Store(true)
	_, err := e.db.ApplyBlock(b, head.RaftIndex+1, e.senders)
	failing.Store(false)
	if err == nil || errors.Is(err, ErrBlockRejected) {
		t.Fatalf("apply on a disk failing reads: %v; want an error that is no rejection", err)
	}
	if !errors.Is(err, state.ErrStorage) || !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("apply on a disk failing reads: %v; want state.ErrStorage wrapping the disk's error", err)
	}
	if got, _ := e.db.Head(); got != head {
		t.Fatalf("head %+v after the failed apply, want %+v (nothing recorded)", got, head)
	}
	if _, err := e.db.ApplyBlock(b, head.RaftIndex+1, e.senders); err != nil {
		t.Fatalf("the same entry on the repaired disk: %v", err)
	}
	if bal, _ := e.db.Balance(state.NativeAsset, to); bal.Int64() != 5 {
		t.Fatalf("balance %s, want 5", bal)
	}
}
