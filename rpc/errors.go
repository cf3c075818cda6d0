package rpc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/state"
)

// JSON-RPC error codes used by Tally (go-ethereum's values).
const (
	CodeInvalidRequest = -32600
	CodeInvalidParams  = -32602
	CodeServerError    = -32000
	CodeUnavailable    = -32002
	// CodeInternal answers a failure of the node's own storage
	// (state.ErrStorage): nothing is wrong with the request, so a client
	// should ask another node (wallet.Unavailable fails over on it).
	CodeInternal = -32603
	// CodeHalted answers every eth_* call of a halted node (the message
	// starts "node halted"); tally_nodeInfo says why.
	CodeHalted = -32000
	// CodeReverted is go-ethereum's code for a call that reverted; the
	// error's data is the revert data (ABI-encoded Error(string)).
	CodeReverted = 3
)

// Error is a JSON-RPC error with a code; go-ethereum's server reports Code.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// ErrorCode implements go-ethereum's rpc.Error.
func (e *Error) ErrorCode() int { return e.Code }

// RevertError is a reverted eth_call or eth_estimateGas, worded as
// go-ethereum words it ("execution reverted: reason") with the ABI-encoded
// Error(reason) as data, which is where ethers.js and go-ethereum's bind
// find the reason.
type RevertError struct {
	Reason string
}

func (e *RevertError) Error() string { return "execution reverted: " + e.Reason }

// ErrorCode implements go-ethereum's rpc.Error.
func (e *RevertError) ErrorCode() int { return CodeReverted }

// ErrorData implements go-ethereum's rpc.DataError: the revert data, hex.
func (e *RevertError) ErrorData() any { return hexutil.Encode(chain.EncodeRevert(e.Reason)) }

func invalidParams(format string, args ...any) error {
	return &Error{Code: CodeInvalidParams, Msg: fmt.Sprintf(format, args...)}
}

// ClientError maps an admission error to the code and the message
// go-ethereum would give, so client libraries classify it. A leader words
// its verdict on a forwarded transaction with it too.
func ClientError(err error) error {
	var msg string
	switch {
	case errors.Is(err, state.ErrStorage):
		return &Error{Code: CodeInternal, Msg: err.Error()}
	case errors.Is(err, chain.ErrTxMalformed):
		return &Error{Code: CodeInvalidParams, Msg: "invalid raw transaction: " + err.Error()}
	case errors.Is(err, chain.ErrTxTooLarge), errors.Is(err, chain.ErrAccessListTooLarge):
		// go-ethereum's pool answers "oversized data: transaction size N,
		// limit M" with -32000; the access list has no limit there.
		msg = err.Error()
	case errors.Is(err, mempool.ErrKnown), errors.Is(err, mempool.ErrAlreadyApplied):
		// go-ethereum's words; client libraries match on them.
		msg = "already known"
	case errors.Is(err, chain.ErrWrongChain):
		msg = "invalid chain id for signer: " + err.Error()
	case errors.Is(err, chain.ErrBadSignature), errors.Is(err, chain.ErrHighS):
		msg = "invalid sender: " + err.Error()
	default:
		var rerr *Error
		if errors.As(err, &rerr) {
			return rerr
		}
		msg = err.Error()
	}
	return &Error{Code: CodeServerError, Msg: msg}
}

// Halter is implemented by a backend that can halt (the node, once its
// state machine met a broken invariant). NewServer looks for it; while
// Halted returns an error, every eth_* method answers CodeHalted with a
// message starting "node halted", and the tally_* and admin_* methods keep
// working so an operator can see why.
type Halter interface {
	Halted() error
}

// haltedPrefix starts the message of every error a halted node answers.
const haltedPrefix = "node halted"

// haltCheck returns the check each eth_* method starts with: nil while
// the backend runs, the halted error after. A backend that cannot halt
// never does.
func haltCheck(b Backend) func() error {
	h, ok := b.(Halter)
	if !ok {
		return func() error { return nil }
	}
	return func() error {
		err := h.Halted()
		if err == nil {
			return nil
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, haltedPrefix) {
			msg = haltedPrefix + ": " + msg
		}
		return &Error{Code: CodeHalted, Msg: msg}
	}
}
