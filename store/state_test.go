package store

import (
	"errors"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// env is a state DB on the dev genesis with the dev validator's key.
type env struct {
	t       testing.TB
	dir     string
	db      *DB
	val     *crypto.PrivateKey
	keys    []*crypto.PrivateKey
	senders *chain.SenderCache
	chainID *big.Int
	raftIdx uint64
	opts    Options
}

func newEnv(t testing.TB) *env {
	return newEnvOpts(t, Options{NoSync: true})
}

func newEnvOpts(t testing.TB, opts Options) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), chainID: big.NewInt(genesis.DevChainID), opts: opts}
	var err error
	if e.val, err = genesis.DevKey(genesis.DevValidatorIndex); err != nil {
		t.Fatal(err)
	}
	for i := uint32(0); i < genesis.DevAccounts; i++ {
		k, err := genesis.DevKey(i)
		if err != nil {
			t.Fatal(err)
		}
		e.keys = append(e.keys, k)
	}
	e.senders = chain.NewSenderCache(chain.NewSigner(e.chainID), 1024)
	e.open()
	if err := e.db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) open() {
	db, err := Open(e.dir, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	e.t.Cleanup(func() { db.Close() })
	if h, ok := db.Head(); ok {
		e.raftIdx = h.RaftIndex
	}
}

func (e *env) transfer(from int, nonce uint64, to common.Address, value int64) *types.Transaction {
	e.t.Helper()
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: e.chainID, Nonce: nonce, To: &to, Value: big.NewInt(value), Gas: 21000}), e.chainID, e.keys[from])
	if err != nil {
		e.t.Fatal(err)
	}
	return tx
}

// build builds a block of txs on the applied head.
func (e *env) build(txs ...*types.Transaction) *state.Built {
	e.t.Helper()
	froms, errs := e.senders.Senders(txs)
	for _, err := range errs {
		if err != nil {
			e.t.Fatal(err)
		}
	}
	tip := e.db.Tip()
	b, err := state.Build(e.db, tip.Parent(), txs, froms, nil, tip.Head.TimeMs+1000, e.val, genesis.DevChainID)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) apply(b *chain.Block) (*Applied, error) {
	e.raftIdx++
	return e.db.ApplyBlock(b, e.raftIdx, e.senders)
}

func TestGenesisBlock(t *testing.T) {
	e := newEnv(t)
	head, ok := e.db.Head()
	if !ok || head.Number != 0 {
		t.Fatalf("head %+v", head)
	}
	b0, err := e.db.BlockByNumber(0)
	if err != nil {
		t.Fatal(err)
	}
	if b0.Hash() != head.Hash || b0.Header.Root != head.StateRoot {
		t.Fatal("stored block 0 does not match head")
	}
	bal, _ := e.db.Balance(state.NativeAsset, e.keys[0].Address())
	if bal.Cmp(genesis.DevBalance) != 0 {
		t.Fatalf("dev balance %s", bal)
	}
	// A different genesis file gives a different block 0.
	g := genesis.Dev()
	g.TimestampMs++
	other, _, err := state.GenesisBlock(g)
	if err != nil {
		t.Fatal(err)
	}
	if other.Hash() == head.Hash {
		t.Fatal("genesis hash does not depend on the genesis file")
	}
	// The data dir refuses another genesis.
	if err := e.db.InitGenesis(g); !errors.Is(err, ErrGenesisMismatch) {
		t.Fatalf("InitGenesis(other) = %v, want ErrGenesisMismatch", err)
	}
}

func TestApplyTransfers(t *testing.T) {
	e := newEnv(t)
	to := common.HexToAddress("0x00000000000000000000000000000000000000aa")
	b := e.build(e.transfer(0, 0, to, 5), e.transfer(0, 1, to, 7), e.transfer(1, 0, to, 11))
	if len(b.Dropped) != 0 {
		t.Fatalf("dropped %v", b.Dropped)
	}
	applied, err := e.apply(b.Block)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied.Receipts) != 3 {
		t.Fatalf("%d receipts", len(applied.Receipts))
	}
	for i, r := range applied.Receipts {
		if r.Status != types.ReceiptStatusSuccessful || r.GasUsed != chain.GasPerTransfer {
			t.Fatalf("receipt %d: %+v", i, r)
		}
	}
	if bal, _ := e.db.Balance(state.NativeAsset, to); bal.Int64() != 23 {
		t.Fatalf("recipient balance %s", bal)
	}
	if n, _ := e.db.Nonce(e.keys[0].Address()); n != 2 {
		t.Fatalf("nonce %d", n)
	}
	// Stored receipts derive every field.
	rs, err := e.db.Receipts(b.Block)
	if err != nil {
		t.Fatal(err)
	}
	if rs[2].TxHash != b.Block.Txs[2].Hash() || rs[2].BlockHash != b.Block.Hash() || rs[2].TransactionIndex != 2 || rs[2].CumulativeGasUsed != 3*21000 {
		t.Fatalf("stored receipt %+v", rs[2])
	}
	n, idx, err := e.db.TxLocation(b.Block.Txs[1].Hash())
	if err != nil || n != 1 || idx != 1 {
		t.Fatalf("tx location %d %d %v", n, idx, err)
	}
	hist, err := e.db.AccountHistory(to, nil, 10)
	if err != nil || len(hist) != 3 || hist[0].Index != 2 || hist[0].Flags != HistoryReceived {
		t.Fatalf("history %+v %v", hist, err)
	}
	older, err := e.db.AccountHistory(to, &hist[0], 10)
	if err != nil || len(older) != 2 || older[0].Index != 1 {
		t.Fatalf("paged history %+v %v", older, err)
	}
}

