package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/internal/logrepeat"
)

// Defaults for the Config bounds left at zero.
const (
	// DefaultMaxStreamsPerPeer bounds the inbound streams one peer may hold
	// open on one StreamLayer. Raft's NetworkTransport keeps at most a few
	// pooled connections per target plus one pipeline and the occasional
	// snapshot, so 64 is generous and still small.
	DefaultMaxStreamsPerPeer = 64
	// DefaultConnMgrLow and DefaultConnMgrHigh are the connection manager's
	// watermarks. A consortium is tens of nodes, and allowed peers are
	// protected, so trimming only ever hits connections that should not be
	// there.
	DefaultConnMgrLow  = 64
	DefaultConnMgrHigh = 128
	// DefaultDialTimeout bounds one dial attempt (and a StreamLayer.Dial
	// without its own timeout).
	DefaultDialTimeout = 5 * time.Second
)

// Fixed bounds that are not configurable.
const (
	// MaxDialTargets bounds the peers the background dialer keeps connected.
	MaxDialTargets = 256
	// AcceptBacklog bounds inbound streams waiting for StreamLayer.Accept.
	AcceptBacklog = 64
	// acceptWait is how long an inbound stream waits for a slot in a full
	// accept queue before it is reset.
	acceptWait = 5 * time.Second
	// redialMin and redialMax bound the background dialer's backoff.
	redialMin = 250 * time.Millisecond
	redialMax = 10 * time.Second
	// recheckInterval is how often the dialer looks at a peer it is
	// connected to (disconnects also wake it at once).
	recheckInterval = 2 * time.Second
	// connMgrGrace protects new connections from trimming for a while.
	connMgrGrace = 20 * time.Second
	// tagAllowed and tagRaft are connection manager protection tags.
	tagAllowed = "tally-allowed"
	tagRaft    = "tally-raft"
)

var (
	// ErrNotAllowed is returned when dialling a peer that is not on the allow
	// list or is isolated.
	ErrNotAllowed = errors.New("peer not allowed")
	// ErrClosed is returned by operations on a closed Host.
	ErrClosed = errors.New("p2p: host closed")
)

// Config configures a Host.
type Config struct {
	// Key is the node's secp256k1 key; it is also its libp2p identity.
	Key *crypto.PrivateKey
	// ListenAddrs are multiaddrs to listen on, e.g. "/ip4/127.0.0.1/tcp/8645"
	// and "/ip4/127.0.0.1/udp/8645/quic-v1". QUIC is optional per address.
	ListenAddrs []string
	// Peers are the other consortium nodes as full multiaddrs ending in
	// /p2p/<id>. They are added to the peerstore permanently and kept
	// connected in the background while allowed. An entry for this host
	// itself is ignored, so every node can share one peer list.
	Peers []string
	// Allowed is the initial allow list (validators and observers). The
	// host itself is always allowed.
	Allowed []peer.ID
	// Logger receives the host's logs; nil discards them.
	Logger *slog.Logger

	// MaxStreamsPerPeer bounds inbound streams per peer per StreamLayer
	// (default DefaultMaxStreamsPerPeer).
	MaxStreamsPerPeer int
	// ConnMgrLow and ConnMgrHigh are the connection manager's watermarks
	// (defaults DefaultConnMgrLow, DefaultConnMgrHigh).
	ConnMgrLow, ConnMgrHigh int
	// DialTimeout bounds one dial attempt (default DefaultDialTimeout).
	DialTimeout time.Duration
}

// Host is a libp2p host that admits only consortium peers.
type Host struct {
	h           host.Host
	pol         *policy
	log         *slog.Logger
	maxStreams  int
	dialTimeout time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	dialers map[peer.ID]chan struct{} // wake-up channel per dial target
	layers  map[protocol.ID]*StreamLayer

	closeOnce sync.Once
	closeErr  error
}

