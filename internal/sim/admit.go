package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/wallet"
)

// Clients reach the cluster as a wallet with several endpoints does
// (wallet.Client.SendSigned): a send goes to a node chosen by the seed,
// any node (the leader, a follower, a standby node, one that is down or
// cut off from the others), where the node's own admission path
// (node.Admission.Submit, what its JSON-RPC handler calls) answers it:
// admitted and replicated on the leader, forwarded to the leader from a
// follower. A node that answers "unavailable" (wallet.Unavailable: no
// leader, not replicated, halted, the connection refused or lost) or that
// stalls for wallet.DefaultStallTimeout makes the wallet try another node
// with the same bytes, for up to wallet.DefaultRetryFor; on a re-send a
// node's "already known" (or "nonce too low" for a transaction it has
// applied) counts as success, as the wallet counts it. A call answers in
// simulated time, while the scheduler moves the messages it needs; the
// scheduler collects the answers after every step.
//
// Every success is an acknowledgement the cluster must honour: the
// transaction ends in the chain exactly once (acked-kept), whatever
// becomes of the node that answered, and at the moment of the answer it
// is held by two nodes, in their pools or applied (acked-held).

// Wallet failover, as wallet.Client does it.
const (
	stallTimeout    = wallet.DefaultStallTimeout
	retryFor        = wallet.DefaultRetryFor
	retryBackoff    = 50 * time.Millisecond
	maxRetryBackoff = 500 * time.Millisecond
)

// Errors of a call that reached no node's answer.
var (
	errConnRefused = errors.New("sim: connection refused (the node is down)")
	errConnLost    = errors.New("sim: connection lost (the node crashed before answering)")
)

// call is one wallet send with failover.
type call struct {
	seq    int
	tx     *types.Transaction
	raw    []byte
	what   string
	start  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	// running counts attempts in flight; tried the nodes tried this
	// round; attempts all attempts made.
	running   int
	tried     []int
	attempts  int
	lastStart time.Time
	// nextAt, when set, is when the next round starts (every node of
	// the last one was unavailable).
	nextAt  time.Time
	backoff time.Duration
	lastErr error
	done    func(node int, err error)
	over    bool
}

// attemptResult is one node's answer to one attempt of a call.
type attemptResult struct {
	seq  int
	c    *call
	node int
	err  error
}

// ack is an acknowledged transaction.
type ack struct {
	tx   *types.Transaction
	node int
	at   time.Duration
	what string
}

// calls are the wallet sends in flight and the acknowledgements given.
type calls struct {
	s       *Sim
	mu      sync.Mutex
	results []attemptResult // posted by the attempts' goroutines
	open    []*call
	seq     int
	acked   map[common.Hash]ack
	// signed holds the transactions sent for each sender's nonce: more
	// than one is a conflicting send, whose copies the pools refuse for
	// each other.
	signed map[senderNonce]map[common.Hash]bool
	// heldChecks counts acked-held checks made.
	heldChecks int
}

func newCalls(s *Sim) *calls {
	return &calls{s: s, acked: map[common.Hash]ack{}, signed: map[senderNonce]map[common.Hash]bool{}}
}

// send starts a wallet call for raw at node first (-1: one chosen by the
// seed among all nodes); done runs in the scheduler's goroutine with the
// node that answered and the call's error.
func (cs *calls) send(raw []byte, what string, first int, done func(node int, err error)) {
	tx, _ := chain.DecodeTx(raw) // nil for bytes no node decodes: the node's answer says so
	if tx != nil {
		if from, err := types.Sender(cs.s.inv.signer, tx); err == nil {
			k := senderNonce{from, tx.Nonce()}
			if cs.signed[k] == nil {
				cs.signed[k] = map[common.Hash]bool{}
			}
			cs.signed[k][tx.Hash()] = true
		}
	}
	cs.seq++
	c := &call{seq: cs.seq, tx: tx, raw: raw, what: what, start: time.Now(), done: done, backoff: retryBackoff}
	c.ctx, c.cancel = context.WithTimeout(context.Background(), retryFor+stallTimeout)
	cs.open = append(cs.open, c)
	if first < 0 {
		first = cs.s.rng.IntN(len(cs.s.nodes))
	}
	cs.attempt(c, first)
}

