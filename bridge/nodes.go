package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/internal/logrepeat"
	"github.com/tally-ledger/tally/wallet"
)

// nodes is the bridge's view of the chain: several nodes' JSON-RPC
// endpoints, one of which is current. A call that fails because the node
// is unreachable, answers HTTP 5xx or does not answer within
// nodes.timeout moves to the next endpoint (round robin) and is tried
// there, each endpoint at most once per call. An answer — a result or a
// JSON-RPC error such as a revert or "nonce too low" — is final: another
// node would say the same, since all apply the same blocks.
type nodes struct {
	urls    []string
	clients []*wallet.Client
	timeout time.Duration
	log     *slog.Logger
	// onFailover counts failovers for the metrics.
	onFailover func()
	// repeats holds back the warning about an endpoint that keeps failing
	// (every call tries it again while the others fail too): the first,
	// then one per doubling interval with the count held back.
	repeats *logrepeat.Limiter

	mu  sync.Mutex
	cur int
}

func dialNodes(ctx context.Context, urls []string, timeout time.Duration, log *slog.Logger) (*nodes, error) {
	n := &nodes{urls: urls, timeout: timeout, log: log, onFailover: func() {}, repeats: logrepeat.New(time.Now)}
	for _, u := range urls {
		c, err := wallet.Dial(ctx, u) // HTTP: no request until the first call
		if err != nil {
			n.close()
			return nil, err
		}
		n.clients = append(n.clients, c)
	}
	return n, nil
}

func (n *nodes) close() {
	for _, c := range n.clients {
		c.Close()
	}
}

// current returns the index of the endpoint calls go to first.
func (n *nodes) current() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cur
}

// failedOver moves past endpoint i, unless another call already did.
func (n *nodes) failedOver(i int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cur == i {
		n.cur = (i + 1) % len(n.clients)
	}
}

