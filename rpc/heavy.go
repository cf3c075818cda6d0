package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
)

// CodeResponseTooLarge is go-ethereum's code for a reply over its bound:
// -32003 "response too large", what its server answers the calls of a
// batch past BatchResponseMaxSize.
const CodeResponseTooLarge = -32003

// heavyMethods are the reads whose cost (blocks read from disk, reply
// bytes) a client chooses; heavyGate bounds how many run at once. Each
// starts with heavyGate.enter; TestHeavyMethodsAreGated checks the list
// against the code.
var heavyMethods = []string{
	"tally_getRawBlocks", "tally_getAccountHistory", "tally_getProof", "tally_stateDigest",
	"eth_getLogs", "eth_getFilterLogs", "eth_getFilterChanges",
	"eth_getBlockByNumber", "eth_getBlockByHash", // with full transactions only
	"eth_getBlockReceipts",
	"tally_getRecentTransactions", "tally_findByReference",
}

// heavyGate bounds the heavy reads running at once (Limits.MaxHeavyReads)
// and shares them fairly between clients: one client address holds at
// most MaxHeavyReadsPerIP of them, and a freed slot goes to the waiting
// client that holds the fewest (the longest waiting first among equals).
// A read that finds no slot for its client waits for one, rather than
// being refused at once, so that two well-behaved clients behind one
// address (two bridges on one host) are both served; the wait is bounded
// in length (MaxHeavyReadQueue, MaxHeavyReadQueuePerIP) and in time
// (HeavyReadWait), and past either bound the read is refused with -32005,
// which client libraries treat as "back off and retry". So a client
// flooding heavy reads fills its own share and its own queue, and another
// client is served at the next freed slot.
//
// The gate also bounds the reply bytes heavy reads add to one request or
// batch (Limits.MaxBatchResponseBytes) through the request's hold.
type heavyGate struct {
	max, perIP         int
	maxQueue, queuePer int
	wait               time.Duration
	maxReply, maxCall  int
	onRefused          func(bound string)

	mu      sync.Mutex
	running int
	held    map[netip.Prefix]int            // slots by client
	queues  map[netip.Prefix][]*heavyWaiter // waiting reads by client, in arrival order
	queued  int
	seq     uint64
	holds   map[<-chan struct{}]*requestHold // holds of calls not over HTTP, by their context's Done
}

// heavyWaiter is a read waiting for a slot; ready is closed once granted.
type heavyWaiter struct {
	client  netip.Prefix
	seq     uint64
	ready   chan struct{}
	granted bool
}

func newHeavyGate(l Limits) *heavyGate {
	l = l.withDefaults()
	return &heavyGate{max: l.MaxHeavyReads, perIP: min(l.MaxHeavyReadsPerIP, l.MaxHeavyReads),
		maxQueue: l.MaxHeavyReadQueue, queuePer: min(l.MaxHeavyReadQueuePerIP, l.MaxHeavyReadQueue), wait: l.HeavyReadWait,
		maxReply: l.MaxBatchResponseBytes, maxCall: l.MaxResponseBytes, onRefused: l.OnRefused,
		held: make(map[netip.Prefix]int), queues: make(map[netip.Prefix][]*heavyWaiter), holds: make(map[<-chan struct{}]*requestHold)}
}

// requestHold is a request's slot in the gate and what is left of its
// reply budget. Over HTTP, ServeHTTP puts it in the request's context
// (which go-ethereum's server passes to every call of the request, batched
// or not) and gives the slot back once the reply is written. Over
// WebSocket, go-ethereum runs each batch (and each single call) under a
// context of its own that it cancels once the reply is written; calls of
// one batch share that context's Done channel, which finds their hold
// (heavyGate.hold), released when the context ends and no heavy read
// under it is still running. Either way a slot is held until the reply's
// memory is freed, which is what the slot bounds.
type requestHold struct {
	mu        sync.Mutex
	client    netip.Prefix
	held      bool
	remaining int
	// For holds found by context: heavy reads running under it, and
	// whether its context has ended.
	active int
	ended  bool
}

type requestHoldKey struct{}

