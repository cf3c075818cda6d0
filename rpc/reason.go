package rpc

import (
	"context"
	"errors"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/store"
)

// receiptReasonField is the field of a status-0 receipt (eth_getTransactionReceipt,
// eth_getBlockReceipts) that carries the failure reason kept with it.
// Client libraries ignore fields they do not know: ethers builds its
// receipt from the fields it names, viem and go-ethereum's ethclient keep
// or drop extra ones, web3j's mapper does not fail on unknown properties.
const receiptReasonField = "tallyReason"

// GetTransactionReason serves tally_getTransactionReason: why an applied
// transaction failed at execution (receipt status 0), in the words
// execution decided, identical on every node (state.FailureReason: at
// most state.MaxReasonBytes). null for a transaction that succeeded, that
// is pending or unknown, or that failed in a block applied before the
// node kept reasons and is older than the state it keeps
// (state.history-blocks); within that window such a reason is recomputed
// by re-executing its block on the parent state, a heavy read.
func (api *LedgerAPI) GetTransactionReason(ctx context.Context, h common.Hash) (*string, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	db := api.b.State()
	n, idx, err := db.TxLocation(h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	reason, kept, err := db.KeptReason(n, idx)
	if err != nil || kept {
		return &reason, err
	}
	// A success, or a failure of a block applied before reasons were
	// kept: TxReason tells them apart and re-executes the latter.
	done, err := api.heavy.enter(ctx, "tally_getTransactionReason")
	if err != nil {
		return nil, err
	}
	defer done()
	reason, err = db.TxReason(h, api.b.Senders())
	switch {
	case errors.Is(err, store.ErrReasonUnavailable), errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case reason == "":
		return nil, nil
	}
	return &reason, nil
}

// withReason adds to the JSON receipt m of r the failure reason kept
// with it, if r failed and its block kept one (receiptReasonField).
func withReason(m map[string]any, db *store.DB, r *types.Receipt) (map[string]any, error) {
	if r.Status != types.ReceiptStatusFailed || r.BlockNumber == nil {
		return m, nil
	}
	reason, ok, err := db.KeptReason(r.BlockNumber.Uint64(), uint32(r.TransactionIndex))
	if err != nil {
		return nil, err
	}
	if ok {
		m[receiptReasonField] = reason
	}
	return m, nil
}
