package audit_test

import (
	"errors"
	"math/big"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// TestAuditAgreesWithFSM: a block breaking a rule of block validity is
// skipped by the FSM (store.DB.ApplyBlock) for a rule, and the audit of a
// chain holding that block reports a failure of the same name at that
// height: both apply state.CheckBlock and state.CheckExecution, the rules
// the leader's builder checks before it proposes.
func TestAuditAgreesWithFSM(t *testing.T) {
	ac := newChain(t)
	const n = 1
	orig, err := ac.c.DB.BlockByNumber(n)
	if err != nil {
		t.Fatal(err)
	}
	proposer := ac.c.Validator(orig.Header.Coinbase)
	ac.c.Close()
	dir := ac.c.Dir

	reseal := func(t *testing.T, b *chain.Block, key *crypto.PrivateKey, edit func(h *types.Header)) *chain.Block {
		h := types.CopyHeader(b.Header)
		edit(h)
		h.Extra = h.Extra[:chain.ExtraLen-chain.SealLen]
		if err := chain.Seal(h, ac.g.ChainID, key); err != nil {
			t.Fatal(err)
		}
		nb := chain.NewBlock(h, b.Txs)
		nb.Certs = b.Certs
		return nb
	}
	id := ac.g.ChainIDBig()
	cases := []struct {
		name    string
		corrupt func(t *testing.T, b *chain.Block) *chain.Block
		rule    string
	}{
		{"access list over the limit", func(t *testing.T, b *chain.Block) *chain.Block {
			to := common.Address{7}
			al := make(types.AccessList, chain.MaxAccessListEntries+1)
			tx, err := chain.SignTx(types.NewTx(&types.AccessListTx{ChainID: id, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int), AccessList: al}), id, chaintest.Key(0))
			if err != nil {
				t.Fatal(err)
			}
			txs := append([]*types.Transaction{tx}, b.Txs[1:]...)
			nb := reseal(t, b, proposer, func(h *types.Header) { h.TxHash = chain.TxRoot(txs) })
			nb.Txs = txs
			return nb
		}, state.RuleLimits},
		{"gas used over the gas limit", func(t *testing.T, b *chain.Block) *chain.Block {
			return reseal(t, b, proposer, func(h *types.Header) { h.GasUsed = chain.BlockGasLimit + 1 })
		}, state.RuleHeader},
		{"time goes back", func(t *testing.T, b *chain.Block) *chain.Block {
			return reseal(t, b, proposer, func(h *types.Header) {
				h.Extra = chain.NewHeader(h.ParentHash, n, 1, h.Coinbase).Extra
				h.Time = 0
			})
		}, state.RuleTime},
		{"history root", func(t *testing.T, b *chain.Block) *chain.Block {
			return reseal(t, b, proposer, func(h *types.Header) { h.MixDigest = common.Hash{1} })
		}, state.RuleHistoryRoot},
		{"sealed by a non-validator", func(t *testing.T, b *chain.Block) *chain.Block {
			k := chaintest.Key(0)
			return reseal(t, b, k, func(h *types.Header) { h.Coinbase = k.Address() })
		}, state.RuleProposer},
		{"state root", func(t *testing.T, b *chain.Block) *chain.Block {
			return reseal(t, b, proposer, func(h *types.Header) { h.Root = common.Hash{2} })
		}, state.RuleStateRoot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := tc.corrupt(t, orig)

			// The FSM's verdict, on a fresh node at block n-1.
			db, err := store.Open(t.TempDir(), store.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.InitGenesis(ac.g); err != nil {
				t.Fatal(err)
			}
			_, err = db.ApplyBlock(bad, 1, chain.NewSenderCache(chain.NewSigner(id), 64))
			var v *state.Violation
			if !errors.Is(err, store.ErrBlockRejected) || !errors.As(err, &v) || v.Rule != tc.rule {
				t.Fatalf("ApplyBlock: %v; want ErrBlockRejected for %s", err, tc.rule)
			}

			// The audit's, on the chain with the block stored at n.
			cp := tamper(t, dir, func(db *pebble.DB) {
				_, rs := getBlock(t, db, n)
				putBlock(t, db, bad, rs)
			})
			rep := runDir(t, ac.g, cp, nil)
			if rep.OK || !rep.Failed(tc.rule, n) {
				t.Fatalf("audit: want %s at %d; failures: %+v", tc.rule, n, rep.Failures)
			}
		})
	}
}