// New builds and starts a Host: it listens on cfg.ListenAddrs and starts
// dialling cfg.Peers in the background.
func New(cfg Config) (*Host, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	priv, err := libp2pKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("p2p: peer id: %w", err)
	}
	listen := make([]ma.Multiaddr, 0, len(cfg.ListenAddrs))
	for _, s := range cfg.ListenAddrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: listen address %q: %w", s, err)
		}
		listen = append(listen, a)
	}
	peers, err := parsePeers(cfg.Peers)
	if err != nil {
		return nil, err
	}
	if len(peers) > MaxDialTargets {
		return nil, fmt.Errorf("p2p: %d peers configured, at most %d", len(peers), MaxDialTargets)
	}
	maxStreams := cfg.MaxStreamsPerPeer
	if maxStreams <= 0 {
		maxStreams = DefaultMaxStreamsPerPeer
	}
	low, high := cfg.ConnMgrLow, cfg.ConnMgrHigh
	if low <= 0 {
		low = DefaultConnMgrLow
	}
	if high <= 0 {
		high = max(DefaultConnMgrHigh, low)
	}
	if low > high {
		return nil, fmt.Errorf("p2p: connection manager low watermark %d above high %d", low, high)
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}

	pol := newPolicy(self, cfg.Allowed, log)
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(connMgrGrace))
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	// libp2p's default limits, scaled to the machine, with fixed ceilings:
	// nothing a peer does can grow memory, streams or connections past them.
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		_ = cm.Close()
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	lh, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrs(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(gater{pol: pol}),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.WithDialTimeout(dialTimeout),
		// Nothing that discovers, advertises or reaches outside the
		// consortium: no relay, no NAT port mapping or hole punching (both
		// off unless enabled), no AutoNAT probing, no observed-address
		// learning, no ping service, no global Prometheus registration.
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.Ping(false),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		// libp2p closes the managers on some failure paths only; both
		// Close methods are idempotent.
		_ = rm.Close()
		_ = cm.Close()
		return nil, fmt.Errorf("p2p: libp2p host: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{
		h:           lh,
		pol:         pol,
		log:         log,
		maxStreams:  maxStreams,
		dialTimeout: dialTimeout,
		ctx:         ctx,
		cancel:      cancel,
		dialers:     make(map[peer.ID]chan struct{}),
		layers:      make(map[protocol.ID]*StreamLayer),
	}
	for _, id := range cfg.Allowed {
		if id != self {
			cm.Protect(id, tagAllowed)
		}
	}
	// A connection can finish its handshake just before SetAllowed or
	// Isolate runs; closing such connections on arrival closes that gap.
	lh.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			if !pol.permits(c.RemotePeer()) {
				go func() { _ = c.Close() }()
			}
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			h.wake(c.RemotePeer())
		},
	})
	for _, ai := range peers {
		if ai.ID == self {
			log.Debug("p2p: skipping own entry in peers", "peer", ai.ID)
			continue
		}
		if err := h.addPeer(ai); err != nil {
			_ = h.Close()
			return nil, err
		}
	}
	log.Info("p2p: host started", "peer", self, "addrs", lh.Addrs())
	return h, nil
}

// parsePeers parses full /p2p/ multiaddrs, merging entries for one peer.
func parsePeers(ss []string) ([]peer.AddrInfo, error) {
	addrs := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: peer address %q: %w", s, err)
		}
		if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
			return nil, fmt.Errorf("p2p: peer address %q: need a multiaddr ending in /p2p/<peer id>: %w", s, err)
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("p2p: peer addresses: %w", err)
	}
	return infos, nil
}

// ID returns the host's peer ID (also its Raft ServerID and ServerAddress).
func (h *Host) ID() peer.ID { return h.h.ID() }

// Addrs returns the host's listen addresses as full multiaddrs ending in
// /p2p/<id>, ready to put in other nodes' Peers.
func (h *Host) Addrs() []ma.Multiaddr {
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.h.ID(), Addrs: h.h.Addrs()})
	if err != nil {
		// Unreachable: the host's own ID is always valid.
		h.log.Error("p2p: own addresses", "err", err)
		return nil
	}
	return full
}

// Libp2p returns the underlying libp2p host, for the node's other protocols
// (transaction forwarding, commit signatures). Its gater applies to them too.
func (h *Host) Libp2p() host.Host { return h.h }

// Allowed reports whether id is on the allow list and not isolated.
func (h *Host) Allowed(id peer.ID) bool { return h.pol.permits(id) }

