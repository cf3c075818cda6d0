package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/wallet"
)

// Batch clients send a JSON-RPC batch of eth_sendRawTransaction calls, as
// wallet.Client.SendRawBatch does (load tools, exchanges paying out):
// honest accounts' next transfers, mixed with attackers' transactions any
// node refuses, sometimes a second transaction for one of the batch's
// nonces or one transaction twice, sent first to any node or to one that
// does not lead (which forwards the batch to the leader as one message).
// The node's server admits such a batch through node.Admission.AdmitBatch
// (admit.go, admitBatch). Every element gets its own verdict:
//
//   - an attacker's element the refusal a real node gives it alone
//     (attack.go), and no node holds it;
//   - an honest element is admitted, unavailable (sent on to the next
//     node, as SendRawBatch does), or refused for its own state (its
//     nonce, its funds), never with another element's error;
//   - of two elements for one nonce at most one is acknowledged, and the
//     other is refused with a nonce verdict;
//   - a transaction's second copy is answered as the first, or "already
//     known".
//
// Every acknowledged element is held by two nodes when acknowledged
// (acked-held) and ends in the chain exactly once (acked-kept), as a
// single send's.
const (
	// FaultBatch: a batch of honest and attackers' transactions.
	FaultBatch Fault = "batch"
	// FaultBatchFollower: a batch sent first to a node that does not
	// lead.
	FaultBatchFollower Fault = "batch-follower"
	// FaultBatchConflict: a batch holding two transactions of one
	// sender for one nonce.
	FaultBatchConflict Fault = "batch-conflict"
	// FaultBatchDup: a batch holding one transaction twice.
	FaultBatchDup Fault = "batch-dup"
)

// maxBatchHonest and maxBatchInvalid bound a batch's honest and
// attackers' elements.
const (
	maxBatchHonest  = 4
	maxBatchInvalid = 3
)

// batchRole is what one element of a batch is.
type batchRole struct {
	kind string // "honest", "twin", "dup" or "invalid"
	a    *account
	tx   *types.Transaction
	// of is the index of the honest element a twin or a copy goes with.
	of   int
	f    Fault
	want refusal
}

// stateVerdicts are the refusals of a valid transaction for its sender's
// state, in go-ethereum's words.
var stateVerdicts = append(slices.Clone(nonceVerdicts), "insufficient funds", "account limit exceeded", "txpool is full")

// batch sends one JSON-RPC batch. Its makeup comes from the attackers'
// random stream (attack.go).
func (c *clients) batch() {
	at, s := c.atk, c.s
	var idle []*account
	for _, a := range c.accts {
		if !a.busy && c.settled(a) {
			idle = append(idle, a)
		}
	}
	var roles []batchRole
	var raws [][]byte
	add := func(r batchRole, raw []byte, pos int) {
		roles = slices.Insert(roles, pos, r)
		raws = slices.Insert(raws, pos, raw)
	}
	for _, i := range at.rng.Perm(len(idle))[:min(len(idle), 1+at.rng.IntN(maxBatchHonest))] {
		a := idle[i]
		c.syncNonce(a)
		tx := at.transfer(a, s.g.ChainIDBig(), at.rng.IntN(4) == 0)
		raw, _ := tx.MarshalBinary()
		a.busy = true
		add(batchRole{kind: "honest", a: a, tx: tx}, raw, len(roles))
	}
	for n := at.rng.IntN(maxBatchInvalid + 1); n > 0; n-- {
		f := []Fault{FaultMalformed, FaultOversized, FaultWrongChain, FaultBadSignature, FaultTxType}[at.rng.IntN(5)]
		raw, want := at.invalid(f)
		add(batchRole{kind: "invalid", f: f, want: want}, raw, at.rng.IntN(len(roles)+1))
	}
	honest := func() int {
		var hs []int
		for k, r := range roles {
			if r.kind == "honest" {
				hs = append(hs, k)
			}
		}
		if len(hs) == 0 {
			return -1
		}
		return hs[at.rng.IntN(len(hs))]
	}
	var extra []Fault
	if k := honest(); k >= 0 && at.rng.IntN(4) == 0 {
		// A second transaction for one element's nonce, after it.
		o := roles[k]
		tx := at.conflicting(o.a, o.tx)
		raw, _ := tx.MarshalBinary()
		add(batchRole{kind: "twin", a: o.a, tx: tx, of: k}, raw, k+1+at.rng.IntN(len(roles)-k))
		extra = append(extra, FaultBatchConflict)
	}
	if k := honest(); k >= 0 && at.rng.IntN(6) == 0 {
		add(batchRole{kind: "dup", a: roles[k].a, tx: roles[k].tx, of: k}, raws[k], k+1+at.rng.IntN(len(roles)-k))
		extra = append(extra, FaultBatchDup)
	}
	if len(roles) == 0 {
		return
	}
	// The twins' and copies' originals, once every element is placed.
	for k := range roles {
		if roles[k].kind == "twin" || roles[k].kind == "dup" {
			roles[k].of = slices.IndexFunc(roles, func(r batchRole) bool { return r.kind == "honest" && r.a == roles[k].a })
		}
	}
	s.count(FaultBatch)
	for _, f := range extra {
		s.count(f)
	}
	for _, r := range roles {
		if r.kind == "invalid" {
			s.count(r.f) // an attack too, in a batch
		}
	}
	first := at.rng.IntN(len(s.nodes))
	var followers []int
	for _, i := range s.upNodes() {
		if l := s.leader(); l == nil || l.id != i {
			followers = append(followers, i)
		}
	}
	if len(followers) > 0 && at.rng.IntN(2) == 0 {
		first = followers[at.rng.IntN(len(followers))]
		s.count(FaultBatchFollower)
	}
	c.calls.sendBatch(raws, "batch", first, func(call *call) error {
		return c.batchDone(call, roles)
	})
}

