package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/crypto"
)

// ReceiptPollInterval is how often WaitReceipt asks for a receipt. Blocks
// commit in milliseconds under load and every second when idle, so a short
// interval keeps submit-to-receipt latency close to the node's.
const ReceiptPollInterval = 50 * time.Millisecond

// ErrNotFound is returned (wrapped) for a block or transaction the node does
// not know. It is go-ethereum's ethereum.NotFound, so errors.Is works with
// either.
var ErrNotFound = ethereum.NotFound

// Client talks JSON-RPC to one Tally node, or to several nodes of one
// cluster with failover. It wraps go-ethereum's ethclient because the node
// serves the Ethereum API, and keeps the raw rpc.Client for batches. It is
// safe for concurrent use.
//
// With several endpoints (DialEndpoints) every call goes to the endpoint
// that answered last and moves to the next one when that endpoint is
// Unavailable (transport error, timeout, HTTP 5xx, "node halted", "no
// leader to forward to", …) or stalls past Options.StallTimeout, going
// round the list until Options.RetryFor has passed. A deterministic answer
// (a revert, a nonce error, invalid params, not found) is returned at once,
// from whichever node gave it: every node would give the same. Sends fail
// over too, and are idempotent by construction: a signed transaction is
// its own key (its hash), so a send whose answer was lost is sent again to
// the next node, whose "already known" (or, once the transaction is in a
// block, "nonce too low" for a transaction that node can find by hash)
// counts as success. A Client never signs a second transaction for one
// intent: the retries are of the same signed bytes.
type Client struct {
	eps  []*endpoint
	opts Options

	cur atomic.Int32 // the endpoint that answered last

	mu      sync.Mutex
	chainID *big.Int // cached: a node's chain id never changes
}

// endpoint is one node's connection.
type endpoint struct {
	url string

	mu  sync.Mutex // guards rpc and eth, set once dialled
	rpc *rpc.Client
	eth *ethclient.Client
}

// dial connects e if it is not connected yet: a WebSocket endpoint that
// was down when the client was made is dialled at its first use (HTTP
// endpoints connect per request anyway). A failure is a transport error,
// so the call moves to the next endpoint.
func (e *endpoint) dial(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rpc != nil {
		return nil
	}
	rc, err := rpc.DialContext(ctx, e.url)
	if err != nil {
		return fmt.Errorf("dial %s: %w", e.url, err)
	}
	e.rpc, e.eth = rc, ethclient.NewClient(rc)
	return nil
}

// clients returns e's clients, dialling it first if need be (nil while a
// WebSocket endpoint cannot be reached).
func (e *endpoint) clients() (*rpc.Client, *ethclient.Client) {
	e.dial(context.Background())
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rpc, e.eth
}

// Dial connects to a node's JSON-RPC endpoint (http://, https://, ws:// or
// wss://). For HTTP no request is made until the first call. The client
// does not retry: an unavailable node's error is returned as is.
func Dial(ctx context.Context, url string) (*Client, error) {
	return DialEndpoints(ctx, []string{url}, Options{})
}