// SetAllowed replaces the allow list. Connections to peers no longer allowed
// are closed at once; newly allowed peers are protected and, if configured,
// dialled.
func (h *Host) SetAllowed(ids []peer.ID) {
	added, removed := h.pol.replaceAllowed(ids)
	cm := h.h.ConnManager()
	for _, id := range removed {
		cm.Unprotect(id, tagAllowed)
	}
	for _, id := range added {
		if id != h.ID() {
			cm.Protect(id, tagAllowed)
		}
	}
	h.dropForbidden()
	for _, id := range added {
		h.wake(id)
	}
	h.log.Info("p2p: allow list replaced", "size", len(ids), "added", len(added), "removed", len(removed))
}

// Isolate cuts id off without touching the allow list, for partition tests
// and operators: the gater refuses it and existing connections are closed.
func (h *Host) Isolate(id peer.ID) {
	if id == h.ID() {
		return
	}
	h.pol.setIsolated(id, true)
	h.closePeer(id)
	h.log.Info("p2p: peer isolated", "peer", id)
}

// Heal undoes Isolate; the background dialer reconnects at once if id is a
// configured peer.
func (h *Host) Heal(id peer.ID) {
	h.pol.setIsolated(id, false)
	// Failed dials while isolated left the swarm backing off this peer;
	// forget that so the reconnect is immediate.
	if sw, ok := h.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(id)
	}
	h.wake(id)
	h.log.Info("p2p: peer healed", "peer", id)
}

// dropForbidden closes every connection to a peer that is not permitted.
func (h *Host) dropForbidden() {
	for _, id := range h.h.Network().Peers() {
		if !h.pol.permits(id) {
			h.closePeer(id)
		}
	}
}

func (h *Host) closePeer(id peer.ID) {
	if err := h.h.Network().ClosePeer(id); err != nil {
		h.log.Debug("p2p: close peer", "peer", id, "err", err)
	}
}

// Protect keeps the connection manager from trimming connections to id
// (Raft peers must never be trimmed).
func (h *Host) Protect(id peer.ID) { h.h.ConnManager().Protect(id, tagRaft) }

// ConnectedPeers returns the peers with at least one open connection.
func (h *Host) ConnectedPeers() []peer.ID { return h.h.Network().Peers() }

// AddPeer adds a consortium peer given as a full multiaddr ending in
// /p2p/<id>: its address goes into the peerstore permanently, its
// connections are protected, and the background dialer keeps it connected
// while it is allowed. It does not add the peer to the allow list.
func (h *Host) AddPeer(addr ma.Multiaddr) error {
	if addr == nil {
		return errors.New("p2p: add peer: nil address")
	}
	ai, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return fmt.Errorf("p2p: add peer %s: need a multiaddr ending in /p2p/<peer id>: %w", addr, err)
	}
	if ai.ID == h.ID() {
		return fmt.Errorf("p2p: add peer %s: that is this host", ai.ID)
	}
	return h.addPeer(*ai)
}

func (h *Host) addPeer(ai peer.AddrInfo) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	kick, ok := h.dialers[ai.ID]
	if !ok && len(h.dialers) >= MaxDialTargets {
		return fmt.Errorf("p2p: add peer %s: already %d peers, at most %d", ai.ID, len(h.dialers), MaxDialTargets)
	}
	h.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	h.h.ConnManager().Protect(ai.ID, tagRaft)
	if ok {
		select {
		case kick <- struct{}{}:
		default:
		}
		return nil
	}
	kick = make(chan struct{}, 1)
	h.dialers[ai.ID] = kick
	h.wg.Add(1)
	go h.dialLoop(ai.ID, kick)
	return nil
}

// wake nudges id's dialer, if it has one, to look at the peer now.
func (h *Host) wake(id peer.ID) {
	h.mu.Lock()
	kick := h.dialers[id]
	h.mu.Unlock()
	if kick == nil {
		return
	}
	select {
	case kick <- struct{}{}:
	default:
	}
}

