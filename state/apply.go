package state

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
)

// Applied describes a block ApplyBlock committed.
type Applied struct {
	Block    *chain.Block
	Senders  []common.Address
	Receipts []*types.Receipt
}

// ApplyBlock verifies b against the head (CheckBlock), executes it, checks
// the result (CheckExecution) and commits it with raftIndex in one synced
// batch. A block breaking a rule returns an error wrapping ErrBlockRejected
// and the first *Violation after recording raftIndex alone; an index
// already recorded returns ErrAlreadyApplied and changes nothing. A
// certificate showing this node diverged returns an error wrapping
// ErrDiverged or ErrBehind. Any other error means the database can no
// longer be trusted: halt.
func (d *DB) ApplyBlock(b *chain.Block, raftIndex uint64, senders *chain.SenderCache) (*Applied, error) {
	tip := d.tip.Load()
	if tip == nil {
		return nil, ErrNoGenesis
	}
	head := tip.Head
	if raftIndex <= head.RaftIndex {
		return nil, ErrAlreadyApplied
	}
	if senders.Signer().ChainID().Cmp(new(big.Int).SetUint64(d.chainID)) != 0 {
		return nil, fmt.Errorf("sender cache for chain %v, db chain %d", senders.Signer().ChainID(), d.chainID)
	}
	p := Prepare(b, d.chainID, senders.Senders)
	violations := CheckBlock(p, tip.Parent(), d.View(head.Number), d.chainID)
	for _, v := range violations {
		if v.Halting() {
			return nil, fmt.Errorf("block %d (%s) at raft index %d: %w", b.Number(), b.Hash(), raftIndex, v.Err)
		}
	}
	var res *Result
	if len(violations) == 0 {
		timeMs, _ := chain.TimeMs(b.Header) // checked by CheckBlock
		var err error
		res, err = Execute(d, BlockContext{Number: b.Number(), TimeMs: timeMs}, b.Txs, p.Senders)
		var txErr *TxError
		switch {
		case errors.Is(err, ErrConservation):
			return nil, fmt.Errorf("block %d (%s) at raft index %d: %w", b.Number(), b.Hash(), raftIndex, err) // halt: the execution is wrong
		case errors.As(err, &txErr):
			violations = append(violations, violation(RuleIncludable, txErr.Index, "an includable transaction", "excluded", txErr))
		case err != nil: // as the audit's replay, which stops there
			violations = append(violations, violation(RuleIncludable, -1, "", "", fmt.Errorf("execute: %w", err)))
		default:
			violations = CheckExecution(b.Header, head.StateRoot, res)
		}
	}
	if len(violations) > 0 {
		if err := d.RecordSkipped(raftIndex); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("block %d (%s) at raft index %d: %w: %w", b.Number(), b.Hash(), raftIndex, ErrBlockRejected, &violations[0])
	}
	froms := p.Senders
	batch := d.pdb.NewBatch()
	defer batch.Close()
	if err := d.writeState(batch, res.Writes); err != nil {
		return nil, err
	}
	if err := d.writePast(batch, b.Number(), res.Writes, res.priors); err != nil {
		return nil, err
	}
	if err := d.commit(batch, b, froms, res.Receipts, raftIndex); err != nil {
		return nil, err
	}
	if res.Writes.touches(prefixValidator) {
		if err := d.loadValidators(); err != nil {
			return nil, err
		}
	}
	return &Applied{Block: b, Senders: froms, Receipts: res.Receipts}, nil
}

// touches reports whether any write is under prefix.
func (o *Overlay) touches(prefix []byte) bool {
	for k := range o.writes {
		if bytes.HasPrefix([]byte(k), prefix) {
			return true
		}
	}
	return false
}

// FinishHeader fills in the header fields that execution decides (state
// root, receipt root, gas used, bloom) and the tx root; the builder calls it
// before sealing.
func FinishHeader(h *types.Header, parentRoot common.Hash, txs []*types.Transaction, res *Result) error {
	rroot, err := chain.ReceiptRoot(res.Receipts)
	if err != nil {
		return err
	}
	h.TxHash = chain.TxRoot(txs)
	h.ReceiptHash = rroot
	h.Root = res.Writes.Root(parentRoot)
	h.GasUsed = res.GasUsed
	h.Bloom = res.Bloom
	return nil
}

// RecordSkipped records raftIndex as applied without a block: the entry was
// rejected or was not a block. Indexes at or below the recorded one return
// ErrAlreadyApplied.
func (d *DB) RecordSkipped(raftIndex uint64) error {
	tip := d.tip.Load()
	if tip == nil {
		return ErrNoGenesis
	}
	if raftIndex <= tip.Head.RaftIndex {
		return ErrAlreadyApplied
	}
	skipped := tip.Head
	skipped.RaftIndex = raftIndex
	batch := d.pdb.NewBatch()
	defer batch.Close()
	if err := d.setHead(batch, &skipped); err != nil {
		return err
	}
	if err := batch.Commit(d.writeOpts()); err != nil {
		return fmt.Errorf("record skipped raft index %d: %w", raftIndex, err)
	}
	d.tip.Store(&Tip{Head: skipped, History: tip.History})
	return nil
}
