package consensus

import (
	"strconv"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// hashicorp/raft v1.8.0 refuses a vote and a pre-vote to a candidate that
// is a non-voter in the receiver's latest configuration (raft.go:1703,
// 1807), a rule standard Raft does not have: it was made for a voter
// demoted without knowing it (hashicorp/raft#526). A node that missed
// the entry promoting a validator (cut off when the leader appended it)
// then refuses that validator, while the others count it as a voter:
// the promotion commits without the stale node (the promoted one counts
// itself), and once one more voter is lost, no candidate can reach a
// quorum. The cluster simulator found it (seed 7 with weights
// {add-validator 3, datadir-lost 1, restart 1, partition 3, heal 1}): the
// leader n0 promoted n3, committed it with n2 and n3 while n1 was cut
// off, and lost its data directory; n3's log was the longest, so n1 and
// n2 refused each other's rivals by the log, and n1 refused n3 as a
// non-voter. n1, n2 and n3, three of the four voters, stayed candidates
// for good (TestPromotedVoterElected).
//
// The rule here: the request of a candidate that the node's latest
// configuration has as a non-voter is judged as standard Raft judges
// any candidate's. A vote request reaches raft without the candidate's
// server ID, so that raft skips its membership checks (raft.go:1662,
// "for older raft version ID is not part of the packed message"), and
// decides by term, leader, log and the vote it already cast, which it
// persists as for any candidate. A pre-vote, which raft refuses without
// an ID, is answered here by raft's own pre-vote rules (known leader,
// term, log). This keeps Raft's safety: election safety rests on one
// persisted vote per term and leader completeness on the log comparison,
// both raft's own; neither depends on whom the receiver counts as a
// voter (the candidate counts votes by its own configuration, which
// overlaps every quorum of the one before it, as hashicorp/raft changes
// one server at a time). A candidate outside the configuration
// altogether (a removed validator) is still refused, as raft does.
//
// In Tally the server ID and address of a validator are the same string
// (its libp2p peer ID), so that observedSender still knows the candidate.
type promotionVotes struct {
	header raft.RPCHeader // of the pre-vote answers it gives itself
	// raft is set once raft started; until then raft's own rules apply.
	raft atomic.Pointer[raft.Raft]
}

// newPromotionVotes returns the rules for the node id at addr.
func newPromotionVotes(id raft.ServerID, addr raft.ServerAddress) *promotionVotes {
	return &promotionVotes{header: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}}
}

// started gives the rules the raft whose configuration and log they read.
func (p *promotionVotes) started(r *raft.Raft) {
	if p != nil {
		p.raft.Store(r)
	}
}

// admit returns the request raft is to get, or false if it answered the
// request itself (a pre-vote of a candidate the configuration has as a
// non-voter). A nil *promotionVotes passes every request as it is.
func (p *promotionVotes) admit(rpc raft.RPC) (raft.RPC, bool) {
	if p == nil {
		return rpc, true
	}
	r := p.raft.Load()
	if r == nil {
		return rpc, true
	}
	switch req := rpc.Command.(type) {
	case *raft.RequestVoteRequest:
		if !nonvoter(r, req.ID) {
			return rpc, true
		}
		// An in-memory transport hands the receiver the sender's own
		// request: it is copied, never changed in place.
		anon := *req
		anon.ID = nil
		if len(anon.Addr) == 0 {
			anon.Addr = req.ID
		}
		rpc.Command = &anon
		return rpc, true
	case *raft.RequestPreVoteRequest:
		if !nonvoter(r, req.ID) {
			return rpc, true
		}
		rpc.Respond(p.preVote(r, req), nil)
		return rpc, false
	}
	return rpc, true
}

// nonvoter reports whether id is a non-voter in r's latest configuration.
func nonvoter(r *raft.Raft, id []byte) bool {
	if len(id) == 0 {
		return false
	}
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if s.ID == raft.ServerID(id) {
			return s.Suffrage == raft.Nonvoter
		}
	}
	return false
}

// preVote is raft's answer to a pre-vote (requestPreVote, raft.go:1759)
// without its membership checks: refused while the node has another
// leader or a later term, or when its own log is more up to date than
// the candidate's. It reads raft's state outside raft's main loop; a
// pre-vote changes nothing, and the vote that follows it is raft's.
func (p *promotionVotes) preVote(r *raft.Raft, req *raft.RequestPreVoteRequest) *raft.RequestPreVoteResponse {
	term := r.CurrentTerm()
	resp := &raft.RequestPreVoteResponse{RPCHeader: p.header, Term: term}
	if leader, _ := r.LeaderWithID(); leader != "" && leader != raft.ServerAddress(req.Addr) {
		return resp
	}
	if req.Term < term {
		return resp
	}
	resp.Term = req.Term
	lastIndex, lastTerm := lastEntry(r)
	resp.Granted = req.LastLogTerm > lastTerm || (req.LastLogTerm == lastTerm && req.LastLogIndex >= lastIndex)
	return resp
}

// lastEntry is the index and term of r's last entry, from its log or,
// when the last snapshot is past the log's end, from the snapshot (raft's
// getLastEntry, read through Stats).
func lastEntry(r *raft.Raft) (index, term uint64) {
	st := r.Stats()
	num := func(k string) uint64 { n, _ := strconv.ParseUint(st[k], 10, 64); return n }
	index, term = num("last_log_index"), num("last_log_term")
	if si := num("last_snapshot_index"); si > index {
		index, term = si, num("last_snapshot_term")
	}
	return index, term
}
