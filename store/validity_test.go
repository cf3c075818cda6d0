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

// reseal seals a copy of h, changed by edit, with key.
func reseal(t *testing.T, h *types.Header, key *crypto.PrivateKey, edit func(h *types.Header)) *types.Header {
	t.Helper()
	h = types.CopyHeader(h)
	edit(h)
	if err := chain.Seal(h, genesis.DevChainID, key); err != nil {
		t.Fatal(err)
	}
	return h
}

// withTxs is b's block with txs, the header's tx root and seal updated.
func withTxs(t *testing.T, e *env, b *state.Built, txs ...*types.Transaction) *chain.Block {
	t.Helper()
	h := reseal(t, b.Block.Header, e.val, func(h *types.Header) { h.TxHash = chain.TxRoot(txs) })
	return chain.NewBlock(h, txs)
}

// withCerts is b's block carrying certs, the certificate root and seal updated.
func withCerts(t *testing.T, e *env, b *state.Built, certs []*chain.Certificate) *chain.Block {
	t.Helper()
	h := types.CopyHeader(b.Block.Header)
	h.Extra = h.Extra[:len(h.Extra)-chain.SealLen]
	if err := chain.SetCertRoot(h, chain.CertRoot(certs)); err != nil {
		t.Fatal(err)
	}
	h = reseal(t, h, e.val, func(*types.Header) {})
	blk := chain.NewBlock(h, b.Block.Txs)
	blk.Certs = certs
	return blk
}

