package p2p

import (
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// policy is the allow list and the isolation set. The gater consults it for
// every connection and the Host changes it; it is separate from Host because
// the gater must exist before the libp2p host is built.
type policy struct {
	self peer.ID
	log  *slog.Logger

	mu       sync.RWMutex
	allowed  map[peer.ID]struct{}
	isolated map[peer.ID]struct{}
}

func newPolicy(self peer.ID, allowed []peer.ID, log *slog.Logger) *policy {
	p := &policy{
		self:     self,
		log:      log,
		allowed:  make(map[peer.ID]struct{}, len(allowed)),
		isolated: make(map[peer.ID]struct{}),
	}
	for _, id := range allowed {
		p.allowed[id] = struct{}{}
	}
	return p
}

// permits reports whether id may hold a connection now: it is on the allow
// list and not isolated. The host itself is always permitted.
func (p *policy) permits(id peer.ID) bool {
	if id == p.self {
		return true
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if _, ok := p.isolated[id]; ok {
		return false
	}
	_, ok := p.allowed[id]
	return ok
}

// replaceAllowed swaps in a new allow list and returns the peers that were
// added and removed, so the caller can adjust protection and connections.
func (p *policy) replaceAllowed(ids []peer.ID) (added, removed []peer.ID) {
	next := make(map[peer.ID]struct{}, len(ids))
	for _, id := range ids {
		next[id] = struct{}{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.allowed {
		if _, ok := next[id]; !ok {
			removed = append(removed, id)
		}
	}
	for id := range next {
		if _, ok := p.allowed[id]; !ok {
			added = append(added, id)
		}
	}
	p.allowed = next
	return added, removed
}

func (p *policy) setIsolated(id peer.ID, isolated bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if isolated {
		p.isolated[id] = struct{}{}
	} else {
		delete(p.isolated, id)
	}
}

// gater is the libp2p connection gater enforcing the policy. It refuses at
// the two points where the remote peer ID is known: before an outbound dial
// and right after the security handshake (both directions), so no protocol,
// identify included, ever runs with a peer outside the consortium.
type gater struct{ pol *policy }

// InterceptPeerDial refuses to dial a peer that is not permitted.
func (g gater) InterceptPeerDial(p peer.ID) bool {
	if g.pol.permits(p) {
		return true
	}
	g.pol.log.Debug("p2p: refusing dial to peer not allowed", "peer", p)
	return false
}

// InterceptAddrDial allows every address: the decision is by peer ID.
func (gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

// InterceptAccept allows every inbound connection: the remote's identity is
// unknown until the handshake, where InterceptSecured decides.
func (gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses an authenticated connection, in either direction,
// from a peer that is not permitted.
func (g gater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	if g.pol.permits(p) {
		return true
	}
	g.pol.log.Debug("p2p: refusing connection from peer not allowed", "peer", p, "direction", dir.String(), "remote", addrs.RemoteMultiaddr().String())
	return false
}

// InterceptUpgraded allows: InterceptSecured already decided.
func (gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