// withRequestHold returns ctx carrying a fresh hold and the function that
// releases it, for ServeHTTP to call once the reply is written.
func (g *heavyGate) withRequestHold(ctx context.Context) (context.Context, func()) {
	h := &requestHold{remaining: g.maxReply}
	return context.WithValue(ctx, requestHoldKey{}, h), func() { g.releaseHold(h) }
}

func (g *heavyGate) releaseHold(h *requestHold) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held {
		h.held = false
		g.release(h.client)
	}
}

// hold finds ctx's hold: the HTTP request's, or that of the batch or
// single call go-ethereum runs ctx under (made on the first heavy read
// and forgotten once ctx ends). A context that can never end (an
// in-process call) has none.
func (g *heavyGate) hold(ctx context.Context) *requestHold {
	if h, ok := ctx.Value(requestHoldKey{}).(*requestHold); ok {
		return h
	}
	done := ctx.Done()
	if done == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if h, ok := g.holds[done]; ok {
		return h
	}
	h := &requestHold{remaining: g.maxReply}
	g.holds[done] = h
	context.AfterFunc(ctx, func() {
		g.mu.Lock()
		delete(g.holds, done)
		g.mu.Unlock()
		h.mu.Lock()
		h.ended = true
		free := h.active == 0
		h.mu.Unlock()
		if free {
			g.releaseHold(h)
		}
	})
	return h
}

// enter takes a slot for a heavy read of ctx's client, waiting for one as
// the gate allows, or refuses it; done ends the read (the slot itself is
// kept by the read's hold until its reply is written). A nil gate (an API
// built without a server) admits everything.
func (g *heavyGate) enter(ctx context.Context, method string) (done func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	client, _ := clientKey(gethrpc.PeerInfoFromContext(ctx).RemoteAddr)
	h := g.hold(ctx)
	if h == nil {
		if err := g.acquire(ctx, client, method); err != nil {
			return nil, err
		}
		return func() { g.release(client) }, nil
	}
	// The calls of one request or batch run one after another, so the
	// hold's lock is not contended while a read waits here.
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.held {
		if err := g.acquire(ctx, client, method); err != nil {
			return nil, err
		}
		h.held, h.client = true, client
	}
	if _, overHTTP := ctx.Value(requestHoldKey{}).(*requestHold); overHTTP {
		return func() {}, nil
	}
	h.active++
	return func() {
		h.mu.Lock()
		h.active--
		free := h.ended && h.active == 0
		h.mu.Unlock()
		if free {
			g.releaseHold(h)
		}
	}, nil
}

// acquire takes a slot for client: at once when one is free and the
// client is within its share and has nobody waiting before it; otherwise
// after waiting in the client's queue, until a slot is granted to it,
// HeavyReadWait passes or ctx ends.
func (g *heavyGate) acquire(ctx context.Context, client netip.Prefix, method string) error {
	g.mu.Lock()
	if g.running < g.max && g.held[client] < g.perIP && len(g.queues[client]) == 0 {
		g.take(client)
		g.mu.Unlock()
		return nil
	}
	switch {
	case len(g.queues[client]) >= g.queuePer:
		g.mu.Unlock()
		return g.busy("http.max-heavy-read-queue-per-ip", fmt.Sprintf("%d heavy reads of client %s are waiting already", g.queuePer, clientString(client)), method)
	case g.queued >= g.maxQueue:
		g.mu.Unlock()
		return g.busy("http.max-heavy-read-queue", fmt.Sprintf("%d heavy reads are waiting already", g.maxQueue), method)
	}
	g.seq++
	w := &heavyWaiter{client: client, seq: g.seq, ready: make(chan struct{})}
	g.queues[client] = append(g.queues[client], w)
	g.queued++
	g.mu.Unlock()

	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-timer.C:
		err = g.busy("http.heavy-read-wait", fmt.Sprintf("no heavy-read slot within %v", g.wait), method)
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.granted {
		return nil // granted as the wait ended: take it
	}
	q := g.queues[client]
	for i, x := range q {
		if x == w {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(g.queues, client)
	} else {
		g.queues[client] = q
	}
	g.queued--
	return err
}

// take gives client a slot; g.mu is held.
func (g *heavyGate) take(client netip.Prefix) {
	g.running++
	g.held[client]++
}

// release gives client's slot back and grants the freed slots to the
// waiting clients that hold the fewest.
func (g *heavyGate) release(client netip.Prefix) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.held[client]--; g.held[client] <= 0 {
		delete(g.held, client)
	}
	for g.running < g.max {
		var next []*heavyWaiter
		var nextClient netip.Prefix
		for c, q := range g.queues {
			if g.held[c] >= g.perIP {
				continue
			}
			if next == nil || g.held[c] < g.held[nextClient] || (g.held[c] == g.held[nextClient] && q[0].seq < next[0].seq) {
				next, nextClient = q, c
			}
		}
		if next == nil {
			return
		}
		w := next[0]
		if len(next) == 1 {
			delete(g.queues, nextClient)
		} else {
			g.queues[nextClient] = next[1:]
		}
		g.queued--
		g.take(nextClient)
		w.granted = true
		close(w.ready)
	}
}

