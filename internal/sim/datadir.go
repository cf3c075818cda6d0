package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tally-ledger/tally/consensus"
)

// askPeers is the node's consensus.Config.AskPeers: the member question
// (p2p.MemberProtocol) put to every other server of its bootstrap
// configuration over the simulated network, answered at once by those it
// can reach (an unreachable one gives no answer, as a peer that is down
// or cut off does).
func (sn *simNode) askPeers(net *network) func(context.Context) []consensus.PeerAnswer {
	return func(context.Context) []consensus.PeerAnswer {
		var out []consensus.PeerAnswer
		for _, srv := range sn.bootstrap {
			j, err := parseAddr(srv.Address)
			if err != nil || j == sn.id {
				continue
			}
			a := consensus.PeerAnswer{Peer: string(srv.ID)}
			e := net.engines[j].Load()
			if !net.reachable(sn.id, j) || e == nil {
				a.Err = errUnreachable
			} else {
				a.Height, a.KnowsUs = net.heights[j].Load(), e.KnowsMember(sn.key.Address())
			}
			out = append(out, a)
		}
		return out
	}
}

// dataDirLost takes a random up genesis validator that applied Raft
// entries, cuts its power and gives it an empty disk holding only its
// nodekey (the simulated node keeps its key apart from its disk): an
// operator restored nothing else. Its start must be refused
// (consensus.ErrDataDirLost): it forgot its votes and acknowledged
// entries, and its peers know it ran. Its operator then starts it as a
// fresh member (restart, freshSafe), and the invariants check that it
// applies the same chain from scratch.
//
// The fault needs a peer to answer: a node that reaches none cannot tell
// its first start from a lost directory (docs/cluster.md), so the fault
// is injected only while the node reaches another genesis validator, and,
// as for raft-dir-lost, while the others can elect a leader without it.
func (s *Sim) dataDirLost() error {
	up, ok := s.mayLoseOne()
	if !ok {
		return nil
	}
	var cands []*simNode
	for _, i := range up {
		sn := s.nodes[i]
		if len(sn.bootstrap) == 0 {
			continue // not a genesis validator: it does not bootstrap
		}
		if head, _ := sn.db.Head(); head.RaftIndex == 0 {
			continue
		}
		for _, j := range up {
			if j != i && s.net.reachable(i, j) && s.nodes[j].bootstrap != nil {
				cands = append(cands, sn)
				break
			}
		}
	}
	if len(cands) == 0 {
		return nil
	}
	sn := cands[s.rng.IntN(len(cands))]
	s.count(FaultDataDirLost)
	s.record("%s n%d: term %d", FaultDataDirLost, sn.id, currentTerm(sn.engine.Raft))
	if err := sn.crash(s.net, s.rng, lossPercent); err != nil {
		s.record("crash n%d: shutdown: %v", sn.id, err)
	}
	s.inv.crashed(sn)
	sn.fs = vfs.NewCrashableMem()
	sn.repairDisk() // a new disk: none of the old one's faults
	// Its state went with the directory: the new instance starts at
	// genesis and must apply the whole chain again.
	sn.checked = 0
	sn.appliedMu.Lock()
	sn.appliedAt = map[uint64]uint64{}
	sn.appliedMu.Unlock()
	err := sn.start(s.net)
	if err == nil {
		return fmt.Errorf("invariant datadir-lost: n%d bootstrapped on an empty data directory after applying Raft entries: it may vote twice in a term", sn.id)
	}
	if !errors.Is(err, consensus.ErrDataDirLost) {
		return fmt.Errorf("n%d: start on a lost data directory: %w", sn.id, err)
	}
	s.res.DataDirLostRefused++
	s.record("n%d refused to start: %v", sn.id, err)
	sn.lostAt = time.Now()
	return nil
}
