package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/consensus"
)

// peerCheckTimeout is the simulated nodes' raft.peer-check-timeout: a
// genesis validator whose lost directory too few peers can judge gives up
// after it (consensus.ErrPeersSilent) and is refused.
const peerCheckTimeout = 3 * time.Second

// askPeers is the node's consensus.Config.AskPeers: the member question
// (p2p.MemberProtocol) put over the simulated network to every other
// server of its bootstrap configuration, or, for a node that is not a
// genesis validator, to every other node (its p2p.peers), answered at
// once by those it can reach (memberAnswer).
func (sn *simNode) askPeers(net *network) func(context.Context) []consensus.PeerAnswer {
	return func(context.Context) []consensus.PeerAnswer {
		var out []consensus.PeerAnswer
		for j := range net.engines {
			if j == sn.id || (len(sn.bootstrap) > 0 && !slices.ContainsFunc(sn.bootstrap, func(s raft.Server) bool { return s.ID == raft.ServerID(addr(j)) })) {
				continue
			}
			out = append(out, net.memberAnswer(sn, j))
		}
		return out
	}
}

// memberAnswer is node j's answer to the member question of asker, as
// the node's (node.memberAnswer, p2p.MemberProtocol): a node launched
// with the asker for the cluster's first start is waiting too, at
// genesis, knowing nobody; one the asker cannot reach (down, cut off)
// gives no answer; a running one answers from its engine, with the
// voters of its Raft configuration.
func (net *network) memberAnswer(asker *simNode, j int) consensus.PeerAnswer {
	a := consensus.PeerAnswer{Peer: string(addr(j)), HasVoters: true}
	if net.launching[j].Load() {
		return a
	}
	e := net.engines[j].Load()
	if !net.reachable(asker.id, j) || e == nil {
		a.Err = errUnreachable
		return a
	}
	a.Height, a.KnowsUs, a.Ran, a.Voter = net.heights[j].Load(), e.KnowsMember(asker.key.Address()), e.RaftRan(), e.IsVoter(raft.ServerID(addr(asker.id)))
	for _, v := range e.Voters() {
		a.Voters = append(a.Voters, string(v))
	}
	return a
}

// dataDirLost takes a random up validator that applied Raft entries,
// cuts its power and gives it an empty disk holding only its nodekey (the
// simulated node keeps its key apart from its disk): an operator restored
// nothing else. Its start must be refused: it forgot its votes and
// acknowledged entries. A genesis validator is refused with
// consensus.ErrDataDirLost when a peer it reaches knows it ran, and
// otherwise (too few peers answer, or one that may know it is silent)
// waits and gives up with consensus.ErrPeersSilent after
// raft.peer-check-timeout; it must never bootstrap nor join. A validator
// added by governance is taken once the configuration entry that made it
// a voter is on a quorum of that configuration without it (promoted), so
// that any quorum it acknowledged in holds the entry; whether or not a
// peer knows it (a follower is known only to the leaders it followed and
// to the nodes past a certificate carrying its vote), it is refused when
// a peer it reaches has it as a voter, and waits and gives up while too
// few of the current voters answer (consensus.DecideBootstrap); cut off
// from every node, it joins granting no vote until it caught up
// (consensus.JoinUnknown, as --raft-fresh); joining otherwise fails the
// run. Its operator then starts it as a fresh member (restart,
// freshSafe), and the invariants check that it applies the same chain
// from scratch.
//
// As for raft-dir-lost, it is injected only while the others can elect a
// leader without it.
func (s *Sim) dataDirLost() error {
	up, ok := s.mayLoseOne()
	if !ok {
		return nil
	}
	var cands []*simNode
	for _, i := range up {
		sn := s.nodes[i]
		if head, _ := sn.db.Head(); head.RaftIndex == 0 {
			continue
		}
		if len(sn.bootstrap) > 0 || s.promoted(sn, up) {
			cands = append(cands, sn)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	sn := cands[s.rng.IntN(len(cands))]
	s.count(FaultDataDirLost)
	// Whether a peer it reaches knows it: the refusal of an added
	// validator that none knows rests on the voter set alone.
	knownBy := false
	for _, j := range up {
		if j != sn.id && s.net.memberAnswer(sn, j).KnowsUs {
			knownBy = true
		}
	}
	s.record("%s n%d: term %d, known by a peer it reaches: %v", FaultDataDirLost, sn.id, currentTerm(sn.engine.Raft), knownBy)
	if err := sn.crash(s.net, s.rng, lossPercent); err != nil {
		s.record("crash n%d: shutdown: %v", sn.id, err)
	}
	s.inv.crashed(sn)
	sn.fs = vfs.NewCrashableMem()
	sn.repairDisk() // a new disk: none of the old one's faults
	sn.stall.until.Store(0)
	// Its state went with the directory: the new instance starts at
	// genesis and must apply the whole chain again.
	sn.checked = 0
	sn.appliedMu.Lock()
	sn.appliedAt = map[uint64]uint64{}
	sn.appliedMu.Unlock()
	alone := true // it reaches no other node: none can answer
	for j := range s.nodes {
		if j != sn.id && s.net.reachable(sn.id, j) {
			alone = false
		}
	}
	err := sn.start(s.net)
	if err == nil && len(sn.bootstrap) == 0 && !sn.engine.Voting() {
		// No peer whose Raft runs answered (it reaches none): it joined
		// as a fresh member that grants no vote until it caught up
		// (consensus.JoinUnknown), which is what its operator's
		// --raft-fresh would have done.
		s.res.DataDirLostGated++
		s.inv.restarted(sn)
		s.record("n%d started on a lost data directory, granting no vote until it caught up", sn.id)
		return nil
	}
	if err == nil {
		return fmt.Errorf("invariant datadir-lost: n%d started Raft on an empty data directory after applying Raft entries: it may vote twice in a term", sn.id)
	}
	switch {
	case errors.Is(err, consensus.ErrDataDirLost):
		s.res.DataDirLostRefused++
		if len(sn.bootstrap) == 0 {
			s.res.DataDirLostAdded++
			if !knownBy {
				s.res.DataDirLostVoterSet++
			}
		}
	case errors.Is(err, consensus.ErrPeersSilent):
		s.res.DataDirLostWaited++
		if alone {
			s.res.DataDirLostAlone++
		}
	default:
		return fmt.Errorf("n%d: start on a lost data directory: %w", sn.id, err)
	}
	s.record("n%d refused to start: %v", sn.id, err)
	sn.lostAt = time.Now()
	return nil
}

// promoted reports whether sn, a validator added by governance, is a
// voter in the configuration of a voter up other than sn, and the voters
// up that have it as one are at least a quorum of that configuration
// without sn: the entry that promoted it holds on a quorum.
func (s *Sim) promoted(sn *simNode, up []int) bool {
	id := raft.ServerID(addr(sn.id))
	var holders, size int
	for _, j := range up {
		e := s.nodes[j].engine
		if j == sn.id || e == nil || !e.IsVoter(raft.ServerID(addr(j))) || !e.IsVoter(id) {
			continue
		}
		holders++
		size = max(size, len(s.nodes[j].engine.Voters()))
	}
	return holders > 0 && holders >= size/2
}
