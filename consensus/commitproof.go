package consensus

import (
	"sync"

	"github.com/hashicorp/raft"
)

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
// commitProofTransport applies the paper's rule on both sides of the
// wire (provenCommit): an AppendEntries request never carries a commit
// index past the last entry it proves the follower's log holds (its last
// entry, or PrevLogEntry when it has none). The sending side is enough
// while every node runs this code; the receiving side lowers a request's
// commit index before raft sees it, so that a follower is safe whatever
// its leader sends (a node of a release without the sending side, during
// a rolling upgrade). The follower learns the rest with the next request
// that carries or checks those entries; the leader's commit timeout sends
// one while its commit index is ahead (replication.go:169-171).
//
// It also applies the node's other rules at the transport (transportRules).
type commitProofTransport struct {
	raft.Transport
	transportRules
	// consumer is what raft reads its requests from: the wrapped
	// transport's own when it takes receivedProven itself
	// (RequestFilterer), otherwise a relay (relayProven) started at the
	// first call, which stops at Close.
	consumer     <-chan raft.RPC
	consumerOnce sync.Once
	filtered     bool
	stop         chan struct{}
	stopOnce     sync.Once
}

// RequestFilterer is a transport that can pass every request it hands raft
// (its consumer channel and its heartbeat handler) through filter first:
// withCommitProof gives it the receiving side's rules instead of relaying
// its consumer channel through a goroutine of its own. The cluster
// simulator's network is one, so that its schedules do not gain a
// goroutine hop per message. filter returns the request raft is to get,
// or false if it answered the request itself (rpc.Respond): then raft
// never sees it.
type RequestFilterer interface {
	FilterRequests(filter func(rpc raft.RPC) (raft.RPC, bool))
}

// transportRules are the node's rules that the transport applies to
// what raft sends and receives; a zero field applies none.
type transportRules struct {
	// logs is the node's Raft log: an AppendEntries request whose
	// previous entry the log does not hold has the entries the log
	// already holds dropped (skipHeldEntries).
	logs raft.LogStore
	// answered is told of every server whose Raft answered a request
	// (knownMembers.sawServer: a peer that lost its data directory asks
	// whether it ran before), before raft sees the answer.
	answered func(raft.ServerID)
	// heard is told of every server whose Raft sent a request that raft
	// answers with a vote or an acknowledgement, and returns a channel
	// closed once that server's record is durable (nil: it is):
	// raft's answer leaves only then (knownMembers.heard).
	heard func(raft.ServerID) <-chan struct{}
	// votes answers the vote requests a fresh member may not grant yet
	// (voteGate).
	votes *voteGate
	// promoted has the vote requests of candidates that are no voters of
	// the configuration judged as standard Raft judges them
	// (promotionVotes).
	promoted *promotionVotes
}

// withCommitProof wraps t so that the AppendEntries requests it sends and
// those it receives carry only a proven commit index, and rules apply,
// keeping pre-vote exactly as t has it. The result can always be closed
// (raft closes its transport at shutdown): that ends the relay and the
// answers held, then closes t if t can be.
func withCommitProof(t raft.Transport, rules transportRules) raft.Transport {
	base := &commitProofTransport{Transport: t, transportRules: rules, stop: make(chan struct{})}
	if f, ok := t.(RequestFilterer); ok {
		f.FilterRequests(base.receive)
		base.filtered = true
	}
	if pv, prevote := t.(raft.WithPreVote); prevote {
		return &struct {
			*commitProofTransport
			raft.WithPreVote
		}{base, answeredPreVote{pv, base.answer}}
	}
	return base
}

// Consumer implements raft.Transport: the wrapped transport's requests,
// each through receivedProven.
func (t *commitProofTransport) Consumer() <-chan raft.RPC {
	t.consumerOnce.Do(func() {
		if t.filtered {
			t.consumer = t.Transport.Consumer()
			return
		}
		t.consumer = relay(t.Transport.Consumer(), t.receive, t.stop)
	})
	return t.consumer
}

// SetHeartbeatHandler implements raft.Transport: a transport's fast path
// for heartbeats (raft's carry no commit index, replication.go:390) goes
// through receivedProven too.
func (t *commitProofTransport) SetHeartbeatHandler(cb func(raft.RPC)) {
	if cb == nil || t.filtered {
		t.Transport.SetHeartbeatHandler(cb)
		return
	}
	t.Transport.SetHeartbeatHandler(func(rpc raft.RPC) { cb(receivedProven(rpc)) })
}

// receive is the receiving side's rules, for every request raft is to
// be handed: a vote the node may not grant is answered here (false), as
// is a pre-vote of a candidate that is no voter of the configuration; an
// AppendEntries request carries only a proven commit index.
func (t *commitProofTransport) receive(rpc raft.RPC) (raft.RPC, bool) {
	if t.votes.refuse(rpc) {
		return rpc, false
	}
	rpc, pass := t.promoted.admit(rpc)
	if !pass {
		return rpc, false
	}
	if t.heard != nil {
		if recorded := t.heard(answeredSender(rpc)); recorded != nil {
			rpc = t.holdAnswer(rpc, recorded)
		}
	}
	if t.logs != nil {
		if req, ok := rpc.Command.(*raft.AppendEntriesRequest); ok {
			rpc.Command = skipHeldEntries(req, t.logs)
		}
	}
	return receivedProven(rpc), true
}

