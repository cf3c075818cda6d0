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
// A node cut off before the promoted validator was even added as a
// non-voter has no such server in its configuration at all, and raft
// refuses it the same way ("not in configuration", raft.go:1667, 1781):
// the same deadlock (seeds 278, 351 and 1364 with the same weights).
//
// The rule here: the request of a candidate that is no voter of the
// node's latest configuration (a non-voter, or not in it) is judged as
// standard Raft judges any candidate's. A vote request reaches raft without the candidate's
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
// one server at a time). A removed validator that campaigns still has
// no removal entry, which a majority of its own configuration holds
// once the removal committed, so those voters refuse it by the log; and
// while the cluster has a leader, no node grants it even a pre-vote.
// Only consortium peers reach the transport (p2p's connection gate).
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
// request itself (a pre-vote of a candidate that is no voter of the
// configuration). A nil *promotionVotes passes every request as it is.
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
		if !notVoter(r, req.ID) {
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
		if !notVoter(r, req.ID) {
			return rpc, true
		}
		rpc.Respond(p.preVote(r, req), nil)
		return rpc, false
	}
	return rpc, true
}

// notVoter reports whether id is no voter of r's latest configuration,
// which has servers (raft applies its own rules to an empty one: a
// cluster bootstrapping).
func notVoter(r *raft.Raft, id []byte) bool {
	servers := r.GetConfiguration().Configuration().Servers
	if len(id) == 0 || len(servers) == 0 {
		return false
	}
	for _, s := range servers {
		if s.ID == raft.ServerID(id) {
			return s.Suffrage != raft.Voter
		}
	}
	return true
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