// batchDone checks each element's verdict (see the top of this file) and
// takes the honest ones' as the wallet does.
func (c *clients) batchDone(call *call, roles []batchRole) error {
	for k, it := range call.items {
		r := roles[k]
		if r.kind != "honest" {
			continue
		}
		if it.err != nil && !unanswered(it.err) {
			if err := (refusal{words: stateVerdicts}).check(it.err); err != nil {
				return fmt.Errorf("invariant batch-verdict: n%d answered element %d (honest tx %s nonce %d) of a batch of %d: %w", it.node, k, r.tx.Hash(), r.tx.Nonce(), len(roles), err)
			}
		}
		c.answered(r.a, r.tx, "batch", it.node, it.err)
	}
	for k, it := range call.items {
		r := roles[k]
		switch r.kind {
		case "invalid":
			if err := c.atk.checkRefused(r.f, it, r.want); err != nil {
				return fmt.Errorf("batch element %d of %d: %w", k, len(roles), err)
			}
		case "twin":
			o := call.items[r.of]
			c.s.record("client batch twin nonce %d to n%d: %v (first: %v)", r.tx.Nonce(), it.node, it.err, o.err)
			if it.err == nil {
				if o.err == nil {
					return fmt.Errorf("invariant batch-verdict: two transactions of %s for nonce %d acknowledged in one batch (%s by n%d, %s by n%d)",
						r.a.addr, r.tx.Nonce(), roles[r.of].tx.Hash(), o.node, r.tx.Hash(), it.node)
				}
				if len(r.a.pending) > 0 && r.a.pending[0].Nonce() == r.tx.Nonce() {
					r.a.pending = append(r.a.pending, r.tx)
				}
				continue
			}
			if unanswered(it.err) {
				continue
			}
			if err := (refusal{words: stateVerdicts}).check(it.err); err != nil {
				return fmt.Errorf("invariant batch-verdict: n%d answered element %d (a second tx for nonce %d) of a batch of %d: %w", it.node, k, r.tx.Nonce(), len(roles), err)
			}
		case "dup":
			o := call.items[r.of]
			if it.err == nil || unanswered(it.err) || strings.HasPrefix(it.err.Error(), "already known") || (o.err != nil && it.err.Error() == o.err.Error()) {
				continue
			}
			return fmt.Errorf("invariant batch-verdict: n%d answered element %d, a copy of element %d (%v), with %q", it.node, k, r.of, o.err, it.err)
		}
	}
	return nil
}

// unanswered reports a verdict that is no answer on the transaction: an
// unavailability (wallet.Unavailable), or none within the wallet's
// retryFor.
func unanswered(err error) bool {
	return errors.Is(err, wallet.ErrUnavailable) || wallet.Unavailable(err)
}
