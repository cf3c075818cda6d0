package rpc

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// Backend is what the API needs from the node.
type Backend interface {
	// State is the applied chain and state.
	State() *store.DB
	// Senders is the node's sender cache.
	Senders() *chain.SenderCache
	// SubmitTx admits a signed transaction (or forwards it to the leader).
	SubmitTx(ctx context.Context, tx *types.Transaction) error
	// PendingNonce is the nonce an account's next transaction should carry.
	PendingNonce(a common.Address) (uint64, error)
	// PendingTx returns a transaction admitted but not yet applied.
	PendingTx(h common.Hash) (*types.Transaction, common.Address, bool)
	// Syncing reports whether the node knows it is behind the cluster, and how far.
	Syncing() (behind bool, current, highest uint64)
	// Heads is the feed of applied blocks.
	Heads() *HeadFeed
}

// EthAPI serves the eth_* namespace.
type EthAPI struct {
	b       Backend
	chainID *big.Int
	// halted answers every method while the node is halted; every
	// exported method starts with it (TestHaltedAnswersEveryEthMethod).
	halted func() error
	// subs bounds each client's subscriptions, heavy the reads of full
	// blocks (nil: unbounded, for an API used without a Server).
	subs  *subQuota
	heavy *heavyGate
	// maxMulticall bounds the inner calls of one eth_call to Multicall3
	// (http.max-multicall-calls; 0: DefaultMaxMulticallCalls), and
	// onRefused counts its refusals (Limits.OnRefused).
	maxMulticall int
	onRefused    func(bound string)
	// send admits eth_sendRawTransaction's bytes through the server's
	// admission pipeline (Server.sendOne); nil for an API used without a
	// Server, which submits each transaction to the backend itself.
	send func(ctx context.Context, raw []byte) (common.Hash, error)
}

// NewEthAPI returns the eth_* service.
func NewEthAPI(b Backend) *EthAPI {
	return &EthAPI{b: b, chainID: new(big.Int).SetUint64(b.State().ChainID()), halted: haltCheck(b)}
}

// ChainId returns the EIP-155 chain id.
func (api *EthAPI) ChainId() (*hexutil.Big, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	return (*hexutil.Big)(api.chainID), nil
}

// BlockNumber returns the height of the last applied block.
func (api *EthAPI) BlockNumber() (hexutil.Uint64, error) {
	if err := api.halted(); err != nil {
		return 0, err
	}
	h, _ := api.b.State().Head()
	return hexutil.Uint64(h.Number), nil
}

// Accounts returns no accounts: keys never leave the wallet.
func (api *EthAPI) Accounts() ([]common.Address, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	return []common.Address{}, nil
}

// GasPrice returns 0: Tally has no fees.
func (api *EthAPI) GasPrice() (*hexutil.Big, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	return (*hexutil.Big)(new(big.Int)), nil
}

// MaxPriorityFeePerGas returns 0: Tally has no fees.
func (api *EthAPI) MaxPriorityFeePerGas() (*hexutil.Big, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	return (*hexutil.Big)(new(big.Int)), nil
}

// Syncing returns false, or the progress object when the node is behind.
func (api *EthAPI) Syncing() (any, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	behind, cur, high := api.b.Syncing()
	if !behind {
		return false, nil
	}
	return map[string]hexutil.Uint64{"startingBlock": 0, "currentBlock": hexutil.Uint64(cur), "highestBlock": hexutil.Uint64(high)}, nil
}

// MaxFeeHistory bounds eth_feeHistory's block count.
const MaxFeeHistory = 1024

// FeeHistory returns zero fees for the requested range, in the shape
// go-ethereum gives, so wallets estimating EIP-1559 fees work. The block
// count is hex or decimal, a string or a number, as go-ethereum's
// math.HexOrDecimal64 reads it.
func (api *EthAPI) FeeHistory(blockCount math.HexOrDecimal64, newest gethrpc.BlockNumber, percentiles []float64) (map[string]any, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	if blockCount == 0 {
		return nil, invalidParams("blockCount must be > 0")
	}
	if len(percentiles) > 100 {
		return nil, invalidParams("at most 100 reward percentiles")
	}
	for i, p := range percentiles {
		if p < 0 || p > 100 || (i > 0 && p < percentiles[i-1]) {
			return nil, invalidParams("reward percentiles must be ascending and within [0, 100]")
		}
	}
	last, err := api.resolveNumber(newest)
	if err != nil {
		return nil, err
	}
	if head, _ := api.b.State().Head(); last > head.Number {
		return nil, &Error{Code: CodeServerError, Msg: fmt.Sprintf("request beyond head block: requested %d, head %d", last, head.Number)}
	}
	n := min(uint64(blockCount), MaxFeeHistory, last+1)
	oldest := last + 1 - n
	baseFees := make([]*hexutil.Big, n+1)
	ratios := make([]float64, n)
	for i := range baseFees {
		baseFees[i] = (*hexutil.Big)(new(big.Int))
	}
	out := map[string]any{
		"oldestBlock":   (*hexutil.Big)(new(big.Int).SetUint64(oldest)),
		"baseFeePerGas": baseFees,
		"gasUsedRatio":  ratios,
	}
	if len(percentiles) > 0 {
		rewards := make([][]*hexutil.Big, n)
		for i := range rewards {
			rewards[i] = make([]*hexutil.Big, len(percentiles))
			for j := range rewards[i] {
				rewards[i][j] = (*hexutil.Big)(new(big.Int))
			}
		}
		out["reward"] = rewards
	}
	return out, nil
}

