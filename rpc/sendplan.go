package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
)

// A mixed batch, eth_sendRawTransaction calls among calls of other
// methods, is answered by go-ethereum's server, call after call in the
// batch's order, with its own rules for ids, notifications, malformed
// calls, the batch's time and its reply's size. Its transactions still go
// through the admission pipeline in groups: each run of consecutive
// eth_sendRawTransaction calls is admitted as one group (admitCalls: one
// decode, one parallel recovery, one journal sync and replication round,
// or one forward to the leader) when go-ethereum reaches the run's first
// call, and each call of the run is answered from the group's verdicts
// when go-ethereum reaches it. A call of another method between two
// sends ends a run, so every call sees the pool as go-ethereum's
// one-by-one order leaves it: a read between two sends sees the first
// and not the second. The plan rides in the request's context, which
// go-ethereum hands each call of the batch.
//
// The plan is only a shortcut: a call go-ethereum dispatches that is not
// the plan's next one (the plan read the batch otherwise than
// go-ethereum did) ends it, and that call and the rest take the
// per-call path, so a wrong plan costs speed, never a verdict. What a
// plan cannot undo: once a group is admitted, go-ethereum may still stop
// the batch before answering all of it (the batch's time ran out, or the
// replies passed http.max-batch-response-bytes − http.max-response-bytes
// before the run ended); the calls it did not reach are answered with
// that error although their transactions were admitted, as a call cut by
// the timeout after its admission already is. A client re-sending them is
// answered "already known".

// sendPlan is the eth_sendRawTransaction calls of one batch, in order.
type sendPlan struct {
	s          *Server
	remoteAddr string

	// shared: the plan is one of a WebSocket connection's (wsPlans),
	// whose other messages' sends meet it too; another send does not end
	// it.
	shared bool

	mu     sync.Mutex
	calls  []plannedSend
	next   int  // the call go-ethereum should dispatch next
	broken bool // go-ethereum dispatched another: the plan is off
}

// plannedSend is one planned call and, once its run is admitted, its
// answer.
type plannedSend struct {
	raw  []byte
	run  int
	done bool
	hash common.Hash
	err  error
}

type sendPlanKey struct{}

// planSends reads body, a JSON-RPC batch, for runs of consecutive
// eth_sendRawTransaction calls that go-ethereum will dispatch with one
// argument; nil when no run has two calls or more (a lone send takes the
// per-call path, the same pipeline for one transaction) or when the body
// is not a batch of objects encoding/json reads.
func (s *Server) planSends(body []byte, remoteAddr string) *sendPlan {
	var msgs []struct {
		Version string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	if json.Unmarshal(body, &msgs) != nil || len(msgs) == 0 || len(msgs) > s.limits.MaxBatchItems {
		return nil
	}
	p := &sendPlan{s: s, remoteAddr: remoteAddr}
	run, inRun, longest, length := 0, false, 0, 0
	for _, m := range msgs {
		raw, ok := dispatchedSend(m.Version, m.ID, m.Method, m.Params)
		if !ok {
			inRun = false
			continue
		}
		if !inRun {
			run, inRun, length = run+1, true, 0
		}
		length++
		longest = max(longest, length)
		p.calls = append(p.calls, plannedSend{raw: raw, run: run})
	}
	if longest < 2 {
		return nil
	}
	return p
}

// dispatchedSend reports whether go-ethereum dispatches a batch element
// of these fields to EthAPI.SendRawTransaction, and with what bytes: a
// call or notification of version "2.0" (an id that is not an object or
// an array, or none), the method, and params a JSON array of one element
// that decodes as hexutil.Bytes.
func dispatchedSend(version string, id json.RawMessage, method string, params json.RawMessage) ([]byte, bool) {
	if version != "2.0" || method != "eth_sendRawTransaction" {
		return nil, false
	}
	if len(id) > 0 && (id[0] == '{' || id[0] == '[') {
		return nil, false
	}
	var args []json.RawMessage
	if firstByte(params) != '[' || json.Unmarshal(params, &args) != nil || len(args) != 1 || string(args[0]) == "null" {
		return nil, false
	}
	var raw hexutil.Bytes
	if json.Unmarshal(args[0], &raw) != nil {
		return nil, false
	}
	return raw, true
}

// withSendPlan returns ctx carrying p (ctx itself when p is nil).
func withSendPlan(ctx context.Context, p *sendPlan) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, sendPlanKey{}, p)
}

// answer returns the verdict on raw when it is the plan's next call,
// admitting its run first if it is the run's first call; ok is false when
// the plan does not hold raw's answer (the caller takes the per-call
// path).
func (p *sendPlan) answer(ctx context.Context, raw []byte) (h common.Hash, err error, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken || p.next >= len(p.calls) || !bytes.Equal(p.calls[p.next].raw, raw) {
		p.broken = p.broken || !p.shared
		return common.Hash{}, nil, false
	}
	c := &p.calls[p.next]
	if !c.done {
		end := p.next
		for end < len(p.calls) && p.calls[end].run == c.run {
			end++
		}
		raws := make([][]byte, end-p.next)
		for k := range raws {
			raws[k] = p.calls[p.next+k].raw
		}
		hashes, errs := p.s.admitCalls(ctx, p.remoteAddr, raws)
		for k := range raws {
			d := &p.calls[p.next+k]
			d.done, d.hash, d.err = true, hashes[k], errs[k]
		}
	}
	p.next++
	return c.hash, c.err, true
}

// finished reports whether every call of the plan is answered.
func (p *sendPlan) finished() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.broken || p.next >= len(p.calls)
}