// attempt sends c to node id.
func (cs *calls) attempt(c *call, id int) {
	c.attempts++
	c.tried = append(c.tried, id)
	c.lastStart = time.Now()
	c.running++
	cs.s.record("client %s attempt %d to n%d", c.what, c.attempts, id)
	sn := cs.s.nodes[id]
	if !sn.up {
		cs.post(c, id, errConnRefused)
		return
	}
	// What the JSON-RPC handler does before the node's SubmitTx, and
	// SubmitTx's own first check.
	tx, err := chain.DecodeTx(c.raw)
	if err == nil {
		err = sn.engine.Halted()
	}
	if err != nil {
		cs.post(c, id, err)
		return
	}
	adm, ep := sn.adm, sn.ep
	sn.submits.Add(1)
	go func() {
		defer sn.submits.Done()
		err := adm.Submit(c.ctx, tx)
		select {
		case <-ep.closed:
			// The instance crashed (or stopped) before it answered: its
			// client sees the connection drop, whatever it computed.
			err = errConnLost
		default:
		}
		cs.post(c, id, err)
	}()
}

func (cs *calls) post(c *call, node int, err error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.results = append(cs.results, attemptResult{seq: c.seq, c: c, node: node, err: err})
}

// collect handles the answers posted since the last step, in call order,
// and moves the open calls on (a stalled attempt, the next round, the end
// of retryFor). The scheduler calls it after every synctest.Wait.
func (cs *calls) collect() error {
	cs.mu.Lock()
	rs := cs.results
	cs.results = nil
	cs.mu.Unlock()
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].seq < rs[j].seq })
	for _, r := range rs {
		c := r.c
		c.running--
		if c.over {
			continue
		}
		if err := cs.answer(c, r.node, r.err); err != nil {
			return err
		}
	}
	now := time.Now()
	for _, c := range slices.Clone(cs.open) {
		switch {
		case c.over:
		case now.Sub(c.start) >= retryFor && c.running == 0:
			if err := cs.finish(c, -1, fmt.Errorf("%w: %w", wallet.ErrUnavailable, c.lastErr)); err != nil {
				return err
			}
		case !c.nextAt.IsZero() && !now.Before(c.nextAt):
			c.nextAt = time.Time{}
			cs.next(c)
		case c.running > 0 && c.nextAt.IsZero() && now.Sub(c.lastStart) >= stallTimeout:
			cs.next(c) // stalled: the same bytes to another node too
		}
	}
	return nil
}

// answer handles one node's answer to c.
func (cs *calls) answer(c *call, node int, err error) error {
	if err == nil {
		return cs.finish(c, node, nil)
	}
	var cerr error = err
	if !errors.Is(err, errConnRefused) && !errors.Is(err, errConnLost) {
		cerr = rpc.ClientError(err) // what the node's JSON-RPC answer says
	}
	if c.attempts > 1 && cs.held(node, c, cerr) {
		return cs.finish(c, node, nil)
	}
	if !wallet.Unavailable(cerr) {
		return cs.finish(c, node, cerr)
	}
	c.lastErr = cerr
	if c.running == 0 && c.nextAt.IsZero() {
		cs.next(c)
	}
	return nil
}

// held is the wallet's reading of a refusal of a re-sent transaction: the
// node holds it ("already known"), or has applied it ("nonce too low" for
// a transaction the node finds by hash).
func (cs *calls) held(node int, c *call, err error) bool {
	msg := err.Error()
	if strings.HasPrefix(msg, "already known") {
		return true
	}
	if !strings.HasPrefix(msg, "nonce too low") || c.tx == nil {
		return false
	}
	sn := cs.s.nodes[node]
	if !sn.up {
		return false
	}
	applied, herr := sn.db.HasTx(c.tx.Hash())
	return herr == nil && applied
}

// next sends c to a node not tried this round, or starts a new round
// after a backoff once every node was tried.
func (cs *calls) next(c *call) {
	if time.Since(c.start) >= retryFor {
		return
	}
	var untried []int
	for i := range cs.s.nodes {
		if !slices.Contains(c.tried, i) {
			untried = append(untried, i)
		}
	}
	if len(untried) == 0 {
		if c.running == 0 {
			c.tried = nil
			c.nextAt = time.Now().Add(c.backoff)
			c.backoff = min(2*c.backoff, maxRetryBackoff)
		}
		return
	}
	cs.attempt(c, untried[cs.s.rng.IntN(len(untried))])
}

