package rpc

import (
	"context"
	"encoding/json"
	"math/big"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
)

// pendingChain is a filterChain whose pool publishes to a PendingFeed.
type pendingChain struct {
	*filterChain
	feed *PendingFeed
}

func (c *pendingChain) PendingFeed() *PendingFeed { return c.feed }

// admit publishes n new transfers of account 0 as the pool would.
func (c *pendingChain) admit(n int) []*types.Transaction {
	txs := make([]*types.Transaction, n)
	for i := range txs {
		txs[i] = c.call(0, 0, "transfer", c.addr(1), big.NewInt(1))
		c.feed.Publish(txs[i], c.addr(0))
	}
	return txs
}

func hashesOf(txs []*types.Transaction) []common.Hash {
	out := make([]common.Hash, len(txs))
	for i, tx := range txs {
		out[i] = tx.Hash()
	}
	return out
}

// servePending serves c and returns an HTTP and a WebSocket client and
// the WebSocket URL.
func servePending(t *testing.T, c *pendingChain, limits Limits) (*gethrpc.Client, *gethrpc.Client, string) {
	t.Helper()
	srv, err := NewServer(c, limits, "test")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	hc, err := gethrpc.Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http")
	wc, err := gethrpc.Dial(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Close(); wc.Close(); ts.Close(); srv.Stop() })
	return hc, wc, wsURL
}

// A pending-transaction filter returns what was admitted since the last
// poll, in order, once; with fullTx the transactions as
// eth_getTransactionByHash shows pending ones. A filter polled less often
// than the feed keeps gets the newest; a poll over the reply budget gets
// what fits and the rest next time.
func TestPendingTransactionFilter(t *testing.T) {
	c := &pendingChain{filterChain: newFilterChain(t), feed: NewPendingFeed(4)}
	limits := DefaultLimits
	limits.MaxResponseBytes = 3 * pendingTxJSONSize
	hc, _, _ := servePending(t, c, limits)
	c.admit(2) // before the filter: never reported
	var id, fullID string
	if err := hc.Call(&id, "eth_newPendingTransactionFilter"); err != nil {
		t.Fatal(err)
	}
	if err := hc.Call(&fullID, "eth_newPendingTransactionFilter", true); err != nil {
		t.Fatal(err)
	}
	poll := func(id string) json.RawMessage {
		t.Helper()
		var res json.RawMessage
		if err := hc.Call(&res, "eth_getFilterChanges", id); err != nil {
			t.Fatal(err)
		}
		return res
	}
	hashes := func(id string) []common.Hash {
		t.Helper()
		var hs []common.Hash
		if err := json.Unmarshal(poll(id), &hs); err != nil {
			t.Fatal(err)
		}
		return hs
	}
	if got := hashes(id); len(got) != 0 {
		t.Fatalf("fresh filter: %v", got)
	}
	txs := c.admit(3)
	if got := hashes(id); !reflect.DeepEqual(got, hashesOf(txs)) {
		t.Fatalf("poll: %v, want %v", got, hashesOf(txs))
	}
	if got := hashes(id); len(got) != 0 {
		t.Fatalf("second poll: %v, want none", got)
	}
	txs = c.admit(6) // the feed keeps 4
	if got := hashes(id); !reflect.DeepEqual(got, hashesOf(txs[2:])) {
		t.Fatalf("poll after the feed wrapped: %v, want the newest 4", got)
	}

	// The full filter saw 9 of which the feed keeps 4; its reply budget
	// holds 3: it gets 3, then the last.
	var full []map[string]any
	if err := json.Unmarshal(poll(fullID), &full); err != nil {
		t.Fatal(err)
	}
	if len(full) != 3 {
		t.Fatalf("full poll within the budget: %d transactions, want 3", len(full))
	}
	for i, tx := range full {
		if tx["hash"] != txs[2+i].Hash().Hex() || tx["blockHash"] != nil || !strings.EqualFold(tx["from"].(string), c.addr(0).Hex()) {
			t.Fatalf("full transaction %d: %v", i, tx)
		}
	}
	if err := json.Unmarshal(poll(fullID), &full); err != nil || len(full) != 1 || full[0]["hash"] != txs[5].Hash().Hex() {
		t.Fatalf("the rest: %v, %v", full, err)
	}

	var res json.RawMessage
	wantRPCError(t, "eth_getFilterLogs of a pending filter", hc.Call(&res, "eth_getFilterLogs", id), CodeServerError, `^filter not found$`)
	wantRPCError(t, "fullTx not a bool", hc.Call(&res, "eth_newPendingTransactionFilter", "yes"), CodeInvalidParams, `invalid argument 0`)
	wantRPCError(t, "too many arguments", hc.Call(&res, "eth_newPendingTransactionFilter", true, 1), CodeInvalidParams, `too many arguments`)
	var removed bool
	if err := hc.Call(&removed, "eth_uninstallFilter", id); err != nil || !removed {
		t.Fatalf("uninstall: %v %v", removed, err)
	}
	wantRPCError(t, "a removed filter", hc.Call(&res, "eth_getFilterChanges", id), CodeServerError, `^filter not found$`)
}

