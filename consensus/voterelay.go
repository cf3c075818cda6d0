package consensus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/store"
)

// VoteTransport carries a validator's votes to the leader: the node's
// libp2p vote protocol, or the cluster simulator's network.
type VoteTransport interface {
	// SendVotes delivers votes to the leader; an error leaves them for
	// the next resend. ctx ends when the relay closes; the transport
	// bounds each attempt itself.
	SendVotes(ctx context.Context, leader raft.ServerID, votes []*chain.Vote) error
}

// VoteRelay is a node's commit vote machinery (DESIGN.md decision 10): the
// sender signs a vote for every block this node applies while its key is
// a validator and delivers it to the leader; the collector, fed by the
// transport (and by this node's own sender while it leads), gives the
// builder the certificates that have a quorum (BuilderConfig.Certificates
// = Collector.Ready).
type VoteRelay struct {
	Collector *VoteCollector
	sender    *VoteSender
	self      raft.ServerID
	transport VoteTransport
	resend    time.Duration
	// OnReceived, if set, is told how many votes Receive kept and which it
	// refused (metrics, logs).
	OnReceived func(from string, kept int, refused []error)
	log        *slog.Logger

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	// ctx ends when the relay stops, cutting a delivery short.
	ctx    context.Context
	cancel context.CancelFunc
}

// NewVoteRelay returns the vote machinery of node self signing with key
// over db's chain; votes not yet certified are re-sent every resend. A
// nil transport keeps every vote local (a node without peers).
func NewVoteRelay(db *store.DB, key *crypto.PrivateKey, cfg VoteConfig, self raft.ServerID, transport VoteTransport, resend time.Duration, logger *slog.Logger) *VoteRelay {
	c := DBChain{DB: db}
	v := &VoteRelay{
		Collector: NewVoteCollector(c, cfg),
		sender:    NewVoteSender(c, key, cfg),
		self:      self,
		transport: transport,
		resend:    resend,
		log:       logger,
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	// Votes live in memory: after a restart, vote again for the blocks
	// not certified yet.
	if err := v.sender.Resume(); err != nil {
		logger.Warn("resuming votes", "err", err)
	}
	return v
}

// Restored runs in the FSM goroutine after a snapshot replaced the state:
// the pending votes are forgotten and re-signed from the new state.
func (v *VoteRelay) Restored() {
	v.sender.Reset()
	if err := v.sender.Resume(); err != nil {
		v.log.Warn("resuming votes after a snapshot", "err", err)
	}
}

// Applied runs in the FSM goroutine after each applied block.
func (v *VoteRelay) Applied(a *store.Applied) {
	v.sender.Applied(a.Block.Number(), a.Block.Hash())
	v.Collector.Applied(a.Block.Number(), a.Block.Hash())
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// Receive hands votes from another validator to the collector. A node
// keeps the votes it receives even while not leading: it may lead next.
func (v *VoteRelay) Receive(from string, vs []*chain.Vote) {
	kept, refused := v.Collector.Add(vs)
	if v.OnReceived != nil {
		v.OnReceived(from, kept, refused)
	}
}

// Run delivers fresh votes as blocks are applied, every vote not yet
// certified each resend interval, and all of them at once to a new
// leader, until Close. engine tells the leader and whether the FSM halted.
func (v *VoteRelay) Run(engine *Engine) {
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
		if engine.Halted() != nil {
			continue // a halted node's votes mean nothing
		}
		_, leader := engine.Raft.LeaderWithID()
		if leader != lastLeader {
			lastLeader, all = leader, true
		}
		fresh, err := v.sender.Fresh()
		if err != nil {
			v.log.Warn("signing votes", "err", err)
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
// it leads (or has no transport), over the transport otherwise. A failed
// delivery is retried at the next resend.
func (v *VoteRelay) deliver(leader raft.ServerID, out []*chain.Vote) {
	if v.transport == nil || leader == v.self {
		v.Receive("self", out)
		return
	}
	if err := v.transport.SendVotes(v.ctx, leader, out); err != nil && v.ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
		v.log.Debug("sending votes to the leader", "leader", leader, "votes", len(out), "err", err)
	}
}

// Close stops Run (which must have been started) and waits for it.
func (v *VoteRelay) Close() {
	select {
	case <-v.stop:
	default:
		close(v.stop)
		v.cancel()
		<-v.done
	}
}
