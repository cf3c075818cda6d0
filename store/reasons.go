package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
)

// Failure reasons (state.Result.Reasons) are part of the receipt record: written
// in the block's own batch, under prefixReason outside the state prefix
// (no root or hash changes), and never pruned. A block applied before
// reasons were kept has none; its reasons are recomputed by re-executing
// it on its parent's state while the node still keeps that state
// (StateAt, state.history-blocks).

// ErrReasonUnavailable is returned by TxReason for a transaction that
// failed in a block applied before reasons were kept, whose parent state
// this node no longer keeps to re-execute it.
var ErrReasonUnavailable = errors.New("failure reason not kept")

// reasonKey is the record of the reason of tx index of block n.
func reasonKey(n uint64, index uint32) []byte {
	return binary.BigEndian.AppendUint32(numKey(prefixReason, n), index)
}

// writeReasons adds block n's failure reasons to batch.
func writeReasons(batch *pebble.Batch, n uint64, reasons []state.TxReason) error {
	for _, r := range reasons {
		if err := batch.Set(reasonKey(n, r.Index), []byte(r.Reason), nil); err != nil {
			return fmt.Errorf("batch reason of block %d tx %d: %w", n, r.Index, err)
		}
	}
	return nil
}

// blockReasons returns the failure reasons kept with the receipts of
// block n, in index order.
func (d *DB) blockReasons(n uint64) ([]state.TxReason, error) {
	prefix := numKey(prefixReason, n)
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
	if err != nil {
		return nil, err
	}
	var out []state.TxReason
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+4 {
			it.Close()
			return nil, fmt.Errorf("failure reason record %x of block %d is malformed", k, n)
		}
		out = append(out, state.TxReason{Index: binary.BigEndian.Uint32(k[len(prefix):]), Reason: string(it.Value())})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("failure reasons of block %d: %w", n, err)
	}
	return out, nil
}

// KeptReason returns the failure reason kept with the receipt of tx index
// of applied block n; ok is false when none is kept (the transaction
// succeeded, or its block was applied before reasons were kept).
func (d *DB) KeptReason(n uint64, index uint32) (reason string, ok bool, err error) {
	if !d.applied(n) {
		return "", false, nil
	}
	v, err := d.get(reasonKey(n, index))
	if err != nil || v == nil {
		return "", false, err
	}
	return string(v), true, nil
}

// TxReason returns the failure reason of the applied transaction h: ""
// if it succeeded, the reason kept with its receipt if it failed, or, for
// a failure in a block applied before reasons were kept, the reason
// re-executing the block on its parent's state gives (senders recovers
// the senders). A transaction that is not applied wraps ErrNotFound; an
// old failure whose parent state is no longer kept wraps
// ErrReasonUnavailable.
func (d *DB) TxReason(h common.Hash, senders *chain.SenderCache) (string, error) {
	n, idx, err := d.TxLocation(h)
	if err != nil {
		return "", err
	}
	b, err := d.BlockByNumber(n)
	if err != nil {
		return "", err
	}
	rs, err := d.Receipts(b)
	if err != nil {
		return "", err
	}
	if int(idx) >= len(rs) || int(idx) >= len(b.Txs) {
		return "", fmt.Errorf("tx %s: index %d of block %d with %d receipts", h, idx, n, len(rs))
	}
	if rs[idx].Status == state.StatusSuccess {
		return "", nil
	}
	reason, ok, err := d.KeptReason(n, idx)
	if err != nil || ok {
		return reason, err
	}
	parent, err := d.StateAt(n - 1) // n > 0: block 0 has no transactions
	var unavailable *StateUnavailableError
	if errors.As(err, &unavailable) {
		return "", fmt.Errorf("tx %s: %w: block %d was applied before reasons were kept, and its parent's state is older than the %d blocks this node keeps", h, ErrReasonUnavailable, n, unavailable.Window)
	}
	if err != nil {
		return "", err
	}
	froms, errs := senders.Senders(b.Txs[:idx+1])
	for i, err := range errs {
		if err != nil {
			return "", fmt.Errorf("sender of block %d tx %d: %w", n, i, err)
		}
	}
	timeMs, err := chain.TimeMs(b.Header)
	if err != nil {
		return "", err
	}
	reason, err = state.ReasonAt(parent, state.BlockContext{Number: n, TimeMs: timeMs}, b.Txs, froms, int(idx))
	if err != nil {
		return "", fmt.Errorf("tx %s: %w", h, err)
	}
	if reason == "" {
		return "", fmt.Errorf("tx %s: stored with status 0, but re-executing block %d makes it succeed", h, n)
	}
	return reason, nil
}
