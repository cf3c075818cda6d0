package node

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/p2p"
	"github.com/tally-ledger/tally/state"
)

// votes is the node's commit vote machinery (DESIGN.md decision 10): the
// sender signs a vote for every block this node applies while its key is
// a validator and delivers it to the leader; the collector, fed by the
// vote protocol (and by this node's own sender while it leads), gives the
// builder the certificates that have a quorum.
type votes struct {
	n         *Node
	collector *consensus.VoteCollector
	sender    *consensus.VoteSender
	resend    time.Duration
	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	// ctx ends when the node closes, cutting a delivery short.
	ctx    context.Context
	cancel context.CancelFunc
}

func (n *Node) newVotes() *votes {
	c := consensus.DBChain{DB: n.db}
	cfg := consensus.VoteConfig{Window: n.cfg.Votes.Window, MaxAhead: n.cfg.Votes.MaxAhead}
	v := &votes{
		n:         n,
		collector: consensus.NewVoteCollector(c, cfg),
		sender:    consensus.NewVoteSender(c, n.key, cfg),
		resend:    time.Duration(n.cfg.Votes.ResendInterval),
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	// Votes live in memory: after a restart, vote again for the blocks
	// not certified yet.
	if err := v.sender.Resume(); err != nil {
		n.log.Warn("resuming votes", "err", err)
	}
	return v
}

// restored runs in the FSM goroutine after a snapshot replaced the state:
// the pending votes are forgotten and re-signed from the new state.
func (v *votes) restored() {
	v.sender.Reset()
	if err := v.sender.Resume(); err != nil {
		v.n.log.Warn("resuming votes after a snapshot", "err", err)
	}
}

// applied runs in the FSM goroutine after each applied block.
func (v *votes) applied(a *state.Applied) {
	v.sender.Applied(a.Block.Number(), a.Block.Hash())
	v.collector.Applied(a.Block.Number(), a.Block.Hash())
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// serve accepts votes over the vote protocol. The connection gater admits
// only consortium peers; the collector checks every signer against the
// validator set of the vote's height.
func (v *votes) serve() {
	if v.n.host == nil {
		return
	}
	p2p.ServeVotes(v.n.host.Libp2p(), func(from peer.ID, vs []*chain.Vote) { v.receive(from.String(), vs) }, v.n.log)
}

// receive hands votes to the collector, counting and logging refusals. A
// node keeps the votes it receives even while not leading: it may lead
// next.
func (v *votes) receive(from string, vs []*chain.Vote) {
	kept, refused := v.collector.Add(vs)
	v.n.metrics.votesReceived.Add(float64(kept))
	if len(refused) > 0 {
		v.n.metrics.votesRefused.Add(float64(len(refused)))
		v.n.log.Debug("votes refused", "from", from, "refused", len(refused), "first", refused[0])
	}
}

// run delivers fresh votes as blocks are applied, every vote not yet
// certified each resend interval, and all of them at once to a new leader.
func (v *votes) run() {
	defer close(v.done)
	t := time.NewTicker(v.resend)
	defer t.Stop()
	var lastLeader raft.ServerID
	for {
		all := false
		select {
		case <-v.stop:
			return
		case <-v.kick:
		case <-t.C:
			all = true
		}
		if v.n.engine.Halted() != nil {
			continue // a halted node's votes mean nothing
		}
		_, leader := v.n.engine.Raft.LeaderWithID()
		if leader != lastLeader {
			lastLeader, all = leader, true
		}
		fresh, err := v.sender.Fresh()
		if err != nil {
			v.n.log.Warn("signing votes", "err", err)
		}
		out := fresh
		if all {
			out = v.sender.All()
		}
		if len(out) == 0 || leader == "" {
			continue
		}
		v.deliver(leader, out)
	}
}

// deliver hands votes to the leader: into this node's own collector when
// it leads (or runs without p2p), over the vote protocol otherwise. A
// failed delivery is retried at the next resend.
func (v *votes) deliver(leader raft.ServerID, out []*chain.Vote) {
	n := v.n
	if n.host == nil || string(leader) == n.host.ID().String() {
		v.receive("self", out)
		return
	}
	pid, err := peer.Decode(string(leader))
	if err != nil {
		return
	}
	for _, batch := range consensus.Batches(out, p2p.MaxVotesPerMessage) {
		ctx, cancel := context.WithTimeout(v.ctx, v.resend)
		err := p2p.SendVotes(ctx, n.host.Libp2p(), pid, batch)
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				n.log.Debug("sending votes to the leader", "leader", pid, "votes", len(batch), "err", err)
			}
			return
		}
	}
}

func (v *votes) close() {
	select {
	case <-v.stop:
	default:
		close(v.stop)
		v.cancel()
		<-v.done
	}
}