func TestFailedTransferConsumesNonce(t *testing.T) {
	e := newEnv(t)
	poor, _ := crypto.GenerateKey()
	e.keys = append(e.keys, poor)
	poorIdx := len(e.keys) - 1
	// Fund poor with 10, then it tries to send 11: status 0, nonce used.
	b := e.build(e.transfer(0, 0, poor.Address(), 10))
	if _, err := e.apply(b.Block); err != nil {
		t.Fatal(err)
	}
	b = e.build(e.transfer(poorIdx, 0, e.keys[0].Address(), 11))
	a, err := e.apply(b.Block)
	if err != nil {
		t.Fatal(err)
	}
	if a.Receipts[0].Status != types.ReceiptStatusFailed {
		t.Fatal("overdraft succeeded")
	}
	if n, _ := e.db.Nonce(poor.Address()); n != 1 {
		t.Fatalf("nonce %d, want 1", n)
	}
	if bal, _ := e.db.Balance(state.NativeAsset, poor.Address()); bal.Int64() != 10 {
		t.Fatalf("balance %s, want 10", bal)
	}
}

func TestBuildDropsBadNonces(t *testing.T) {
	e := newEnv(t)
	to := common.Address{1}
	b := e.build(e.transfer(0, 1, to, 1), e.transfer(0, 0, to, 1), e.transfer(0, 0, to, 2))
	if len(b.Included) != 1 || b.Included[0] != 1 || len(b.Dropped) != 2 {
		t.Fatalf("included %v dropped %v", b.Included, b.Dropped)
	}
	if !errors.Is(b.Dropped[0].Err, state.ErrNonceTooHigh) || !errors.Is(b.Dropped[1].Err, state.ErrNonceTooLow) {
		t.Fatalf("dropped reasons %v", b.Dropped)
	}
}

// TestRejectedBlocks: each corrupted block is skipped, only its raft index
// is recorded, and the state is unchanged.
func TestRejectedBlocks(t *testing.T) {
	to := common.Address{2}
	other, _ := crypto.GenerateKey()
	cases := map[string]func(e *env, b *state.Built) *chain.Block{
		"wrong parent": func(e *env, b *state.Built) *chain.Block {
			h := types.CopyHeader(b.Block.Header)
			h.ParentHash = common.Hash{9}
			chain.Seal(h, genesis.DevChainID, e.val)
			return chain.NewBlock(h, b.Block.Txs)
		},
		"wrong height": func(e *env, b *state.Built) *chain.Block {
			h := types.CopyHeader(b.Block.Header)
			h.Number = big.NewInt(5)
			chain.Seal(h, genesis.DevChainID, e.val)
			return chain.NewBlock(h, b.Block.Txs)
		},
		"not a validator": func(e *env, b *state.Built) *chain.Block {
			h := types.CopyHeader(b.Block.Header)
			h.Coinbase = other.Address()
			chain.Seal(h, genesis.DevChainID, other)
			return chain.NewBlock(h, b.Block.Txs)
		},
		"bad seal": func(e *env, b *state.Built) *chain.Block {
			h := types.CopyHeader(b.Block.Header)
			h.Extra[20] ^= 1
			return chain.NewBlock(h, b.Block.Txs)
		},
		"state root": func(e *env, b *state.Built) *chain.Block {
			h := types.CopyHeader(b.Block.Header)
			h.Root = common.Hash{1}
			chain.Seal(h, genesis.DevChainID, e.val)
			return chain.NewBlock(h, b.Block.Txs)
		},
		"tx root": func(e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(b.Block.Header, append(b.Block.Txs, e.transfer(1, 0, to, 1)))
		},
		"receipt root": func(e *env, b *state.Built) *chain.Block {
			h := types.CopyHeader(b.Block.Header)
			h.ReceiptHash = common.Hash{3}
			chain.Seal(h, genesis.DevChainID, e.val)
			return chain.NewBlock(h, b.Block.Txs)
		},
		"history root": func(e *env, b *state.Built) *chain.Block {
			h := types.CopyHeader(b.Block.Header)
			h.MixDigest = common.Hash{4}
			chain.Seal(h, genesis.DevChainID, e.val)
			return chain.NewBlock(h, b.Block.Txs)
		},
		"time goes back": func(e *env, b *state.Built) *chain.Block {
			h := types.CopyHeader(b.Block.Header)
			h.Extra = chain.NewHeader(h.ParentHash, 1, 5, h.Coinbase).Extra
			h.Time = 0
			chain.Seal(h, genesis.DevChainID, e.val)
			return chain.NewBlock(h, b.Block.Txs)
		},
		"bad nonce": func(e *env, b *state.Built) *chain.Block {
			txs := []*types.Transaction{e.transfer(0, 3, to, 1)}
			h := types.CopyHeader(b.Block.Header)
			h.TxHash = chain.TxRoot(txs)
			chain.Seal(h, genesis.DevChainID, e.val)
			return chain.NewBlock(h, txs)
		},
		"unprotected tx": func(e *env, b *state.Built) *chain.Block {
			tx, _ := types.SignTx(types.NewTransaction(0, to, big.NewInt(1), 21000, new(big.Int), nil), types.HomesteadSigner{}, e.keys[0].ECDSA())
			txs := []*types.Transaction{tx}
			h := types.CopyHeader(b.Block.Header)
			h.TxHash = chain.TxRoot(txs)
			chain.Seal(h, genesis.DevChainID, e.val)
			return chain.NewBlock(h, txs)
		},
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			before, _ := e.db.Head()
			b := e.build(e.transfer(0, 0, to, 1))
			_, err := e.apply(corrupt(e, b))
			if !errors.Is(err, ErrBlockRejected) {
				t.Fatalf("err %v, want ErrBlockRejected", err)
			}
			after, _ := e.db.Head()
			if after.Hash != before.Hash || after.StateRoot != before.StateRoot || after.RaftIndex != e.raftIdx {
				t.Fatalf("head changed: %+v → %+v", before, after)
			}
			if bal, _ := e.db.Balance(state.NativeAsset, to); bal.Sign() != 0 {
				t.Fatal("state changed")
			}
			// The honest block still applies afterwards.
			if _, err := e.apply(b.Block); err != nil {
				t.Fatalf("honest block after skip: %v", err)
			}
		})
	}
}

