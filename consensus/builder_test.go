package consensus

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// countingProposer counts proposals and fails each one (nothing is
// applied, so the builder keeps building on the applied head).
type countingProposer struct{ n atomic.Int32 }

func (p *countingProposer) Apply([]byte, time.Duration) raft.ApplyFuture {
	p.n.Add(1)
	return failedFuture{}
}

type failedFuture struct{}

func (failedFuture) Error() error  { return errors.New("test: not applied") }
func (failedFuture) Index() uint64 { return 0 }
func (failedFuture) Response() any { return nil }

// runBuilder runs a builder with a 5 ms heartbeat for d and returns how
// many blocks it proposed.
func runBuilder(t *testing.T, db *store.DB, key *crypto.PrivateKey, hold func(state.Reader, uint64) string, d time.Duration) int {
	t.Helper()
	cfg := DefaultBuilderConfig
	cfg.Heartbeat = 5 * time.Millisecond
	cfg.Hold = hold
	p := &countingProposer{}
	senders := chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 16)
	b := NewBuilder(cfg, db, mempool.New(mempool.DefaultConfig, db, senders), p, key, testLogger(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	b.Run(ctx)
	return int(p.n.Load())
}

// TestBuilderProposesOnlyAsValidatorAndUnlessHeld: a leader whose key is
// not a validator proposes nothing (every node would reject its blocks);
// a validator proposes unless Hold holds the block, and Hold is asked
// about the next height on the state after its parent.
func TestBuilderProposesOnlyAsValidatorAndUnlessHeld(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	stranger, _ := crypto.GenerateKey()
	if n := runBuilder(t, e.db, stranger, nil, 200*time.Millisecond); n != 0 {
		t.Fatalf("a builder whose key is not a validator proposed %d blocks", n)
	}
	if n := runBuilder(t, e.db, val, nil, 200*time.Millisecond); n == 0 {
		t.Fatal("the validator's builder proposed nothing")
	}
	var (
		mu     sync.Mutex
		asked  []uint64
		holdOn = true
	)
	hold := func(base state.Reader, number uint64) string {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, number)
		if holdOn {
			return "test hold"
		}
		return ""
	}
	if n := runBuilder(t, e.db, val, hold, 200*time.Millisecond); n != 0 {
		t.Fatalf("a held builder proposed %d blocks", n)
	}
	if len(asked) < 2 || asked[0] != 1 {
		t.Fatalf("Hold asked about heights %v; want height 1 again and again", asked)
	}
	holdOn = false
	if n := runBuilder(t, e.db, val, hold, 200*time.Millisecond); n == 0 {
		t.Fatal("a released builder proposed nothing")
	}
}

// govTx signs a governance call from dev account idx.
func govTx(t *testing.T, idx uint32, nonce uint64, method string, args ...any) (*types.Transaction, common.Address) {
	t.Helper()
	key, err := genesis.DevKey(idx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := chain.GovernanceABI.Pack(method, args...)
	if err != nil {
		t.Fatal(err)
	}
	id := big.NewInt(genesis.DevChainID)
	to := chain.GovernanceAddress
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Gas: chain.GasPerSystemCall, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Value: new(big.Int), Data: data}), id, key)
	if err != nil {
		t.Fatal(err)
	}
	return tx, key.Address()
}

// TestIsValidatorAtSpeculativeState: a validator addition approved in a
// block takes effect activationDelay blocks later; IsValidatorAt on the
// state after the block that applies it says so before any of these
// blocks is applied to the database, whose set does not change yet.
func TestIsValidatorAtSpeculativeState(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	newKey, _ := crypto.GenerateKey()
	pub := ethcrypto.CompressPubkey(&newKey.ECDSA().PublicKey)
	propose, p1 := govTx(t, genesis.DevGovernanceIndex, 0, "proposeAddValidator", "new", pub)
	vote, p2 := govTx(t, genesis.DevGovernanceIndex+1, 0, "vote", big.NewInt(1), true)

	tip := e.db.Tip()
	par, base := tip.Parent(), state.Reader(e.db)
	delay := genesis.Dev().Governance.ActivationDelay
	for h := uint64(1); h <= delay; h++ {
		var txs []*types.Transaction
		var froms []common.Address
		if h == 1 {
			txs, froms = []*types.Transaction{propose, vote}, []common.Address{p1, p2}
		}
		ok, err := IsValidatorAt(base, val.Address())
		if err != nil || !ok {
			t.Fatalf("block %d: the genesis validator is not a validator at its parent's state (%v)", h, err)
		}
		if ok, _ := IsValidatorAt(base, newKey.Address()); ok {
			t.Fatalf("block %d: the new validator is one already", h)
		}
		built, err := state.Build(base, par, txs, froms, nil, par.TimeMs+1, val, genesis.DevChainID)
		if err != nil {
			t.Fatal(err)
		}
		if h == 1 && len(built.Included) != 2 {
			t.Fatalf("governance txs not included: %+v", built.Dropped)
		}
		par, base = built.AsParent(), built.Writes
	}
	// Block delay+1 (approval at 1 + delay) is checked against the new set.
	if ok, err := IsValidatorAt(base, newKey.Address()); err != nil || !ok {
		t.Fatalf("after block %d the new validator is not in the set (%v)", delay, err)
	}
	if e.db.IsValidator(newKey.Address()) {
		t.Fatal("the database's set changed without any block applied")
	}
}

