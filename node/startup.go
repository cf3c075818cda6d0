package node

import (
	"context"
	"slices"
	"strings"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/p2p"
)

// StartupAttrs are what the startup log line tells an operator, as slog
// key-value pairs: the version, the chain, this node's role and identity,
// and every address it serves, so one line answers "what is running where".
func (n *Node) StartupAttrs() []any {
	role := "observer"
	if n.db.IsValidator(n.key.Address()) {
		role = "validator"
	}
	if n.cfg.Dev {
		role += " (dev)"
	}
	p2p := "off"
	if n.host != nil {
		addrs := n.host.Addrs()
		s := make([]string, len(addrs))
		for i, a := range addrs {
			s[i] = a.String()
		}
		p2p = strings.Join(s, ",")
	}
	admin := "off"
	if n.admin != nil {
		admin = "http://" + n.admin.ln.Addr().String()
	}
	return []any{"version", Version, "chain_id", n.genesis.ChainID, "role", role, "address", n.Address(),
		"rpc", "http://" + n.HTTPAddr(), "p2p", p2p, "admin", admin, "datadir", n.cfg.DataDir}
}

// askPeers is consensus.Config.AskPeers for a networked node: it asks,
// over the p2p member protocol, all at once and within ctx, every other
// validator of the state (the genesis set: the state is at genesis when
// it is called), one answer each, and, for a node that is not one of
// them (a validator added by governance, an observer), also the peers of
// p2p.peers and, as soon as an answer names them, the current voters
// (p2p.MemberAnswer.Voters: the asker's own allow list and p2p.peers may
// not hold a validator added since; the answer gives their addresses),
// at most p2p.MaxMemberVoters of them. A peer that does not answer
// (down, not serving yet, no address known) is an answer with its
// error.
func (n *Node) askPeers(ctx context.Context) []consensus.PeerAnswer {
	n.asking.Store(true)
	vals, err := n.validatorPeers()
	if err != nil {
		n.log.Error("ask peers before starting Raft: read the validators", "err", err)
		return nil
	}
	genesisValidator := slices.Contains(vals, n.host.ID())
	if !genesisValidator {
		for _, s := range n.cfg.P2P.Peers {
			if ai, err := peer.AddrInfoFromString(s); err == nil && !slices.Contains(vals, ai.ID) {
				vals = append(vals, ai.ID)
			}
		}
	}
	type result struct {
		id  peer.ID
		m   p2p.MemberAnswer
		err error
	}
	var (
		results = make(chan result)
		asked   = map[peer.ID]bool{}
		pending int
		learned int
		out     []consensus.PeerAnswer
	)
	ask := func(id peer.ID) {
		if id == n.host.ID() || asked[id] {
			return
		}
		asked[id] = true
		pending++
		go func() {
			m, err := p2p.QueryMember(ctx, n.host.Libp2p(), id)
			results <- result{id, m, err}
		}()
	}
	for _, v := range vals {
		ask(v)
	}
	for pending > 0 {
		r := <-results
		pending--
		a := consensus.PeerAnswer{Peer: r.id.String(), Err: r.err, Height: r.m.Height, KnowsUs: r.m.Knows, Ran: r.m.Ran,
			Voter: r.m.Voter, HasVoters: r.m.HasVoters}
		var named []peer.AddrInfo
		for _, v := range r.m.Voters {
			a.Voters = append(a.Voters, v.ID.String())
			if !genesisValidator && !asked[v.ID] && v.ID != n.host.ID() && learned < p2p.MaxMemberVoters {
				named = append(named, v)
				learned++
			}
		}
		if len(named) > 0 {
			n.host.AllowAsked(named)
			for _, v := range named {
				ask(v.ID)
			}
		}
		out = append(out, a)
	}
	return out
}

// memberAnswer answers a peer's member query (p2p.ServeMember): this
// node's applied height, whether it ever saw the asker's Raft running
// (consensus.Engine.KnowsMember), whether its own Raft ran, whether the
// asker is a voter of its Raft configuration, and that configuration's
// voters with the addresses this node has for them (its own listen
// addresses, and its peerstore's for the others: p2p.peers, and the
// addresses connected peers announced). While consensus.Start asks the
// peers it has no Raft state (it asks only then) and knows nobody;
// before that, and while a Raft with state opens, it does not answer: a
// restarting node must not pass for one at genesis.
func (n *Node) memberAnswer(asker peer.ID) (p2p.MemberAnswer, bool) {
	h, _ := n.db.Head()
	ans := p2p.MemberAnswer{Height: h.Number}
	e := n.member.Load()
	if e == nil {
		return ans, n.asking.Load()
	}
	id := raft.ServerID(asker.String())
	a, err := peerAddress(id)
	ans.Knows = err == nil && e.KnowsMember(a)
	ans.Ran = e.RaftRan()
	ans.Voter = e.IsVoter(id)
	for _, v := range e.Voters() {
		pid, err := peer.Decode(string(v))
		if err != nil {
			continue
		}
		ai := peer.AddrInfo{ID: pid}
		if pid == n.host.ID() {
			ai.Addrs = n.host.Addrs()
		} else {
			ai.Addrs = n.host.Libp2p().Peerstore().Addrs(pid)
		}
		ans.Voters = append(ans.Voters, ai)
	}
	return ans, true
}
