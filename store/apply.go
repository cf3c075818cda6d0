package store

import (
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
)

// Applied describes a block ApplyBlock committed.
type Applied struct {
	Block    *chain.Block
	Senders  []common.Address
	Receipts []*types.Receipt
}

// ApplyBlock runs the state transition of b on the head (state.Transition:
// CheckBlock, execute, CheckExecution) and commits it with raftIndex in one synced
// batch. A block breaking a rule returns an error wrapping ErrBlockRejected
// and the first *Violation after recording raftIndex alone; an index
// already recorded returns ErrAlreadyApplied and changes nothing. A
// certificate showing this node diverged returns an error wrapping
// ErrDiverged or ErrBehind. Any other error means the database can no
// longer be trusted: halt.
func (d *DB) ApplyBlock(b *chain.Block, raftIndex uint64, senders *chain.SenderCache) (*Applied, error) {
	tip := d.tip.Load()
	if tip == nil {
		return nil, state.ErrNoGenesis
	}
	head := tip.Head
	if raftIndex <= head.RaftIndex {
		return nil, ErrAlreadyApplied
	}
	if senders.Signer().ChainID().Cmp(new(big.Int).SetUint64(d.chainID)) != 0 {
		return nil, fmt.Errorf("sender cache for chain %v, db chain %d", senders.Signer().ChainID(), d.chainID)
	}
	p := state.Prepare(b, d.chainID, senders.Senders)
	res, violations, err := state.Transition(p, tip.Parent(), d.View(head.Number), d, d.chainID)
	if err != nil {
		return nil, fmt.Errorf("block %d (%s) at raft index %d: %w", b.Number(), b.Hash(), raftIndex, err)
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
	if err := d.writePast(batch, b.Number(), res); err != nil {
		return nil, err
	}
	if err := writeReasons(batch, b.Number(), res.Reasons); err != nil {
		return nil, err
	}
	if err := d.commit(batch, b, froms, res.Receipts, raftIndex); err != nil {
		return nil, err
	}
	if res.Writes.ValidatorsChanged() {
		if err := d.loadValidators(); err != nil {
			return nil, err
		}
	}
	return &Applied{Block: b, Senders: froms, Receipts: res.Receipts}, nil
}

// RecordSkipped records raftIndex as applied without a block: the entry was
// rejected or was not a block. Indexes at or below the recorded one return
// ErrAlreadyApplied.
func (d *DB) RecordSkipped(raftIndex uint64) error {
	tip := d.tip.Load()
	if tip == nil {
		return state.ErrNoGenesis
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