// DialEndpoints connects to several nodes of one cluster (each as Dial
// does) and fails over between them as Client describes; with opts'
// RetryFor set, a single endpoint is retried through an election too. The
// nodes must serve the same chain: the first chain id read is kept.
func DialEndpoints(ctx context.Context, urls []string, opts Options) (*Client, error) {
	if len(urls) == 0 {
		return nil, errors.New("dial: no endpoint")
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	c := &Client{opts: opts}
	for _, u := range urls {
		e := &endpoint{url: u}
		if err := e.dial(ctx); err != nil {
			// With several endpoints a node that is down now (a WebSocket
			// dial connects at once) is dialled again at its first use;
			// alone, or with a URL no transport takes, it is an error.
			if len(urls) == 1 || !isWebSocket(u) {
				c.Close()
				return nil, err
			}
		}
		c.eps = append(c.eps, e)
	}
	return c, nil
}

func isWebSocket(u string) bool {
	return strings.HasPrefix(u, "ws://") || strings.HasPrefix(u, "wss://")
}

// Close releases the connections.
func (c *Client) Close() {
	for _, e := range c.eps {
		e.mu.Lock()
		if e.rpc != nil {
			e.rpc.Close()
		}
		e.mu.Unlock()
	}
}

// Endpoints returns the endpoints' URLs, in the order given.
func (c *Client) Endpoints() []string {
	out := make([]string, len(c.eps))
	for i, e := range c.eps {
		out[i] = e.url
	}
	return out
}

// Current returns the URL of the endpoint that answered last (where the
// next call goes first).
func (c *Client) Current() string { return c.eps[c.current()].url }

func (c *Client) current() int { return int(c.cur.Load()) }

func (c *Client) setCurrent(i int) { c.cur.Store(int32(i)) }

// Eth returns the ethclient of the current endpoint, for calls this type
// does not wrap; calls through it do not fail over. It is nil only for a
// WebSocket endpoint that cannot be reached.
func (c *Client) Eth() *ethclient.Client { _, ec := c.eps[c.current()].clients(); return ec }

// RPC returns the raw JSON-RPC client of the current endpoint; calls
// through it do not fail over (Call does). It is nil only for a WebSocket
// endpoint that cannot be reached.
func (c *Client) RPC() *rpc.Client { rc, _ := c.eps[c.current()].clients(); return rc }

// Call makes a JSON-RPC call that reads (any method but a send) with
// failover, decoding the result into result.
func (c *Client) Call(ctx context.Context, result any, method string, args ...any) error {
	raw, err := read(ctx, c, func(ctx context.Context, e *endpoint) (json.RawMessage, error) {
		var raw json.RawMessage
		err := e.rpc.CallContext(ctx, &raw, method, args...)
		return raw, err
	})
	if err != nil || result == nil {
		return err
	}
	return json.Unmarshal(raw, result)
}

// BatchCall sends reads as one JSON-RPC batch with failover: the whole
// batch goes to the next endpoint when one cannot serve it. Each element's
// Error is that item's answer (deterministic, as for Call).
func (c *Client) BatchCall(ctx context.Context, elems []rpc.BatchElem) error {
	type answer struct {
		raws []json.RawMessage
		errs []error
	}
	a, err := read(ctx, c, func(ctx context.Context, e *endpoint) (answer, error) {
		own := make([]rpc.BatchElem, len(elems))
		a := answer{raws: make([]json.RawMessage, len(elems)), errs: make([]error, len(elems))}
		for k, el := range elems {
			own[k] = rpc.BatchElem{Method: el.Method, Args: el.Args, Result: &a.raws[k]}
		}
		if err := e.rpc.BatchCallContext(ctx, own); err != nil {
			return answer{}, err
		}
		for k := range own {
			a.errs[k] = own[k].Error
		}
		return a, nil
	})
	if err != nil {
		return err
	}
	for k := range elems {
		elems[k].Error = a.errs[k]
		if a.errs[k] == nil && elems[k].Result != nil {
			elems[k].Error = json.Unmarshal(a.raws[k], elems[k].Result)
		}
	}
	return nil
}

// ChainID returns the node's EIP-155 chain id, asked once and cached.
func (c *Client) ChainID(ctx context.Context) (*big.Int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chainID == nil {
		id, err := read(ctx, c, func(ctx context.Context, e *endpoint) (*big.Int, error) {
			return e.eth.ChainID(ctx)
		})
		if err != nil {
			return nil, fmt.Errorf("chain id: %w", err)
		}
		c.chainID = id
	}
	return new(big.Int).Set(c.chainID), nil
}

// Balance returns addr's native balance in base units in the latest state.
func (c *Client) Balance(ctx context.Context, addr common.Address) (*big.Int, error) {
	b, err := read(ctx, c, func(ctx context.Context, e *endpoint) (*big.Int, error) {
		return e.eth.BalanceAt(ctx, addr, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("balance of %s: %w", addr, err)
	}
	return b, nil
}

// PendingNonce returns the nonce addr's next transaction must carry,
// counting transactions the node admitted but has not yet applied.
func (c *Client) PendingNonce(ctx context.Context, addr common.Address) (uint64, error) {
	n, err := read(ctx, c, func(ctx context.Context, e *endpoint) (uint64, error) {
		return e.eth.PendingNonceAt(ctx, addr)
	})
	if err != nil {
		return 0, fmt.Errorf("pending nonce of %s: %w", addr, err)
	}
	return n, nil
}

// Transfer sends value base units of the native asset from key's account to
// to as an EIP-1559 transaction, with the node's chain id and the account's
// pending nonce, and returns it once the node admitted it (not yet applied:
// use WaitReceipt). Concurrent Transfers from one account can pick the same
// nonce; a sender of many transactions should count nonces itself and use
// SignTransfer.
func (c *Client) Transfer(ctx context.Context, key *crypto.PrivateKey, to common.Address, value *big.Int) (*types.Transaction, error) {
	return c.transfer(ctx, key, to, value, false)
}

// TransferLegacy is Transfer with an EIP-155 legacy (type 0) transaction.
func (c *Client) TransferLegacy(ctx context.Context, key *crypto.PrivateKey, to common.Address, value *big.Int) (*types.Transaction, error) {
	return c.transfer(ctx, key, to, value, true)
}

func (c *Client) transfer(ctx context.Context, key *crypto.PrivateKey, to common.Address, value *big.Int, legacy bool) (*types.Transaction, error) {
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	nonce, err := c.PendingNonce(ctx, key.Address())
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	tx, err := SignTransfer(key, chainID, nonce, to, value, legacy)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	if err := c.SendSigned(ctx, tx); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	return tx, nil
}

// SendSigned submits a signed transaction (eth_sendRawTransaction). A nil
// error means a node admitted it; the node's refusal ("nonce too low",
// "insufficient funds", ...) is returned as is, wrapped with the hash.
// With several endpoints, a send that found its node unavailable, or whose
// answer was lost, goes to the next node with the same bytes, and that
// node's "already known" (or "nonce too low" when it has the transaction
// by hash: it is in a block) counts as success.
func (c *Client) SendSigned(ctx context.Context, tx *types.Transaction) error {
	err := c.failover(ctx, func(ctx context.Context, e *endpoint) error {
		return e.eth.SendTransaction(ctx, tx)
	}, func(ctx context.Context, e *endpoint, err error) error {
		if held(ctx, e, tx.Hash(), err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("send tx %s: %w", tx.Hash(), err)
	}
	return nil
}

// held reports whether a refusal of a re-sent transaction means the node
// holds it: "already known" (in its pool or chain), or "nonce too low"
// for a transaction the node finds by hash (applied).
func held(ctx context.Context, e *endpoint, hash common.Hash, err error) bool {
	if alreadyKnown(err) {
		return true
	}
	if !nonceTooLow(err) {
		return false
	}
	_, _, lerr := e.eth.TransactionByHash(ctx, hash)
	return lerr == nil
}

// SendRawBatch submits signed transactions in their canonical encoding as
// ONE JSON-RPC batch of eth_sendRawTransaction calls, which is how load tools
// reach the node's throughput (one HTTP round trip, senders recovered in
// parallel by the node). It returns per item the hash the node reported and
// the node's error, and a non-nil error only when the batch as a whole
// failed (transport, or a batch larger than the node's limit, 2,000 items by
// default). An empty batch is not sent.
//
// With several endpoints, the items a node could not serve (the whole
// batch on a transport error, or items answered Unavailable) are sent
// again to the next node, as SendSigned does, until each has a verdict or
// Options.RetryFor passes; an item re-sent and then answered "already
// known" is admitted.
func (c *Client) SendRawBatch(ctx context.Context, raws [][]byte) ([]common.Hash, []error, error) {
	if len(raws) == 0 {
		return nil, nil, nil
	}
	hashes := make([]common.Hash, len(raws))
	errs := make([]error, len(raws))
	var (
		mu    sync.Mutex
		left  = make(map[int]bool, len(raws)) // items without a verdict
		sends = make([]int, len(raws))        // times each item was sent
	)
	for i := range raws {
		left[i] = true
	}
	err := c.failover(ctx, func(ctx context.Context, e *endpoint) error {
		mu.Lock()
		idx := make([]int, 0, len(left))
		for i := range left {
			idx = append(idx, i)
		}
		mu.Unlock()
		slices.Sort(idx)
		if len(idx) == 0 {
			return nil
		}
		got := make([]common.Hash, len(idx))
		elems := make([]rpc.BatchElem, len(idx))
		mu.Lock()
		for k, i := range idx {
			sends[i]++
			elems[k] = rpc.BatchElem{Method: "eth_sendRawTransaction", Args: []any{hexutil.Bytes(raws[i])}, Result: &got[k]}
		}
		mu.Unlock()
		if err := e.rpc.BatchCallContext(ctx, elems); err != nil {
			return fmt.Errorf("send batch of %d: %w", len(idx), err)
		}
		var unavailable error
		for k, i := range idx {
			err := elems[k].Error
			if err != nil && Unavailable(err) {
				unavailable = err
				continue
			}
			mu.Lock()
			resent := sends[i] > 1
			mu.Unlock()
			var h common.Hash
			if err != nil && resent {
				h = gethcrypto.Keccak256Hash(raws[i])
				if held(ctx, e, h, err) {
					err = nil
				}
			} else if err == nil {
				h = got[k]
			}
			mu.Lock()
			if left[i] {
				delete(left, i)
				hashes[i], errs[i] = h, err
			}
			mu.Unlock()
		}
		if unavailable != nil {
			return fmt.Errorf("send batch: some transactions not served: %w", unavailable)
		}
		return nil
	}, nil)
	mu.Lock()
	defer mu.Unlock()
	rest := left
	left = nil // an attempt still running records nothing more
	if err != nil {
		if len(rest) == len(raws) {
			return nil, nil, err
		}
		for i := range rest {
			errs[i] = err // no node could serve these within RetryFor
		}
	}
	return hashes, errs, nil
}

// WaitReceipt polls for the receipt of hash every ReceiptPollInterval until
// it exists or ctx ends. A receipt in Tally is final (no forks), so the
// transfer is settled when this returns; check Status, since a transaction
// that fails at execution is included with status 0. An error other than
// "not found" from the node ends the wait.
//
// With several endpoints, a node that keeps answering "not found" may be
// the one that is behind (cut off from the others, or restarting): after
// Options.StallTimeout without the receipt the polls go round the
// endpoints, and the one that has the receipt becomes the current one.
func (c *Client) WaitReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	t := time.NewTicker(ReceiptPollInterval)
	defer t.Stop()
	start, first := time.Now(), c.current()
	for {
		if len(c.eps) > 1 && time.Since(start) > c.opts.StallTimeout {
			first = (first + 1) % len(c.eps)
		}
		r, err := try(ctx, c, first, func(ctx context.Context, e *endpoint) (*types.Receipt, error) {
			return e.eth.TransactionReceipt(ctx, hash)
		}, nil)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, ethereum.NotFound) {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("wait for receipt of %s: %w", hash, ctx.Err())
			}
			return nil, fmt.Errorf("wait for receipt of %s: %w", hash, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for receipt of %s: %w", hash, ctx.Err())
		case <-t.C:
		}
	}
}

// Receipt returns the receipt of hash, or an error wrapping ErrNotFound
// while the transaction is pending or unknown.
func (c *Client) Receipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	r, err := c.receipt(ctx, hash)
	if err != nil {
		return nil, fmt.Errorf("receipt of %s: %w", hash, err)
	}
	return r, nil
}

func (c *Client) receipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	return read(ctx, c, func(ctx context.Context, e *endpoint) (*types.Receipt, error) {
		return e.eth.TransactionReceipt(ctx, hash)
	})
}

// BlockByNumber returns the block at number, or the latest block for nil.
// The error wraps ErrNotFound for a block not yet committed.
func (c *Client) BlockByNumber(ctx context.Context, number *big.Int) (*types.Block, error) {
	b, err := read(ctx, c, func(ctx context.Context, e *endpoint) (*types.Block, error) {
		return e.eth.BlockByNumber(ctx, number)
	})
	if err != nil {
		what := "latest"
		if number != nil {
			what = number.String()
		}
		return nil, fmt.Errorf("block %s: %w", what, err)
	}
	return b, nil
}

// TransactionByHash returns a transaction and whether it is still pending
// (admitted, not yet in a block). The error wraps ErrNotFound for a hash the
// node does not know.
func (c *Client) TransactionByHash(ctx context.Context, hash common.Hash) (*types.Transaction, bool, error) {
	type found struct {
		tx      *types.Transaction
		pending bool
	}
	f, err := read(ctx, c, func(ctx context.Context, e *endpoint) (found, error) {
		tx, pending, err := e.eth.TransactionByHash(ctx, hash)
		return found{tx, pending}, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("transaction %s: %w", hash, err)
	}
	return f.tx, f.pending, nil
}
