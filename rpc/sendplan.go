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
		p.broken = true
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

// sendOne is eth_sendRawTransaction's admission: the answer the request's
// plan holds for raw, or the pipeline for raw alone.
func (s *Server) sendOne(ctx context.Context, raw []byte) (common.Hash, error) {
	if p, _ := ctx.Value(sendPlanKey{}).(*sendPlan); p != nil {
		if h, err, ok := p.answer(ctx, raw); ok {
			return h, err
		}
	}
	hashes, errs := s.admitCalls(ctx, gethrpc.PeerInfoFromContext(ctx).RemoteAddr, [][]byte{raw})
	return hashes[0], errs[0]
}