// midRun reports whether the plan's next call belongs to a run already
// admitted: its verdict is held here and nowhere else.
func (p *sendPlan) midRun() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.broken && p.next < len(p.calls) && p.calls[p.next].done
}

// sendOne is eth_sendRawTransaction's admission: the answer the request's
// plan (HTTP) or its WebSocket connection's plans hold for raw, or the
// pipeline for raw alone.
func (s *Server) sendOne(ctx context.Context, raw []byte) (common.Hash, error) {
	if p, _ := ctx.Value(sendPlanKey{}).(*sendPlan); p != nil {
		if h, err, ok := p.answer(ctx, raw); ok {
			return h, err
		}
	} else if wp := s.wsPlansOf(ctx); wp != nil {
		if h, err, ok := wp.answer(ctx, raw); ok {
			return h, err
		}
	}
	hashes, errs := s.admitCalls(ctx, gethrpc.PeerInfoFromContext(ctx).RemoteAddr, [][]byte{raw})
	return hashes[0], errs[0]
}

// A WebSocket connection's batches reach go-ethereum's server without
// passing through a request the server could attach a plan to:
// go-ethereum reads the messages itself, and hands every call of the
// connection the same context. So the connection's reader
// (messageTimeoutConn) hands each batch message to the server before
// gorilla reads it, the server plans it (planSends) among the
// connection's plans (wsPlans, found by the connection's address, which
// go-ethereum puts in each call's context), and each send go-ethereum
// dispatches on the connection is answered by the plan whose next call
// it is. go-ethereum serves a connection's messages concurrently, so
// several plans may be open at once; a send that is no plan's next (a
// single call, or a plan's call dispatched otherwise than planned) takes
// the per-call path without ending any plan. The plans are as go-ethereum
// reads them in all else: a run is admitted when go-ethereum reaches its
// first call, and a call between two sends ends a run.

// maxWSPlans bounds the open plans of one WebSocket connection, and
// wsPlans.maxBytes (http.max-body-bytes, one message's worth) the
// transaction bytes they hold. A plan closes when its last call is
// answered; one whose batch go-ethereum cut short (its replies passed the
// batch response bound) stays until the connection closes. To open a
// plan past either bound, the oldest open plans that hold no admitted
// verdict are closed; a batch that still does not fit is not planned
// (its sends take the per-call path).
const maxWSPlans = 8

// wsPlans are the open send plans of one WebSocket connection, in the
// order its messages arrived.
type wsPlans struct {
	maxBytes int

	mu    sync.Mutex
	plans []*sendPlan
	bytes int // the transaction bytes the open plans hold
}

// size is the transaction bytes p holds.
func (p *sendPlan) size() int {
	n := 0
	for _, c := range p.calls {
		n += len(c.raw)
	}
	return n
}

// add opens p, within maxWSPlans and maxBytes (see maxWSPlans).
func (w *wsPlans) add(p *sendPlan) {
	p.shared = true
	size := p.size()
	if size > w.maxBytes {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	kept := w.plans[:0]
	for _, q := range w.plans {
		if q.finished() {
			w.bytes -= q.size()
		} else {
			kept = append(kept, q)
		}
	}
	w.plans = kept
	for i := 0; len(w.plans) >= maxWSPlans || w.bytes+size > w.maxBytes; {
		for i < len(w.plans) && w.plans[i].midRun() {
			i++
		}
		if i == len(w.plans) {
			return
		}
		w.bytes -= w.plans[i].size()
		w.plans = append(w.plans[:i], w.plans[i+1:]...)
	}
	w.plans = append(w.plans, p)
	w.bytes += size
}

// answer returns the verdict on raw from the first open plan whose next
// call it is (ok false: none).
func (w *wsPlans) answer(ctx context.Context, raw []byte) (h common.Hash, err error, ok bool) {
	w.mu.Lock()
	plans := append([]*sendPlan(nil), w.plans...)
	w.mu.Unlock()
	for _, p := range plans {
		if h, err, ok = p.answer(ctx, raw); ok {
			if p.finished() {
				w.remove(p)
			}
			return h, err, true
		}
	}
	return common.Hash{}, nil, false
}

func (w *wsPlans) remove(p *sendPlan) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, q := range w.plans {
		if q == p {
			w.plans = append(w.plans[:i], w.plans[i+1:]...)
			w.bytes -= p.size()
			return
		}
	}
}

// openWSPlans registers the plans of the WebSocket connection from
// remoteAddr and returns the function its reader hands batches to (nil
// when another live connection has the same address string, which only
// a server on two listeners could see: that connection's sends take the
// per-call path) and the one that drops them when the connection closes.
func (s *Server) openWSPlans(remoteAddr string) (onBatch func([]byte), done func()) {
	w := &wsPlans{maxBytes: s.limits.MaxBodyBytes}
	if _, loaded := s.wsPlans.LoadOrStore(remoteAddr, w); loaded {
		return nil, func() {}
	}
	onBatch = func(msg []byte) {
		if p := s.planSends(msg, remoteAddr); p != nil {
			w.add(p)
		}
	}
	return onBatch, func() { s.wsPlans.CompareAndDelete(remoteAddr, w) }
}

// wsPlansOf returns the plans of the WebSocket connection ctx's call
// came on (nil for another transport).
func (s *Server) wsPlansOf(ctx context.Context) *wsPlans {
	peer := gethrpc.PeerInfoFromContext(ctx)
	if peer.Transport != "ws" {
		return nil
	}
	w, _ := s.wsPlans.Load(peer.RemoteAddr)
	wp, _ := w.(*wsPlans)
	return wp
}
