package rpc

import (
	"context"
	"fmt"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
)

// DefaultPendingTxs is how many of the last admitted transactions a
// PendingFeed keeps for pending-transaction filters
// (http.max-pending-txs).
const DefaultPendingTxs = 20_000

// pendingBuffer is how many transactions a newPendingTransactions
// subscriber may fall behind before it is dropped (its subscription ends
// with an error, never stalling admission).
const pendingBuffer = 4096

// pendingTx is one admitted transaction and its sender.
type pendingTx struct {
	tx   *types.Transaction
	from common.Address
}

// PendingFeed publishes the transactions the node's pool admits, for
// eth_newPendingTransactionFilter and eth_subscribe("newPendingTransactions")
// (go-ethereum's "pending" is what enters its pool). Filters are cursors
// into a ring of the last transactions (its size is
// http.max-pending-txs), so a filter costs no memory while nobody polls
// it, and one polled too rarely misses the oldest; subscribers get each
// transaction on a channel, and one that falls pendingBuffer behind is
// dropped. Publish never blocks. Safe for concurrent use.
type PendingFeed struct {
	mu   sync.Mutex
	ring []*pendingTx
	// seq counts the transactions published: ring[i%len(ring)] holds the
	// one numbered i, for seq-len(ring) <= i < seq.
	seq  uint64
	next int
	subs map[int]chan *pendingTx
}

// NewPendingFeed returns a feed keeping the last size transactions
// (DefaultPendingTxs if size < 1).
func NewPendingFeed(size int) *PendingFeed {
	if size < 1 {
		size = DefaultPendingTxs
	}
	return &PendingFeed{ring: make([]*pendingTx, size), subs: make(map[int]chan *pendingTx)}
}

// PendingFeeder is implemented by a backend whose pool publishes the
// transactions it admits; without it, nothing is ever pending.
type PendingFeeder interface {
	PendingFeed() *PendingFeed
}

// pendingFeedOf returns b's feed, or an empty one of its own.
func pendingFeedOf(b Backend) *PendingFeed {
	if pf, ok := b.(PendingFeeder); ok && pf.PendingFeed() != nil {
		return pf.PendingFeed()
	}
	return NewPendingFeed(1)
}

// Publish records tx, admitted from from, and sends it to every
// subscriber, dropping those that are full.
func (f *PendingFeed) Publish(tx *types.Transaction, from common.Address) {
	p := &pendingTx{tx: tx, from: from}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ring[f.seq%uint64(len(f.ring))] = p
	f.seq++
	for id, ch := range f.subs {
		select {
		case ch <- p:
		default:
			delete(f.subs, id)
			close(ch)
		}
	}
}

// cursor is the number of the next transaction to be published.
func (f *PendingFeed) cursor() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq
}

// since returns the transactions published from number cursor on that the
// ring still holds, and the cursor after them.
func (f *PendingFeed) since(cursor uint64) ([]*pendingTx, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if oldest := f.seq - min(f.seq, uint64(len(f.ring))); cursor < oldest {
		cursor = oldest
	}
	out := make([]*pendingTx, 0, f.seq-min(cursor, f.seq))
	for i := cursor; i < f.seq; i++ {
		out = append(out, f.ring[i%uint64(len(f.ring))])
	}
	return out, f.seq
}

// subscribe returns a channel of the transactions published from now on
// and the function that ends the subscription; the channel is closed when
// the subscriber is dropped or unsubscribes.
func (f *PendingFeed) subscribe() (<-chan *pendingTx, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	f.next++
	ch := make(chan *pendingTx, pendingBuffer)
	f.subs[id] = ch
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if ch, ok := f.subs[id]; ok {
			delete(f.subs, id)
			close(ch)
		}
	}
}

// pendingJSON is what a pending-transaction filter or subscription gives
// for p: its hash, or with fullTx the transaction as
// eth_getTransactionByHash shows a pending one.
func pendingJSON(p *pendingTx, fullTx bool) any {
	if fullTx {
		return newTxJSON(p.tx, p.from, nil, 0)
	}
	return p.tx.Hash()
}

// NewPendingTransactionFilter serves eth_newPendingTransactionFilter:
// eth_getFilterChanges returns the hashes (with fullTx, the transactions)
// this node admitted since the last poll, at most http.max-pending-txs of
// them (a filter polled less often misses the oldest). It counts toward
// the filter bounds and times out as the other filters do.
func (api *FilterAPI) NewPendingTransactionFilter(ctx context.Context, fullTx *bool) (gethrpc.ID, error) {
	if err := api.halted(); err != nil {
		return "", err
	}
	return api.install(ctx, &installedFilter{pending: true, fullTx: fullTx != nil && *fullTx, next: api.pending.cursor()})
}

// pendingChanges returns what f has not reported yet and advances it,
// no more than the request's reply budget holds (the rest comes with the
// next poll). The caller holds f.mu.
func (api *FilterAPI) pendingChanges(ctx context.Context, f *installedFilter) ([]any, error) {
	txs, next := api.pending.since(f.next)
	perItem := 69 // a quoted hash and a comma
	if f.fullTx {
		perItem = pendingTxJSONSize
	}
	if n := max(1, api.heavy.budget(ctx)/perItem); len(txs) > n {
		txs, next = txs[:n], next-uint64(len(txs)-n)
	}
	if err := api.heavy.charge(ctx, "eth_getFilterChanges", 2+perItem*len(txs)); err != nil {
		return nil, err
	}
	f.next = next
	out := make([]any, len(txs))
	for i, p := range txs {
		out[i] = pendingJSON(p, f.fullTx)
	}
	return out, nil
}

// pendingTxJSONSize bounds the JSON of a pending transaction: its fields
// take under 1 KiB, and calldata is at most chain.MaxCalldata bytes, two
// hex digits each.
const pendingTxJSONSize = 1024 + 2*chain.MaxCalldata

// NewPendingTransactions serves eth_subscribe("newPendingTransactions")
// over WebSocket: the hash (with fullTx, the transaction) of each
// transaction this node admits from now on. It counts toward the
// client's subscription quota and http.max-subscriptions, and ends for a
// client that falls pendingBuffer transactions behind.
func (api *FilterAPI) NewPendingTransactions(ctx context.Context, fullTx *bool) (*gethrpc.Subscription, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	notifier, ok := gethrpc.NotifierFromContext(ctx)
	if !ok {
		return nil, gethrpc.ErrNotificationsUnsupported
	}
	release, err := api.subs.acquire(ctx)
	if err != nil {
		return nil, err
	}
	heads := api.b.Heads()
	unreserve, err := heads.Reserve()
	if err != nil {
		release()
		countRefusal(api.subs.refusals(), "http.max-subscriptions")
		return nil, &Error{Code: CodeLimitExceeded, Msg: fmt.Sprintf("%v: the node serves at most %d (http.max-subscriptions)", err, heads.max)}
	}
	full := fullTx != nil && *fullTx
	ch, unsubscribe := api.pending.subscribe()
	sub := notifier.CreateSubscription()
	go func() {
		defer release()
		defer unreserve()
		defer unsubscribe()
		for {
			select {
			case p, ok := <-ch:
				if !ok {
					return // dropped: too slow
				}
				if err := notifier.Notify(sub.ID, pendingJSON(p, full)); err != nil {
					return
				}
			case <-sub.Err():
				return
			}
		}
	}()
	return sub, nil
}