// verdict applies the block-validity rules as ApplyBlock does: CheckBlock,
// then executing and CheckExecution.
func verdict(e *env, blk *chain.Block) []state.Violation {
	tip := e.db.Tip()
	p := state.Prepare(blk, genesis.DevChainID, e.senders.Senders)
	if vs := state.CheckBlock(p, tip.Parent(), e.db.View(tip.Head.Number), genesis.DevChainID); len(vs) > 0 {
		return vs
	}
	timeMs, _ := chain.TimeMs(blk.Header)
	res, err := state.Execute(e.db, state.BlockContext{Number: blk.Number(), TimeMs: timeMs}, blk.Txs, p.Senders)
	var txErr *state.TxError
	if errors.As(err, &txErr) {
		return []state.Violation{{Rule: state.RuleIncludable, Tx: txErr.Index, Err: err}}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return state.CheckExecution(blk.Header, tip.Head.StateRoot, res)
}

// TestBlockValidityRules is the table of block-validity rules: each
// corrupted block breaks the rule named (first, and for the transaction
// named), CheckBlock and CheckExecution say so, and ApplyBlock (the FSM)
// skips it with that same violation, changing nothing.
func TestBlockValidityRules(t *testing.T) {
	to := common.Address{2}
	stranger, _ := crypto.GenerateKey()
	accessList := func(entries, keys int) types.AccessList {
		al := make(types.AccessList, entries)
		for i := 0; i < keys; i++ {
			al[i%entries].StorageKeys = append(al[i%entries].StorageKeys, common.Hash{byte(i), byte(i >> 8)})
		}
		return al
	}
	alTx := func(e *env, al types.AccessList) *types.Transaction {
		tx, err := chain.SignTx(types.NewTx(&types.AccessListTx{ChainID: e.chainID, Nonce: 0, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int), AccessList: al}), e.chainID, e.keys[0])
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	cases := []struct {
		name    string
		corrupt func(t *testing.T, e *env, b *state.Built) *chain.Block
		rule    string // "" for a valid block
		tx      int
	}{
		{"valid", func(t *testing.T, e *env, b *state.Built) *chain.Block { return b.Block }, "", -1},
		{"largest admissible access list", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return e.build(alTx(e, accessList(chain.MaxAccessListEntries, chain.MaxAccessListKeys))).Block
		}, "", -1},
		{"access list: too many addresses", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return withTxs(t, e, b, alTx(e, accessList(chain.MaxAccessListEntries+1, 1)))
		}, state.RuleLimits, 0},
		{"access list: too many storage keys", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return withTxs(t, e, b, alTx(e, accessList(4, chain.MaxAccessListKeys+1)))
		}, state.RuleLimits, 0},
		{"transaction over MaxTxSize", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return withTxs(t, e, b, e.transfer(1, 0, to, 1), alTx(e, accessList(1000, 3800)))
		}, state.RuleLimits, 1},
		{"too many certificates", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			certs := make([]*chain.Certificate, chain.MaxCertsPerBlock+1)
			for i := range certs {
				certs[i] = &chain.Certificate{Height: uint64(i)}
			}
			return withCerts(t, e, b, certs)
		}, state.RuleLimits, -1},
		{"wrong parent", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(reseal(t, b.Block.Header, e.val, func(h *types.Header) { h.ParentHash = common.Hash{9} }), b.Block.Txs)
		}, state.RuleLink, -1},
		{"wrong height", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(reseal(t, b.Block.Header, e.val, func(h *types.Header) { h.Number = big.NewInt(5) }), b.Block.Txs)
		}, state.RuleLink, -1},
		{"gas limit", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(reseal(t, b.Block.Header, e.val, func(h *types.Header) { h.GasLimit = 30_000_000 }), b.Block.Txs)
		}, state.RuleHeader, -1},
		{"gas used over the gas limit", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(reseal(t, b.Block.Header, e.val, func(h *types.Header) { h.GasUsed = chain.BlockGasLimit + 1 }), b.Block.Txs)
		}, state.RuleHeader, -1},
		{"time goes back", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(reseal(t, b.Block.Header, e.val, func(h *types.Header) {
				h.Extra = chain.NewHeader(h.ParentHash, 1, 5, h.Coinbase).Extra
				h.Time = 0
			}), b.Block.Txs)
		}, state.RuleTime, -1},
		{"not a validator", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(reseal(t, b.Block.Header, stranger, func(h *types.Header) { h.Coinbase = stranger.Address() }), b.Block.Txs)
		}, state.RuleProposer, -1},
		{"bad seal", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			h := types.CopyHeader(b.Block.Header)
			h.Extra[len(h.Extra)-2] ^= 1
			return chain.NewBlock(h, b.Block.Txs)
		}, state.RuleSeal, -1},
		{"tx root", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(b.Block.Header, append(b.Block.Txs, e.transfer(1, 0, to, 1)))
		}, state.RuleTxRoot, -1},
		{"history root", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(reseal(t, b.Block.Header, e.val, func(h *types.Header) { h.MixDigest = common.Hash{4} }), b.Block.Txs)
		}, state.RuleHistoryRoot, -1},
		{"certificate root", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			blk := chain.NewBlock(b.Block.Header, b.Block.Txs)
			blk.Certs = []*chain.Certificate{{Height: 0}}
			return blk
		}, state.RuleCertRoot, -1},
		{"certificate for the block itself", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return withCerts(t, e, b, []*chain.Certificate{{Height: 1}})
		}, state.RuleCertificate, -1},
		{"certificate without a quorum", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return withCerts(t, e, b, []*chain.Certificate{{Height: 0}})
		}, state.RuleCertificateQuorum, -1},
		{"unprotected tx", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			tx, _ := types.SignTx(types.NewTransaction(0, to, big.NewInt(1), 21000, new(big.Int), nil), types.HomesteadSigner{}, e.keys[0].ECDSA())
			return withTxs(t, e, b, tx)
		}, state.RuleTxSignature, 0},
		{"nonce not the next", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return withTxs(t, e, b, e.transfer(0, 3, to, 1))
		}, state.RuleIncludable, 0},
		{"state root", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(reseal(t, b.Block.Header, e.val, func(h *types.Header) { h.Root = common.Hash{1} }), b.Block.Txs)
		}, state.RuleStateRoot, -1},
		{"receipts root", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(reseal(t, b.Block.Header, e.val, func(h *types.Header) { h.ReceiptHash = common.Hash{3} }), b.Block.Txs)
		}, state.RuleReceiptsRoot, -1},
		{"gas used", func(t *testing.T, e *env, b *state.Built) *chain.Block {
			return chain.NewBlock(reseal(t, b.Block.Header, e.val, func(h *types.Header) { h.GasUsed++ }), b.Block.Txs)
		}, state.RuleHeader, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			before, _ := e.db.Head()
			b := e.build(e.transfer(0, 0, to, 1))
			blk := tc.corrupt(t, e, b)
			vs := verdict(e, blk)
			if tc.rule == "" {
				if len(vs) > 0 {
					t.Fatalf("valid block breaks %v", vs)
				}
				if _, err := e.apply(blk); err != nil {
					t.Fatal(err)
				}
				return
			}
			if len(vs) == 0 || vs[0].Rule != tc.rule || vs[0].Tx != tc.tx {
				t.Fatalf("violations %v; want %s (tx %d) first", vs, tc.rule, tc.tx)
			}
			_, err := e.apply(blk)
			var v *state.Violation
			if !errors.Is(err, ErrBlockRejected) || !errors.As(err, &v) || v.Rule != tc.rule || v.Tx != tc.tx {
				t.Fatalf("ApplyBlock: %v; want ErrBlockRejected with %s (tx %d)", err, tc.rule, tc.tx)
			}
			if after, _ := e.db.Head(); after.Hash != before.Hash || after.StateRoot != before.StateRoot {
				t.Fatalf("head changed: %+v → %+v", before, after)
			}
			if _, err := e.apply(b.Block); err != nil {
				t.Fatalf("honest block after the skip: %v", err)
			}
		})
	}
}