// lostFuture is a proposal whose leader lost the lead while it replicated.
type lostFuture struct{}

func (lostFuture) Error() error  { return raft.ErrLeadershipLost }
func (lostFuture) Index() uint64 { return 0 }
func (lostFuture) Response() any { return nil }

// TestBuilderReportsCommittedAfterLostLead: Raft answers "leadership lost"
// for a block that the next leader may still commit. The builder does not
// log it as not applied; when that block is applied it logs that it was
// committed, and when another block takes its height, that it was not.
func TestBuilderReportsCommittedAfterLostLead(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	senders := chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 16)
	b := NewBuilder(DefaultBuilderConfig, e.db, mempool.New(mempool.DefaultConfig, e.db, senders), nil, val, log, nil)
	mk := func(n uint64) *specBlock {
		h := &types.Header{Number: new(big.Int).SetUint64(n), Extra: []byte{byte(n)}}
		return &specBlock{built: &state.Built{Block: &chain.Block{Header: h}}}
	}
	b.await(lostFuture{}, mk(7))
	b.await(lostFuture{}, mk(8))
	if strings.Contains(logs.String(), "proposal not applied") {
		t.Fatalf("a proposal whose outcome Raft could not tell was logged as not applied:\n%s", logs.String())
	}
	b.Applied(7, mk(7).built.Block.Hash())
	b.Applied(8, common.Hash{1})
	out := logs.String()
	if !strings.Contains(out, `msg="proposal committed after this node lost the lead" number=7`) {
		t.Fatalf("block 7, committed by the next leader, not reported as committed:\n%s", out)
	}
	if !strings.Contains(out, `msg="proposal not applied: another block was committed at its height" number=8`) {
		t.Fatalf("block 8, replaced, not reported as not applied:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// transferProposer refuses every proposal as raft.Raft does while a
// leadership transfer is in progress; after limit proposals it ends the
// run (the builder would otherwise spin for ever).
type transferProposer struct {
	n      atomic.Int32
	limit  int32
	cancel context.CancelFunc
}

func (p *transferProposer) Apply([]byte, time.Duration) raft.ApplyFuture {
	if p.n.Add(1) >= p.limit {
		p.cancel()
	}
	return errFuture{raft.ErrLeadershipTransferInProgress}
}

type errFuture struct{ err error }

func (f errFuture) Error() error  { return f.err }
func (f errFuture) Index() uint64 { return 0 }
func (f errFuture) Response() any { return nil }

// TestBuilderWaitsWhileRaftRefuses: while Raft refuses proposals (a
// leadership transfer in progress, which Apply answers at once), the
// builder proposes again once per BlockInterval instead of building,
// signing and logging blocks in a tight loop (found by the cluster
// simulator, seed 5: the loop never let simulated time pass).
func TestBuilderWaitsWhileRaftRefuses(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	cfg := DefaultBuilderConfig
	cfg.Heartbeat = 5 * time.Millisecond
	const run = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	p := &transferProposer{limit: 10000, cancel: cancel}
	// A transaction is ready, so the builder does not idle until its
	// heartbeat between proposals.
	pool := poolWithTransfer(t, e)
	b := NewBuilder(cfg, e.db, pool, p, val, testLogger(t), nil)
	b.Run(ctx)
	// One proposal per BlockInterval (10 ms), and a few more for the waits
	// that end early.
	if n := p.n.Load(); n > int32(run/cfg.BlockInterval)+10 {
		t.Fatalf("%d proposals in %s while Raft refused each one: the builder spins", n, run)
	}
}

// poolWithTransfer is a transaction pool on e's state holding one
// transfer of 1 from dev account 0: a transaction ready to propose.
func poolWithTransfer(t *testing.T, e *fsmEnv) *mempool.Pool {
	t.Helper()
	senders := chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 16)
	pool := mempool.New(mempool.DefaultConfig, e.db, senders)
	id := big.NewInt(genesis.DevChainID)
	dev, _ := genesis.DevKey(0)
	to := common.Address{0x42}
	tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &to, Value: big.NewInt(1), Gas: 21000}), id, dev)
	if _, err := pool.Add(tx); err != nil {
		t.Fatal(err)
	}
	return pool
}

