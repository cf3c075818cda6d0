package state

import (
	"errors"
	"fmt"
	"math"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
)

// Errors that make a transaction impossible to include. A block containing
// such a transaction is rejected; the builder and the mempool never put one in.
var (
	ErrNonceTooLow  = errors.New("nonce too low")
	ErrNonceTooHigh = errors.New("nonce too high")
	ErrNonceMax     = errors.New("nonce has max value")
)

// Receipt statuses.
const (
	StatusFailed  = types.ReceiptStatusFailed
	StatusSuccess = types.ReceiptStatusSuccessful
)

// Failure reasons of an included transaction with status 0. They are not
// errors of the block; they are what eth_call and the CLI report.
var (
	ErrInsufficientBalance = errors.New("insufficient balance for transfer")
	ErrDataNotAllowed      = errors.New("calldata is only accepted by system addresses")
)

// Outcome is what executing one transaction produced.
type Outcome struct {
	Receipt *types.Receipt
	// Reason says why a status-0 transaction failed; nil on success.
	Reason error
}

// ExecuteTx applies one transaction sent by from to o. cumGas is the block's
// gas used before it. An error means the transaction cannot be included at
// all (its nonce is not the account's next); o is then unchanged. A
// transaction that fails at execution consumes its nonce and gets a receipt
// with status 0 and a Reason.
func ExecuteTx(o *Overlay, tx *types.Transaction, from common.Address, cumGas uint64) (Outcome, error) {
	nonce, err := o.Nonce(from)
	if err != nil {
		return Outcome{}, err
	}
	switch {
	case tx.Nonce() < nonce:
		return Outcome{}, fmt.Errorf("%w: tx %d, account %d", ErrNonceTooLow, tx.Nonce(), nonce)
	case tx.Nonce() > nonce:
		return Outcome{}, fmt.Errorf("%w: tx %d, account %d", ErrNonceTooHigh, tx.Nonce(), nonce)
	case nonce == math.MaxUint64:
		return Outcome{}, ErrNonceMax
	}
	o.SetNonce(from, nonce+1)

	gas := uint64(chain.GasPerTransfer)
	reason, err := transfer(o, tx, from)
	if err != nil {
		return Outcome{}, err
	}
	status := StatusSuccess
	if reason != nil {
		status = StatusFailed
	}
	return Outcome{Receipt: chain.NewReceipt(tx, status, gas, cumGas+gas, nil), Reason: reason}, nil
}

// transfer moves the native value of tx. It returns the failure reason for a
// status-0 receipt, or an error when the state cannot be read.
func transfer(o *Overlay, tx *types.Transaction, from common.Address) (reason error, err error) {
	if len(tx.Data()) != 0 {
		return ErrDataNotAllowed, nil
	}
	to := *tx.To()
	value := tx.Value()
	if value.Sign() == 0 {
		return nil, nil
	}
	fromBal, err := o.Balance(NativeAsset, from)
	if err != nil {
		return nil, err
	}
	if fromBal.Cmp(value) < 0 {
		return ErrInsufficientBalance, nil
	}
	if from == to {
		return nil, nil
	}
	toBal, err := o.Balance(NativeAsset, to)
	if err != nil {
		return nil, err
	}
	o.SetBalance(NativeAsset, from, fromBal.Sub(fromBal, value))
	o.SetBalance(NativeAsset, to, toBal.Add(toBal, value))
	return nil, nil
}

// Result is the outcome of executing a block's transactions.
type Result struct {
	Writes   *Overlay
	Receipts []*types.Receipt
	GasUsed  uint64
	Bloom    types.Bloom
}

// Execute runs txs (with their senders) on a new overlay over base. Any
// transaction that cannot be included makes the whole execution fail.
func Execute(base Reader, txs []*types.Transaction, senders []common.Address) (*Result, error) {
	res := &Result{Writes: NewOverlay(base), Receipts: make([]*types.Receipt, 0, len(txs))}
	for i, tx := range txs {
		out, err := ExecuteTx(res.Writes, tx, senders[i], res.GasUsed)
		if err != nil {
			return nil, fmt.Errorf("tx %d (%s): %w", i, tx.Hash(), err)
		}
		res.Add(out.Receipt)
	}
	return res, nil
}

// Add appends a receipt and accumulates gas and bloom.
func (res *Result) Add(r *types.Receipt) {
	res.Receipts = append(res.Receipts, r)
	res.GasUsed = r.CumulativeGasUsed
	if len(r.Logs) > 0 {
		for i := range res.Bloom {
			res.Bloom[i] |= r.Bloom[i]
		}
	}
}
