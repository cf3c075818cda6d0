package consensus

import (
	"context"
	"errors"
	"math/big"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// fsmProposer hands each proposal straight to a real FSM over a real
// Pebble database, as a one-node Raft would (every entry commits), and
// records what was proposed.
type fsmProposer struct {
	fsm *FSM

	mu        sync.Mutex
	index     uint64
	sizes     []int
	proposals map[uint64]int // height → proposals
	skipped   []error
}

func newFSMProposer(fsm *FSM) *fsmProposer {
	return &fsmProposer{fsm: fsm, proposals: map[uint64]int{}}
}

func (p *fsmProposer) Apply(cmd []byte, _ time.Duration) raft.ApplyFuture {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	p.sizes = append(p.sizes, len(cmd))
	if b, err := chain.DecodeBlock(cmd); err == nil {
		p.proposals[b.Number()]++
	}
	resp := p.fsm.Apply(&raft.Log{Index: p.index, Type: raft.LogCommand, Data: cmd})
	if err, ok := resp.(error); ok {
		p.skipped = append(p.skipped, err)
	}
	return appliedFuture{resp: resp, index: p.index}
}

// check fails t if a proposal was larger than a block may be, a height
// was proposed twice, or a block was skipped.
func (p *fsmProposer) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, n := range p.sizes {
		if n > chain.MaxBlockSize {
			t.Fatalf("proposal %d is %d bytes, over chain.MaxBlockSize %d", i, n, chain.MaxBlockSize)
		}
	}
	for h, n := range p.proposals {
		if n > 1 {
			t.Fatalf("block %d proposed %d times", h, n)
		}
	}
	if len(p.skipped) > 0 {
		t.Fatalf("%d proposals skipped by the FSM, first: %v", len(p.skipped), p.skipped[0])
	}
}

type appliedFuture struct {
	resp  any
	index uint64
}

func (f appliedFuture) Error() error  { return nil }
func (f appliedFuture) Index() uint64 { return f.index }
func (f appliedFuture) Response() any { return f.resp }

// leaderEnv is one leader: pool, builder and FSM over one database, the
// FSM fed by the builder's proposals.
type leaderEnv struct {
	e        *fsmEnv
	pool     *mempool.Pool
	proposer *fsmProposer
	builder  *Builder
}

func newLeaderEnv(t *testing.T, cfg BuilderConfig) *leaderEnv {
	t.Helper()
	db := tempGenesisDB(t)
	l := &leaderEnv{e: &fsmEnv{t: t, db: db, senders: chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 1<<14)}}
	l.pool = mempool.New(mempool.DefaultConfig, db, l.e.senders)
	var builder *Builder
	l.e.fsm = NewFSM(db, l.e.senders, testLogger(t), func(a *store.Applied) {
		l.pool.Applied(a.Block.Txs, a.Senders)
		builder.Notify()
	}, nil)
	l.proposer = newFSMProposer(l.e.fsm)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	builder = NewBuilder(cfg, db, l.pool, l.proposer, val, testLogger(t), nil)
	l.builder = builder
	return l
}

