package store

import (
	"bytes"
	"math/big"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
)

// executedOf is the execution a leader keeps for a block it built on
// the head of e.
func executedOf(e *env, built *state.Built) *Executed {
	tip := e.db.Tip()
	return &Executed{Hash: built.Block.Hash(), ParentHash: tip.Head.Hash, ParentRoot: tip.Head.StateRoot, Result: built.Result}
}

// dump returns every key and value of d's database (but the halt record,
// which holds a wall-clock time).
func dump(t *testing.T, d *DB) map[string][]byte {
	t.Helper()
	it, err := d.pdb.NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string][]byte{}
	for it.First(); it.Valid(); it.Next() {
		out[string(it.Key())] = bytes.Clone(it.Value())
	}
	return out
}

// reuseBlocks are blocks whose execution writes and reads everything a
// block can: plain transfers (to fresh and known accounts), a transfer
// that fails with a reason (status 0, over the balance), ERC-20 calls with
// logs, a call that reverts, from several senders at once.
func reuseBlocks(e *env) [][]*types.Transaction {
	huge := new(big.Int).Lsh(big.NewInt(1), 200)
	over := func(from int, nonce uint64) *types.Transaction {
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: e.chainID, Nonce: nonce, To: &common.Address{0x77}, Value: huge, Gas: 21000}), e.chainID, e.keys[from])
		if err != nil {
			e.t.Fatal(err)
		}
		return tx
	}
	return [][]*types.Transaction{
		{e.transfer(0, 0, common.Address{0x51}, 5), e.transfer(1, 0, e.keys[2].Address(), 7), over(3, 0)},
		{e.logTestSysTx(e.keys[2], 0, logTestHKD, "transfer", e.keys[4].Address(), big.NewInt(3)),
			e.logTestSysTx(e.keys[5], 0, logTestHKD, "transfer", e.keys[6].Address(), huge), // reverts: over the balance
			e.transfer(0, 1, common.Address{0x51}, 1)},
		{},
		{e.transfer(4, 0, e.keys[0].Address(), 1), over(0, 2)},
	}
}

// TestApplyBuiltReusesExecution: a block applied with the execution its
// builder computed (ApplyBuilt) is not executed again, and leaves the
// database byte for byte as executing it does (state, receipts, failure
// reasons, past state, indexes, head).
func TestApplyBuiltReusesExecution(t *testing.T) {
	leader, replica := newEnv(t), newEnv(t)
	for i, txs := range reuseBlocks(leader) {
		built := leader.build(txs...)
		if len(built.Dropped) > 0 {
			t.Fatalf("block %d: dropped %v", i+1, built.Dropped[0].Err)
		}
		leader.raftIdx++
		a, err := leader.db.ApplyBuilt(built.Block, leader.raftIdx, leader.senders, executedOf(leader, built))
		if err != nil {
			t.Fatalf("block %d: %v", i+1, err)
		}
		if !a.Reused {
			t.Fatalf("block %d: executed again", i+1)
		}
		enc, err := built.Block.Encode()
		if err != nil {
			t.Fatal(err)
		}
		dec, err := chain.DecodeBlock(enc)
		if err != nil {
			t.Fatal(err)
		}
		r, err := replica.apply(dec)
		if err != nil {
			t.Fatalf("replica block %d: %v", i+1, err)
		}
		if r.Reused {
			t.Fatalf("replica block %d: reused an execution it never had", i+1)
		}
	}
	if reasons, _ := leader.db.blockReasons(1); len(reasons) == 0 {
		t.Fatal("the test's blocks have no failure reason to compare")
	}
	got, want := dump(t, leader.db), dump(t, replica.db)
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Errorf("key %x: reused %x, executed %x", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("key %x only where the execution was reused", k)
		}
	}
}

// TestApplyBuiltMismatchExecutes: an execution kept for another block,
// another parent or another state is never used: the block is executed
// and applied as on any other node (or rejected as there).
func TestApplyBuiltMismatchExecutes(t *testing.T) {
	e := newEnv(t)
	first := e.build(e.transfer(0, 0, common.Address{0x51}, 5))
	other := e.build(e.transfer(1, 0, common.Address{0x52}, 9)) // another block on the same head
	good := executedOf(e, first)
	for name, ex := range map[string]*Executed{
		"another block's hash":   {Hash: other.Block.Hash(), ParentHash: good.ParentHash, ParentRoot: good.ParentRoot, Result: first.Result},
		"another parent":         {Hash: good.Hash, ParentHash: common.Hash{1}, ParentRoot: good.ParentRoot, Result: first.Result},
		"another parent state":   {Hash: good.Hash, ParentHash: good.ParentHash, ParentRoot: common.Hash{2}, Result: first.Result},
		"another block's result": {Hash: good.Hash, ParentHash: good.ParentHash, ParentRoot: good.ParentRoot, Result: other.Result},
		"no result":              {Hash: good.Hash, ParentHash: good.ParentHash, ParentRoot: good.ParentRoot},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			built := e.build(e.transfer(0, 0, common.Address{0x51}, 5))
			if built.Block.Hash() != first.Block.Hash() {
				t.Skip("blocks built on two fresh databases differ") // never: same genesis, same time
			}
			e.raftIdx++
			a, err := e.db.ApplyBuilt(built.Block, e.raftIdx, e.senders, ex)
			if err != nil {
				t.Fatal(err)
			}
			if a.Reused {
				t.Fatal("a mismatched execution was used")
			}
			if bal, _ := e.db.Balance(state.NativeAsset, common.Address{0x51}); bal.Int64() != 5 {
				t.Fatalf("recipient balance %s, want 5", bal)
			}
			if bal, _ := e.db.Balance(state.NativeAsset, common.Address{0x52}); bal.Sign() != 0 {
				t.Fatalf("the other block's recipient has %s", bal)
			}
		})
	}
	// The kept execution of a block whose parent is no longer the head
	// (another block took the height): the block is rejected as anywhere.
	if _, err := e.apply(other.Block); err != nil {
		t.Fatal(err)
	}
	e.raftIdx++
	if _, err := e.db.ApplyBuilt(first.Block, e.raftIdx, e.senders, good); err == nil {
		t.Fatal("a block on a replaced parent was applied")
	}
}
