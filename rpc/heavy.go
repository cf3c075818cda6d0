package rpc

import (
	"context"
	"fmt"
	"sync"
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
	"tally_getRawBlocks", "tally_getAccountHistory", "tally_getProof",
	"eth_getLogs", "eth_getFilterLogs", "eth_getFilterChanges",
	"eth_getBlockByNumber", "eth_getBlockByHash", // with full transactions only
}

// heavyGate bounds the heavy reads running at once (Limits.MaxHeavyReads)
// and the reply bytes they add to one HTTP request
// (Limits.MaxBatchResponseBytes). A call over the bound is refused at once
// with -32005, which client libraries treat as "back off and retry":
// waiting would only pile up goroutines and connections behind the
// clients that hold the slots.
type heavyGate struct {
	slots     chan struct{}
	maxReply  int // a request's reply bytes from heavy reads
	maxCall   int // one heavy read's reply bytes
	onRefused func(bound string)
}

func newHeavyGate(l Limits) *heavyGate {
	l = l.withDefaults()
	return &heavyGate{slots: make(chan struct{}, l.MaxHeavyReads), maxReply: l.MaxBatchResponseBytes, maxCall: l.MaxResponseBytes, onRefused: l.OnRefused}
}

// requestHold is an HTTP request's slot in the gate and what is left of
// its reply budget. ServeHTTP puts it in the request's context (which
// go-ethereum's server passes to every call of the request, batched or
// not) and gives the slot back once the reply is written: the reply's
// memory is held until then, so that is what the slot bounds.
type requestHold struct {
	mu        sync.Mutex
	held      bool
	remaining int
}

type requestHoldKey struct{}

// withRequestHold returns ctx carrying a fresh hold and the function that
// releases it, for ServeHTTP to call once the reply is written.
func (g *heavyGate) withRequestHold(ctx context.Context) (context.Context, func()) {
	h := &requestHold{remaining: g.maxReply}
	return context.WithValue(ctx, requestHoldKey{}, h), func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.held {
			h.held = false
			<-g.slots
		}
	}
}

// enter takes a slot for a heavy read, or refuses it; done gives the slot
// back (over HTTP, the request's hold keeps it until the reply is
// written). A nil gate (an API built without a server) admits everything.
func (g *heavyGate) enter(ctx context.Context, method string) (done func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	if h, ok := ctx.Value(requestHoldKey{}).(*requestHold); ok {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.held {
			return func() {}, nil
		}
		if !g.tryTake() {
			return nil, g.busy(method)
		}
		h.held = true
		return func() {}, nil
	}
	if !g.tryTake() {
		return nil, g.busy(method)
	}
	return func() { <-g.slots }, nil
}

func (g *heavyGate) tryTake() bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (g *heavyGate) busy(method string) error {
	countRefusal(g.onRefused, "http.max-heavy-reads")
	return &Error{Code: CodeLimitExceeded, Msg: fmt.Sprintf("server busy: %d heavy reads are running (http.max-heavy-reads); retry %s shortly", cap(g.slots), method)}
}

// budget is how many reply bytes the next heavy read may produce: one
// call's bound, and over HTTP no more than the request has left.
func (g *heavyGate) budget(ctx context.Context) int {
	if g == nil {
		return DefaultLimits.MaxResponseBytes
	}
	n := g.maxCall
	if h, ok := ctx.Value(requestHoldKey{}).(*requestHold); ok {
		h.mu.Lock()
		n = min(n, h.remaining)
		h.mu.Unlock()
	}
	return n
}

// charge takes a heavy read's reply bytes from its request's budget,
// refusing the read (-32003, go-ethereum's "response too large") when
// the request's replies would pass MaxBatchResponseBytes.
func (g *heavyGate) charge(ctx context.Context, method string, n int) error {
	if g == nil {
		return nil
	}
	h, ok := ctx.Value(requestHoldKey{}).(*requestHold)
	if !ok {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// A request that has spent nothing yet may carry one read over its
	// budget: a single stored block larger than it is still sent whole.
	if n > h.remaining && h.remaining < g.maxReply {
		countRefusal(g.onRefused, "http.max-batch-response-bytes")
		return &Error{Code: CodeResponseTooLarge, Msg: fmt.Sprintf("response too large: %s would add %d bytes to a reply that has %d of its %d left (http.max-batch-response-bytes); split the batch",
			method, n, h.remaining, g.maxReply)}
	}
	h.remaining = max(0, h.remaining-n)
	return nil
}
