package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/p2p"
)

// RaftProtocol is the libp2p protocol carrying Raft's RPCs.
const RaftProtocol = "/tally/raft/1.0.0"

// membershipRefresh is how often the node re-derives who may connect
// (validators from the state, observers from the Raft configuration).
const membershipRefresh = time.Second

// network is what openNetwork gives the consensus engine.
type network struct {
	id        raft.ServerID
	transport raft.Transport
	bootstrap []raft.Server
	// askPeers is consensus.Config.AskPeers (nil without a p2p host).
	askPeers func(context.Context) []consensus.PeerAnswer
}

// openNetwork starts the libp2p host (when p2p.listen is set) and returns
// the Raft transport. Without p2p.listen the node runs a single-validator
// chain over an in-memory transport (the dev chain).
func (n *Node) openNetwork() (*network, error) {
	validators, err := n.validatorPeers()
	if err != nil {
		return nil, err
	}
	isValidator := n.db.IsValidator(n.key.Address())
	if len(n.cfg.P2P.Listen) == 0 {
		if !isValidator || len(validators) != 1 {
			return nil, errors.New("key p2p.listen: required unless this node is the chain's only validator")
		}
		id := raft.ServerID(validators[0].String())
		_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		return &network{id: id, transport: trans, bootstrap: []raft.Server{{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)}}}, nil
	}
	allowed, err := n.allowedPeers()
	if err != nil {
		return nil, err
	}
	n.host, err = p2p.New(p2p.Config{Key: n.key, ListenAddrs: n.cfg.P2P.Listen, Peers: n.cfg.P2P.Peers, Allowed: allowed, Logger: n.log.With("component", "p2p")})
	if err != nil {
		return nil, listenError("p2p.listen", "", fmt.Sprint(n.cfg.P2P.Listen), err)
	}
	for _, v := range validators {
		n.host.Protect(v)
	}
	// Before Raft starts: a validator waiting to start Raft on an empty
	// directory answers the others waiting (consensus.DecideBootstrap).
	p2p.ServeMember(n.host.Libp2p(), n.memberAnswer)
	trans := p2p.NewRaftTransport(n.host.StreamLayer(RaftProtocol), p2p.RaftTransportConfig{
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  consensus.NewRaftLogger(n.log, slog.LevelWarn),
	})
	net := &network{id: raft.ServerID(n.host.ID().String()), transport: trans, askPeers: n.askPeers}
	if isValidator {
		for _, v := range validators {
			net.bootstrap = append(net.bootstrap, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.String()), Address: raft.ServerAddress(v.String())})
		}
	}
	n.log.Info("p2p host started", "peer_id", n.host.ID(), "addrs", n.host.Addrs(), "validator", isValidator)
	return net, nil
}

// validatorPeers returns the peer IDs of the current validators (the
// state's set, which governance changes).
func (n *Node) validatorPeers() ([]peer.ID, error) {
	vals, err := n.db.ValidatorInfos()
	if err != nil {
		return nil, err
	}
	out := make([]peer.ID, 0, len(vals))
	for _, v := range vals {
		id, err := p2p.PeerIDFromPublicKey(v.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("validator %s: %w", v.Address, err)
		}
		out = append(out, id)
	}
	return out, nil
}

// startCluster starts what a networked node runs besides Raft: the
// forwarding service and client, and the membership loop.
func (n *Node) startCluster() {
	if n.host == nil {
		return
	}
	n.heights = make(map[peer.ID]heightSample)
	for _, proto := range []protocol.ID{p2p.ForwardProtocol, p2p.RelayProtocol} {
		p2p.ServeBatches(n.host.Libp2p(), proto, n.adm.Handler(string(proto)), n.log)
	}
	p2p.ServeHeight(n.host.Libp2p(), func() (uint64, bool) { h, _ := n.db.Head(); return h.Number, n.engine.Voting() })
	n.adm.StartNetwork(p2p.HostTransport(n.host.Libp2p()), n.host.ID(), n.leaderPeer, n.otherVoters, n.cfg.P2P.MaxForwardBatch)
	n.bg.Add(2)
	go n.membershipLoop()
	go n.every(heightPoll, n.pollHeights)
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		n.members.Run(n.engine, n.stop)
	}()
}

// Voter height sampling, for the builder's MaxVoterLag.
const (
	heightPoll  = 200 * time.Millisecond
	heightFresh = 2 * time.Second // older samples are ignored: that voter is unreachable
)

type heightSample struct {
	height uint64
	at     time.Time
	voter  bool
	// voting: the member grants votes (a fresh member does not until it
	// caught up: consensus voteGate).
	voting bool
}

// pollHeights, while this node leads, asks every other member of the Raft
// configuration for its applied height: voters for the builder's pacing,
// non-voters to know when a new validator has caught up.
func (n *Node) pollHeights() {
	if !n.engine.IsLeader() {
		return
	}
	for _, m := range n.otherMembers() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), heightPoll)
			defer cancel()
			h, voting, err := p2p.QueryHeight(ctx, n.host.Libp2p(), m.id)
			if err != nil {
				return
			}
			n.heightsMu.Lock()
			n.heights[m.id] = heightSample{height: h, at: time.Now(), voter: m.voter, voting: voting}
			n.heightsMu.Unlock()
		}()
	}
}

// slowestVoter returns the lowest recently sampled height of another voter.
func (n *Node) slowestVoter() (uint64, bool) {
	n.heightsMu.Lock()
	defer n.heightsMu.Unlock()
	var (
		low uint64
		ok  bool
	)
	for id, s := range n.heights {
		if time.Since(s.at) > heightFresh {
			delete(n.heights, id)
			continue
		}
		if !s.voter {
			continue
		}
		if !ok || s.height < low {
			low, ok = s.height, true
		}
	}
	return low, ok
}

