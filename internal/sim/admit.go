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
	"github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/wallet"
)

// Clients reach the cluster as a wallet with several endpoints does
// (wallet.Client.SendSigned, and SendRawBatch for a JSON-RPC batch of
// eth_sendRawTransaction calls, which the node admits through
// node.Admission.AdmitBatch): a send goes to a node chosen by the seed,
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
// scheduler collects the answers after every step. A batch's elements each
// get their own verdict, and those answered "unavailable" go on to the
// next node together, as SendRawBatch sends them. An attacker's send
// (attack.go) goes to one node only and takes its answer, whatever it is.
//
// Every success is an acknowledgement the cluster must honour: the
// transaction ends in the chain exactly once (acked-kept), whatever
// becomes of the node that answered, and two validators held it, in
// their pools or applied, when the answer that confirmed it was produced
// (acked-held: see checkHeld).

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

// call is one wallet send with failover: one transaction
// (wallet.Client.SendSigned: eth_sendRawTransaction) or a batch of them
// (wallet.Client.SendRawBatch: one JSON-RPC batch of
// eth_sendRawTransaction calls, which the node's server admits through
// node.Admission.AdmitBatch). Each item gets its own verdict; the items a
// node answered "unavailable" go on to the next node, as SendRawBatch
// sends them.
type call struct {
	seq   int
	items []*item
	// batch is set for a JSON-RPC batch (admitBatch); once for an
	// attacker's send, which goes to one node and takes its answer,
	// whatever it is (no failover).
	batch, once bool
	what        string
	start       time.Time
	ctx         context.Context
	cancel      context.CancelFunc
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
	done    func(c *call) error
	over    bool
}

// item is one transaction of a call and its verdict.
type item struct {
	tx  *types.Transaction // nil for bytes no node decodes
	raw []byte
	// sends counts the attempts that carried it.
	sends int
	// over once it has its verdict: err (nil: acknowledged) from node
	// (-1: none answered within retryFor).
	over bool
	node int
	err  error
}

// attemptResult is one node's answer to one attempt of a call: errs[k] is
// the verdict on items[k], the items the attempt carried.
type attemptResult struct {
	seq   int
	c     *call
	node  int
	items []*item
	errs  []error
	// started is when the attempt was sent: the answers its node
	// received after it are those that may have confirmed its items
	// (checkHeld).
	started time.Time
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
	// entryAt is the instant the last call was started at, entries how
	// many were started then (entryDelay).
	entryAt time.Time
	entries int
	acked   map[common.Hash]ack
	// signed holds the transactions sent for each sender's nonce: more
	// than one is a conflicting send, whose copies the pools refuse for
	// each other.
	signed map[senderNonce]map[common.Hash]bool
	// heldChecks counts acked-held checks made.
	heldChecks int
	// confirms holds, for each node and transaction, what the leader's
	// answers to that node's forwarded batches confirmed of it, as they
	// reached it (noteDelivered; checkHeld).
	confirms map[nodeTx][]confirmation
	// check, when set, runs after the answers of every step (the
	// attackers' invariants, attack.go).
	check func() error
}

func newCalls(s *Sim) *calls {
	return &calls{s: s, acked: map[common.Hash]ack{}, signed: map[senderNonce]map[common.Hash]bool{}, confirms: map[nodeTx][]confirmation{}}
}

// send starts a wallet call for raw at node first (-1: one chosen by the
// seed among all nodes); done runs in the scheduler's goroutine with the
// node that answered and the call's error.
func (cs *calls) send(raw []byte, what string, first int, done func(node int, err error)) {
	cs.start(&call{what: what, items: cs.items([][]byte{raw})}, first, func(c *call) error {
		done(c.items[0].node, c.items[0].err)
		return nil
	})
}

// sendBatch starts a wallet call sending raws as one JSON-RPC batch
// (wallet.Client.SendRawBatch) at node first (-1: one chosen by the
// seed); done gets the call with each item's verdict once every item has
// one, and its error is a broken invariant.
func (cs *calls) sendBatch(raws [][]byte, what string, first int, done func(c *call) error) {
	cs.start(&call{what: what, items: cs.items(raws), batch: true}, first, done)
}

// sendOnce sends raw, an attacker's, to node only (no failover); done gets
// the node's answer, whatever it is, and its error is a broken invariant.
func (cs *calls) sendOnce(raw []byte, what string, node int, done func(it *item) error) {
	cs.start(&call{what: what, items: cs.items([][]byte{raw}), once: true}, node, func(c *call) error {
		return done(c.items[0])
	})
}

