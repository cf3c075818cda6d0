package rpc

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/store"
)

// This file holds the eth_* methods wallets and libraries call that only
// restate what Tally already has in go-ethereum's shapes
// (internal/ethapi/api.go): receipts by block, transactions by position,
// storage (there is none), access lists (nothing to list).

// GetBlockReceipts serves eth_getBlockReceipts: the receipts of every
// transaction of a block, in order, each as eth_getTransactionReceipt
// returns it; null for a block above the head, -32000 "header for hash not
// found" for an unknown hash (go-ethereum's answers). A heavy read
// (heavyGate): its reply is charged to the request's budget.
func (api *EthAPI) GetBlockReceipts(ctx context.Context, bnh gethrpc.BlockNumberOrHash) (json.RawMessage, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	b, err := api.blockOf(bnh)
	if err != nil || b == nil {
		return json.RawMessage("null"), err
	}
	done, err := api.heavy.enter(ctx, "eth_getBlockReceipts")
	if err != nil {
		return nil, err
	}
	defer done()
	rs, err := api.b.State().Receipts(b)
	if err != nil {
		return nil, err
	}
	if len(rs) != len(b.Txs) {
		return nil, fmt.Errorf("receipts length mismatch: %d vs %d", len(b.Txs), len(rs))
	}
	senders, errs := api.b.Senders().Senders(b.Txs)
	for _, e := range errs {
		if e != nil {
			return nil, fmt.Errorf("stored block %d: %w", b.Number(), e)
		}
	}
	out := make([]map[string]any, len(rs))
	for i, r := range rs {
		if out[i], err = withReason(receiptJSON(r, b.Txs[i], senders[i]), api.b.State(), r); err != nil {
			return nil, err
		}
	}
	enc, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	if len(enc) > api.heavy.budget(ctx) {
		// A block's receipts are one answer; cut, they would mislead.
		return nil, &Error{Code: CodeResponseTooLarge, Msg: fmt.Sprintf("response too large: the receipts of block %d take %d bytes, over http.max-response-bytes or what the request has left; fetch them one by one with eth_getTransactionReceipt", b.Number(), len(enc))}
	}
	if err := api.heavy.charge(ctx, "eth_getBlockReceipts", len(enc)); err != nil {
		return nil, err
	}
	return enc, nil
}

// blockOf returns the block a number, tag or hash names: nil for a number
// above the head, -32000 "header for hash not found" for an unknown hash,
// as go-ethereum's backend answers.
func (api *EthAPI) blockOf(bnh gethrpc.BlockNumberOrHash) (*chain.Block, error) {
	db := api.b.State()
	var num uint64
	if h, ok := bnh.Hash(); ok {
		n, err := db.BlockNumberByHash(h)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &Error{Code: CodeServerError, Msg: "header for hash not found"}
		}
		if err != nil {
			return nil, err
		}
		num = n
	} else if n, ok := bnh.Number(); ok {
		var err error
		if num, err = api.resolveNumber(n); err != nil {
			return nil, err
		}
	} else {
		return nil, invalidParams("invalid arguments; neither block nor hash specified")
	}
	b, err := db.BlockByNumber(num)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// txAt returns the transaction at index of b in eth_getTransactionByHash's
// shape, or nil (null) when b is nil or has no such index.
func (api *EthAPI) txAt(b *chain.Block, index hexutil.Uint) (*txJSON, error) {
	if b == nil || uint64(index) >= uint64(len(b.Txs)) {
		return nil, nil
	}
	tx := b.Txs[index]
	from, err := api.b.Senders().Sender(tx)
	if err != nil {
		return nil, fmt.Errorf("stored block %d: %w", b.Number(), err)
	}
	return newTxJSON(tx, from, b, int(index)), nil
}

// GetTransactionByBlockNumberAndIndex serves
// eth_getTransactionByBlockNumberAndIndex: null for a block above the head
// or an index past its transactions, as go-ethereum.
func (api *EthAPI) GetTransactionByBlockNumberAndIndex(n gethrpc.BlockNumber, index hexutil.Uint) (*txJSON, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	b, err := api.blockOf(gethrpc.BlockNumberOrHashWithNumber(n))
	if err != nil {
		return nil, err
	}
	return api.txAt(b, index)
}

// GetTransactionByBlockHashAndIndex serves
// eth_getTransactionByBlockHashAndIndex: null for an unknown block or an
// index past its transactions, as go-ethereum.
func (api *EthAPI) GetTransactionByBlockHashAndIndex(h common.Hash, index hexutil.Uint) (*txJSON, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	b, err := api.blockOf(gethrpc.BlockNumberOrHashWithHash(h, false))
	var rerr *Error
	if errors.As(err, &rerr) && rerr.Code == CodeServerError {
		return nil, nil // go-ethereum's BlockByHash: null, not an error
	}
	if err != nil {
		return nil, err
	}
	return api.txAt(b, index)
}