// admitForwarded is Admission.AdmitForwarded.
func (n *Node) admitForwarded(raw []byte) error { return n.adm.AdmitForwarded(raw) }

// isValidator is AdmissionConfig.IsValidator: this node is a validator
// in its state and a Raft voter.
func (n *Node) isValidator() bool {
	if !n.db.IsValidator(n.Address()) {
		return false
	}
	if n.host == nil || n.engine == nil {
		return true // no network: nothing is forwarded
	}
	return n.engine.IsVoter(raft.ServerID(n.host.ID().String()))
}

// otherVoters returns the Raft voters (validators) other than this node:
// where the leader replicates the transactions its own clients send.
func (n *Node) otherVoters() []peer.ID {
	var out []peer.ID
	for _, m := range n.otherMembers() {
		if m.voter {
			out = append(out, m.id)
		}
	}
	return out
}

// member is a member of the Raft configuration other than this node.
type member struct {
	id    peer.ID
	voter bool
}

// otherMembers returns the members of the Raft configuration other than
// this node (none when the configuration cannot be read); an ID that is
// not a peer ID is left out.
func (n *Node) otherMembers() []member {
	f := n.engine.Raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []member
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.host.ID().String() {
			continue
		}
		if id, err := peer.Decode(string(s.ID)); err == nil {
			out = append(out, member{id: id, voter: s.Suffrage == raft.Voter})
		}
	}
	return out
}

// leaderPeer returns the leader's peer ID (this node's own when it leads).
func (n *Node) leaderPeer() (peer.ID, bool) {
	_, id := n.engine.Raft.LeaderWithID()
	if id == "" {
		return "", false
	}
	pid, err := peer.Decode(string(id))
	return pid, err == nil
}

// membershipLoop keeps the connection gater's allow list equal to the
// validators plus the Raft configuration's members (observers), and
// re-forwards pending transactions as soon as Raft reports a new leader
// (a Raft observer; the periodic check is a fallback should an
// observation be dropped).
func (n *Node) membershipLoop() {
	defer n.bg.Done()
	t := time.NewTicker(membershipRefresh)
	defer t.Stop()
	leaderCh := make(chan raft.Observation, 16)
	obs := raft.NewObserver(leaderCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.engine.Raft.RegisterObserver(obs)
	defer n.engine.Raft.DeregisterObserver(obs)
	var (
		lastLeader raft.ServerID
		handedOver time.Time // the last time this node handed the lead on
	)
	for {
		select {
		case <-n.stop:
			return
		case <-leaderCh:
		case <-t.C:
			n.refreshAllowed()
		}
		if _, leader := n.engine.Raft.LeaderWithID(); leader != lastLeader {
			lastLeader = leader
			switch {
			case leader == "":
			case string(leader) != n.host.ID().String():
				n.reforward()
			default:
				n.handOverIfBehind(&handedOver)
			}
		}
	}
}

// handOverGuard is how long after handing the lead on a node keeps a lead
// it wins again, however far behind its state is: should every voter be
// catching up, they would otherwise pass the lead around instead of one
// of them catching up and building.
const handOverGuard = 10 * time.Second

// handOverIfBehind hands the lead to another voter when this node has just
// been elected with its applied state far behind its Raft log. Raft elects
// on the log alone, and a node restarted after missing many blocks gets
// its log back much faster than it executes the blocks in it; as leader it
// builds nothing until it has applied all of them (the barrier after an
// election), so writes would stop for its whole catch-up (seconds: the
// 5.9 s failover round in docs/benchmarks.md). "Far behind" is the
// builder's own rule for a voter that is catching up rather than slow:
// more than builder.max-voter-lag entries. hashicorp/raft's
// LeadershipTransfer picks the voter with the most of the log, which the
// voters that stayed up have applied as they went.
func (n *Node) handOverIfBehind(handedOver *time.Time) {
	limit := n.cfg.Builder.MaxVoterLag
	if limit == 0 || len(n.otherVoters()) == 0 || time.Since(*handedOver) < handOverGuard {
		return
	}
	head, ok := n.db.Head()
	last := n.engine.Raft.LastIndex()
	if !ok || last <= head.RaftIndex+limit {
		return
	}
	*handedOver = time.Now()
	n.log.Warn("elected with the state behind the log: handing leadership to an up-to-date voter",
		"applied_raft_index", head.RaftIndex, "last_log_index", last, "max_voter_lag", limit)
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		if err := n.engine.Await(n.engine.Raft.LeadershipTransfer()); err != nil {
			n.log.Warn("handing leadership on failed; building once the state has caught up", "err", err)
		}
	}()
}

// refreshAllowed sets the gater's allow list to the validators, the
// approved validator additions not in effect yet, the members of the Raft
// configuration (observers) and extra. The list is replaced only when it
// changes.
func (n *Node) refreshAllowed(extra ...peer.ID) {
	allowed, err := n.allowedPeers()
	if err != nil {
		n.log.Error("membership", "err", err)
		return
	}
	if f := n.engine.Raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if id, err := peer.Decode(string(s.ID)); err == nil {
				extra = append(extra, id)
			}
		}
	}
	for _, id := range extra {
		if !slices.Contains(allowed, id) {
			allowed = append(allowed, id)
		}
	}
	slices.Sort(allowed)
	n.allowedMu.Lock()
	defer n.allowedMu.Unlock()
	if n.allowedSet && slices.Equal(allowed, n.allowed) {
		return
	}
	n.allowed, n.allowedSet = allowed, true
	n.host.SetAllowed(allowed)
}

// reforward is Admission.Reforward.
func (n *Node) reforward() { n.adm.Reforward() }
