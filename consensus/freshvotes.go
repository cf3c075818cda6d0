package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// A fresh member started by its operator (--raft-fresh, after a lost
// Raft or data directory: its Raft log, term and vote are gone) must not
// vote before it holds the log again. (A node joining fresh because its
// peers never saw it run, a late first start, never acknowledged
// anything, and votes at once: a new chain's first election may need
// it.) hashicorp/raft v1.8.0 grants a vote
// to any candidate whose log is at least as long as its own when it has
// no configuration yet ("the cluster is very likely trying to bootstrap",
// raft.go:1665), and its own log is empty: a candidate missing an entry
// that was committed with this node's acknowledgement, before the loss,
// could be elected with its vote, and the entry replaced. The cluster
// simulator found it (seed 288: n2 led term 2, committed block 9 with
// n0's acknowledgement and lost its data directory; n0 lost power; n2
// came back fresh and voted for n1, whose log ended before block 9; n1
// led term 3 and n0 took its entries over block 9, which n0 had
// applied).
//
// The rule: a fresh member grants no vote and no pre-vote until it holds
// the log up to a commit index that covers an entry of the current
// leader's term. Every leader elected in the meantime was elected
// without it, by a quorum of the others, which meets every commit quorum
// in a node that kept its log (a commit quorum without this node still
// holds a majority less one, an election quorum of the others a
// majority), so that leader holds every entry committed before; and once
// it committed an entry of its own term, its commit index covers them all
// (a leader commits only entries of its own term directly). From then
// on the node's Raft state is a member's like any other.
//
// The rule holds across restarts: the stable store keeps keyFreshVotes
// until the node caught up.
var keyFreshVotes = []byte("TallyFreshNoVotes")

// voteGate holds back the votes of a fresh member (see above). A nil
// *voteGate grants every vote. It is safe for concurrent use.
type voteGate struct {
	store  *RaftStore
	logger *slog.Logger
	header raft.RPCHeader // of the refusals it answers itself
	// raft is set once raft started; no vote is granted before.
	raft    atomic.Pointer[raft.Raft]
	open    atomic.Bool
	refused atomic.Int64
}

// newVoteGate returns the gate of a node starting with store as its Raft
// stable store: fresh says it starts as a fresh member now, which is
// recorded there; otherwise a record left by an earlier fresh start that
// had not caught up keeps the gate closed. It returns nil if the node may
// vote.
func newVoteGate(store *RaftStore, fresh bool, id raft.ServerID, addr raft.ServerAddress, logger *slog.Logger) (*voteGate, error) {
	if fresh {
		if err := store.SetUint64(keyFreshVotes, 1); err != nil {
			return nil, fmt.Errorf("record the fresh start: %w", err)
		}
	} else {
		v, err := store.GetUint64(keyFreshVotes)
		if errors.Is(err, ErrKeyNotFound) || (err == nil && v == 0) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read the fresh start's record: %w", err)
		}
	}
	logger.Warn("raft: fresh member: granting no vote until this node holds the log up to its leader's commit of the current term", "id", id)
	return &voteGate{store: store, logger: logger, header: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}}, nil
}

// started gives the gate the raft it asks of its commit index.
func (g *voteGate) started(r *raft.Raft) {
	if g != nil {
		g.raft.Store(r)
	}
}

// voting reports whether the node grants votes: it is no fresh member,
// or it caught up. It changes nothing (mayVote records it).
func (g *voteGate) voting() bool {
	if g == nil || g.open.Load() {
		return true
	}
	_, _, ok := g.caughtUp()
	return ok
}

// caughtUp reports whether the node's commit index reached an entry of
// its current term (see above).
func (g *voteGate) caughtUp() (commit, term uint64, ok bool) {
	r := g.raft.Load()
	if r == nil {
		return 0, 0, false
	}
	commit, term = r.CommitIndex(), r.CurrentTerm()
	return commit, term, commit > 0 && g.termAt(r, commit) == term
}

// mayVote reports whether the node may grant votes now. Once it may, it
// always may: the record is cleared.
func (g *voteGate) mayVote() bool {
	if g == nil || g.open.Load() {
		return true
	}
	commit, term, ok := g.caughtUp()
	if !ok {
		return false
	}
	if err := g.store.SetUint64(keyFreshVotes, 0); err != nil {
		g.logger.Error("raft: fresh member caught up, but clearing its record failed: still granting no vote", "err", err)
		return false
	}
	g.open.Store(true)
	g.logger.Info("raft: fresh member caught up: granting votes again", "commit_index", commit, "term", term, "votes_refused", g.refused.Load())
	return true
}

// termAt is the term of the entry at index, read from the log or, for
// the index of the last snapshot (an install of the leader's), from its
// metadata; 0 if unknown.
func (g *voteGate) termAt(r *raft.Raft, index uint64) uint64 {
	var l raft.Log
	if err := g.store.GetLog(index, &l); err == nil {
		return l.Term
	}
	st := r.Stats()
	if st["last_snapshot_index"] == strconv.FormatUint(index, 10) {
		t, _ := strconv.ParseUint(st["last_snapshot_term"], 10, 64)
		return t
	}
	return 0
}

// refuse answers rpc itself if it asks for a vote or a pre-vote the node
// may not grant, and reports whether it did. The answer carries the
// candidate's own term, so that the candidate counts a refusal and does
// not step down; raft never sees the request (nor moves its term to the
// candidate's).
func (g *voteGate) refuse(rpc raft.RPC) bool {
	if g == nil || g.open.Load() {
		return false
	}
	var resp any
	switch req := rpc.Command.(type) {
	case *raft.RequestVoteRequest:
		resp = &raft.RequestVoteResponse{RPCHeader: g.header, Term: req.Term}
	case *raft.RequestPreVoteRequest:
		resp = &raft.RequestPreVoteResponse{RPCHeader: g.header, Term: req.Term}
	default:
		return false
	}
	if g.mayVote() {
		return false
	}
	if g.refused.Add(1) == 1 {
		g.logger.Info("raft: fresh member refused a vote: it does not hold the log yet", "candidate", string(rpc.Command.(raft.WithRPCHeader).GetRPCHeader().ID))
	}
	rpc.Respond(resp, nil)
	return true
}
