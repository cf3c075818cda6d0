package consensus

import (
	"context"
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
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// readFailingDB is a state database on the dev genesis whose sstable
// reads fail (EIO, errorfs) while failing is set; its block cache of one
// byte sends every read of the state to the sstables.
func readFailingDB(t *testing.T, failing *atomic.Bool) *store.DB {
	t.Helper()
	const dir = "/state"
	fs := diskfault.Inject(vfs.NewMem(), func(op errorfs.Op) bool { return failing.Load() && diskfault.TableRead(dir, op) })
	db, err := store.Open(dir, store.Options{FS: fs, NoSync: true, CacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestReadFailureHalts: a node whose disk fails a read of the state
// halts, as a real failing disk calls for, whether it meets the failure
// applying a block or building one; it neither skips the block (the
// other nodes apply it: it would part from the chain) nor, as a leader,
// retries building for ever while it keeps the lead (the chain would
// stall).
func TestReadFailureHalts(t *testing.T) {
	senders := chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 1024)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)

	t.Run("apply", func(t *testing.T) {
		var failing atomic.Bool
		db := readFailingDB(t, &failing)
		defer db.Close()
		tip := db.Tip()
		b, err := state.Build(db, tip.Parent(), nil, nil, nil, tip.Head.TimeMs+1000, val, genesis.DevChainID)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := b.Block.Encode()
		if err != nil {
			t.Fatal(err)
		}
		fsm := NewFSM(db, senders, testLogger(t), nil, nil)
		failing.Store(true)
		res := fsm.Apply(&raft.Log{Index: tip.Head.RaftIndex + 1, Type: raft.LogCommand, Data: enc})
		failing.Store(false)
		err, _ = res.(error)
		if !errors.Is(err, ErrHalted) || !strings.Contains(err.Error(), errorfs.ErrInjected.Error()) {
			t.Fatalf("apply on a disk failing reads: %v; want a halt on the disk's error", res)
		}
		if errors.Is(err, store.ErrBlockRejected) {
			t.Fatalf("apply on a disk failing reads rejected the block: %v", err)
		}
		if head, _ := db.Head(); head.RaftIndex != tip.Head.RaftIndex {
			t.Fatalf("raft index %d recorded, want %d: the entry must apply again once the disk is replaced", head.RaftIndex, tip.Head.RaftIndex)
		}
	})

	t.Run("build", func(t *testing.T) {
		var failing atomic.Bool
		db := readFailingDB(t, &failing)
		defer db.Close()
		pool := mempool.New(mempool.DefaultConfig, db, senders)
		p := &countingProposer{}
		b := NewBuilder(DefaultBuilderConfig, db, pool, p, val, testLogger(t), nil)
		fsm := NewFSM(db, senders, testLogger(t), nil, nil)
		var broken error
		b.onBroken = func(err error) { broken = err; fsm.Halt(err) }
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		failing.Store(true)
		b.Run(ctx) // returns on the failed read
		failing.Store(false)
		if ctx.Err() != nil {
			t.Fatal("the builder kept retrying on a disk failing its reads")
		}
		if !errors.Is(broken, state.ErrStorage) || !errors.Is(broken, errorfs.ErrInjected) {
			t.Fatalf("reported %v; want state.ErrStorage wrapping the disk's error", broken)
		}
		if p.n.Load() != 0 {
			t.Fatalf("%d proposals on a disk failing reads", p.n.Load())
		}
		if err := fsm.Halted(); !errors.Is(err, ErrHalted) {
			t.Fatalf("FSM not halted: %v", err)
		}
	})
}
