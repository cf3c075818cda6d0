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
	// Reused says the block was not executed again: ApplyBuilt took the
	// execution its proposer (this node) computed when building it.
	Reused bool
}

// Executed is a block's execution computed before the block is applied:
// what this node's builder computed building the block with hash Hash on
// the state of the block ParentHash, whose state root is ParentRoot
// (state.Built.Result).
type Executed struct {
	Hash       common.Hash
	ParentHash common.Hash
	ParentRoot common.Hash
	Result     *state.Result
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
	return d.ApplyBuilt(b, raftIndex, senders, nil)
}

// ApplyBuilt is ApplyBlock for a block this node built: ex (nil: none) is
// its execution at build time. It is used instead of executing the block
// again only when it is the execution of exactly b (its hash) on exactly
// the head (the head's hash and state root are ex's parent), and only once
// b passed every check of ApplyBlock and ex reproduced every commitment of
// b's header (state.TransitionReusing); otherwise b is executed as on any
// other node. Applied.Reused tells which happened.
func (d *DB) ApplyBuilt(b *chain.Block, raftIndex uint64, senders *chain.SenderCache, ex *Executed) (*Applied, error) {
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
	var executed *state.Result
	if ex != nil && ex.Result != nil && ex.Hash == b.Hash() && ex.ParentHash == head.Hash && ex.ParentRoot == head.StateRoot {
		executed = ex.Result
	}
	p := state.Prepare(b, d.chainID, senders.Senders)
	res, violations, reused, err := state.TransitionReusing(p, tip.Parent(), d.View(head.Number), d, d.chainID, executed)
	if err != nil {
		return nil, fmt.Errorf("block %d (%s) at raft index %d: %w", b.Number(), b.Hash(), raftIndex, err)
	}
	if len(violations) > 0 {
		if err := d.RecordSkipped(raftIndex); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("block %d (%s) at raft index %d: %w: %w", b.Number(), b.Hash(), raftIndex, ErrBlockRejected, &violations[0])
	}
	if executed != nil && !reused {
		// A defect in whoever kept ex, never a fault of the block: the
		// block was executed again, as every other node does.
		d.log.Error("the execution kept from building this block does not reproduce its header; executed it again", "number", b.Number(), "hash", b.Hash(), "raft_index", raftIndex)
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
	return &Applied{Block: b, Senders: froms, Receipts: res.Receipts, Reused: reused}, nil
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
	if err := d.guard(func() error { return batch.Commit(d.writeOpts()) }); err != nil {
		return fmt.Errorf("record skipped raft index %d: %w", raftIndex, err)
	}
	d.tip.Store(&Tip{Head: skipped, History: tip.History})
	return nil
}