// skipHeldEntries returns req, or a copy of it whose previous entry is
// the log's last entry and whose entries are those after it, when the
// log does not hold req's previous entry but holds its own last entry
// with the index and term of one of req's entries (by Raft's log
// matching, the two logs are then the same up to it).
//
// hashicorp/raft v1.8.0's follower (appendEntries, raft.go:1498-1507)
// takes the previous entry's term from its last entry or from its log,
// never from its last snapshot: after installing a snapshot ending at s
// and storing s+1, whose answer was lost, it rejects the leader's
// retransmit (previous entry s, inside the snapshot), with no backoff;
// the leader falls back to sending the snapshot again, whose install
// keeps s+1, and the cycle repeats until the leader snapshots past it
// (hashicorp/raft#205). The cluster simulator found it (seed 839: the
// node being promoted never acknowledged an entry again, and with its
// promotion appended no quorum could commit). raft still checks the
// previous entry it is given against its own log.
func skipHeldEntries(req *raft.AppendEntriesRequest, logs raft.LogStore) *raft.AppendEntriesRequest {
	if len(req.Entries) == 0 || req.PrevLogEntry == 0 {
		return req
	}
	last, err := logs.LastIndex()
	if err != nil || last <= req.PrevLogEntry || last < req.Entries[0].Index {
		return req
	}
	var prev raft.Log
	if err := logs.GetLog(req.PrevLogEntry, &prev); err == nil {
		return req // raft finds it
	}
	var held raft.Log
	if err := logs.GetLog(last, &held); err != nil {
		return req
	}
	i := int(last - req.Entries[0].Index)
	if i >= len(req.Entries) || req.Entries[i].Index != last || req.Entries[i].Term != held.Term {
		return req
	}
	// Never changed in place: raft reuses it, and an in-memory transport
	// hands the receiver the sender's own request.
	out := *req
	out.PrevLogEntry, out.PrevLogTerm = last, held.Term
	out.Entries = req.Entries[i+1:]
	return &out
}

// answeredSender is the server whose request rpc is, when raft's answer
// to it can be a vote or an acknowledgement of entries (a vote, an
// AppendEntries or a snapshot install); "" otherwise (a pre-vote grants
// nothing raft keeps).
func answeredSender(rpc raft.RPC) raft.ServerID {
	switch req := rpc.Command.(type) {
	case *raft.AppendEntriesRequest:
		return requestSender(req.RPCHeader)
	case *raft.RequestVoteRequest:
		return requestSender(req.RPCHeader)
	case *raft.InstallSnapshotRequest:
		return requestSender(req.RPCHeader)
	}
	return ""
}

// requestSender is the server that sent a request with header h: its ID,
// or its address when the request has none (a vote request that
// promotionVotes stripped of its ID), which is its ID in Tally.
func requestSender(h raft.RPCHeader) raft.ServerID {
	if len(h.ID) == 0 {
		return raft.ServerID(h.Addr)
	}
	return raft.ServerID(h.ID)
}

// holdAnswer returns rpc with raft's answer held back until recorded is
// closed, or dropped when the transport closes first (the sender's call
// then fails, as when the node goes down before it answers).
func (t *commitProofTransport) holdAnswer(rpc raft.RPC, recorded <-chan struct{}) raft.RPC {
	out := rpc.RespChan
	in := make(chan raft.RPCResponse, 1)
	rpc.RespChan = in
	go func() {
		var r raft.RPCResponse
		select {
		case r = <-in:
		case <-t.stop:
			return
		}
		select {
		case <-recorded:
			out <- r
		case <-t.stop:
		}
	}()
	return rpc
}

// Close implements raft.WithClose: it ends the relay, then closes the
// wrapped transport if it can be closed.
func (t *commitProofTransport) Close() error {
	t.stopRelay()
	if c, ok := t.Transport.(raft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// stopRelay ends t's relay (if t is withCommitProof's and has one)
// without closing the transport it wraps: for a raft that never started
// (NewRaft failed), whose caller still owns the transport.
func stopRelay(t raft.Transport) {
	if s, ok := t.(interface{ stopRelay() }); ok {
		s.stopRelay()
	}
}

func (t *commitProofTransport) stopRelay() { t.stopOnce.Do(func() { close(t.stop) }) }

// relay hands raft every request of in that filter passes, as filter
// returns it, until stop is closed. A request taken from in when stop
// closes is dropped: raft is shutting down, and the transport's own
// shutdown (or its timeout) answers its sender.
func relay(in <-chan raft.RPC, filter func(raft.RPC) (raft.RPC, bool), stop <-chan struct{}) <-chan raft.RPC {
	out := make(chan raft.RPC)
	go func() {
		for {
			select {
			case rpc := <-in:
				rpc, pass := filter(rpc)
				if !pass {
					continue
				}
				select {
				case out <- rpc:
				case <-stop:
					return
				}
			case <-stop:
				return
			}
		}
	}()
	return out
}

// receivedProven is the receiving side of provenCommit: an AppendEntries
// request raft is handed carries no commit index past what it proves.
func receivedProven(rpc raft.RPC) raft.RPC {
	if req, ok := rpc.Command.(*raft.AppendEntriesRequest); ok {
		rpc.Command = provenCommit(req)
	}
	return rpc
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
// and an in-memory transport hands the receiver the sender's own request,
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
