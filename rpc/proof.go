package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/tally-ledger/tally/store"
)

// GetProof returns the proof that an applied transaction is in the chain
// (chain.TxProof in its canonical JSON form, docs/proofs.md), which anyone
// holding the genesis file checks offline with `tally verify-proof`. An
// unknown transaction is an error; so is one whose block no applied block
// certifies yet (code CodeUnavailable: retry in a moment, certificates
// travel in the next blocks). Building a proof reads blocks and the
// history, so it is a heavy read (heavyGate).
func (api *LedgerAPI) GetProof(ctx context.Context, txHash common.Hash) (json.RawMessage, error) {
	done, err := api.heavy.enter(ctx, "tally_getProof")
	if err != nil {
		return nil, err
	}
	defer done()
	p, err := api.b.State().TxProof(txHash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, &Error{Code: CodeServerError, Msg: fmt.Sprintf("transaction %s not found (not applied, or unknown)", txHash)}
	case errors.Is(err, store.ErrNotCertified):
		return nil, &Error{Code: CodeUnavailable, Msg: err.Error()}
	case err != nil:
		return nil, err
	}
	enc, err := p.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode proof of %s: %w", txHash, err)
	}
	return enc, nil
}