// Pending-transaction filters count toward the filter bounds.
func TestPendingFiltersBounded(t *testing.T) {
	c := &pendingChain{filterChain: newFilterChain(t), feed: NewPendingFeed(4)}
	limits := DefaultLimits
	limits.MaxFilters, limits.MaxFiltersPerIP = 2, 2
	hc, _, _ := servePending(t, c, limits)
	var id string
	for range 2 {
		if err := hc.Call(&id, "eth_newPendingTransactionFilter"); err != nil {
			t.Fatal(err)
		}
	}
	wantRPCError(t, "one filter too many", hc.Call(&id, "eth_newPendingTransactionFilter"), CodeLimitExceeded, `too many installed filters`)
}

// eth_subscribe("newPendingTransactions") notifies each admitted
// transaction's hash (with true, the transaction), within the
// per-connection quota and the node-wide bound it shares with newHeads.
func TestNewPendingTransactionsSubscription(t *testing.T) {
	c := &pendingChain{filterChain: newFilterChain(t), feed: NewPendingFeed(4)}
	c.heads = NewHeadFeed(3)
	limits := DefaultLimits
	limits.MaxSubscriptionsPerConn = 2
	hc, wc, wsURL := servePending(t, c, limits)
	ctx := context.Background()
	hashCh := make(chan common.Hash, 8)
	sub, err := wc.EthSubscribe(ctx, hashCh, "newPendingTransactions")
	if err != nil {
		t.Fatal(err)
	}
	fullCh := make(chan map[string]any, 8)
	fullSub, err := wc.EthSubscribe(ctx, fullCh, "newPendingTransactions", true)
	if err != nil {
		t.Fatal(err)
	}
	txs := c.admit(3)
	for i, tx := range txs {
		select {
		case h := <-hashCh:
			if h != tx.Hash() {
				t.Fatalf("notification %d: %s, want %s", i, h, tx.Hash())
			}
		case err := <-sub.Err():
			t.Fatal(err)
		case <-time.After(5 * time.Second):
			t.Fatalf("no notification %d", i)
		}
		select {
		case m := <-fullCh:
			if m["hash"] != tx.Hash().Hex() || m["blockHash"] != nil {
				t.Fatalf("full notification %d: %v", i, m)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no full notification %d", i)
		}
	}
	// The connection's quota is taken.
	_, err = wc.EthSubscribe(ctx, make(chan common.Hash), "newPendingTransactions")
	wantRPCError(t, "third subscription on the connection", err, CodeLimitExceeded, `http.max-subscriptions-per-connection`)
	// Two pending subscriptions and one newHeads fill the node's bound of 3.
	other, err := gethrpc.Dial(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.EthSubscribe(ctx, make(chan any, 8), "newHeads"); err != nil {
		t.Fatal(err)
	}
	_, err = other.EthSubscribe(ctx, make(chan common.Hash), "newPendingTransactions")
	wantRPCError(t, "one subscription over http.max-subscriptions", err, CodeLimitExceeded, `too many subscriptions: the node serves at most 3 \(http.max-subscriptions\)`)
	// Unsubscribing gives the place back.
	fullSub.Unsubscribe()
	deadline := time.Now().Add(5 * time.Second)
	for c.heads.Len() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers after unsubscribing, want 2", c.heads.Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := other.EthSubscribe(ctx, make(chan common.Hash, 8), "newPendingTransactions"); err != nil {
		t.Fatalf("after a place was freed: %v", err)
	}
	_, err = other.EthSubscribe(ctx, make(chan common.Hash), "newPendingTransactions", "yes")
	wantRPCError(t, "fullTx not a bool", err, CodeInvalidParams, `invalid argument 1`)
	// Over HTTP there are no notifications.
	var res json.RawMessage
	wantRPCError(t, "subscription over HTTP", hc.Call(&res, "eth_subscribe", "newPendingTransactions"), -32601, `notifications not supported`)
}
