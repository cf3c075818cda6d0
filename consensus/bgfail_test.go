package consensus

import (
	"errors"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/store"
)

// tableFault is fs failing, while failing is set, every sstable
// creation, write and sync of the database in dir (diskfault.Table);
// tries counts the creations it failed: Pebble's flush tries.
func tableFault(fs vfs.FS, dir string, failing *atomic.Bool, tries *atomic.Int64) vfs.FS {
	return diskfault.Inject(fs, func(op errorfs.Op) bool {
		if !failing.Load() || !diskfault.Table(dir, op) {
			return false
		}
		if op.Kind == errorfs.OpCreate {
			tries.Add(1)
		}
		return true
	})
}

// closeWithin calls close (a store's Close on its failed disk), failing
// t if it does not return within 10 s.
func closeWithin(t *testing.T, close func() error) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close on the failed disk did not return")
	}
}

// TestFailingTableDiskHalts: a node whose state database's disk fails
// every sstable write. Pebble would retry the flush at once and for ever
// (and its Flush would wait for ever); instead the store declares the
// disk failed once the failures last (store/background.go), and the node
// halts with the failure as its reason, in a halt record (the
// write-ahead log still works), with its state unchanged; it takes no
// snapshot after.
func TestFailingTableDiskHalts(t *testing.T) {
	const dir = "/state"
	mem := vfs.NewMem()
	var failing atomic.Bool
	var tries atomic.Int64
	db, err := store.Open(dir, store.Options{FS: tableFault(mem, dir, &failing, &tries), NoSync: true})
	must(t, err)
	must(t, db.InitGenesis(genesis.Dev()))
	head, _ := db.Head()
	fsm := NewFSM(db, chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 64), testLogger(t), nil, nil)
	snaps, err := NewCheckpointStoreFS(mem, "/raft/snapshots", 2, testLogger(t))
	must(t, err)
	failing.Store(true)
	done := make(chan error, 1)
	go func() { done <- db.Flush() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("flush on a disk failing its flushes did not return (%d flush tries)", tries.Load())
	}
	if !errors.Is(err, store.ErrDiskFailed) {
		t.Fatalf("flush on a failing disk: %v; want ErrDiskFailed", err)
	}
	// The hook halts the node in a goroutine of its own.
	var rec *store.HaltRecord
	for deadline := time.Now().Add(10 * time.Second); rec == nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		rec, err = db.HaltRecord()
		must(t, err)
	}
	halted := fsm.Halted()
	if halted == nil || !strings.Contains(halted.Error(), "background jobs in a row failed") {
		t.Fatalf("halted: %v; want the disk failure as the reason", halted)
	}
	if rec == nil || !strings.Contains(rec.Reason, "background jobs in a row failed") {
		t.Fatalf("halt record %+v; want one naming the disk failure", rec)
	}
	if got, _ := db.Head(); got != head {
		t.Fatalf("head %+v after the halt, want %+v", got, head)
	}
	if _, err := fsm.Snapshot(); err == nil {
		t.Fatal("a snapshot was taken after the halt")
	}
	sink, err := snaps.Create(1, 1, 1, raft.Configuration{}, 1, nil)
	must(t, err)
	if err := (&fsmSnapshot{db: db, fsm: fsm}).Persist(sink); !errors.Is(err, ErrHalted) {
		t.Fatalf("persisting a snapshot taken before the failure: %v, want ErrHalted", err)
	}
	n := tries.Load()
	if n < 8 || n > 9 {
		t.Fatalf("%d flush tries; want the store's limit of failures in a row, then none", n)
	}
	closeWithin(t, db.Close)
}

// TestRaftStoreFailingTableDisk: the Raft log's flushes failing every
// sstable write fail the store as a failed write does, once the failures
// last (store.WatchBackground): its failure hook is told (the engine
// halts the node and leaves Raft), every later write is refused, the
// retries stop, and it closes.
func TestRaftStoreFailingTableDisk(t *testing.T) {
	const dir = "/raft"
	var failing atomic.Bool
	var tries atomic.Int64
	failures := make(chan error, 2)
	s, err := OpenRaftStore(dir, RaftStoreOptions{FS: tableFault(vfs.NewMem(), dir, &failing, &tries), NoSync: true, Logger: testLogger(t), OnDiskFailure: func(err error) { failures <- err }})
	must(t, err)
	must(t, s.StoreLog(&raft.Log{Index: 1, Term: 1, Data: []byte("entry")}))
	failing.Store(true)
	if _, err := s.db.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failures:
		if !errors.Is(err, ErrDiskFailed) || !errors.Is(err, store.ErrDiskFailed) || !errors.Is(err, errorfs.ErrInjected) {
			t.Fatalf("reported %v; want the disk failure", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no failure reported after %d flush tries", tries.Load())
	}
	if err := s.StoreLog(&raft.Log{Index: 2, Term: 1, Data: []byte("entry")}); !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("write after the failure: %v; want ErrDiskFailed", err)
	}
	if n := tries.Load(); n < 8 || n > 9 {
		t.Fatalf("%d flush tries; want the store's limit of failures in a row, then none", n)
	}
	closeWithin(t, s.Close)
}
