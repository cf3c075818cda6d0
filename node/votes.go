package node

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/p2p"
)

// newVotes returns the node's commit vote machinery (consensus.VoteRelay)
// over the libp2p vote protocol; a node without p2p keeps its votes local.
func (n *Node) newVotes() *consensus.VoteRelay {
	cfg := consensus.VoteConfig{Window: n.cfg.Votes.Window, MaxAhead: n.cfg.Votes.MaxAhead}
	var (
		self      raft.ServerID
		transport consensus.VoteTransport
	)
	if n.host != nil {
		self = raft.ServerID(n.host.ID().String())
		transport = voteTransport{n: n, timeout: time.Duration(n.cfg.Votes.ResendInterval)}
	}
	v := consensus.NewVoteRelay(n.db, n.key, cfg, self, transport, time.Duration(n.cfg.Votes.ResendInterval), n.log)
	v.OnReceived = func(from string, kept int, refused []error) {
		n.metrics.votesReceived.Add(float64(kept))
		if len(refused) > 0 {
			n.metrics.votesRefused.Add(float64(len(refused)))
			n.log.Debug("votes refused", "from", from, "refused", len(refused), "first", refused[0])
		}
	}
	return v
}

// serveVotes accepts votes over the vote protocol. The connection gater
// admits only consortium peers; the collector checks every signer against
// the validator set of the vote's height.
func (n *Node) serveVotes() {
	if n.host == nil {
		return
	}
	p2p.ServeVotes(n.host.Libp2p(), func(from peer.ID, vs []*chain.Vote) { n.votes.Receive(from.String(), vs) }, n.log)
}

// voteTransport sends votes to the leader over /tally/vote/1.0.0, in
// messages of at most p2p.MaxVotesPerMessage, each attempt bounded by the
// resend interval.
type voteTransport struct {
	n       *Node
	timeout time.Duration
}

// SendVotes implements consensus.VoteTransport.
func (t voteTransport) SendVotes(ctx context.Context, leader raft.ServerID, votes []*chain.Vote) error {
	pid, err := peer.Decode(string(leader))
	if err != nil {
		return err
	}
	for _, batch := range consensus.Batches(votes, p2p.MaxVotesPerMessage) {
		bctx, cancel := context.WithTimeout(ctx, t.timeout)
		err := p2p.SendVotes(bctx, t.n.host.Libp2p(), pid, batch)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}
