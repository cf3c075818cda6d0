package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrNotReplicated is the answer for a transaction the leader admitted
// from its own client but that no other validator confirmed holding in
// time: had the leader crashed, it could have been lost. It stays in the
// leader's pool and may still be included.
var ErrNotReplicated = errors.New("admitted, but no other validator confirmed holding it")

// replicateTimeout bounds how long a batch waits for another validator to
// hold it. A leader that cannot reach any other validator this long cannot
// commit either, and its lease makes it step down much sooner.
const replicateTimeout = 2 * time.Second

// replicateSenders is how many batches may be in flight at once.
const replicateSenders = 2

// Replicator copies transactions this node (the leader) admitted from its
// own clients into other validators' pools before the clients are
// answered, so that an admitted transaction survives the loss of the
// leader: whichever validator leads next includes it (a follower that
// holds it forwards it to the new leader, or proposes it itself). It
// sends each batch to every target over RelayProtocol (a follower admits
// a relayed transaction into its own pool) and a transaction
// counts as held once one target admitted it or already had it.
type Replicator struct {
	batcher
	tr      BatchTransport
	targets func() []peer.ID
	// holders is how many targets must hold a transaction (nil: one).
	holders func() int
	log     *slog.Logger
}

// NewReplicator starts a replicator to the peers targets returns at each
// batch (the other voters); with none, a transaction is held by nobody
// else and Replicate answers nil at once (a single-validator chain).
func NewReplicator(h host.Host, targets func() []peer.ID, maxBatch int, log *slog.Logger) *Replicator {
	return NewReplicatorOver(HostTransport(h), targets, maxBatch, log)
}

// NewReplicatorOver is NewReplicator over any transport.
func NewReplicatorOver(tr BatchTransport, targets func() []peer.ID, maxBatch int, log *slog.Logger) *Replicator {
	r := &Replicator{batcher: newBatcher(maxBatch), tr: tr, targets: targets, log: log}
	r.run(replicateSenders, r.deliver)
	return r
}

// Replicate waits until another validator holds raw: nil, or an error
// wrapping ErrNotReplicated.
func (r *Replicator) Replicate(ctx context.Context, raw []byte) error {
	return r.submit(ctx, raw, "replicate to another validator")
}

// ReplicateBatch waits until another validator holds each of raws, sent
// together as one batch: errs[i] is nil or wraps ErrNotReplicated, as
// Replicate's answer for raws[i].
func (r *Replicator) ReplicateBatch(ctx context.Context, raws [][]byte) []error {
	return r.submitAll(ctx, raws, "replicate to another validator", r.deliver)
}

// SetHolders sets how many targets must hold a transaction before it
// counts as replicated, asked at each batch (at most the number of
// targets; without it, one). A node that is not a validator (an
// observer) forwards its client's transaction to the leader and needs
// two validators to hold it besides its own copy, which does not count
// (docs/design.md's invariant); the leader's copy is one of the two.
// Call it before the first Replicate.
func (r *Replicator) SetHolders(fn func() int) { r.holders = fn }

// Close stops the replicator; queued transactions fail with ErrNotReplicated.
func (r *Replicator) Close() { r.close(fmt.Errorf("%w: node stopping", ErrNotReplicated)) }

// held reports whether a target's verdict means it holds the transaction
// (admitted now, or already had it in its pool or in its chain).
func held(verdict string) bool {
	return verdict == "" || strings.HasPrefix(verdict, VerdictKnown) || strings.HasPrefix(verdict, VerdictApplied)
}

// replicateRetry is how long a target that could not be reached, or that
// refused some transactions, waits before it is asked again.
const replicateRetry = 20 * time.Millisecond

type replicaAnswer struct {
	target   peer.ID
	idx      []int // the batch items asked, in order
	verdicts []string
	err      error
}

