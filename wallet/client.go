package wallet

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
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

// Client talks JSON-RPC to one Tally node. It wraps go-ethereum's ethclient
// because the node serves the Ethereum API, and keeps the raw rpc.Client for
// batches. It is safe for concurrent use.
type Client struct {
	rpc *rpc.Client
	eth *ethclient.Client

	mu      sync.Mutex
	chainID *big.Int // cached: a node's chain id never changes
}

// Dial connects to a node's JSON-RPC endpoint (http://, https://, ws:// or
// wss://). For HTTP no request is made until the first call.
func Dial(ctx context.Context, url string) (*Client, error) {
	rc, err := rpc.DialContext(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	return &Client{rpc: rc, eth: ethclient.NewClient(rc)}, nil
}

// Close releases the connection.
func (c *Client) Close() { c.rpc.Close() }

// Eth returns the underlying ethclient for calls this type does not wrap.
func (c *Client) Eth() *ethclient.Client { return c.eth }

// RPC returns the underlying raw JSON-RPC client.
func (c *Client) RPC() *rpc.Client { return c.rpc }

// ChainID returns the node's EIP-155 chain id, asked once and cached.
func (c *Client) ChainID(ctx context.Context) (*big.Int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chainID == nil {
		id, err := c.eth.ChainID(ctx)
		if err != nil {
			return nil, fmt.Errorf("chain id: %w", err)
		}
		c.chainID = id
	}
	return new(big.Int).Set(c.chainID), nil
}

// Balance returns addr's native balance in base units in the latest state.
func (c *Client) Balance(ctx context.Context, addr common.Address) (*big.Int, error) {
	b, err := c.eth.BalanceAt(ctx, addr, nil)
	if err != nil {
		return nil, fmt.Errorf("balance of %s: %w", addr, err)
	}
	return b, nil
}

// PendingNonce returns the nonce addr's next transaction must carry,
// counting transactions the node admitted but has not yet applied.
func (c *Client) PendingNonce(ctx context.Context, addr common.Address) (uint64, error) {
	n, err := c.eth.PendingNonceAt(ctx, addr)
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
// error means the node admitted it; the node's refusal ("nonce too low",
// "insufficient funds", ...) is returned as is, wrapped with the hash.
func (c *Client) SendSigned(ctx context.Context, tx *types.Transaction) error {
	if err := c.eth.SendTransaction(ctx, tx); err != nil {
		return fmt.Errorf("send tx %s: %w", tx.Hash(), err)
	}
	return nil
}

// SendRawBatch submits signed transactions in their canonical encoding as
// ONE JSON-RPC batch of eth_sendRawTransaction calls, which is how load tools
// reach the node's throughput (one HTTP round trip, senders recovered in
// parallel by the node). It returns per item the hash the node reported and
// the node's error, and a non-nil error only when the batch as a whole
// failed (transport, or a batch larger than the node's limit, 2,000 items by
// default). An empty batch is not sent.
func (c *Client) SendRawBatch(ctx context.Context, raws [][]byte) ([]common.Hash, []error, error) {
	if len(raws) == 0 {
		return nil, nil, nil
	}
	hashes := make([]common.Hash, len(raws))
	elems := make([]rpc.BatchElem, len(raws))
	for i, raw := range raws {
		elems[i] = rpc.BatchElem{
			Method: "eth_sendRawTransaction",
			Args:   []any{hexutil.Bytes(raw)},
			Result: &hashes[i],
		}
	}
	if err := c.rpc.BatchCallContext(ctx, elems); err != nil {
		return nil, nil, fmt.Errorf("send batch of %d: %w", len(raws), err)
	}
	errs := make([]error, len(raws))
	for i := range elems {
		errs[i] = elems[i].Error
	}
	return hashes, errs, nil
}

// WaitReceipt polls for the receipt of hash every ReceiptPollInterval until
// it exists or ctx ends. A receipt in Tally is final (no forks), so the
// transfer is settled when this returns; check Status, since a transaction
// that fails at execution is included with status 0. An error other than
// "not found" from the node ends the wait.
func (c *Client) WaitReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	t := time.NewTicker(ReceiptPollInterval)
	defer t.Stop()
	for {
		r, err := c.eth.TransactionReceipt(ctx, hash)
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
	r, err := c.eth.TransactionReceipt(ctx, hash)
	if err != nil {
		return nil, fmt.Errorf("receipt of %s: %w", hash, err)
	}
	return r, nil
}

// BlockByNumber returns the block at number, or the latest block for nil.
// The error wraps ErrNotFound for a block not yet committed.
func (c *Client) BlockByNumber(ctx context.Context, number *big.Int) (*types.Block, error) {
	b, err := c.eth.BlockByNumber(ctx, number)
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
	tx, pending, err := c.eth.TransactionByHash(ctx, hash)
	if err != nil {
		return nil, false, fmt.Errorf("transaction %s: %w", hash, err)
	}
	return tx, pending, nil
}
