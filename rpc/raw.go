package rpc

import (
	"context"
	"errors"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/tally-ledger/tally/store"
)

// MaxRawBlocks bounds the blocks of one tally_getRawBlocks response; it
// also stops adding blocks at the response bound (Limits.MaxResponseBytes).
// The auditor fetches in batches.
const MaxRawBlocks = 256

// RawBlock is one stored block in its storage encodings, for the auditor
// (audit.DialRPC): the block's RLP (chain.Block.Encode) and its receipts
// (chain.EncodeReceipts). Block and Receipts are null when the node has no
// block at Number although its head is above it. Reasons are the failure
// reasons kept with the receipts, in index order (omitted when none are
// kept): the auditor checks each against its replay.
type RawBlock struct {
	Number   hexutil.Uint64 `json:"number"`
	Block    *hexutil.Bytes `json:"block"`
	Receipts *hexutil.Bytes `json:"receipts"`
	Reasons  []RawReason    `json:"reasons,omitempty"`
}

// RawReason is the failure reason kept with the receipt of tx Index.
type RawReason struct {
	Index  hexutil.Uint64 `json:"index"`
	Reason string         `json:"reason"`
}

// StateDigest commits to the whole state at Height (store.StateDigest):
// Keys state keys, Digest = keccak256 over every key and value in key order.
type StateDigest struct {
	Height    hexutil.Uint64 `json:"height"`
	StateRoot common.Hash    `json:"stateRoot"`
	Keys      hexutil.Uint64 `json:"keys"`
	Digest    common.Hash    `json:"digest"`
}

// GetRawBlocks returns the stored encodings of up to count blocks from
// from (at most MaxRawBlocks, and fewer once the reply would pass the
// response bound), never past the head; an empty list when from is above
// it. The first block is always returned whole, however large, so every
// block can be audited. It is a heavy read (heavyGate). The auditor
// re-derives and checks everything itself, so it is given exactly what
// the node stored.
func (api *LedgerAPI) GetRawBlocks(ctx context.Context, from, count hexutil.Uint64) ([]RawBlock, error) {
	if count == 0 || count > MaxRawBlocks {
		return nil, invalidParams("count must be 1..%d", MaxRawBlocks)
	}
	done, err := api.heavy.enter(ctx, "tally_getRawBlocks")
	if err != nil {
		return nil, err
	}
	defer done()
	// The reply is hex: two bytes per stored byte, plus rawBlockJSON a block.
	budget := api.heavy.budget(ctx)
	raws, err := api.b.State().RawBlocks(uint64(from), int(count), max(budget/2, 1))
	if err != nil {
		return nil, err
	}
	replySize := func(r store.RawBlock) int {
		n := rawBlockJSON + 2*(len(r.Block)+len(r.Receipts))
		for _, x := range r.Reasons {
			n += rawReasonJSON + 6*len(x.Reason) // a byte escaped as \u00XX at worst
		}
		return n
	}
	size := 2
	for _, r := range raws {
		size += replySize(r)
	}
	// RawBlocks stops once its bytes reach the budget, so the last blocks
	// may pass it; they are left for the next call.
	for len(raws) > 1 && size > budget {
		size -= replySize(raws[len(raws)-1])
		raws = raws[:len(raws)-1]
	}
	if err := api.heavy.charge(ctx, "tally_getRawBlocks", size); err != nil {
		return nil, err
	}
	out := make([]RawBlock, len(raws))
	for i, r := range raws {
		out[i] = RawBlock{Number: hexutil.Uint64(r.Number), Block: orNull(r.Block), Receipts: orNull(r.Receipts)}
		for _, x := range r.Reasons {
			out[i].Reasons = append(out[i].Reasons, RawReason{Index: hexutil.Uint64(x.Index), Reason: x.Reason})
		}
	}
	return out, nil
}

// rawBlockJSON bounds a RawBlock's JSON without its hex: the field names,
// quotes, 0x prefixes and the number.
const rawBlockJSON = 80

// rawReasonJSON bounds a RawReason's JSON without its text, and the
// "reasons" field's share of a block.
const rawReasonJSON = 48

// digests lets concurrent tally_stateDigest calls share one computation
// per head height, one at a time: a digest reads the whole state.
var digests struct {
	sync.Mutex
	db   *store.DB
	last store.StateDigest
}

// StateDigest returns the digest of the head state, read from one
// consistent snapshot. The auditor asks for it first and audits up to its
// height while the node keeps producing blocks. It reads the whole
// state, so it is a heavy read (heavyGate): a client calling it at every
// new head takes its share of the slots, not a core of its own.
func (api *LedgerAPI) StateDigest(ctx context.Context) (*StateDigest, error) {
	done, err := api.heavy.enter(ctx, "tally_stateDigest")
	if err != nil {
		return nil, err
	}
	defer done()
	db := api.b.State()
	digests.Lock()
	defer digests.Unlock()
	h, ok := db.Head()
	if !ok {
		return nil, errors.New("no genesis")
	}
	d := digests.last
	if digests.db != db || d.Height != h.Number || d.StateRoot != h.StateRoot || d.Digest == (common.Hash{}) {
		var err error
		if d, err = db.StateDigest(); err != nil {
			return nil, err
		}
		digests.db, digests.last = db, d
	}
	return &StateDigest{Height: hexutil.Uint64(d.Height), StateRoot: d.StateRoot, Keys: hexutil.Uint64(d.Keys), Digest: d.Digest}, nil
}

// orNull is nil (JSON null) for a missing value.
func orNull(b []byte) *hexutil.Bytes {
	if b == nil {
		return nil
	}
	h := hexutil.Bytes(b)
	return &h
}
