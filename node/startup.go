package node

import (
	"context"
	"strings"
	"sync"

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

// askPeers is consensus.Config.AskPeers for a networked validator: it asks
// every other validator of the state (the genesis set: the state is at
// genesis when it is called) over the p2p member protocol, all at once,
// within ctx. A validator that does not answer (down, not serving yet, no
// address configured in p2p.peers) is an answer with its error.
func (n *Node) askPeers(ctx context.Context) []consensus.PeerAnswer {
	vals, err := n.validatorPeers()
	if err != nil {
		n.log.Error("ask peers before bootstrap: read the validators", "err", err)
		return nil
	}
	var (
		wg  sync.WaitGroup
		out []consensus.PeerAnswer
		mu  sync.Mutex
	)
	for _, v := range vals {
		if v == n.host.ID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := consensus.PeerAnswer{Peer: v.String()}
			a.Height, a.KnowsUs, a.Err = p2p.QueryMember(ctx, n.host.Libp2p(), v)
			mu.Lock()
			out = append(out, a)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// memberAnswer answers a peer's member query (p2p.ServeMember): this
// node's applied height and whether it ever saw the asker's Raft running
// (consensus.Engine.KnowsMember).
func (n *Node) memberAnswer(asker peer.ID) (uint64, bool) {
	h, _ := n.db.Head()
	a, err := peerAddress(raft.ServerID(asker.String()))
	return h.Number, err == nil && n.engine.KnowsMember(a)
}