// items makes the items of raws, noting each transaction's sender and
// nonce (signed).
func (cs *calls) items(raws [][]byte) []*item {
	out := make([]*item, len(raws))
	for i, raw := range raws {
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
		out[i] = &item{tx: tx, raw: raw, node: -1}
	}
	return out
}

// start opens c and sends it to node first (-1: one the seed picks).
func (cs *calls) start(c *call, first int, done func(c *call) error) {
	cs.seq++
	c.seq, c.start, c.done, c.backoff = cs.seq, time.Now(), done, retryBackoff
	c.ctx, c.cancel = context.WithTimeout(context.Background(), retryFor+stallTimeout)
	cs.open = append(cs.open, c)
	if first < 0 {
		first = cs.s.rng.IntN(len(cs.s.nodes))
	}
	cs.attempt(c, first)
}

// attempt sends c's items without a verdict to node id, as its JSON-RPC
// server takes them: eth_sendRawTransaction (SendRawTransaction: the halt
// check, decoding, the node's SubmitTx) or a batch of them (admitBatch).
// A refused transaction's sender is forgotten unless the pool holds it
// (rpc.ForgetRefused), and each error is worded as the client reads it
// (rpc.ClientError).
func (cs *calls) attempt(c *call, id int) {
	c.attempts++
	c.tried = append(c.tried, id)
	c.lastStart = time.Now()
	started := c.lastStart
	c.running++
	var items []*item
	for _, it := range c.items {
		if !it.over {
			it.sends++
			items = append(items, it)
		}
	}
	cs.s.record("client %s attempt %d to n%d (%d txs)", c.what, c.attempts, id, len(items))
	sn := cs.s.nodes[id]
	if !sn.up {
		cs.post(c, id, started, items, nil, errConnRefused)
		return
	}
	adm, ep := sn.adm, sn.ep
	wait := cs.entryDelay()
	sn.submits.Add(1)
	go func() {
		defer sn.submits.Done()
		time.Sleep(wait)
		var errs []error
		if c.batch {
			errs = admitBatch(c.ctx, sn, adm, items)
		} else {
			errs = []error{sendRaw(c.ctx, sn, adm, items[0].raw)}
		}
		var whole error
		select {
		case <-ep.closed:
			// The instance crashed (or stopped) before it answered: its
			// client sees the connection drop, whatever it computed.
			whole = errConnLost
		default:
		}
		cs.post(c, id, started, items, errs, whole)
	}()
}

// entrySliver is how far apart in simulated time the calls started at one
// instant enter their nodes (entryDelay).
const entrySliver = 10 * time.Nanosecond

// maxEntries is how many calls started at one instant get an instant of
// their own: their delays stay within stepTick/2, the step's own instant
// and the next step's apart.
const maxEntries = int(stepTick / 2 / entrySliver)

// entryDelay is how long the next call started now waits before it enters
// its node: the k-th started at this instant waits k+1 slivers. Started
// together, the calls' goroutines would enter their nodes in the order
// the Go runtime runs them (the last started first, then the others, or
// any order once it preempts one), which decides the order of the
// senders in a pool, of the transactions in a relayed batch and in the
// next block; one sliver after another, each runs until it waits on
// something before the next starts, and after every goroutine the step
// woke (a delivered message's) has run (callsEnterInOrder).
func (cs *calls) entryDelay() time.Duration {
	if now := time.Now(); !now.Equal(cs.entryAt) {
		cs.entryAt, cs.entries = now, 0
	}
	cs.entries++
	return time.Duration(min(cs.entries, maxEntries)) * entrySliver
}

// sendRaw is the node's eth_sendRawTransaction (rpc.EthAPI.SendRawTransaction
// over node.Node.SubmitTx).
func sendRaw(ctx context.Context, sn *simNode, adm *node.Admission, raw []byte) error {
	if err := sn.engine.Halted(); err != nil {
		return rpc.ClientError(err)
	}
	tx, err := chain.DecodeTx(raw)
	if err != nil {
		return rpc.ClientError(err)
	}
	if err := adm.Submit(ctx, tx); err != nil {
		forgetRefused(sn, tx)
		return rpc.ClientError(err)
	}
	return nil
}