// TestBuildKeepsTheLimits: Build leaves out (ErrBlockFull) what would take
// the block past chain.MaxBlockSize, and the block it makes passes
// CheckBlock: it fills blocks by bytes, not only by count.
func TestBuildKeepsTheLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 64 MB block")
	}
	e := newEnv(t)
	to := common.Address{3}
	al := make(types.AccessList, chain.MaxAccessListEntries)
	for i := 0; i < chain.MaxAccessListKeys; i++ {
		al[i%len(al)].StorageKeys = append(al[i%len(al)].StorageKeys, common.Hash{byte(i), byte(i >> 8)})
	}
	var txs []*types.Transaction
	var froms []common.Address
	size := 0
	for nonce := uint64(0); size <= chain.MaxBlockSize; nonce++ {
		tx, err := chain.SignTx(types.NewTx(&types.AccessListTx{ChainID: e.chainID, Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int), AccessList: al}), e.chainID, e.keys[0])
		if err != nil {
			t.Fatal(err)
		}
		txs, froms, size = append(txs, tx), append(froms, e.keys[0].Address()), size+int(tx.Size())
	}
	tip := e.db.Tip()
	built, err := state.Build(e.db, tip.Parent(), txs, froms, nil, tip.Head.TimeMs+1, e.val, genesis.DevChainID)
	if err != nil {
		t.Fatal(err)
	}
	if len(built.Dropped) == 0 || !errors.Is(built.Dropped[0].Err, state.ErrBlockFull) {
		t.Fatalf("%d of %d transactions left out (%v), want the last ones with ErrBlockFull", len(built.Dropped), len(txs), built.Dropped)
	}
	enc, err := built.Block.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > chain.MaxBlockSize || len(enc) < chain.MaxBlockSize-2*int(txs[0].Size()) {
		t.Fatalf("block of %d bytes; want within %d and not a transaction short of it", len(enc), chain.MaxBlockSize)
	}
	if vs := verdict(e, built.Block); len(vs) > 0 {
		t.Fatalf("built block breaks %v", vs)
	}
}

// BenchmarkCheckBlock measures the rules of block validity without
// execution on a block of 5000 transfers whose senders are cached: the
// leader's builder pays it once more per block before proposing (the FSM
// and the audit paid it before the rules were shared).
func BenchmarkCheckBlock(b *testing.B) {
	const perBlock = 5000
	e := newEnv(b)
	txs := make([]*types.Transaction, perBlock)
	nonces := make([]uint64, len(e.keys))
	for j := range txs {
		from := j % len(e.keys)
		txs[j] = e.transfer(from, nonces[from], common.Address{byte(j)}, 1)
		nonces[from]++
	}
	built := e.build(txs...)
	if _, err := built.Block.Encode(); err != nil {
		b.Fatal(err)
	}
	tip := e.db.Tip()
	view := e.db.View(tip.Head.Number)
	b.ResetTimer()
	for range b.N {
		p := state.Prepare(built.Block, genesis.DevChainID, e.senders.Senders)
		if vs := state.CheckBlock(p, tip.Parent(), view, genesis.DevChainID); len(vs) > 0 {
			b.Fatal(vs)
		}
	}
	b.ReportMetric(float64(b.N*perBlock)/b.Elapsed().Seconds(), "txs/s")
}