// do runs fn against the current endpoint, failing over as the type's
// comment says. what names the call in errors.
func (n *nodes) do(ctx context.Context, what string, fn func(ctx context.Context, c *wallet.Client) error) error {
	start := n.current()
	var errs []error
	for k := range n.clients {
		i := (start + k) % len(n.clients)
		cctx, cancel := context.WithTimeout(ctx, n.timeout)
		err := fn(cctx, n.clients[i])
		timedOut := cctx.Err() != nil
		cancel()
		if err == nil {
			n.repeats.Reset(n.urls[i])
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if !timedOut && !isTransportError(err) {
			return fmt.Errorf("%s (node %s): %w", what, n.urls[i], err)
		}
		errs = append(errs, fmt.Errorf("node %s: %w", n.urls[i], err))
		if len(n.clients) > 1 {
			if ok, suppressed := n.repeats.Allow(n.urls[i]); ok {
				n.log.Warn("node unavailable, failing over (repeats logged once per doubling interval)", "call", what, "node", n.urls[i],
					"next", n.urls[(i+1)%len(n.clients)], "repeats_suppressed", suppressed, "err", err)
			}
			n.onFailover()
		}
		n.failedOver(i)
	}
	return fmt.Errorf("%s: %w: %w", what, errNoNode, errors.Join(errs...))
}

// errNoNode means no endpoint answered a call.
var errNoNode = errors.New("no node answered")

// isTransportError reports whether err means the node did not answer
// (rather than answered with an error): anything but a JSON-RPC error, an
// HTTP status below 500 or "not found".
func isTransportError(err error) bool {
	var he rpc.HTTPError
	if errors.As(err, &he) {
		return he.StatusCode >= 500
	}
	var re rpc.Error
	if errors.As(err, &re) {
		return false
	}
	var rev *wallet.RevertError
	if errors.As(err, &rev) || errors.Is(err, ethereum.NotFound) {
		return false
	}
	return true
}

// ---- typed calls ----

func (n *nodes) chainID(ctx context.Context) (*big.Int, error) {
	var id *big.Int
	err := n.do(ctx, "eth_chainId", func(ctx context.Context, c *wallet.Client) (err error) {
		id, err = c.ChainID(ctx)
		return err
	})
	return id, err
}

func (n *nodes) assetBySymbol(ctx context.Context, symbol string) (wallet.Asset, error) {
	var a wallet.Asset
	err := n.do(ctx, "tally_assets", func(ctx context.Context, c *wallet.Client) (err error) {
		a, err = c.AssetBySymbol(ctx, symbol)
		if err != nil && strings.Contains(err.Error(), "unknown asset") {
			return &answerError{err}
		}
		return err
	})
	return a, err
}

// answerError marks an error the node's answer implies (not a transport
// failure), so do does not fail over on it.
type answerError struct{ err error }

func (e *answerError) Error() string     { return e.err.Error() }
func (e *answerError) Unwrap() error     { return e.err }
func (e *answerError) ErrorCode() int    { return -1 }
func (e *answerError) ErrorData() string { return "" }

// simulate runs op from from on the latest state; a *wallet.RevertError
// means it would fail.
func (n *nodes) simulate(ctx context.Context, from common.Address, op wallet.Op) ([]byte, error) {
	var out []byte
	err := n.do(ctx, "eth_call "+op.Method, func(ctx context.Context, c *wallet.Client) (err error) {
		out, err = c.Simulate(ctx, from, op)
		return err
	})
	return out, err
}

func (n *nodes) view(ctx context.Context, op wallet.Op) ([]any, error) {
	var out []any
	err := n.do(ctx, "eth_call "+op.Method, func(ctx context.Context, c *wallet.Client) (err error) {
		out, err = c.View(ctx, op)
		return err
	})
	return out, err
}

func (n *nodes) pendingNonce(ctx context.Context, a common.Address) (uint64, error) {
	var nonce uint64
	err := n.do(ctx, "eth_getTransactionCount", func(ctx context.Context, c *wallet.Client) (err error) {
		nonce, err = c.PendingNonce(ctx, a)
		return err
	})
	return nonce, err
}

func (n *nodes) sendSigned(ctx context.Context, tx *types.Transaction) error {
	return n.do(ctx, "eth_sendRawTransaction", func(ctx context.Context, c *wallet.Client) error {
		return c.SendSigned(ctx, tx)
	})
}

// receipt returns the receipt of hash, or (nil, nil) while there is none.
func (n *nodes) receipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	var r *types.Receipt
	err := n.do(ctx, "eth_getTransactionReceipt", func(ctx context.Context, c *wallet.Client) (err error) {
		r, err = c.Receipt(ctx, hash)
		return err
	})
	if errors.Is(err, ethereum.NotFound) {
		return nil, nil
	}
	return r, err
}

// txKnown reports whether the node knows transaction hash (pending or applied).
func (n *nodes) txKnown(ctx context.Context, hash common.Hash) (bool, error) {
	err := n.do(ctx, "eth_getTransactionByHash", func(ctx context.Context, c *wallet.Client) error {
		_, _, err := c.TransactionByHash(ctx, hash)
		return err
	})
	if errors.Is(err, ethereum.NotFound) {
		return false, nil
	}
	return err == nil, err
}

func (n *nodes) blockNumber(ctx context.Context) (uint64, error) {
	var h uint64
	err := n.do(ctx, "eth_blockNumber", func(ctx context.Context, c *wallet.Client) (err error) {
		h, err = c.Eth().BlockNumber(ctx)
		return err
	})
	return h, err
}

func (n *nodes) filterLogs(ctx context.Context, q ethereum.FilterQuery) ([]types.Log, error) {
	var logs []types.Log
	err := n.do(ctx, "eth_getLogs", func(ctx context.Context, c *wallet.Client) (err error) {
		logs, err = c.Eth().FilterLogs(ctx, q)
		return err
	})
	return logs, err
}

// waitReceipt polls for hash's receipt until it exists or d passes; a nil
// receipt and nil error mean it did not come in time.
func (n *nodes) waitReceipt(ctx context.Context, hash common.Hash, d time.Duration) (*types.Receipt, error) {
	deadline := time.Now().Add(d)
	t := time.NewTicker(wallet.ReceiptPollInterval)
	defer t.Stop()
	for {
		r, err := n.receipt(ctx, hash)
		if r != nil || err != nil {
			return r, err
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
