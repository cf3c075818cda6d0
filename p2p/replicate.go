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
	h       host.Host
	targets func() []peer.ID
	log     *slog.Logger
}

// NewReplicator starts a replicator to the peers targets returns at each
// batch (the other voters); with none, a transaction is held by nobody
// else and Replicate answers nil at once (a single-validator chain).
func NewReplicator(h host.Host, targets func() []peer.ID, maxBatch int, log *slog.Logger) *Replicator {
	r := &Replicator{batcher: newBatcher(maxBatch), h: h, targets: targets, log: log}
	r.run(replicateSenders, r.deliver)
	return r
}

// Replicate waits until another validator holds raw: nil, or an error
// wrapping ErrNotReplicated.
func (r *Replicator) Replicate(ctx context.Context, raw []byte) error {
	return r.submit(ctx, raw, "replicate to another validator")
}

// Close stops the replicator; queued transactions fail with ErrNotReplicated.
func (r *Replicator) Close() { r.close(fmt.Errorf("%w: node stopping", ErrNotReplicated)) }

// held reports whether a target's verdict means it holds the transaction
// (admitted now, or already had it in its pool or in its chain).
func held(verdict string) bool {
	return verdict == "" || strings.HasPrefix(verdict, "already known") || strings.HasPrefix(verdict, "transaction already applied")
}

type replicaAnswer struct {
	target   peer.ID
	verdicts []string
	err      error
}

// deliver sends one batch to every target at once and answers each
// transaction as soon as one target holds it; targets that fail are
// tried again (a restarting follower) until replicateTimeout.
func (r *Replicator) deliver(batch []forwardReq) {
	targets := r.targets()
	if len(targets) == 0 {
		for _, req := range batch {
			req.done <- nil
		}
		return
	}
	raws := make([][]byte, len(batch))
	for i, req := range batch {
		raws[i] = req.raw
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicateTimeout)
	defer cancel()
	answers := make(chan replicaAnswer, len(targets))
	ask := func(target peer.ID, delay time.Duration) {
		go func() {
			if delay > 0 {
				select {
				case <-ctx.Done():
					answers <- replicaAnswer{target: target, err: ctx.Err()}
					return
				case <-time.After(delay):
				}
			}
			v, err := roundTrip(ctx, r.h, target, RelayProtocol, raws)
			answers <- replicaAnswer{target: target, verdicts: v, err: err}
		}()
	}
	for _, t := range targets {
		ask(t, 0)
	}
	answered := make([]bool, len(batch))
	left := len(batch)
	refusals := make([]string, len(batch))
	pending := len(targets)
	var lastErr error
	for pending > 0 && left > 0 {
		a := <-answers
		pending--
		if a.err != nil {
			lastErr = a.err
			if ctx.Err() == nil {
				// Unreachable for now: ask again shortly.
				pending++
				ask(a.target, 50*time.Millisecond)
			}
			continue
		}
		for i, v := range a.verdicts {
			if answered[i] {
				continue
			}
			if held(v) {
				answered[i] = true
				left--
				batch[i].done <- nil
			} else {
				refusals[i] = fmt.Sprintf("%s: %s", a.target, v)
			}
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
