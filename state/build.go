package state

import (
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

// Parent is what a new block builds on: an applied block or one the leader
// proposed and has not yet seen applied.
type Parent struct {
	Hash, Root common.Hash
	Number     uint64
	TimeMs     uint64
	// History includes the parent itself.
	History *chain.History
}

// Built is a sealed block with what building it produced.
type Built struct {
	Block *chain.Block
	// Writes are the block's state writes, over the base it was built on.
	Writes *Overlay
	// Included[i] is the index in the candidate list of the block's tx i.
	Included []int
	// Dropped lists candidates that could not be included, with the reason
	// (a nonce that is not the account's next, or ErrBlockFull).
	Dropped []Dropped
	// History includes the new block.
	History *chain.History
	// Result is the block's execution on the base it was built on
	// (Writes, receipts, reasons, gas, bloom, and the values read before
	// writing them): what Transition computes when the block is applied
	// on that state, so the proposer's node applies it without executing
	// it again (TransitionReusing).
	Result *Result
}

// ErrBlockFull is why Build leaves out a candidate that would take the
// block past chain.MaxBlockSize or its gas past chain.BlockGasLimit; it
// waits for a later block.
var ErrBlockFull = errors.New("block full")

// Dropped is a candidate transaction left out of a block.
type Dropped struct {
	Index int
	Err   error
}

// AsParent returns the built block as the parent of the next one.
func (b *Built) AsParent() Parent {
	timeMs, _ := chain.TimeMs(b.Block.Header)
	return Parent{Hash: b.Block.Hash(), Root: b.Block.Header.Root, Number: b.Block.Number(), TimeMs: timeMs, History: b.History}
}

// Build executes candidate transactions on base in order, leaves out those
// that cannot be included, and returns the block sealed by key, carrying
// certs (checked by the caller: CheckCertificate). The block time is
// max(nowMs, parent + 1 ms), so it never goes back. The block keeps the
// limits CheckBlock enforces by construction: a candidate that would take
// the encoded block past chain.MaxBlockSize (chain.TxBudget, computed with
// the widest header and the certificates) or its gas past
// chain.BlockGasLimit is left out with ErrBlockFull.
func Build(base Reader, par Parent, txs []*types.Transaction, senders []common.Address, certs []*chain.Certificate, nowMs uint64, key *crypto.PrivateKey, chainID uint64) (*Built, error) {
	rules, err := LoadRules(base)
	if err != nil {
		return nil, fmt.Errorf("build block %d: %w", par.Number+1, err)
	}
	blk := BlockContext{Number: par.Number + 1, TimeMs: max(nowMs, par.TimeMs+1)}
	res := &Result{Writes: NewOverlay(base), Receipts: make([]*types.Receipt, 0, len(txs))}
	res.Writes.cacheReads(true)
	defer res.Writes.cacheReads(false)
	out := &Built{Writes: res.Writes, Included: make([]int, 0, len(txs))}
	included := make([]*types.Transaction, 0, len(txs))
	budget, used := chain.TxBudget(chain.MaxBlockSize, certs), 0
	for i, tx := range txs {
		size := chain.TxEncodedSize(tx)
		if used+size > budget || res.GasUsed+chain.MaxTxGas > chain.BlockGasLimit {
			out.Dropped = append(out.Dropped, Dropped{Index: i, Err: ErrBlockFull})
			continue
		}
		o, err := ExecuteTx(res.Writes, rules, blk, tx, senders[i], res.GasUsed)
		if errors.Is(err, ErrStorage) {
			// No verdict on the transaction: the node's disk failed a read.
			return nil, fmt.Errorf("build block %d: tx %d: %w", blk.Number, i, err)
		}
		if err != nil {
			out.Dropped = append(out.Dropped, Dropped{Index: i, Err: err})
			continue
		}
		used += size
		res.Add(o.Receipt)
		res.addReason(len(included), o)
		included = append(included, tx)
		out.Included = append(out.Included, i)
	}
	if err := EndBlock(res.Writes, rules, blk); err != nil {
		return nil, fmt.Errorf("build block %d: end of block: %w", blk.Number, err)
	}
	if err := checkConserved(res.Writes, blk.Number); err != nil {
		return nil, fmt.Errorf("build block %d: %w", blk.Number, err)
	}
	res.priors = res.Writes.reads
	out.Result = res
	h := chain.NewHeader(par.Hash, blk.Number, blk.TimeMs, key.Address())
	h.MixDigest = par.History.Root()
	if err := FinishHeader(h, par.Root, included, res); err != nil {
		return nil, fmt.Errorf("build block %d: %w", par.Number+1, err)
	}
	if err := chain.SetCertRoot(h, chain.CertRoot(certs)); err != nil {
		return nil, fmt.Errorf("build block %d: %w", par.Number+1, err)
	}
	if err := chain.Seal(h, chainID, key); err != nil {
		return nil, fmt.Errorf("build block %d: %w", par.Number+1, err)
	}
	out.Block = chain.NewBlock(h, included)
	out.Block.Certs = certs
	out.History = par.History.Clone()
	out.History.Append(out.Block.Hash())
	return out, nil
}