// deliver sends one batch to every target at once and answers each
// transaction as soon as one target holds it (or as many as holders
// asks). A target is asked again,
// every replicateRetry until replicateTimeout, for what it did not take:
//
//   - everything, when it could not be reached (a restarting follower);
//   - the transactions it refused. A follower checks a relayed copy
//     against its own applied state, which may be a block or two behind
//     the leader's: a sender funded or verified in the block the leader
//     has just applied is refused ("insufficient funds", "sender is not
//     KYC-verified") until the follower applies that block, typically
//     within one Raft commit round (tens of milliseconds). Answering the
//     client with an error at the first refusal while the transaction
//     stays in the leader's pool (and is included in its next block) made
//     the answer and the pool disagree. Asking again turns such a refusal
//     into "held" as soon as the follower catches up — or into "already
//     applied" once the block including it reaches the follower, which
//     counts as held too.
//
// Only a transaction no target took within replicateTimeout fails, with
// ErrNotReplicated and the targets' last refusals.
func (r *Replicator) deliver(batch []forwardReq) {
	targets := r.targets()
	need := 1
	if r.holders != nil {
		need = r.holders()
	}
	if len(targets) == 0 {
		// A single-validator chain holds it on its one validator; a node
		// that needs other holders and knows of none cannot answer yes.
		var err error
		if need > 1 {
			err = fmt.Errorf("%w: no validator known to hold it", ErrNotReplicated)
		}
		for _, req := range batch {
			req.done <- err
		}
		return
	}
	need = max(1, min(need, len(targets)))
	raws := make([][]byte, len(batch))
	all := make([]int, len(batch))
	for i, req := range batch {
		raws[i] = req.raw
		all[i] = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicateTimeout)
	defer cancel()
	answers := make(chan replicaAnswer, len(targets))
	ask := func(target peer.ID, idx []int, delay time.Duration) {
		go func() {
			if delay > 0 {
				select {
				case <-ctx.Done():
					answers <- replicaAnswer{target: target, idx: idx, err: ctx.Err()}
					return
				case <-time.After(delay):
				}
			}
			sub := make([][]byte, len(idx))
			for k, i := range idx {
				sub[k] = raws[i]
			}
			v, err := r.tr.RoundTrip(ctx, target, RelayProtocol, sub)
			answers <- replicaAnswer{target: target, idx: idx, verdicts: v, err: err}
		}()
	}
	for _, t := range targets {
		ask(t, all, 0)
	}
	answered := make([]bool, len(batch))
	heldBy := make([]int, len(batch)) // targets holding each transaction
	left := len(batch)
	refusals := make([]string, len(batch))
	pending := len(targets)
	var lastErr error
	for pending > 0 && left > 0 {
		var a replicaAnswer
		select {
		case a = <-answers:
		case <-r.stop:
			// Closing: what is unanswered fails now rather than after
			// replicateTimeout of retries against targets that may be
			// gone (a node shutting down, or crashed in the simulator).
			cancel()
			go func() {
				for range pending {
					<-answers
				}
			}()
			for i, req := range batch {
				if !answered[i] {
					req.done <- fmt.Errorf("%w: node stopping", ErrNotReplicated)
				}
			}
			return
		}
		pending--
		var again []int
		if a.err != nil {
			lastErr = a.err
			for _, i := range a.idx {
				if !answered[i] {
					again = append(again, i)
				}
			}
		}
		for k, v := range a.verdicts {
			i := a.idx[k]
			if answered[i] {
				continue
			}
			if held(v) {
				if heldBy[i]++; heldBy[i] < need {
					continue // this target holds it; another must too
				}
				answered[i] = true
				left--
				batch[i].done <- nil
			} else {
				refusals[i] = fmt.Sprintf("%s: %s", a.target, v)
				again = append(again, i)
			}
		}
		if len(again) > 0 && left > 0 && ctx.Err() == nil {
			pending++
			ask(a.target, again, replicateRetry)
		}
	}
	if left == 0 {
		// Drain the other targets' answers in the background.
		go func() {
			for range pending {
				<-answers
			}
		}()
		return
	}
	for i, req := range batch {
		if answered[i] {
			continue
		}
		why := refusals[i]
		if why == "" && lastErr != nil {
			why = lastErr.Error()
		}
		req.done <- fmt.Errorf("%w: %s", ErrNotReplicated, why)
	}
	if lastErr != nil {
		r.log.Warn("replicating admitted transactions failed", "txs", left, "err", lastErr)
	}
}