// dialLoop keeps one configured peer connected while it is permitted. After
// every dial attempt, successful or not, it waits out a backoff that doubles
// up to redialMax and resets only once a connection has survived that wait,
// so a peer that accepts and then drops us is not hammered.
//
// Failed dials are logged through logrepeat, not one line per attempt: the
// first (information: peers start in any order), then, while the peer stays
// unreachable, a warning per doubling interval from 5 s up to 5 min with
// the attempt count, the next retry's delay and how many failures were
// held back; once the peer is connected again, one line says after how
// many failed dials.
func (h *Host) dialLoop(id peer.ID, kick <-chan struct{}) {
	defer h.wg.Done()
	backoff := redialMin
	idle := time.NewTimer(0)
	defer idle.Stop()
	repeats := logrepeat.New(time.Now)
	failed := 0 // dials failed since the peer was last connected
	for {
		if h.pol.permits(id) && h.h.Network().Connectedness(id) != network.Connected {
			ctx, cancel := context.WithTimeout(h.ctx, h.dialTimeout)
			err := h.h.Connect(ctx, peer.AddrInfo{ID: id})
			cancel()
			if err != nil && h.ctx.Err() == nil {
				failed++
				h.logDialFailure(repeats, id, failed, backoff, err)
			}
			idle.Reset(backoff)
			select {
			case <-h.ctx.Done():
				return
			case <-idle.C:
			}
			backoff = min(2*backoff, redialMax)
			continue
		}
		if h.h.Network().Connectedness(id) == network.Connected {
			backoff = redialMin
			if failed > 0 {
				repeats.Reset(dialKey)
				h.log.Info("p2p: peer reachable again", "peer", id, "failed_dials", failed)
				failed = 0
			}
		}
		idle.Reset(recheckInterval)
		select {
		case <-h.ctx.Done():
			return
		case <-kick:
			// Since Go 1.23 Reset discards a pending tick, so no drain.
			idle.Stop()
		case <-idle.C:
		}
	}
}

// dialKey is the kind of line a dialer's failures are (one limiter per
// peer's dialer, so one kind).
const dialKey = "dial"

// logDialFailure logs the attempt-th failed dial of id, as dialLoop says.
func (h *Host) logDialFailure(repeats *logrepeat.Limiter, id peer.ID, attempt int, retryIn time.Duration, err error) {
	ok, suppressed := repeats.Allow(dialKey)
	if !ok {
		return
	}
	level, msg := slog.LevelWarn, "p2p: peer unreachable; redialing with backoff (repeats logged once per doubling interval)"
	if attempt == 1 {
		level, msg = slog.LevelInfo, "p2p: dial failed; redialing with backoff"
	}
	h.log.Log(h.ctx, level, msg, "peer", id, "attempt", attempt, "retry_in", retryIn, "repeats_suppressed", suppressed, "err", err)
}

// StreamLayer returns a raft.StreamLayer carrying Raft's connections as
// libp2p streams of protocol proto. A second call for the same protocol
// closes the first layer and replaces it.
func (h *Host) StreamLayer(proto protocol.ID) *StreamLayer {
	l := newStreamLayer(h, proto)
	h.mu.Lock()
	old := h.layers[proto]
	h.layers[proto] = l
	closed := h.closed
	h.mu.Unlock()
	if old != nil {
		old.shutdown()
	}
	if closed {
		l.shutdown()
		return l
	}
	h.h.SetStreamHandler(proto, l.handle)
	return l
}

// removeLayer unregisters l's handler if l is still the layer for its
// protocol.
func (h *Host) removeLayer(l *StreamLayer) {
	h.mu.Lock()
	current := h.layers[l.proto] == l
	if current {
		delete(h.layers, l.proto)
	}
	h.mu.Unlock()
	if current {
		h.h.RemoveStreamHandler(l.proto)
	}
}

// Close stops the dialer and every stream layer and closes the libp2p host
// and all its connections.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		layers := make([]*StreamLayer, 0, len(h.layers))
		for _, l := range h.layers {
			layers = append(layers, l)
		}
		h.mu.Unlock()
		h.cancel()
		for _, l := range layers {
			l.shutdown()
		}
		if err := h.h.Close(); err != nil {
			h.closeErr = fmt.Errorf("p2p: close host: %w", err)
		}
		h.wg.Wait()
	})
	return h.closeErr
}