// resolveNumber turns a block number or tag into a height. A number is
// returned as is: whether the block exists is the store's answer, which is
// never behind a receipt the store has already served.
func (api *EthAPI) resolveNumber(n gethrpc.BlockNumber) (uint64, error) {
	switch n {
	case gethrpc.LatestBlockNumber, gethrpc.PendingBlockNumber, gethrpc.SafeBlockNumber, gethrpc.FinalizedBlockNumber:
		// Finality is the receipt: the latest applied block is final.
		head, _ := api.b.State().Head()
		return head.Number, nil
	case gethrpc.EarliestBlockNumber:
		return 0, nil
	}
	if n < 0 {
		return 0, invalidParams("unsupported block tag %d", n)
	}
	return uint64(n), nil
}

// GetBalance returns the native balance of an account after the block
// asked for (stateAt).
func (api *EthAPI) GetBalance(a common.Address, bnh gethrpc.BlockNumberOrHash) (*hexutil.Big, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	st, err := api.stateAt(&bnh)
	if err != nil {
		return nil, err
	}
	bal, err := st.Balance(state.NativeAsset, a)
	if err != nil {
		return nil, err
	}
	return (*hexutil.Big)(bal), nil
}

// GetTransactionCount returns the account's nonce: applied, or counting
// admitted transactions for "pending".
func (api *EthAPI) GetTransactionCount(a common.Address, bnh gethrpc.BlockNumberOrHash) (hexutil.Uint64, error) {
	if err := api.halted(); err != nil {
		return 0, err
	}
	if n, ok := bnh.Number(); ok && n == gethrpc.PendingBlockNumber {
		nonce, err := api.b.PendingNonce(a)
		return hexutil.Uint64(nonce), err
	}
	st, err := api.stateAt(&bnh)
	if err != nil {
		return 0, err
	}
	nonce, err := st.Nonce(a)
	return hexutil.Uint64(nonce), err
}

// GetCode returns a marker code at the system contracts that exist at the
// block and at Multicall3, so client libraries treat them as contracts,
// and empty code elsewhere (codeAt).
func (api *EthAPI) GetCode(a common.Address, bnh gethrpc.BlockNumberOrHash) (hexutil.Bytes, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	st, err := api.stateAt(&bnh)
	if err != nil {
		return nil, err
	}
	code, err := codeAt(st, a)
	return hexutil.Bytes(code), err
}

// SendRawTransaction admits a signed transaction and returns its hash:
// through the server's admission pipeline, as a batch of one or as part
// of its batch's group (sendplan.go), the same path as a batch of
// transactions; without a server, by the backend's SubmitTx.
func (api *EthAPI) SendRawTransaction(ctx context.Context, raw hexutil.Bytes) (common.Hash, error) {
	if err := api.halted(); err != nil {
		return common.Hash{}, err
	}
	if api.send != nil {
		return api.send(ctx, raw)
	}
	tx, err := chain.DecodeTx(raw)
	if err != nil {
		return common.Hash{}, ClientError(err)
	}
	if err := api.b.SubmitTx(ctx, tx); err != nil {
		ForgetRefused(api.b, tx)
		return common.Hash{}, ClientError(err)
	}
	return tx.Hash(), nil
}

// ForgetRefused drops a refused transaction's sender from the sender
// cache unless the pool holds the transaction (a duplicate of one
// admitted, "already known"): the cache is for transactions the node will
// apply, and refused ones (rate limit, tier, nonce, funds) would otherwise
// push those out until they were evicted. Should the transaction be
// admitted later after all, its sender is recovered again then: the cache
// only ever saves work. Every admission path calls it on a refusal: the
// API's, and the leader's for a transaction a follower forwarded.
func ForgetRefused(b Backend, tx *types.Transaction) {
	h := tx.Hash()
	if _, _, pending := b.PendingTx(h); !pending {
		b.Senders().Forget(h)
	}
}

