package rpc

import (
	"errors"
	"fmt"

	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/tally-ledger/tally/store"
)

// stateAt resolves the block parameter of a state read (eth_getBalance,
// eth_getTransactionCount, eth_getCode, eth_call, eth_estimateGas) to the
// state after that block: a number, a tag (latest, pending, safe and
// finalized are the head: an applied block is final; earliest is 0), a
// block hash, or an EIP-1898 object {blockNumber} / {blockHash,
// requireCanonical} (every stored block is canonical: there are no forks).
// nil is the latest. Any of the last state.history-blocks blocks is served
// (store.DB.StateAt); older ones get go-ethereum's -32000 "historical state
// <root> is not available", and a block this node does not have
// go-ethereum's "header not found" / "header for hash not found".
//
// The state is pinned: every read of one call sees the same block however
// many blocks are applied meanwhile.
func (api *EthAPI) stateAt(bnh *gethrpc.BlockNumberOrHash) (*store.PastState, error) {
	db := api.b.State()
	var st *store.PastState
	var err error
	if bnh == nil {
		st, err = db.LatestState()
	} else if h, ok := bnh.Hash(); ok {
		num, herr := db.BlockNumberByHash(h)
		if errors.Is(herr, store.ErrNotFound) {
			return nil, &Error{Code: CodeServerError, Msg: "header for hash not found"}
		}
		if herr != nil {
			return nil, herr
		}
		st, err = db.StateAt(num)
	} else if bn, ok := bnh.Number(); ok {
		switch bn {
		case gethrpc.LatestBlockNumber, gethrpc.PendingBlockNumber, gethrpc.SafeBlockNumber, gethrpc.FinalizedBlockNumber:
			// Finality is the receipt: the latest applied block is final.
			st, err = db.LatestState()
		default:
			num, nerr := api.resolveNumber(bn)
			if nerr != nil {
				return nil, nerr
			}
			st, err = db.StateAt(num)
		}
	} else {
		st, err = db.LatestState()
	}
	return st, stateError(err)
}

// stateError words a state read's failure as go-ethereum does.
func stateError(err error) error {
	var su *store.StateUnavailableError
	switch {
	case errors.As(err, &su):
		return &Error{Code: CodeServerError, Msg: fmt.Sprintf("%v; the window is state.history-blocks", su)}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Code: CodeServerError, Msg: "header not found"}
	}
	return err
}
