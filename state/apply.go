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

func rejectf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBlockRejected, fmt.Sprintf(format, args...))
}

// VerifyHeader checks everything about b's header that does not need
// execution against the head it must extend: link, height, time, the fixed
// fields, the proposer and its seal, the tx root and the history root.
func (d *DB) VerifyHeader(b *chain.Block, head Head, history *chain.History) error {
	h := b.Header
	switch {
	case h.Number.Uint64() != head.Number+1 || !h.Number.IsUint64():
		return rejectf("height %v does not follow head %d", h.Number, head.Number)
	case h.ParentHash != head.Hash:
		return rejectf("parent %s is not head %s", h.ParentHash, head.Hash)
	case h.UncleHash != types.EmptyUncleHash, h.Difficulty.Sign() != 0, h.Nonce != (types.BlockNonce{}),
		h.BaseFee == nil || h.BaseFee.Sign() != 0, h.GasLimit != chain.BlockGasLimit,
		h.WithdrawalsHash != nil, h.BlobGasUsed != nil, h.ExcessBlobGas != nil,
		h.ParentBeaconRoot != nil, h.RequestsHash != nil, h.BlockAccessListHash != nil, h.SlotNumber != nil:
		return rejectf("header fields outside Tally's fixed London shape")
	}
	timeMs, err := chain.TimeMs(h)
	if err != nil {
		return rejectf("%v", err)
	}
	if timeMs <= head.TimeMs {
		return rejectf("time %d ms not after parent %d ms", timeMs, head.TimeMs)
	}
	if h.Time != timeMs/1000 {
		return rejectf("time %d s does not match %d ms", h.Time, timeMs)
	}
	if !d.IsValidator(h.Coinbase) {
		return rejectf("proposer %s is not a validator", h.Coinbase)
	}
	if err := chain.VerifySeal(h, d.chainID); err != nil {
		return rejectf("%v", err)
	}
	if root := chain.TxRoot(b.Txs); root != h.TxHash {
		return rejectf("tx root %s, header says %s", root, h.TxHash)
	}
	if root := history.Root(); root != h.MixDigest {
		return rejectf("history root %s, header says %s", root, h.MixDigest)
	}
	if root, _ := chain.HeaderCertRoot(h); root != chain.CertRoot(b.Certs) { // Extra's length checked by VerifySeal
		return rejectf("certificate root %s, header says %s", chain.CertRoot(b.Certs), root)
	}
	return nil
}

// ApplyBlock verifies b against the head, executes it and commits it with
// raftIndex in one synced batch. A block failing a check returns an error
// wrapping ErrBlockRejected after recording raftIndex alone; an index
// already recorded returns ErrAlreadyApplied and changes nothing. Any other
// error means the database can no longer be trusted: halt.
func (d *DB) ApplyBlock(b *chain.Block, raftIndex uint64, senders *chain.SenderCache) (*Applied, error) {
	tip := d.tip.Load()
	if tip == nil {
		return nil, ErrNoGenesis
	}
	head := tip.Head
	if raftIndex <= head.RaftIndex {
		return nil, ErrAlreadyApplied
	}
	froms, rejectErr := d.check(b, tip, senders)
	if rejectErr == nil {
		rejectErr = d.verifyCerts(b, head)
	} else if err := d.checkSkippedCerts(b, head); err != nil {
		rejectErr = err
	}
	if errors.Is(rejectErr, ErrDiverged) || errors.Is(rejectErr, ErrBehind) {
		return nil, fmt.Errorf("block %d (%s) at raft index %d: %w", b.Number(), b.Hash(), raftIndex, rejectErr)
	}
	var res *Result
	if rejectErr == nil {
		var err error
		timeMs, _ := chain.TimeMs(b.Header) // checked by VerifyHeader
		res, err = Execute(d, BlockContext{Number: b.Number(), TimeMs: timeMs}, b.Txs, froms)
		switch {
		case errors.Is(err, ErrConservation):
			return nil, fmt.Errorf("block %d (%s) at raft index %d: %w", b.Number(), b.Hash(), raftIndex, err) // halt: the execution is wrong
		case err != nil:
			rejectErr = rejectf("execute: %v", err)
		default:
			rejectErr = compareResult(b.Header, head, res)
		}
	}
	if rejectErr != nil {
		if err := d.RecordSkipped(raftIndex); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("block %d (%s) at raft index %d: %w", b.Number(), b.Hash(), raftIndex, rejectErr)
	}
	batch := d.pdb.NewBatch()
	defer batch.Close()
	if err := d.writeState(batch, res.Writes); err != nil {
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

// check verifies the header and recovers the senders.
func (d *DB) check(b *chain.Block, tip *Tip, senders *chain.SenderCache) ([]common.Address, error) {
	if err := d.VerifyHeader(b, tip.Head, tip.History); err != nil {
		return nil, err
	}
	if senders.Signer().ChainID().Cmp(new(big.Int).SetUint64(d.chainID)) != 0 {
		return nil, fmt.Errorf("sender cache for chain %v, db chain %d", senders.Signer().ChainID(), d.chainID)
	}
	froms, errs := senders.Senders(b.Txs)
	for i, err := range errs {
		if err != nil {
			return nil, rejectf("tx %d: %v", i, err)
		}
	}
	return froms, nil
}

// compareResult checks that execution reproduced the header's commitments.
func compareResult(h *types.Header, head Head, res *Result) error {
	if root := res.Writes.Root(head.StateRoot); root != h.Root {
		return rejectf("state root %s, header says %s", root, h.Root)
	}
	rroot, err := chain.ReceiptRoot(res.Receipts)
	if err != nil {
		return rejectf("%v", err)
	}
	if rroot != h.ReceiptHash {
		return rejectf("receipt root %s, header says %s", rroot, h.ReceiptHash)
	}
	if res.GasUsed != h.GasUsed {
		return rejectf("gas used %d, header says %d", res.GasUsed, h.GasUsed)
	}
	if res.Bloom != h.Bloom {
		return rejectf("logs bloom differs from header")
	}
	return nil
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