// appliedTx is an applied transaction with its block and sender.
type appliedTx struct {
	block *chain.Block
	index int
	tx    *types.Transaction
	from  common.Address
}

// lookupTx finds an applied transaction; nil without error if there is none.
func (api *EthAPI) lookupTx(h common.Hash) (*appliedTx, error) {
	db := api.b.State()
	n, idx, err := db.TxLocation(h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := db.BlockByNumber(n)
	if err != nil {
		return nil, err
	}
	tx := b.Txs[idx]
	from, err := api.b.Senders().Sender(tx)
	if err != nil {
		return nil, err
	}
	return &appliedTx{block: b, index: int(idx), tx: tx, from: from}, nil
}

// GetTransactionByHash returns an applied or pending transaction, or null.
func (api *EthAPI) GetTransactionByHash(h common.Hash) (*txJSON, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	at, err := api.lookupTx(h)
	if err != nil {
		return nil, err
	}
	if at == nil {
		if tx, from, ok := api.b.PendingTx(h); ok {
			return newTxJSON(tx, from, nil, 0), nil
		}
		return nil, nil
	}
	return newTxJSON(at.tx, at.from, at.block, at.index), nil
}

// GetTransactionReceipt returns the receipt of an applied transaction, or
// null. A receipt exists only for a committed, applied block: it is final.
func (api *EthAPI) GetTransactionReceipt(h common.Hash) (map[string]any, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	at, err := api.lookupTx(h)
	if err != nil || at == nil {
		return nil, err
	}
	rs, err := api.b.State().Receipts(at.block)
	if err != nil {
		return nil, err
	}
	return withReason(receiptJSON(rs[at.index], at.tx, at.from), api.b.State(), rs[at.index])
}

// GetBlockByNumber returns a block, or null if it does not exist yet.
// With full transactions it is a heavy read (heavyGate).
func (api *EthAPI) GetBlockByNumber(ctx context.Context, n gethrpc.BlockNumber, full bool) (map[string]any, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	num, err := api.resolveNumber(n)
	if err != nil {
		return nil, err
	}
	if full {
		done, err := api.heavy.enter(ctx, "eth_getBlockByNumber")
		if err != nil {
			return nil, err
		}
		defer done()
	}
	return api.blockReply(ctx, "eth_getBlockByNumber", num, full) // a future block is null, as in go-ethereum
}

// GetBlockByHash returns a block, or null. With full transactions it is a
// heavy read (heavyGate).
func (api *EthAPI) GetBlockByHash(ctx context.Context, h common.Hash, full bool) (map[string]any, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	if full {
		done, err := api.heavy.enter(ctx, "eth_getBlockByHash")
		if err != nil {
			return nil, err
		}
		defer done()
	}
	num, err := api.b.State().BlockNumberByHash(h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return api.blockReply(ctx, "eth_getBlockByHash", num, full)
}

// GetBlockTransactionCountByNumber returns how many transactions a block holds.
func (api *EthAPI) GetBlockTransactionCountByNumber(n gethrpc.BlockNumber) (*hexutil.Uint, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	num, err := api.resolveNumber(n)
	if err != nil {
		return nil, err
	}
	b, err := api.b.State().BlockByNumber(num)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := hexutil.Uint(len(b.Txs))
	return &c, nil
}

func (api *EthAPI) blockJSON(num uint64, full bool) (map[string]any, error) {
	b, err := api.b.State().BlockByNumber(num)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var senders []common.Address
	if full {
		var errs []error
		senders, errs = api.b.Senders().Senders(b.Txs)
		for _, e := range errs {
			if e != nil {
				return nil, fmt.Errorf("stored block %d: %w", num, e)
			}
		}
	}
	return blockJSON(b, senders, full)
}

// CallArgs are the arguments of eth_call and eth_estimateGas.
type CallArgs struct {
	From                 *common.Address   `json:"from"`
	To                   *common.Address   `json:"to"`
	Gas                  *hexutil.Uint64   `json:"gas"`
	GasPrice             *hexutil.Big      `json:"gasPrice"`
	MaxFeePerGas         *hexutil.Big      `json:"maxFeePerGas"`
	MaxPriorityFeePerGas *hexutil.Big      `json:"maxPriorityFeePerGas"`
	Value                *hexutil.Big      `json:"value"`
	Nonce                *hexutil.Uint64   `json:"nonce"`
	Data                 *hexutil.Bytes    `json:"data"`
	Input                *hexutil.Bytes    `json:"input"`
	AccessList           *types.AccessList `json:"accessList"`
	ChainID              *hexutil.Big      `json:"chainId"`
	Type                 *hexutil.Uint64   `json:"type"`
}

func (a *CallArgs) data() []byte {
	if a.Input != nil {
		return *a.Input
	}
	if a.Data != nil {
		return *a.Data
	}
	return nil
}

// RPCGasCap is go-ethereum's default gas cap for eth_call and
// eth_estimateGas (--rpc.gascap): the gas a call that names none is run
// with, which go-ethereum's eth_call errors name ("supplied gas").
const RPCGasCap = 50_000_000

// preCheckError is a failure go-ethereum finds before it runs a message
// (core.ErrInsufficientFunds, core.ErrIntrinsicGas): eth_estimateGas
// answers it as is, eth_call as "err: … (supplied gas N)", both -32000,
// as go-ethereum does.
type preCheckError struct{ msg string }

func (e *preCheckError) Error() string { return e.msg }

// ErrorCode implements go-ethereum's rpc.Error.
func (e *preCheckError) ErrorCode() int { return CodeServerError }

// call runs args on the state after the block asked for (the latest
// without one) as the transaction would execute, returning its output and
// gas, or go-ethereum's error for a failing one.
// With from, every rule the transaction would meet applies (the sender's
// KYC tier, freeze and limits among them), so an estimate fails exactly
// when sending would; without from (or from the zero address, which no
// key signs for) the call has no sender and the sender's own rules are
// skipped, as a dApp simulates before a wallet is connected.
//
// With admission (eth_estimateGas), a sender that admission would refuse
// whatever it sends (below KYC tier 1) gets admission's reason first, as a
// send would (a revert for an operation, so libraries show the reason);
// eth_call answers any sender.
func (api *EthAPI) call(args CallArgs, bnh *gethrpc.BlockNumberOrHash, admission bool) ([]byte, uint64, error) {
	st, err := api.stateAt(bnh)
	if err != nil {
		return nil, 0, err
	}
	if args.ChainID != nil && args.ChainID.ToInt().Cmp(api.chainID) != 0 {
		return nil, 0, &Error{Code: CodeServerError, Msg: fmt.Sprintf("invalid chain id %v, want %v", args.ChainID.ToInt(), api.chainID)}
	}
	if args.To == nil {
		return nil, 0, &Error{Code: CodeServerError, Msg: chain.ErrContractCreat.Error()}
	}
	if args.Input != nil && args.Data != nil && string(*args.Input) != string(*args.Data) {
		return nil, 0, invalidParams("both \"data\" and \"input\" are set and not equal")
	}
	if *args.To == chain.MulticallAddress {
		return api.callMulticall(st, args.Value.ToInt(), args.data())
	}
	if len(args.data()) > chain.MaxCalldata {
		return nil, 0, invalidParams("calldata of %d bytes is over the %d-byte limit", len(args.data()), chain.MaxCalldata)
	}
	var from common.Address
	if args.From != nil {
		from = *args.From
	}
	if admission && from != (common.Address{}) {
		acc, err := state.NewOverlay(st).Account(from)
		if err != nil {
			return nil, 0, err
		}
		if err := mempool.CheckSender(acc, from); err != nil {
			// Worded as a failure of the call itself would be: a revert
			// with its reason for an operation, -32000 for a transfer.
			if chain.IsSystemAddress(*args.To) {
				return nil, 0, &RevertError{Reason: err.Error()}
			}
			return nil, 0, &Error{Code: CodeServerError, Msg: err.Error()}
		}
	}
	out, gas, err := state.Call(st, st.Context(), from, *args.To, args.Value.ToInt(), args.data())
	if r, ok := state.IsRevert(err); ok {
		if !chain.IsSystemAddress(*args.To) {
			// A plain transfer has no code to revert: go-ethereum finds an
			// unfunded one before running it (core.ErrInsufficientFunds;
			// gas is free, so the want is the value), and any other
			// failure is a server error.
			if s := r.Shortfall; s != nil {
				return nil, 0, &preCheckError{msg: fmt.Sprintf("insufficient funds for gas * price + value: address %s have %s want %s", s.Account.Hex(), s.Have, s.Want)}
			}
			return nil, 0, &Error{Code: CodeServerError, Msg: r.Reason}
		}
		return nil, 0, &RevertError{Reason: r.Reason}
	}
	return out, gas, err
}

// suppliedGas is the gas a call runs with: its own, or RPCGasCap.
func (a *CallArgs) suppliedGas() uint64 {
	if a.Gas != nil && uint64(*a.Gas) <= RPCGasCap {
		return uint64(*a.Gas)
	}
	return RPCGasCap
}

// Call executes a call on the latest state without a transaction: a view
// of a system contract returns its value; an operation returns what it
// would return, or reverts as go-ethereum does (code 3, Error(reason)).
// Gas below what the transaction uses is go-ethereum's intrinsic gas
// error.
func (api *EthAPI) Call(args CallArgs, bnh *gethrpc.BlockNumberOrHash) (hexutil.Bytes, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	var out []byte
	err := api.checkCallGas(args)
	if err == nil {
		out, _, err = api.call(args, bnh, false)
	}
	var pre *preCheckError
	if errors.As(err, &pre) {
		return nil, &Error{Code: CodeServerError, Msg: fmt.Sprintf("err: %s (supplied gas %d)", pre.msg, args.suppliedGas())}
	}
	if out == nil && err == nil {
		out = []byte{}
	}
	return out, err
}

// EstimateGas returns the gas the transaction's receipt would report
// (21000 for a transfer, chain.GasPerSystemCall for a system operation), or
// the error it would fail with. Gas is not charged; the value keeps client
// libraries working. A gas limit in args of at least 21000 but below the
// estimate is go-ethereum's "gas required exceeds allowance"; below 21000
// go-ethereum ignores it, and so does Tally.
func (api *EthAPI) EstimateGas(args CallArgs, bnh *gethrpc.BlockNumberOrHash) (hexutil.Uint64, error) {
	if err := api.halted(); err != nil {
		return 0, err
	}
	_, gas, err := api.call(args, bnh, true)
	if err != nil {
		return 0, err
	}
	if args.Gas != nil && uint64(*args.Gas) >= chain.GasPerTransfer && uint64(*args.Gas) < gas {
		return 0, &Error{Code: CodeServerError, Msg: fmt.Sprintf("gas required exceeds allowance (%d)", uint64(*args.Gas))}
	}
	return hexutil.Uint64(gas), nil
}

// NetAPI serves net_*.
type NetAPI struct{ chainID uint64 }

// Version returns the network id (the chain id).
func (n *NetAPI) Version() string { return fmt.Sprintf("%d", n.chainID) }

// Listening reports that the node accepts connections.
func (n *NetAPI) Listening() bool { return true }

// Web3API serves web3_*.
type Web3API struct{ version string }

// ClientVersion returns the node's name and version.
func (w *Web3API) ClientVersion() string { return w.version }

// Sha3 returns keccak256 of the input.
func (w *Web3API) Sha3(input hexutil.Bytes) hexutil.Bytes {
	h := keccak(input)
	return h[:]
}

// NewHeads serves eth_subscribe("newHeads") over WebSocket: the header of
// every applied (final) block.
func (api *EthAPI) NewHeads(ctx context.Context) (*gethrpc.Subscription, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	return followHeads(ctx, api.b.Heads(), api.subs, func(notifier *gethrpc.Notifier, id gethrpc.ID, b *chain.Block) error {
		return notifier.Notify(id, headerFields(b.Header, b.Hash()))
	})
}

// followHeads creates a subscription that calls notify with every block
// applied from now on, until the client unsubscribes or disconnects, falls
// too far behind (the feed drops it) or notify fails. It counts against
// the client's quota and the feed's bound on all subscriptions.
func followHeads(ctx context.Context, feed *HeadFeed, quota *subQuota, notify func(*gethrpc.Notifier, gethrpc.ID, *chain.Block) error) (*gethrpc.Subscription, error) {
	notifier, ok := gethrpc.NotifierFromContext(ctx)
	if !ok {
		return nil, gethrpc.ErrNotificationsUnsupported
	}
	release, err := quota.acquire(ctx)
	if err != nil {
		return nil, err
	}
	ch, unsubscribe, err := feed.Subscribe()
	if err != nil {
		release()
		countRefusal(quota.refusals(), "http.max-subscriptions")
		return nil, &Error{Code: CodeLimitExceeded, Msg: fmt.Sprintf("%v: the node serves at most %d (http.max-subscriptions)", err, feed.max)}
	}
	sub := notifier.CreateSubscription()
	go func() {
		defer release()
		defer unsubscribe()
		for {
			select {
			case b, ok := <-ch:
				if !ok {
					return // dropped: too slow
				}
				if err := notify(notifier, sub.ID, b); err != nil {
					return
				}
			case <-sub.Err():
				return
			}
		}
	}()
	return sub, nil
}
