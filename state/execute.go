package state

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"

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
	ErrDataNotAllowed = errors.New("calldata is only accepted by system addresses")
)

// Outcome is what executing one transaction produced.
type Outcome struct {
	Receipt *types.Receipt
	// Reason says why a status-0 transaction failed; nil on success.
	Reason error
	// Output is a successful system call's ABI-encoded return value.
	Output []byte
}

// ExecuteTx applies one transaction sent by from to o under rules, in the
// block blk. cumGas is the block's gas used before it. An error means the
// transaction cannot be included at all (its nonce is not the account's
// next); o is then unchanged. A transaction that fails at execution
// consumes its nonce and gets a receipt with status 0 and a Reason.
func ExecuteTx(o *Overlay, rules *Rules, blk BlockContext, tx *types.Transaction, from common.Address, cumGas uint64) (Outcome, error) {
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
	x := &exec{o: o, rules: rules, blk: blk, from: from}
	out, logs, gas, err := x.run(*tx.To(), tx.Value(), tx.Data(), tx.Gas())
	reason, isRevert := IsRevert(err)
	if err != nil && !isRevert {
		return Outcome{}, err // a read failure, before any write: o is unchanged
	}
	if isRevert && reason.suspend != nil {
		// A velocity rule suspended the sender: recorded although the
		// operation reverted (risk.go).
		if err := o.suspend(reason.suspend); err != nil {
			return Outcome{}, err // its only read failed: nothing written
		}
	}
	o.SetNonce(from, nonce+1)
	if isRevert {
		return Outcome{Receipt: chain.NewReceipt(tx, StatusFailed, gas, cumGas+gas, nil), Reason: reason}, nil
	}
	return Outcome{Receipt: chain.NewReceipt(tx, StatusSuccess, gas, cumGas+gas, logs), Output: out}, nil
}

// run executes a transfer or a system call on o. On a *Revert, o holds none
// of its writes. gasLimit below what the operation uses is a revert.
func (x *exec) run(to common.Address, value *big.Int, data []byte, gasLimit uint64) (out []byte, logs []*types.Log, gas uint64, err error) {
	o, from := x.o, x.from
	if !chain.IsSystemAddress(to) {
		gas = chain.GasPerTransfer
		if len(data) != 0 {
			return nil, nil, gas, &Revert{Reason: ErrDataNotAllowed.Error()}
		}
		if err := x.checkNotPaused(NativeAsset); err != nil {
			return nil, nil, gas, err
		}
		if _, need, err := x.needsConfirmation(from, NativeAsset, value); err != nil || need {
			if err != nil {
				return nil, nil, gas, err
			}
			// Held for its sender's second confirmation (confirm.go).
			x.o = NewOverlay(o)
			if _, err := x.hold(heldOp{kind: HeldKindNative, asset: NativeAsset, to: to, amount: value}); err != nil {
				return nil, nil, gas, err
			}
			x.o.mergeInto(o)
			return nil, x.logs, gas, nil
		}
		// move writes nothing unless every check passes.
		return nil, nil, gas, x.move(NativeAsset, from, to, value, false)
	}
	gas = chain.GasPerSystemCall
	switch {
	case gasLimit < gas:
		return nil, nil, gasLimit, revertf("out of gas: a system operation uses %d", gas)
	case value.Sign() != 0:
		return nil, nil, gas, revertf("system operations take no value")
	}
	x.o = NewOverlay(o)
	out, err = x.systemCall(to, data)
	if err != nil {
		return nil, nil, gas, err
	}
	x.o.mergeInto(o)
	return out, x.logs, gas, nil
}

// mergeInto copies o's writes into parent (o's base).
func (o *Overlay) mergeInto(parent *Overlay) {
	for k, v := range o.writes {
		parent.writes[k] = v
	}
}

// Call runs a transaction's effect on base without a transaction: no nonce,
// no commit. It is eth_call and eth_estimateGas: it returns the outputs and
// the gas the transaction would use, or the *Revert it would fail with.
func Call(base Reader, blk BlockContext, from, to common.Address, value *big.Int, data []byte) (out []byte, gas uint64, err error) {
	rules, err := LoadRules(base)
	if err != nil {
		return nil, 0, err
	}
	if value == nil {
		value = new(big.Int)
	}
	x := &exec{o: NewOverlay(base), rules: rules, blk: blk, from: from, anonymous: from == (common.Address{})}
	out, _, gas, err = x.run(to, value, data, math.MaxUint64)
	return out, gas, err
}

// Result is the outcome of executing a block's transactions.
type Result struct {
	Writes   *Overlay
	Receipts []*types.Receipt
	GasUsed  uint64
	Bloom    types.Bloom
	// Reasons are the failure reasons of the status-0 transactions, in
	// index order: stored with the receipts, outside the state.
	Reasons []TxReason
	// priors holds the values execution read from base before writing
	// them (the read cache): the past state records of the block, without
	// reading those keys again (store's past state).
	priors map[string][]byte
}

// Prior returns the value key k had in the base before the block, when
// execution read it (ok false: read it from the base).
func (r *Result) Prior(k string) (v []byte, ok bool) {
	v, ok = r.priors[k]
	return v, ok
}

// TxError is why Execute could not include the transaction at Index.
type TxError struct {
	Index int
	Hash  common.Hash
	Err   error
}

func (e *TxError) Error() string { return fmt.Sprintf("tx %d (%s): %v", e.Index, e.Hash, e.Err) }
func (e *TxError) Unwrap() error { return e.Err }

// Execute runs txs (with their senders) on a new overlay over base, in the
// block blk. Any transaction that cannot be included makes the whole
// execution fail with a *TxError. Execution that does not conserve supply
// (DESIGN.md decision 9) fails with an error wrapping ErrConservation: the
// code, not the block, is wrong.
func Execute(base Reader, blk BlockContext, txs []*types.Transaction, senders []common.Address) (*Result, error) {
	rules, err := LoadRules(base)
	if err != nil {
		return nil, err
	}
	res := &Result{Writes: NewOverlay(base), Receipts: make([]*types.Receipt, 0, len(txs))}
	res.Writes.cacheReads(true)
	defer res.Writes.cacheReads(false)
	for i, tx := range txs {
		out, err := ExecuteTx(res.Writes, rules, blk, tx, senders[i], res.GasUsed)
		if err != nil {
			return nil, &TxError{Index: i, Hash: tx.Hash(), Err: err}
		}
		res.Add(out.Receipt)
		res.addReason(i, out)
	}
	if err := EndBlock(res.Writes, rules, blk); err != nil {
		return nil, fmt.Errorf("end of block %d: %w", blk.Number, err)
	}
	if err := checkConserved(res.Writes, blk.Number); err != nil {
		return nil, err
	}
	res.priors = res.Writes.reads
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

// touches reports whether any write is under prefix.
func (o *Overlay) touches(prefix []byte) bool {
	for k := range o.writes {
		if bytes.HasPrefix([]byte(k), prefix) {
			return true
		}
	}
	return false
}