// finish ends c with the answer of node (err nil: acknowledged).
func (cs *calls) finish(c *call, node int, err error) error {
	c.over = true
	c.cancel()
	cs.open = slices.DeleteFunc(cs.open, func(o *call) bool { return o == c })
	if err == nil && c.tx != nil {
		h := c.tx.Hash()
		if _, ok := cs.acked[h]; !ok {
			cs.acked[h] = ack{tx: c.tx, node: node, at: cs.s.now(), what: c.what}
		}
		cs.s.record("client %s ack %s nonce %d by n%d after %d attempts", c.what, h.TerminalString(), c.tx.Nonce(), node, c.attempts)
		if herr := cs.checkHeld(c.tx, node); herr != nil {
			return herr
		}
	}
	c.done(node, err)
	return nil
}

// checkHeld is the acked-held invariant: when a node acknowledges a
// transaction, two nodes hold it (in their pools, or applied), so that
// the loss of any one node loses nothing acknowledged
// (docs/architecture.md, "Admitted transactions survive a node").
func (cs *calls) checkHeld(tx *types.Transaction, by int) error {
	cs.heldChecks++
	h := tx.Hash()
	var holders []int
	for _, sn := range cs.s.nodes {
		if !sn.up {
			continue
		}
		_, _, pooled := sn.pool.Get(h)
		applied, _ := sn.db.HasTx(h)
		if pooled || applied {
			holders = append(holders, sn.id)
		}
		if applied {
			return nil // in a block: committed on a majority
		}
	}
	if len(holders) < 2 && !cs.conflicting(tx) {
		return fmt.Errorf("invariant acked-held: n%d acknowledged tx %s (nonce %d) held only by %v", by, h, tx.Nonce(), holders)
	}
	return nil
}

// conflicting reports whether the client sent another transaction for
// tx's nonce: a follower that holds the other one refuses to keep tx, and
// the chain applies one of them (acked-kept allows the other to be
// superseded), so one holder is all the wallet's double send can get.
func (cs *calls) conflicting(tx *types.Transaction) bool {
	from, err := types.Sender(cs.s.inv.signer, tx)
	return err == nil && len(cs.signed[senderNonce{from, tx.Nonce()}]) > 1
}

// busy reports whether a call is under way.
func (cs *calls) busy() bool { return len(cs.open) > 0 }

// ackedKept is the end's acked-kept invariant: every acknowledged
// transaction is in the canonical chain (exactly once: invariant once),
// or its sender's nonce was used by another transaction the same key
// signed (a conflicting send), or its nonce lies behind a gap its sender
// never filled (an adversarial send the pool may expire).
func (cs *calls) ackedKept() error {
	iv := cs.s.inv
	next := map[common.Address]uint64{}
	for sn := range iv.nonces {
		if sn.nonce+1 > next[sn.from] {
			next[sn.from] = sn.nonce + 1
		}
	}
	hashes := make([]common.Hash, 0, len(cs.acked))
	for h := range cs.acked {
		hashes = append(hashes, h)
	}
	slices.SortFunc(hashes, func(a, b common.Hash) int { return a.Cmp(b) })
	for _, h := range hashes {
		a := cs.acked[h]
		iv.checks++
		if _, ok := iv.txAt[h]; ok {
			continue
		}
		from, err := types.Sender(iv.signer, a.tx)
		if err != nil {
			return fmt.Errorf("acked tx %s: sender: %w", h, err)
		}
		if _, ok := iv.nonces[senderNonce{from, a.tx.Nonce()}]; ok {
			continue // superseded by a conflicting transaction of the same key
		}
		if a.tx.Nonce() > next[from] {
			continue // behind a nonce gap its sender left
		}
		return fmt.Errorf("invariant acked-kept: %s tx %s (%s nonce %d) acknowledged by n%d at %s is not in the chain (height %d)",
			a.what, h, from, a.tx.Nonce(), a.node, a.at, iv.height)
	}
	return nil
}

// syncNonce moves a's next nonce past those the chain used, as a wallet
// reads its nonce from a node before signing (eth_getTransactionCount): a
// send the wallet gave up on may still have been applied.
func (c *clients) syncNonce(a *account) {
	for {
		if _, ok := c.s.inv.nonces[senderNonce{a.addr, a.next}]; !ok {
			return
		}
		a.next++
	}
}