// run runs the builder until done reports true or the deadline passes.
func (l *leaderEnv) run(t *testing.T, deadline time.Duration, what string, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		l.builder.Run(ctx)
	}()
	defer func() {
		cancel()
		<-stopped
	}()
	end := time.Now().Add(deadline)
	for !done() {
		l.proposer.check(t)
		if time.Now().After(end) {
			head, _ := l.e.db.Head()
			t.Fatalf("%s: not done after %v (head %d)", what, deadline, head.Number)
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.proposer.check(t)
}

// bigTransfer is the largest native transfer admission accepts: an
// EIP-2930 transfer with a full access list.
func bigTransfer(t *testing.T, key *crypto.PrivateKey, nonce uint64, entries, keys int) *types.Transaction {
	t.Helper()
	id := big.NewInt(genesis.DevChainID)
	al := make(types.AccessList, entries)
	for i := range al {
		al[i].Address = common.Address{byte(i), 0xa1}
		per := keys / entries
		if i < keys%entries {
			per++
		}
		for j := 0; j < per; j++ {
			al[i].StorageKeys = append(al[i].StorageKeys, common.Hash{byte(i), byte(j), byte(j >> 8), 0xff})
		}
	}
	to := common.Address{0x42}
	tx, err := chain.SignTx(types.NewTx(&types.AccessListTx{ChainID: id, Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int), AccessList: al}), id, key)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// TestOversizedBlocksNeverProposed is the reproduction of issue 20's
// halted chain: enough admissible transactions to make a block of
// MaxBlockTxs larger than chain.MaxBlockSize. The builder used to fill
// blocks by count; the FSM refused the block as malformed, its
// transactions went back to the pool and the same block was proposed
// again forever. Now every block stays within the limit, no height is
// proposed twice, and every transaction is applied. A transfer with a
// ~125 KB access list is refused at admission.
func TestOversizedBlocksNeverProposed(t *testing.T) {
	if testing.Short() {
		t.Skip("moves ~70 MB of transactions through the builder and the FSM")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(25)) // ~70 MB live several times over: keep the heap near it
	l := newLeaderEnv(t, DefaultBuilderConfig)
	dev, _ := genesis.DevKey(0)

	huge := bigTransfer(t, dev, 0, 1000, 3800) // ~125 KB of access list
	if _, err := l.pool.Add(huge); !errors.Is(err, chain.ErrTxTooLarge) {
		t.Fatalf("a %d-byte transfer was admitted (err %v), want ErrTxTooLarge", huge.Size(), err)
	}
	wide := bigTransfer(t, dev, 0, chain.MaxAccessListEntries+1, 1)
	if _, err := l.pool.Add(wide); !errors.Is(err, chain.ErrAccessListTooLarge) {
		t.Fatalf("an access list of %d addresses was admitted (err %v)", chain.MaxAccessListEntries+1, err)
	}

	first := bigTransfer(t, dev, 0, chain.MaxAccessListEntries, chain.MaxAccessListKeys)
	n := chain.MaxBlockSize/int(first.Size()) + 64 // a block of all of them is over the limit
	if n > DefaultBuilderConfig.MaxBlockTxs {
		t.Fatalf("%d transactions of %d bytes needed, more than a block's count", n, first.Size())
	}
	txs := []*types.Transaction{first}
	for i := 1; i < n; i++ {
		txs = append(txs, bigTransfer(t, dev, uint64(i), chain.MaxAccessListEntries, chain.MaxAccessListKeys))
	}
	for i, tx := range txs {
		if _, err := l.pool.Add(tx); err != nil {
			t.Fatalf("tx %d (%d bytes) refused: %v", i, tx.Size(), err)
		}
	}
	t.Logf("%d transfers of %d bytes, %d MB", n, first.Size(), n*int(first.Size())>>20)

	l.run(t, 2*time.Minute, "all transfers applied", func() bool {
		nonce, _ := l.e.db.Nonce(dev.Address())
		return nonce == uint64(n)
	})
	head, _ := l.e.db.Head()
	if head.Number < 2 {
		t.Fatalf("all %d transfers in %d block(s): one was over the limit", n, head.Number)
	}
}

// TestBuilderLeavesOutInvalidCertificates: a certificate source that
// hands the builder a certificate without a quorum (the FSM skips a
// block carrying it) does not stall the chain: the builder checks its
// block with the FSM's rules before proposing, never carries that
// certificate again, and never proposes a height twice.
func TestBuilderLeavesOutInvalidCertificates(t *testing.T) {
	cfg := DefaultBuilderConfig
	cfg.Heartbeat = 5 * time.Millisecond
	var l *leaderEnv
	var asked int
	var mu sync.Mutex
	cfg.Certificates = func(number uint64) []*chain.Certificate {
		mu.Lock()
		asked++
		mu.Unlock()
		head, _ := l.e.db.Head()
		if head.Number == 0 {
			return nil
		}
		b, err := l.e.db.BlockByNumber(1)
		if err != nil {
			t.Error(err)
			return nil
		}
		next := chain.ValidatorSetHash(l.e.db.Validators())
		return []*chain.Certificate{{Height: 1, Hash: b.Hash(), Next: next}} // no signature: no quorum
	}
	l = newLeaderEnv(t, cfg)
	l.run(t, 30*time.Second, "10 blocks", func() bool {
		head, _ := l.e.db.Head()
		return head.Number >= 10
	})
	if ok, _ := l.e.db.Certified(1); ok {
		t.Fatal("block 1 certified by a certificate without signatures")
	}
	mu.Lock()
	defer mu.Unlock()
	if asked == 0 {
		t.Fatal("the builder never asked for certificates")
	}
	if n := len(l.builder.badCerts); n != 1 {
		t.Fatalf("%d certificates marked bad, want the one", n)
	}
}

// TestRejectedBlockNeverReproposedUnchanged: what the builder does with a
// block of its own the FSM skipped (or its own check refused), for each
// kind of violation: the transaction at fault leaves the pool; a block
// failing as a whole makes the next one half as large, down to a single
// transaction, which then leaves the pool; a block skipped for its place
// in the chain changes nothing; an applied block lifts the cap.
func TestRejectedBlockNeverReproposedUnchanged(t *testing.T) {
	l := newLeaderEnv(t, DefaultBuilderConfig)
	dev, _ := genesis.DevKey(0)
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0x42}
	for i := range 8 {
		tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: uint64(i), To: &to, Value: big.NewInt(1), Gas: 21000}), id, dev)
		if _, err := l.pool.Add(tx); err != nil {
			t.Fatal(err)
		}
	}
	b := l.builder
	blk := chain.NewBlock(chain.NewHeader(common.Hash{}, 1, 1, dev.Address()), nil)
	inPool := func(p mempool.Pending) bool { _, _, ok := l.pool.Get(p.Tx.Hash()); return ok }

	taken := l.pool.Take(8)
	b.invalidLocked(blk, taken, state.Violation{Rule: state.RuleLink, Tx: -1, Err: errors.New("parent is not the head")}, "rejected")
	if b.shrink != 0 || !inPool(taken[0]) {
		t.Fatalf("a block skipped for its parent changed the next: shrink %d", b.shrink)
	}
	b.invalidLocked(blk, taken, state.Violation{Rule: state.RuleTxSignature, Tx: 3, Err: errors.New("bad")}, "rejected")
	if inPool(taken[3]) || !inPool(taken[2]) || !inPool(taken[4]) {
		t.Fatal("the transaction at fault was not the one dropped")
	}
	b.invalidLocked(blk, taken, state.Violation{Rule: state.RuleStateRoot, Tx: -1, Err: errors.New("root")}, "rejected")
	if b.shrink != 4 {
		t.Fatalf("after an unexplained skip of 8 transactions the next block takes %d, want 4", b.shrink)
	}
	b.invalidLocked(blk, taken[:1], state.Violation{Rule: state.RuleStateRoot, Tx: -1, Err: errors.New("root")}, "rejected")
	if inPool(taken[0]) {
		t.Fatal("a transaction that makes a block invalid on its own stayed in the pool")
	}
	// An applied block of this builder lifts the cap.
	b.pool.Return(taken)
	l.run(t, 30*time.Second, "a block applied", func() bool {
		head, _ := l.e.db.Head()
		return head.Number >= 1
	})
	if b.shrink != 0 {
		t.Fatalf("cap %d still on after a block applied", b.shrink)
	}
}