func TestReapplyIsNoop(t *testing.T) {
	e := newEnv(t)
	b := e.build(e.transfer(0, 0, common.Address{5}, 1))
	if _, err := e.apply(b.Block); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ApplyBlock(b.Block, e.raftIdx, e.senders); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("re-apply: %v", err)
	}
	if err := e.db.RecordSkipped(e.raftIdx); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("re-skip: %v", err)
	}
}

func TestReopenResumes(t *testing.T) {
	e := newEnv(t)
	for i := uint64(0); i < 5; i++ {
		b := e.build(e.transfer(0, i, common.Address{6}, 1))
		if _, err := e.apply(b.Block); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := e.db.Head()
	e.db.Close()
	e.open()
	after, _ := e.db.Head()
	if after != before {
		t.Fatalf("head after reopen %+v, before %+v", after, before)
	}
	if e.db.Tip().History.Root() == (common.Hash{}) || e.db.Tip().History.Size() != 6 {
		t.Fatal("history not restored")
	}
	b := e.build(e.transfer(0, 5, common.Address{6}, 1))
	if _, err := e.apply(b.Block); err != nil {
		t.Fatalf("apply after reopen: %v", err)
	}
}

func TestEmptyBlockKeepsStateRoot(t *testing.T) {
	e := newEnv(t)
	before, _ := e.db.Head()
	b := e.build()
	if _, err := e.apply(b.Block); err != nil {
		t.Fatal(err)
	}
	after, _ := e.db.Head()
	if after.StateRoot != before.StateRoot || after.Number != 1 {
		t.Fatalf("empty block changed state root")
	}
	if b.Block.Header.TxHash != types.EmptyTxsHash {
		t.Fatal("empty block must carry Ethereum's empty tx root")
	}
}

// transferBlocks builds and applies n blocks of perBlock transfers from
// every dev account in turn, and returns them (to replay elsewhere).
func (e *env) transferBlocks(n, perBlock int) []*chain.Block {
	e.t.Helper()
	nonces := make([]uint64, len(e.keys))
	blocks := make([]*chain.Block, n)
	for i := range blocks {
		txs := make([]*types.Transaction, perBlock)
		for j := range txs {
			from := j % len(e.keys)
			txs[j] = e.transfer(from, nonces[from], common.Address{byte(j)}, 1)
			nonces[from]++
		}
		built := e.build(txs...)
		if _, err := e.apply(built.Block); err != nil {
			e.t.Fatal(err)
		}
		blocks[i] = built.Block
	}
	return blocks
}

// BenchmarkApplyBlock measures applying a block of 1,000 transfers from
// 20 senders with fsync on, senders already cached (as after admission).
func BenchmarkApplyBlock(b *testing.B) {
	const perBlock = 1000
	e := newEnvOpts(b, Options{})
	b.StopTimer()
	blocks := e.transferBlocks(b.N, perBlock)
	// Replay the same blocks on a fresh database.
	e2 := newEnvOpts(b, Options{})
	e2.senders = e.senders
	b.StartTimer()
	for _, blk := range blocks {
		if _, err := e2.apply(blk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*perBlock)/b.Elapsed().Seconds(), "txs/s")
}