// GetBlockTransactionCountByHash returns how many transactions a block
// holds; null for an unknown block, as go-ethereum.
func (api *EthAPI) GetBlockTransactionCountByHash(h common.Hash) (*hexutil.Uint, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	n, err := api.b.State().BlockNumberByHash(h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return api.GetBlockTransactionCountByNumber(gethrpc.BlockNumber(n))
}

// GetStorageAt serves eth_getStorageAt. Tally runs no EVM and its system
// contracts keep no EVM storage, so every slot of every account reads as
// go-ethereum reads a slot never written: 32 zero bytes. The key and the
// block are checked as go-ethereum checks them (a key is at most 32 bytes
// of hex, with or without 0x; the block as eth_getBalance's).
func (api *EthAPI) GetStorageAt(a common.Address, hexKey string, bnh gethrpc.BlockNumberOrHash) (hexutil.Bytes, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	if _, err := api.stateAt(&bnh); err != nil {
		return nil, err
	}
	if err := checkStorageKey(hexKey); err != nil {
		return nil, invalidParams("%v: %q", err, hexKey)
	}
	return make(hexutil.Bytes, common.HashLength), nil
}

// checkStorageKey accepts what go-ethereum's decodeStorageKey accepts.
func checkStorageKey(s string) error {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s = s[2:]
	}
	if len(s)&1 == 1 {
		s = "0" + s
	}
	if len(s) > 2*common.HashLength {
		return errors.New("storage key too long (want at most 32 bytes)")
	}
	if _, err := hex.DecodeString(s); err != nil {
		return errors.New("invalid hex in storage key")
	}
	return nil
}

// accessListResult is go-ethereum's eth_createAccessList answer.
type accessListResult struct {
	AccessList *types.AccessList `json:"accessList"`
	Error      string            `json:"error,omitempty"`
	GasUsed    hexutil.Uint64    `json:"gasUsed"`
}

// CreateAccessList serves eth_createAccessList. Nothing Tally runs reads
// EVM storage or other contracts, so the list it finds is empty: the
// answer is the list given (go-ethereum keeps it, less the sender and the
// recipient), the gas the transaction uses, and as "error" the revert it
// would meet. A failure before execution (insufficient funds, too little
// gas, a sender's rule) is -32000 "failed to apply transaction: <hash>
// err: <reason>", as go-ethereum words it.
func (api *EthAPI) CreateAccessList(args CallArgs, bnh *gethrpc.BlockNumberOrHash) (*accessListResult, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	acl := types.AccessList{}
	if args.AccessList != nil {
		if err := chain.CheckAccessList(*args.AccessList); err != nil {
			return nil, invalidParams("accessList: %v", err)
		}
		var from common.Address
		if args.From != nil {
			from = *args.From
		}
		for _, t := range *args.AccessList {
			if t.Address != from && (args.To == nil || t.Address != *args.To) {
				acl = append(acl, t)
			}
		}
	}
	err := api.checkCallGas(args)
	var gas uint64
	if err == nil {
		_, gas, err = api.call(args, bnh, false)
	}
	var pre *preCheckError
	var rerr *Error
	var rev *RevertError
	switch {
	case err == nil:
	case errors.As(err, &rev):
		return &accessListResult{AccessList: &acl, Error: rev.Error(), GasUsed: hexutil.Uint64(chain.GasOf(*args.To))}, nil
	case errors.As(err, &pre), errors.As(err, &rerr) && rerr.Code == CodeServerError && args.To != nil && !chain.IsSystemAddress(*args.To):
		return nil, &Error{Code: CodeServerError, Msg: fmt.Sprintf("failed to apply transaction: %s err: %v", api.legacyHash(args), err)}
	default:
		return nil, err
	}
	return &accessListResult{AccessList: &acl, GasUsed: hexutil.Uint64(gas)}, nil
}

// checkCallGas is go-ethereum's intrinsic gas check of a call that names
// its gas: below what the transaction uses, it cannot run.
func (api *EthAPI) checkCallGas(args CallArgs) error {
	if args.To == nil {
		return nil
	}
	if supplied, need := args.suppliedGas(), chain.GasOf(*args.To); supplied < need {
		return &preCheckError{msg: fmt.Sprintf("intrinsic gas too low: have %d, want %d", supplied, need)}
	}
	return nil
}

// legacyHash is the hash go-ethereum names a call by in its access list
// errors: that of the call as an unsigned legacy transaction, with the
// sender's nonce and the gas it runs with when the call names neither.
func (api *EthAPI) legacyHash(a CallArgs) common.Hash {
	var nonce uint64
	if a.Nonce != nil {
		nonce = uint64(*a.Nonce)
	} else if a.From != nil {
		nonce, _ = api.b.State().Nonce(*a.From) // a read failure names the call by nonce 0
	}
	return types.NewTx(&types.LegacyTx{Nonce: nonce, GasPrice: a.GasPrice.ToInt(), Gas: a.suppliedGas(),
		To: a.To, Value: a.Value.ToInt(), Data: a.data()}).Hash()
}