// admitBatch is the node's JSON-RPC server on a batch made only of
// eth_sendRawTransaction calls (rpc.Server.admitCalls over
// node.Node.AdmitBatch): the halt check, each transaction decoded once
// (malformed ones answered at once), the senders recovered together,
// the rest admitted by node.Admission.AdmitBatch; errs[i] is items[i]'s
// verdict.
func admitBatch(ctx context.Context, sn *simNode, adm *node.Admission, items []*item) []error {
	errs := make([]error, len(items))
	if err := sn.engine.Halted(); err != nil {
		for i := range errs {
			errs[i] = rpc.ClientError(err)
		}
		return errs
	}
	txs := make([]*types.Transaction, 0, len(items))
	idx := make([]int, 0, len(items)) // txs[k] is items[idx[k]]'s
	for i, it := range items {
		tx, err := chain.DecodeTx(it.raw)
		if err != nil {
			errs[i] = rpc.ClientError(err)
			continue
		}
		txs, idx = append(txs, tx), append(idx, i)
	}
	_, verdicts := sn.senders.Senders(txs)
	batch := make([]rpc.Admission, 0, len(txs))
	at := make([]int, 0, len(txs)) // batch[k] is items[at[k]]'s
	for k, tx := range txs {
		if verdicts != nil && verdicts[k] != nil {
			errs[idx[k]] = verdicts[k]
			continue
		}
		batch, at = append(batch, rpc.Admission{Tx: tx, Raw: items[idx[k]].raw}), append(at, idx[k])
	}
	if err := sn.engine.Halted(); err != nil { // node.Node.AdmitBatch's own check
		for _, i := range at {
			errs[i] = err
		}
	} else {
		for k, err := range adm.AdmitBatch(ctx, batch) {
			errs[at[k]] = err
		}
	}
	for k, tx := range txs {
		if err := errs[idx[k]]; err != nil {
			forgetRefused(sn, tx)
			errs[idx[k]] = rpc.ClientError(err)
		}
	}
	return errs
}

// forgetRefused is rpc.ForgetRefused: a refused transaction's sender
// leaves the cache unless the pool holds the transaction.
func forgetRefused(sn *simNode, tx *types.Transaction) {
	if _, _, pending := sn.pool.Get(tx.Hash()); !pending {
		sn.senders.Forget(tx.Hash())
	}
}

// post queues the answer of an attempt sent at started: errs[k] is
// items[k]'s verdict, unless whole (the connection's failure) answers
// them all.
func (cs *calls) post(c *call, node int, started time.Time, items []*item, errs []error, whole error) {
	if whole != nil {
		errs = make([]error, len(items))
		for i := range errs {
			errs[i] = whole
		}
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.results = append(cs.results, attemptResult{seq: c.seq, c: c, node: node, items: items, errs: errs, started: started})
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
		r.c.running--
		if r.c.over {
			continue
		}
		if err := cs.answer(r); err != nil {
			return err
		}
	}
	now := time.Now()
	for _, c := range slices.Clone(cs.open) {
		switch {
		case c.over:
		case now.Sub(c.start) >= retryFor && c.running == 0:
			for _, it := range c.items {
				if !it.over {
					it.over, it.err = true, fmt.Errorf("%w: %w", wallet.ErrUnavailable, c.lastErr)
				}
			}
			if err := cs.finish(c); err != nil {
				return err
			}
		case !c.nextAt.IsZero() && !now.Before(c.nextAt):
			c.nextAt = time.Time{}
			cs.next(c)
		case c.running > 0 && c.nextAt.IsZero() && !c.once && now.Sub(c.lastStart) >= stallTimeout:
			cs.next(c) // stalled: the same bytes to another node too
		}
	}
	if cs.check != nil {
		return cs.check()
	}
	return nil
}

// answer handles one node's answer to an attempt: each item it carried
// that has no verdict yet gets this one, unless it is "unavailable"
// (wallet.Unavailable), when the item goes on to the next node with the
// others left.
func (cs *calls) answer(r attemptResult) error {
	c := r.c
	var unavailable error
	for k, it := range r.items {
		if it.over {
			continue
		}
		err := r.errs[k]
		if err != nil && !wallet.Unavailable(err) && it.sends > 1 && cs.held(r.node, it.tx, err) {
			err = nil
		}
		if err != nil && wallet.Unavailable(err) && !c.once {
			unavailable = err
			continue
		}
		it.over, it.node, it.err = true, r.node, err
		if err == nil && it.tx != nil {
			if herr := cs.acknowledged(c, it, r.started); herr != nil {
				return herr
			}
		}
	}
	if !slices.ContainsFunc(c.items, func(it *item) bool { return !it.over }) {
		return cs.finish(c)
	}
	if unavailable != nil {
		c.lastErr = unavailable
	}
	if c.running == 0 && c.nextAt.IsZero() {
		cs.next(c)
	}
	return nil
}