// pendingProposer accepts every proposal; its futures resolve (as lost
// leadership) only once done is closed.
type pendingProposer struct{ done chan struct{} }

func (p *pendingProposer) Apply([]byte, time.Duration) raft.ApplyFuture {
	return pendingFuture{p.done}
}

type pendingFuture struct{ done chan struct{} }

func (f pendingFuture) Error() error  { <-f.done; return raft.ErrLeadershipLost }
func (f pendingFuture) Index() uint64 { return 0 }
func (f pendingFuture) Response() any { return nil }

// TestBuilderReturnsTxsOfReplacedProposal: when another block is applied
// at the height of a block this leader proposed (an earlier proposal of
// its own, committed while it re-proposed on a stale head, or another
// leader's), the proposal's transactions go back to the pool. They used
// to stay in flight for ever, since a proposal at or below the applied
// height was taken for applied: the transaction was never included and
// its sender's resends were "already known" (found by the cluster
// simulator, seed 102, with a slow disk on the leader).
func TestBuilderReturnsTxsOfReplacedProposal(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	pool := poolWithTransfer(t, e)
	p := &pendingProposer{done: make(chan struct{})}
	defer close(p.done)
	b := NewBuilder(DefaultBuilderConfig, e.db, pool, p, val, testLogger(t), nil)
	if err := b.propose(); err != nil {
		t.Fatal(err)
	}
	if queued, inflight := pool.Stats(); queued != 0 || inflight != 1 {
		t.Fatalf("after the proposal: %d queued, %d in flight", queued, inflight)
	}
	// Another block, without the transaction, takes height 1.
	if _, ok := e.apply(e.block(val, 0)).(*store.Applied); !ok {
		t.Fatal("the other block 1 was not applied")
	}
	if n := b.prune(); n != 0 {
		t.Fatalf("%d proposals still in flight after another block took their height", n)
	}
	if queued, inflight := pool.Stats(); queued != 1 || inflight != 0 || !pool.HasReady() {
		t.Fatalf("the transaction of the replaced proposal: %d queued, %d in flight, ready %v; want it queued again", queued, inflight, pool.HasReady())
	}
}

// TestProposalWaitEndsWithTheEngine: a proposal whose future raft never
// answers (an entry committed but not applied when raft shut down) is
// settled when the engine stops (b.stop): as an uncertain outcome, with a
// pause before the next proposal and its transactions back in the pool,
// as for a leadership lost. Its goroutine used to wait forever.
func TestProposalWaitEndsWithTheEngine(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	pool := poolWithTransfer(t, e)
	p := &pendingProposer{done: make(chan struct{})} // never answers during the test
	defer close(p.done)
	b := NewBuilder(DefaultBuilderConfig, e.db, pool, p, val, testLogger(t), nil)
	b.stop = make(chan struct{})
	if err := b.propose(); err != nil {
		t.Fatal(err)
	}
	settled := make(chan struct{})
	go func() { b.awaits.Wait(); close(settled) }()
	select {
	case <-settled:
		t.Fatal("the proposal was settled before raft answered or the engine stopped")
	case <-time.After(50 * time.Millisecond):
	}
	close(b.stop)
	select {
	case <-settled:
	case <-time.After(10 * time.Second):
		t.Fatal("the wait on a proposal raft never answers outlived the engine")
	}
	b.uncertainMu.Lock()
	n := len(b.uncertain)
	b.uncertainMu.Unlock()
	if n != 1 {
		t.Errorf("%d uncertain proposals, want the one raft never answered", n)
	}
	if d := b.retryIn(); d <= 0 {
		t.Errorf("retry in %v after the proposal ended unanswered, want a pause", d)
	}
	if inflight := b.prune(); inflight != 0 {
		t.Errorf("%d proposals in flight after the reset", inflight)
	}
	if queued, _ := pool.Stats(); queued != 1 {
		t.Errorf("%d transactions queued after the reset, want the proposal's one back", queued)
	}
}
