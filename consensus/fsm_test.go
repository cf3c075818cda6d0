package consensus

import (
	"bytes"
	"errors"
	"io"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

type fsmEnv struct {
	t       *testing.T
	db      *store.DB
	fsm     *FSM
	senders *chain.SenderCache
	index   uint64
	applied []*store.Applied
}

// tempGenesisDB is a state database with the dev genesis in a directory
// of the test's, without syncs, closed when the test ends.
func tempGenesisDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	return db
}

func newFSMEnv(t *testing.T) *fsmEnv {
	t.Helper()
	db := tempGenesisDB(t)
	e := &fsmEnv{t: t, db: db, senders: chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 1024)}
	e.fsm = NewFSM(db, e.senders, testLogger(t), func(a *store.Applied) { e.applied = append(e.applied, a) }, nil)
	return e
}

// block builds a block of n transfers from dev account 0 on the FSM's head.
func (e *fsmEnv) block(key *crypto.PrivateKey, n int) []byte {
	e.t.Helper()
	built, _ := e.build(key, n, common.Address{0x42})
	enc, _ := built.Block.Encode()
	return enc
}

// build builds, signed by key, a block of n transfers of 1 from dev
// account 0 to to on the FSM's head, and returns it with that head.
func (e *fsmEnv) build(key *crypto.PrivateKey, n int, to common.Address) (*state.Built, *store.Tip) {
	e.t.Helper()
	id := big.NewInt(genesis.DevChainID)
	dev, _ := genesis.DevKey(0)
	nonce, _ := e.db.Nonce(dev.Address())
	var txs []*types.Transaction
	var froms []common.Address
	for i := 0; i < n; i++ {
		tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce + uint64(i), To: &to, Value: big.NewInt(1), Gas: 21000}), id, dev)
		txs = append(txs, tx)
		froms = append(froms, dev.Address())
	}
	tip := e.db.Tip()
	built, err := state.Build(e.db, tip.Parent(), txs, froms, nil, tip.Head.TimeMs+1, key, genesis.DevChainID)
	if err != nil {
		e.t.Fatal(err)
	}
	return built, tip
}

func (e *fsmEnv) apply(data []byte) any {
	e.index++
	return e.fsm.Apply(&raft.Log{Index: e.index, Type: raft.LogCommand, Data: data})
}

func TestFSMAppliesAndSkips(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	if _, ok := e.apply(e.block(val, 3)).(*store.Applied); !ok {
		t.Fatal("valid block not applied")
	}
	// Garbage, and a block sealed by a key that is not a validator: both
	// skipped, the raft index recorded, nothing else changes.
	stranger, _ := crypto.GenerateKey()
	for name, data := range map[string][]byte{"garbage": {1, 2, 3}, "non-validator": e.block(stranger, 1)} {
		before, _ := e.db.Head()
		res := e.apply(data)
		err, ok := res.(error)
		if !ok || !errors.Is(err, store.ErrBlockRejected) {
			t.Fatalf("%s: result %v, want a rejection", name, res)
		}
		after, _ := e.db.Head()
		if after.Hash != before.Hash || after.RaftIndex != e.index {
			t.Fatalf("%s: head %+v → %+v", name, before, after)
		}
	}
	// Re-delivery of an applied index is a no-op.
	if res := e.fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{9}}); res != nil {
		t.Fatalf("re-applied index 1: %v", res)
	}
	if len(e.applied) != 1 || e.fsm.Halted() != nil {
		t.Fatalf("applied %d, halted %v", len(e.applied), e.fsm.Halted())
	}
}

// TestFSMSnapshotRestore persists a snapshot through the checkpoint store
// and restores it into a node that is behind.
func TestFSMSnapshotRestore(t *testing.T) {
	leader := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	for i := 0; i < 5; i++ {
		leader.apply(leader.block(val, 4))
	}
	snaps, err := NewCheckpointStore(t.TempDir(), 2, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := leader.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink, err := snaps.Create(1, leader.index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	metas, _ := snaps.List()
	_, rc, err := snaps.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	follower := newFSMEnv(t)
	restored := false
	follower.fsm.onRestored = func() { restored = true }
	if err := follower.fsm.Restore(rc); err != nil {
		t.Fatal(err)
	}
	lh, _ := leader.db.Head()
	fh, _ := follower.db.Head()
	if lh != fh || !restored {
		t.Fatalf("follower head %+v, leader %+v, hook %v", fh, lh, restored)
	}
	// Entries up to the snapshot are no-ops; the next block applies.
	follower.index = fh.RaftIndex
	if _, ok := follower.apply(leader.block(val, 1)).(*store.Applied); !ok {
		t.Fatal("block after restore not applied")
	}
}

// TestFSMSnapshotToPlainSink covers a sink that is not the checkpoint
// store (the tar stream path) and a restore from a corrupt stream.
func TestFSMSnapshotToPlainSink(t *testing.T) {
	e := newFSMEnv(t)
	snap, _ := e.fsm.Snapshot()
	sink := &bufSink{}
	if err := snap.Persist(sink); err != nil || !sink.closed || sink.Len() == 0 {
		t.Fatalf("persist: %v closed=%v bytes=%d", err, sink.closed, sink.Len())
	}
	other := newFSMEnv(t)
	if err := other.fsm.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	broken := newFSMEnv(t)
	if err := broken.fsm.Restore(io.NopCloser(bytes.NewReader([]byte("not a tar")))); err == nil {
		t.Fatal("corrupt snapshot restored")
	}
	if h, ok := broken.db.Head(); !ok || h.Number != 0 {
		t.Fatal("state changed by a corrupt snapshot")
	}
}

type bufSink struct {
	bytes.Buffer
	closed bool
}

func (s *bufSink) ID() string    { return "buf" }
func (s *bufSink) Cancel() error { return nil }
func (s *bufSink) Close() error  { s.closed = true; return nil }

func TestBuilderPausesForTrailingVoter(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	for i := 0; i < 5; i++ {
		e.apply(e.block(val, 1))
	}
	var slowest uint64
	var ok bool
	cfg := DefaultBuilderConfig
	cfg.MaxVoterLag = 2
	cfg.SlowestVoter = func() (uint64, bool) { return slowest, ok }
	b := NewBuilder(cfg, e.db, nil, nil, val, testLogger(t), nil)
	for _, c := range []struct {
		slowest uint64
		ok      bool
		pause   bool
	}{{1, true, true}, {2, true, true}, {3, true, false}, {5, true, false}, {0, false, false}} {
		// head 5, lag 2: trailing by 3 or 4 slows the builder; 32+ would be catching up.
		slowest, ok = c.slowest, c.ok
		if got := b.votersTrail(); got != c.pause {
			t.Errorf("head 5, slowest voter %d (%v): pause %v, want %v", c.slowest, c.ok, got, c.pause)
		}
	}
}