// held is the wallet's reading of a refusal of a re-sent transaction: the
// node holds it ("already known"), or has applied it ("nonce too low" for
// a transaction the node finds by hash).
func (cs *calls) held(node int, tx *types.Transaction, err error) bool {
	msg := err.Error()
	if strings.HasPrefix(msg, "already known") {
		return true
	}
	if !strings.HasPrefix(msg, "nonce too low") || tx == nil {
		return false
	}
	sn := cs.s.nodes[node]
	if !sn.up {
		return false
	}
	applied, herr := sn.db.HasTx(tx.Hash())
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

// acknowledged records the acknowledgement of it, an item of c answered
// by the attempt sent at started, and checks that two nodes held it
// (acked-held).
func (cs *calls) acknowledged(c *call, it *item, started time.Time) error {
	h := it.tx.Hash()
	if _, ok := cs.acked[h]; !ok {
		cs.acked[h] = ack{tx: it.tx, node: it.node, at: cs.s.now(), what: c.what}
	}
	cs.s.record("client %s ack %s nonce %d by n%d after %d attempts", c.what, h.TerminalString(), it.tx.Nonce(), it.node, c.attempts)
	return cs.checkHeld(it.tx, it.node, started)
}

// finish ends c, each of whose items has its verdict.
func (cs *calls) finish(c *call) error {
	c.over = true
	c.cancel()
	cs.open = slices.DeleteFunc(cs.open, func(o *call) bool { return o == c })
	return c.done(c)
}

// checkHeld is the acked-held invariant on tx, acknowledged by node by
// in an attempt sent at started: two validators held it (in their
// pools, or applied) when the answer that confirmed it was produced, so
// that the loss of any one node as of then loses nothing acknowledged
// (docs/design.md, "Invariants"; docs/architecture.md, "Admitted
// transactions survive a node").
//
// The confirming answer is the acknowledging node's own, or, for a
// transaction it forwarded, the leader's answer to its forward, which
// the network may hold back before the node answers its client: a
// holder lost meanwhile (a crash, a lost directory) is the one failure
// the promise covers, and no protocol could wait for it (seed 651 of the
// membership weights: n1 confirmed to the leader n0, n0's answer to n3
// was delayed 21 ms, n1 lost its data directory, n3 acknowledged). So
// the check passes when two validators hold tx now, or when those that
// hold it now and those that held it when an answer the node received
// during the attempt was produced, their instance ended since, are two
// (ackedHeld). The holders at an answer are read at the end of the step
// that produced it (Sim.noteAnswers), in the scheduler's goroutine.
//
// A node holding tx in its pool is a validator if it is a validator in
// the latest state an up node has applied or a voter of a leader's Raft
// configuration (voters are validators, DESIGN.md decision 8, give or
// take the blocks a change takes to reach both: a validator just added
// votes before its own state lists it, one just removed votes until the
// next leader removes it from Raft). Any other node (the standby node
// before it is added, an observer, a removed validator, whether it knows
// it or its log trails its removal and it still takes itself for a
// validator) is no holder: the leader replicates what such a node
// forwards before it answers (node.TestForwardFromNonVoterIsReplicated;
// seed 12).
func (cs *calls) checkHeld(tx *types.Transaction, by int, started time.Time) error {
	cs.heldChecks++
	h := tx.Hash()
	now, applied := cs.holders(h)
	if applied {
		return nil // in a block: committed on a majority
	}
	var confs []confirmation
	for _, c := range cs.confirms[nodeTx{by, h}] {
		if c.at.After(started) {
			confs = append(confs, c)
		}
	}
	lost, err := ackedHeld(by, now, confs, cs.instance)
	if err != nil {
		if cs.conflicting(tx) {
			return nil
		}
		return fmt.Errorf("invariant acked-held: n%d acknowledged tx %s (nonce %d) %w", by, h, tx.Nonce(), err)
	}
	if len(lost) > 0 {
		cs.s.record("acked-held: tx %s acknowledged by n%d held by %v, and by %v at the answer that confirmed it, lost since", h.TerminalString(), by, nodesOf(now), lost)
	}
	return nil
}

// holders returns the validators up that hold the transaction h (see
// checkHeld), or applied if an up node has applied it.
func (cs *calls) holders(h common.Hash) (holders []holderAt, applied bool) {
	var latest *simNode
	var top uint64
	voters := map[int]bool{}
	for _, sn := range cs.s.nodes {
		if !sn.up {
			continue
		}
		if head, ok := sn.db.Head(); ok && (latest == nil || head.Number > top) {
			latest, top = sn, head.Number
		}
		if sn.engine.IsLeader() {
			for _, v := range membersOf(sn) {
				voters[v] = true
			}
		}
	}
	for _, sn := range cs.s.nodes {
		if !sn.up {
			continue
		}
		_, _, pooled := sn.pool.Get(h)
		if ok, _ := sn.db.HasTx(h); ok {
			return nil, true
		}
		if pooled && (voters[sn.id] || latest != nil && latest.db.IsValidator(cs.s.ids.addrs[sn.id])) {
			holders = append(holders, holderAt{sn.id, sn.epoch})
		}
	}
	return holders, false
}

// instance returns the epoch of node i's last instance and whether it
// runs.
func (cs *calls) instance(i int) (epoch int, up bool) {
	sn := cs.s.nodes[i]
	return sn.epoch, sn.up
}

// nodeTx is a transaction at a node.
type nodeTx struct {
	node int
	tx   common.Hash
}

// holderAt is a validator holding a transaction: its node and the
// instance (epoch) of it that held it.
type holderAt struct{ node, epoch int }

// confirmation is what an answer to a forwarded batch confirmed of one of
// its transactions: the validators that held it when the answer was
// produced, or that an up node had applied it; at is when the answer
// reached the forwarding node.
type confirmation struct {
	at      time.Time
	holders []holderAt
	applied bool
}

// confirmsKept is how long a confirmation is kept: longer than any call
// runs (its context's timeout).
const confirmsKept = 2 * (retryFor + stallTimeout)

// noteDelivered records, as m, an answer to a forwarded batch, reaches
// its node, what it confirmed of each transaction (its held, read when
// it was produced: Sim.noteAnswers).
func (cs *calls) noteDelivered(m *message) {
	now := time.Now()
	for h, c := range m.held {
		k := nodeTx{m.to, h}
		kept := slices.DeleteFunc(cs.confirms[k], func(o confirmation) bool { return now.Sub(o.at) > confirmsKept })
		c.at = now
		cs.confirms[k] = append(kept, c)
	}
}

// ackedHeld decides acked-held for a transaction acknowledged by node by
// (checkHeld), given the validators up holding it now (now) and what the
// answers that reached by during the acknowledging attempt confirmed of
// it (confs); instance returns a node's current epoch and whether it
// runs. It passes when two validators hold it now, or when one answer
// was produced while it was applied, or when those holding it now and
// those that held it when one answer was produced and are lost since
// (its instance ended: down, or restarted) are two; lost are the holders
// counted so. The holders now count with the answer's: a validator that
// forwarded the transaction keeps its copy once the leader's answer
// arrives, as the second holder the leader counted on (seed 69 of
// {slow-disk 3, datadir-lost 2, raft-dir-lost 1, crash 2, restart 3}:
// the leader n1 answered n0's forward holding it alone, n0 kept its copy,
// and n1 lost its data directory before n0 acknowledged). Its error says
// who held it.
func ackedHeld(by int, now []holderAt, confs []confirmation, instance func(node int) (epoch int, up bool)) (lost []int, err error) {
	if len(now) >= 2 {
		return nil, nil
	}
	var at [][]int
	for _, c := range confs {
		if c.applied {
			return nil, nil
		}
		counted := nodesOf(now)
		var gone []int
		for _, hd := range c.holders {
			if slices.Contains(now, hd) {
				continue
			}
			if epoch, up := instance(hd.node); (!up || epoch != hd.epoch) && !slices.Contains(counted, hd.node) {
				counted, gone = append(counted, hd.node), append(gone, hd.node)
			}
		}
		if len(counted) >= 2 {
			return gone, nil
		}
		at = append(at, nodesOf(c.holders))
	}
	if len(confs) == 0 {
		return nil, fmt.Errorf("held only by validators %v", nodesOf(now))
	}
	return nil, fmt.Errorf("held only by validators %v, and by %v when the answers that confirmed it reached n%d", nodesOf(now), at, by)
}

// nodesOf returns the nodes of hs.
func nodesOf(hs []holderAt) []int {
	out := make([]int, len(hs))
	for i, hd := range hs {
		out[i] = hd.node
	}
	return out
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
