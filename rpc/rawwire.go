package rpc

import (
	"math"

	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// Stored converts a tally_getRawBlocks entry back into the stored form
// (null encodings: missing), for the readers of the wire format (the
// auditor, the monitor).
func (w RawBlock) Stored() store.RawBlock {
	r := store.RawBlock{Number: uint64(w.Number)}
	if w.Block != nil {
		r.Block = append([]byte{}, *w.Block...)
	}
	if w.Receipts != nil {
		r.Receipts = append([]byte{}, *w.Receipts...)
	}
	for _, x := range w.Reasons {
		// An index past uint32 is past every block's transactions: the
		// auditor's reason check reports it as such.
		r.Reasons = append(r.Reasons, state.TxReason{Index: uint32(min(uint64(x.Index), math.MaxUint32)), Reason: x.Reason})
	}
	return r
}
