package consensus

import "github.com/hashicorp/raft"

// A follower of hashicorp/raft (v1.8.0) takes the commit index an
// AppendEntries request carries up to its own last log index
// (min(LeaderCommitIndex, lastIndex) in raft.go's appendEntries), whatever
// the request proved of that log: the Raft paper's rule is
// min(leaderCommit, index of last new entry). A follower whose log still
// holds entries the leader does not have (written while it led an older
// term, never committed) then applies them as committed when a request
// checks an earlier entry only, with no entries after it: the leader's
// replication goroutine builds such a request when it waited out a
// failure backoff after capturing its last index, while its commit index
// moved on. The follower applies a block the cluster never committed, and
// then the leader's different block at the same height: a fork. Found by
// the cluster simulator (internal/sim, seed 123: a leader of term 2 cut
// off with two uncommitted blocks; on healing, the new leader's first
// request checked entry 48 and said commit 50, and the old leader applied
// its own blocks 46 and 47).
//
// commitProofTransport closes it on the sending side, for every node runs
// this code: an AppendEntries request never carries a commit index past
// the last entry it proves the follower's log holds (its last entry, or
// PrevLogEntry when it has none). The follower learns the rest with the
// next request that carries or checks those entries; the leader's commit
// timeout sends one while entries are pending.
//
// It also tells answered (when not nil) of every server whose Raft
// answered a request (knownMembers: a peer that lost its data directory
// asks whether it ran before).
type commitProofTransport struct {
	raft.Transport
	answered func(raft.ServerID)
}

// withCommitProof wraps t so that its AppendEntries requests carry only a
// proven commit index, keeping the optional interfaces raft looks for
// (pre-vote, close) exactly as t has them.
func withCommitProof(t raft.Transport, answered func(raft.ServerID)) raft.Transport {
	base := &commitProofTransport{Transport: t, answered: answered}
	pv, prevote := t.(raft.WithPreVote)
	if prevote {
		pv = answeredPreVote{pv, base.answer}
	}
	cl, closer := t.(raft.WithClose)
	switch {
	case prevote && closer:
		return &struct {
			*commitProofTransport
			raft.WithPreVote
			raft.WithClose
		}{base, pv, cl}
	case prevote:
		return &struct {
			*commitProofTransport
			raft.WithPreVote
		}{base, pv}
	case closer:
		return &struct {
			*commitProofTransport
			raft.WithClose
		}{base, cl}
	}
	return base
}

// AppendEntries implements raft.Transport.
func (t *commitProofTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.answer(id, t.Transport.AppendEntries(id, target, provenCommit(args), resp))
}

// RequestVote implements raft.Transport.
func (t *commitProofTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.answer(id, t.Transport.RequestVote(id, target, args, resp))
}

// answer passes err on, telling t.answered that id answered when err is nil.
func (t *commitProofTransport) answer(id raft.ServerID, err error) error {
	if err == nil && t.answered != nil {
		t.answered(id)
	}
	return err
}

// answeredPreVote is a transport's pre-vote that tells answer of every answer.
type answeredPreVote struct {
	raft.WithPreVote
	answer func(raft.ServerID, error) error
}

// RequestPreVote implements raft.WithPreVote.
func (p answeredPreVote) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return p.answer(id, p.WithPreVote.RequestPreVote(id, target, args, resp))
}

// AppendEntriesPipeline implements raft.Transport.
func (t *commitProofTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.Transport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return commitProofPipeline{p}, nil
}

type commitProofPipeline struct {
	raft.AppendPipeline
}

// AppendEntries implements raft.AppendPipeline.
func (p commitProofPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	return p.AppendPipeline.AppendEntries(provenCommit(args), resp)
}

// provenCommit returns args, or a copy of it whose LeaderCommitIndex is
// lowered to the last index the request proves: its last entry, or the
// entry it checks (PrevLogEntry). A heartbeat (no entry checked, no
// commit index) passes as it is. raft reuses args for the next request,
// so it is never changed in place.
func provenCommit(args *raft.AppendEntriesRequest) *raft.AppendEntriesRequest {
	proven := args.PrevLogEntry
	if n := len(args.Entries); n > 0 {
		proven = args.Entries[n-1].Index
	}
	if args.LeaderCommitIndex <= proven {
		return args
	}
	c := *args
	c.LeaderCommitIndex = proven
	return &c
}