func (g *heavyGate) busy(bound, why, method string) error {
	countRefusal(g.onRefused, bound)
	return &Error{Code: CodeLimitExceeded, Msg: fmt.Sprintf("server busy: %s (%s); retry %s shortly", why, bound, method)}
}

// budget is how many reply bytes the next heavy read may produce: one
// call's bound, and no more than its request or batch has left.
func (g *heavyGate) budget(ctx context.Context) int {
	if g == nil {
		return DefaultLimits.MaxResponseBytes
	}
	n := g.maxCall
	if h := g.hold(ctx); h != nil {
		h.mu.Lock()
		n = min(n, h.remaining)
		h.mu.Unlock()
	}
	return n
}

// blockReply is blockJSON with the reply's bytes charged to its
// request's budget (charge): a block's transactions, full or as hashes,
// are the largest reply a client can ask for by a single number, so a
// batch of block reads stays within the batch reply bound too.
func (api *EthAPI) blockReply(ctx context.Context, method string, num uint64, full bool) (map[string]any, error) {
	b, err := api.blockJSON(num, full)
	if err != nil || b == nil {
		return b, err
	}
	var size int
	if hashes, ok := b["transactions"].([]common.Hash); ok && !full {
		size = blockHeaderJSON + txHashJSON*len(hashes)
	} else {
		enc, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", num, err)
		}
		size = len(enc)
	}
	if err := api.heavy.charge(ctx, method, size); err != nil {
		return nil, err
	}
	return b, nil
}

// blockHeaderJSON bounds a block's JSON without its transactions (the
// header's fields, names and hex), txHashJSON one transaction hash in it.
const blockHeaderJSON, txHashJSON = 2048, 69

// charge takes a heavy read's reply bytes from its request's budget,
// refusing the read (-32003, go-ethereum's "response too large") when
// the request's replies would pass MaxBatchResponseBytes.
func (g *heavyGate) charge(ctx context.Context, method string, n int) error {
	if g == nil {
		return nil
	}
	h := g.hold(ctx)
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// No read adds more than one call's bound, and none passes what the
	// request has left (batchCut relies on both); but a request that has
	// spent nothing yet may carry one read over them: a single stored
	// block larger than the bound is still sent whole.
	if (n > h.remaining || n > g.maxCall) && h.remaining < g.maxReply {
		countRefusal(g.onRefused, "http.max-batch-response-bytes")
		if n <= h.remaining {
			return &Error{Code: CodeResponseTooLarge, Msg: fmt.Sprintf("response too large: %s would add %d bytes, more than one call of a batch may (http.max-response-bytes: %d); send it alone",
				method, n, g.maxCall)}
		}
		return &Error{Code: CodeResponseTooLarge, Msg: fmt.Sprintf("response too large: %s would add %d bytes to a reply that has %d of its %d left (http.max-batch-response-bytes); split the batch",
			method, n, h.remaining, g.maxReply)}
	}
	h.remaining = max(0, h.remaining-n)
	return nil
}

// waiting reports how many heavy reads wait for a slot (for tests).
func (g *heavyGate) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.queued
}
