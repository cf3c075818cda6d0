package sim

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/p2p"
)

// Transaction forwarding and the leader's replication of admissions run
// the node's own code (node.Admission over p2p.Forwarder and
// p2p.Replicator) over the simulated network: a batch is a queued message
// like a Raft RPC, which the scheduler delivers, drops, delays or lets
// overtake others, and its answer is another. A node's peer ID in the
// simulator is its server ID (n0, n1, ...).

// journalPath is where a simulated node keeps its pool journal, on its
// crashable file system (beside its state and Raft directories, in its
// data dir).
const journalPath = dataDir + "/" + node.PoolJournalFile

// Message kinds of the admission path.
const (
	kindForward = "forward" // p2p.ForwardProtocol
	kindRelay   = "relay"   // p2p.RelayProtocol
)

// batchReq is a forwarded or relayed batch in flight.
type batchReq struct {
	proto protocol.ID
	raws  [][]byte
}

// FaultForwardDup counts batches a node answered twice (a forward or a
// replication sent again after its answer was lost): the receiver must
// not admit a transaction twice, and the sender must not take the
// second "already known" for a refusal.
const FaultForwardDup Fault = "forward-dup"

// FaultForwardDrop counts forwarded or relayed batches, or their answers,
// the network lost.
const FaultForwardDrop Fault = "forward-drop"

// FaultLeaderCrashForwarding counts crashes of the leader while a client
// call was under way through another node or a replication was in flight.
const FaultLeaderCrashForwarding Fault = "forward-leader-crash"

// simPeer is node i's peer ID in the simulator.
func simPeer(i int) peer.ID { return peer.ID(addr(i)) }

// RoundTrip implements p2p.BatchTransport over the simulated network.
func (ep *endpoint) RoundTrip(ctx context.Context, to peer.ID, proto protocol.ID, raws [][]byte) ([]string, error) {
	target, err := parseAddr(raft.ServerAddress(to))
	if err != nil {
		return nil, err
	}
	kind := kindForward
	if proto == p2p.RelayProtocol {
		kind = kindRelay
	}
	done := make(chan raft.RPCResponse, 1)
	n := ep.net
	n.mu.Lock()
	if n.closed || n.eps[ep.id] != ep {
		n.mu.Unlock()
		return nil, errClosed
	}
	toEpoch := -1
	if target < len(n.eps) && n.eps[target] != nil {
		toEpoch = n.eps[target].epoch
	}
	n.seq++
	n.queue = append(n.queue, &message{seq: n.seq, from: ep.id, to: target, fromEpoch: ep.epoch, toEpoch: toEpoch, kind: kind,
		cmd: &batchReq{proto: proto, raws: raws}, done: done})
	n.mu.Unlock()
	select {
	case r := <-done:
		if r.Error != nil {
			return nil, fmt.Errorf("%s to %s: %w", kind, to, r.Error)
		}
		verdicts := r.Response.([]string)
		if len(verdicts) != len(raws) {
			return nil, fmt.Errorf("%s to %s: %d verdicts for %d txs", kind, to, len(verdicts), len(raws))
		}
		return verdicts, nil
	case <-ep.closed:
		return nil, errClosed
	case <-ctx.Done():
		// The stream is reset; the batch may still arrive and be admitted.
		return nil, ctx.Err()
	}
}

// answerBatch runs a delivered batch through the receiver's handler (the
// node's Admission.Handler) and queues the answer.
func (n *network) answerBatch(ep *endpoint, m *message, b *batchReq) {
	if ep.batches == nil {
		n.fail(m, errUnreachable)
		return
	}
	n.mu.Lock()
	if n.answered == nil {
		n.answered = map[[32]byte]bool{}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%d/%d %s ", m.to, m.toEpoch, b.proto)
	for _, raw := range b.raws {
		h.Write(raw)
	}
	var key [32]byte
	copy(key[:], h.Sum(nil))
	if n.answered[key] {
		n.dups++
	}
	n.answered[key] = true
	n.mu.Unlock()
	verdicts, err := ep.batches(b.proto).Handle(simPeer(m.from), b.raws)
	n.respond(ep, m, raft.RPCResponse{Response: verdicts, Error: err})
}

// startAdmission starts the node's admission path over the simulated
// network: forwarding to the leader, replication to the other voters,
// the handlers of forwarded and relayed batches, and the re-forwarding
// of the pool when the leader changes. The pool journal was opened
// (node.OpenAdmission) before consensus started.
func (sn *simNode) startAdmission() {
	e := sn.engine
	leader := func() (peer.ID, bool) {
		_, id := e.Raft.LeaderWithID()
		return peer.ID(id), id != ""
	}
	voters := func() []peer.ID {
		var out []peer.ID
		for _, v := range votersOf(e) {
			if v != sn.id {
				out = append(out, simPeer(v))
			}
		}
		return out
	}
	sn.adm.StartNetwork(sn.ep, simPeer(sn.id), leader, voters, sn.cfg.P2P.MaxForwardBatch)
	fwd, relay := sn.adm.Handler(string(p2p.ForwardProtocol)), sn.adm.Handler(string(p2p.RelayProtocol))
	sn.ep.batches = func(proto protocol.ID) p2p.BatchHandler {
		if proto == p2p.RelayProtocol {
			return relay
		}
		return fwd
	}
	sn.fwdDone = make(chan struct{})
	go sn.followLeader(e, sn.memStop, sn.fwdDone)
}

// votersOf returns the voters of e's Raft configuration.
func votersOf(e *consensus.Engine) []int {
	f := e.Raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []int
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		if i, err := parseAddr(raft.ServerAddress(s.ID)); err == nil {
			out = append(out, i)
		}
	}
	return out
}

// leaderRefresh is how often followLeader looks at the leader besides
// Raft's observations (the node's membershipRefresh).
const leaderRefresh = time.Second

// followLeader re-forwards the pool as soon as another node leads, as the
// node's membership loop does (a Raft leader observation, with a periodic
// check should one be dropped).
func (sn *simNode) followLeader(e *consensus.Engine, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(leaderRefresh)
	defer t.Stop()
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	e.Raft.RegisterObserver(obs)
	defer e.Raft.DeregisterObserver(obs)
	self := raft.ServerID(addr(sn.id))
	var last raft.ServerID
	for {
		select {
		case <-stop:
			return
		case <-ch:
		case <-t.C:
		}
		if _, l := e.Raft.LeaderWithID(); l != last {
			last = l
			if l != "" && l != self {
				sn.adm.Reforward()
			}
		}
	}
}

// countForwardDrop counts m, just dropped, if it is a batch of the
// admission path or its answer.
func (s *Sim) countForwardDrop(m *message) {
	if strings.HasPrefix(m.kind, kindForward) || strings.HasPrefix(m.kind, kindRelay) {
		s.count(FaultForwardDrop)
	}
}

// countLeaderCrashForwarding counts the crash of sn, about to happen, if
// it leads while a client call is under way.
func (s *Sim) countLeaderCrashForwarding(sn *simNode) {
	if s.leader() == sn && s.cl.calls.busy() {
		s.count(FaultLeaderCrashForwarding)
	}
}
