package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/rpc"
)

// AdmitBatch implements rpc.BatchAdmitter: the node's end of the
// admission pipeline for a client's JSON-RPC batch, whose transactions the
// server has decoded once, charged to the rate limits and recovered on all
// cores (Admission.AdmitBatch).
func (n *Node) AdmitBatch(ctx context.Context, batch []rpc.Admission) []error {
	if err := n.engine.Halted(); err != nil {
		errs := make([]error, len(batch))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	return n.adm.AdmitBatch(ctx, batch)
}

// AdmitBatch is Submit for a client's batch, each transaction decoded
// once and its sender recovered: the leader (or a node without peers)
// admits them into its pool in the batch's order and answers once one
// journal sync and one replication round hold them all (admitBatchHere);
// a follower forwards them to the leader as one message of the bytes the
// client sent (forwardBatch). The guarantees are Submit's: an admitted
// transaction is on two validators, and in the pool journal of each node
// that answered for it, before its client hears of it. errs[i] is
// batch[i]'s verdict.
func (a *Admission) AdmitBatch(ctx context.Context, batch []rpc.Admission) []error {
	if len(batch) == 0 {
		return nil
	}
	if a.leads() {
		return a.admitBatchHere(ctx, batch)
	}
	return a.forwardBatch(ctx, batch)
}

// admitBatchHere admits batch into this node's pool in order, queues the
// admitted ones' raw bytes in the pool journal, then syncs the journal
// while another validator is given them all at once
// (p2p.Replicator.ReplicateBatch), as AdmitLocal does for one transaction.
func (a *Admission) admitBatchHere(ctx context.Context, batch []rpc.Admission) []error {
	errs := make([]error, len(batch))
	raws := make([][]byte, 0, len(batch))
	at := make([]int, 0, len(batch)) // raws[k] is batch[at[k]]'s
	for i, b := range batch {
		if _, err := a.cfg.Pool.Add(b.Tx); err != nil {
			errs[i] = err
			if errors.Is(err, mempool.ErrKnown) {
				// Replicated with the others before it is said (Refused).
				raws, at = append(raws, b.Raw), append(at, i)
			}
			continue
		}
		inc(a.cfg.Admitted)
		a.journal.Append(b.Raw)
		raws, at = append(raws, b.Raw), append(at, i)
	}
	if len(raws) == 0 {
		return errs
	}
	synced := make(chan error, 1)
	go func() { synced <- a.journal.Sync() }()
	var replicated []error
	if a.replicator != nil {
		replicated = a.replicateRaws(ctx, raws)
	}
	serr := <-synced
	for k, i := range at {
		switch {
		case serr != nil:
			errs[i] = serr
		case replicated != nil:
			if rerr := a.replicated(batch[i].Tx, replicated[k]); rerr != nil || errs[i] == nil {
				errs[i] = rerr
			}
		}
	}
	return errs
}

// replicateRaws waits until another validator holds each of raws: a
// batch's as one message of its own (p2p.Replicator.ReplicateBatch), a
// single call's transaction through the replicator's queue, so that
// concurrent clients' single calls travel together (Replicate).
func (a *Admission) replicateRaws(ctx context.Context, raws [][]byte) []error {
	if len(raws) == 1 {
		return []error{a.replicator.Replicate(ctx, raws[0])}
	}
	return a.replicator.ReplicateBatch(ctx, raws)
}

// replicated is the answer for tx, admitted from this node's client, once
// its replication ended with err (see replicate): nil when another
// validator holds it, or when it is applied meanwhile; else err, saying
// that the transaction stays pending here.
func (a *Admission) replicated(tx *types.Transaction, err error) error {
	if err == nil {
		return nil
	}
	if applied, herr := a.cfg.DB.HasTx(tx.Hash()); herr == nil && applied {
		return nil
	}
	inc(a.cfg.NotReplicated)
	return fmt.Errorf("%w (it stays pending on this node and may still be included: check its receipt before re-sending)", err)
}

// forwardBatch sends batch to the leader as one message of the raw bytes
// the client sent (p2p.Forwarder.ForwardBatch) and returns the leader's
// verdicts; each transaction the leader admitted is kept in this node's
// pool and journal, synced once for the batch, as Forward does for one.
//
// Two kinds of element are answered here without the leader: one this node
// has applied already ("already known", as the leader's own pool answers
// it; the leader may be unreachable, and a wallet would try every node
// for it), and a second copy of an earlier element of the same batch
// (answered as go-ethereum answers it, after the first: "already known"
// if the first was admitted, else the first's refusal). The forwarder
// reads a retried batch's "already known" as admitted, since the first
// attempt may have reached the leader; a copy sent with it would then
// be acknowledged as a transaction of its own.
func (a *Admission) forwardBatch(ctx context.Context, batch []rpc.Admission) []error {
	errs := make([]error, len(batch))
	first := make(map[common.Hash]int, len(batch))
	dups := map[int]int{} // a later copy's index → its first's
	var fwd []int         // the elements the leader is asked about
	for i, b := range batch {
		h := b.Tx.Hash()
		if j, ok := first[h]; ok {
			dups[i] = j
			continue
		}
		first[h] = i
		if err := a.appliedHere(b.Tx); err != nil {
			errs[i] = err
			continue
		}
		fwd = append(fwd, i)
	}
	if len(fwd) > 0 {
		raws := make([][]byte, len(fwd))
		for k, i := range fwd {
			raws[k] = batch[i].Raw
		}
		var verdicts []error
		if len(raws) == 1 {
			// A single call's transaction joins the forwarder's queue, so
			// that concurrent clients' single calls reach the leader
			// together; a batch travels as a message of its own.
			verdicts = []error{a.forwarder.Forward(ctx, raws[0])}
		} else {
			verdicts = a.forwarder.ForwardBatch(ctx, raws)
		}
		for k, i := range fwd {
			errs[i] = fromLeader(batch[i].Tx, verdicts[k])
		}
	}
	a.keepForwarded(ctx, batch, fwd, errs)
	for i, j := range dups {
		if errs[j] != nil && !leaderHolds(errs[j]) {
			errs[i] = errs[j]
		} else {
			errs[i] = fmt.Errorf("%w: %s", mempool.ErrKnown, batch[i].Tx.Hash())
		}
	}
	return errs
}

// appliedHere is the refusal of tx when this node has applied it already
// (nil otherwise, or when the database cannot say: the leader decides).
func (a *Admission) appliedHere(tx *types.Transaction) error {
	if applied, err := a.cfg.DB.HasTx(tx.Hash()); err == nil && applied {
		return errApplied(tx)
	}
	return nil
}

// errApplied is a follower's answer for tx, applied on this node or on the
// leader: the pool's own refusal of an applied transaction, which
// rpc.ClientError words for the client ("already known").
func errApplied(tx *types.Transaction) error {
	return fmt.Errorf("%w: %s", mempool.ErrAlreadyApplied, tx.Hash())
}

// keepForwarded keeps in this node's pool and journal each element of fwd
// the leader holds (errs[i] nil or "already known"), synced once, as
// Forward does for one; a failed sync becomes their answer.
func (a *Admission) keepForwarded(ctx context.Context, batch []rpc.Admission, fwd []int, errs []error) {
	var held, again []int
	voter := a.validator()
	for _, i := range fwd {
		err := errs[i]
		if err != nil && !leaderHolds(err) {
			continue
		}
		if err == nil {
			inc(a.cfg.Forwarded)
		}
		held = append(held, i)
		// The leader's verdict is the answer, and this node keeps a copy
		// (see Forward); what its pool said of the copy decides the rest
		// (forwardedCopy).
		_, kept := a.cfg.Pool.AddRelayed(batch[i].Tx)
		if kept == nil {
			a.journal.Append(batch[i].Raw)
		}
		switch next, err := forwardedCopy(kept, voter); next {
		case copyNotReplicated:
			errs[i] = err
		case copyReplicate:
			again = append(again, i)
		}
	}
	if len(held) > 0 {
		if err := a.journal.Sync(); err != nil {
			for _, i := range held {
				errs[i] = err
			}
			return
		}
	}
	if len(again) > 0 && a.replicator != nil {
		sub := make([][]byte, len(again))
		for k, i := range again {
			sub[k] = batch[i].Raw
		}
		for k, rerr := range a.replicateRaws(ctx, sub) {
			if rerr = a.replicated(batch[again[k]].Tx, rerr); rerr != nil {
				errs[again[k]] = rerr
			}
		}
	}
}
