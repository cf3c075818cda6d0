package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Addr is a peer ID as a net.Addr: Raft's ServerAddress is the peer ID
// string, so that is what a StreamLayer and its connections report.
type Addr struct{ ID peer.ID }

// Network returns "libp2p".
func (Addr) Network() string { return "libp2p" }

// String returns the peer ID string.
func (a Addr) String() string { return a.ID.String() }

// StreamLayer implements raft.StreamLayer over libp2p streams of one
// protocol. Inbound streams from permitted peers queue (at most
// AcceptBacklog, at most MaxStreamsPerPeer open per peer) until Accept takes
// them; Dial opens a stream to the peer whose ID is the address.
type StreamLayer struct {
	host  *Host
	proto protocol.ID
	addr  Addr

	accept    chan *streamConn
	done      chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	perPeer map[peer.ID]int // open inbound streams per peer
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

func newStreamLayer(h *Host, proto protocol.ID) *StreamLayer {
	return &StreamLayer{
		host:    h,
		proto:   proto,
		addr:    Addr{ID: h.ID()},
		accept:  make(chan *streamConn, AcceptBacklog),
		done:    make(chan struct{}),
		perPeer: make(map[peer.ID]int),
	}
}

// handle is the libp2p stream handler: it admits a stream into the accept
// queue, or resets it if the peer is not permitted, has too many streams
// open, or the queue stays full for acceptWait.
func (l *StreamLayer) handle(s network.Stream) {
	remote := s.Conn().RemotePeer()
	if !l.host.pol.permits(remote) {
		l.host.log.Debug("p2p: refusing stream from peer not allowed", "peer", remote, "protocol", l.proto)
		_ = s.Reset()
		return
	}
	if !l.acquire(remote) {
		l.host.log.Debug("p2p: refusing stream: too many open", "peer", remote, "protocol", l.proto, "max", l.host.maxStreams)
		_ = s.Reset()
		return
	}
	c := newStreamConn(s, l.addr, func() { l.release(remote) })
	timer := time.NewTimer(acceptWait)
	defer timer.Stop()
	select {
	case l.accept <- c:
		// Close may have run between the send and now; make sure nothing
		// is left in the queue of a closed layer.
		select {
		case <-l.done:
			l.drain()
		default:
		}
	case <-l.done:
		c.reset()
	case <-timer.C:
		l.host.log.Debug("p2p: refusing stream: accept queue full", "peer", remote, "protocol", l.proto)
		c.reset()
	}
}

func (l *StreamLayer) acquire(id peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perPeer[id] >= l.host.maxStreams {
		return false
	}
	l.perPeer[id]++
	return true
}

func (l *StreamLayer) release(id peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perPeer[id] <= 1 {
		delete(l.perPeer, id)
		return
	}
	l.perPeer[id]--
}

// drain resets every stream still queued.
func (l *StreamLayer) drain() {
	for {
		select {
		case c := <-l.accept:
			c.reset()
		default:
			return
		}
	}
}

// Accept waits for the next inbound stream. After Close it returns
// net.ErrClosed, which tells Raft's NetworkTransport to stop.
func (l *StreamLayer) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, fmt.Errorf("p2p: accept %s: %w", l.proto, net.ErrClosed)
	default:
	}
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("p2p: accept %s: %w", l.proto, net.ErrClosed)
	}
}

// Close stops accepting: the protocol handler is removed and queued streams
// are reset. Connections already accepted or dialled stay open until their
// owners close them.
func (l *StreamLayer) Close() error {
	l.shutdown()
	l.host.removeLayer(l)
	return nil
}

func (l *StreamLayer) shutdown() {
	l.closeOnce.Do(func() {
		close(l.done)
		l.drain()
	})
}

// Addr returns this host's peer ID as a net.Addr.
func (l *StreamLayer) Addr() net.Addr { return l.addr }

// Dial opens a stream to the peer whose ID is address, dialling it first if
// needed. A malformed address or a peer that is not permitted is an error.
// A timeout of zero or less means the host's DialTimeout.
func (l *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	id, err := peer.Decode(string(address))
	if err != nil {
		return nil, fmt.Errorf("p2p: dial %q: not a peer id: %w", truncate(string(address)), err)
	}
	if !l.host.pol.permits(id) {
		return nil, fmt.Errorf("p2p: dial %s: %w", id, ErrNotAllowed)
	}
	if timeout <= 0 {
		timeout = l.host.dialTimeout
	}
	ctx, cancel := context.WithTimeout(l.host.ctx, timeout)
	defer cancel()
	s, err := l.host.h.NewStream(ctx, id, l.proto)
	if err != nil {
		return nil, fmt.Errorf("p2p: dial %s: %w: %w", id, errDial, err)
	}
	return newStreamConn(s, l.addr, nil), nil
}

// errDial marks a failed StreamLayer.Dial: RaftTransport does not retry it.
var errDial = errors.New("cannot open stream")

// truncate keeps untrusted strings in error messages short.
func truncate(s string) string {
	const maxLen = 80
	if len(s) > maxLen {
		return s[:maxLen] + "..."
	}
	return s
}

// streamConn adapts a libp2p stream to net.Conn.
type streamConn struct {
	s       network.Stream
	local   Addr
	remote  Addr
	once    sync.Once
	release func() // frees the inbound stream slot; nil for dialled streams
}

var _ net.Conn = (*streamConn)(nil)

func newStreamConn(s network.Stream, local Addr, release func()) *streamConn {
	return &streamConn{s: s, local: local, remote: Addr{ID: s.Conn().RemotePeer()}, release: release}
}

func (c *streamConn) Read(b []byte) (int, error)  { return c.s.Read(b) }
func (c *streamConn) Write(b []byte) (int, error) { return c.s.Write(b) }

// Close closes both directions of the stream (the remote reads EOF) and
// frees its slot.
func (c *streamConn) Close() error {
	err := c.s.Close()
	c.done()
	return err
}

// reset aborts the stream (the remote sees a reset, not EOF).
func (c *streamConn) reset() {
	_ = c.s.Reset()
	c.done()
}

func (c *streamConn) done() {
	c.once.Do(func() {
		if c.release != nil {
			c.release()
		}
	})
}

func (c *streamConn) LocalAddr() net.Addr                { return c.local }
func (c *streamConn) RemoteAddr() net.Addr               { return c.remote }
func (c *streamConn) SetDeadline(t time.Time) error      { return c.s.SetDeadline(t) }
func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.s.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.s.SetWriteDeadline(t) }

// RaftTransportConfig configures NewRaftTransport.
type RaftTransportConfig struct {
	// MaxPool is how many idle connections per peer Raft keeps for reuse.
	MaxPool int
	// Timeout is the I/O deadline of one RPC.
	Timeout time.Duration
	// Logger receives Raft's transport logs.
	Logger hclog.Logger
}

// RaftTransport is hashicorp/raft's NetworkTransport over a StreamLayer,
// with one change: an RPC that fails on a connection error is tried again
// at once. NetworkTransport keeps up to MaxPool idle connections per peer
// and hands them out without checking them; when the peer restarts or
// its libp2p connection drops, every pooled stream is dead, and without
// the retry a candidate's vote request fails on one in the same
// millisecond, counts as a refusal, and the candidate waits a whole
// election timeout before it asks again. A dead stream fails on first use
// (the multiplexer knows its session is gone) and NetworkTransport
// releases it, so at most MaxPool attempts meet dead streams and the next
// one dials afresh. Timeouts are not retried: the peer may be alive and
// slow, and a second wait would only delay what Raft does next.
type RaftTransport struct {
	*raft.NetworkTransport
	attempts int
}

var (
	_ raft.Transport   = (*RaftTransport)(nil)
	_ raft.WithPreVote = (*RaftTransport)(nil)
	_ raft.WithClose   = (*RaftTransport)(nil)
)

// NewRaftTransport returns Raft's transport over l.
func NewRaftTransport(l *StreamLayer, cfg RaftTransportConfig) *RaftTransport {
	if cfg.MaxPool <= 0 {
		cfg.MaxPool = 3
	}
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  l,
		MaxPool: cfg.MaxPool,
		Timeout: cfg.Timeout,
		Logger:  cfg.Logger,
	})
	return &RaftTransport{NetworkTransport: nt, attempts: cfg.MaxPool + 1}
}

// retry runs rpc until it succeeds, fails with a timeout (or an error
// that is not about the connection), or has used every attempt.
func (t *RaftTransport) retry(rpc func() error) error {
	var err error
	for range t.attempts {
		if err = rpc(); err == nil || !retryable(err) || t.IsShutdown() {
			return err
		}
	}
	return err
}

// retryable reports whether err is a dead stream rather than a slow
// peer, a failed dial or an answer: reset streams and closed connections
// (which the multiplexer reports as resets), EOF, and the socket errors of
// a peer that went away. Errors the remote Raft sends back (an unknown
// command, a refused snapshot) arrive as plain strings and are never
// retried.
func retryable(err error) bool {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, errDial):
		return false // a fresh dial: nothing pooled to skip
	}
	return errors.Is(err, network.ErrReset) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// AppendEntries implements raft.Transport, retrying a dead pooled stream.
func (t *RaftTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.retry(func() error { return t.NetworkTransport.AppendEntries(id, target, args, resp) })
}

// RequestVote implements raft.Transport, retrying a dead pooled stream.
func (t *RaftTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.retry(func() error { return t.NetworkTransport.RequestVote(id, target, args, resp) })
}

// RequestPreVote implements raft.WithPreVote, retrying a dead pooled stream.
func (t *RaftTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.retry(func() error { return t.NetworkTransport.RequestPreVote(id, target, args, resp) })
}

// TimeoutNow implements raft.Transport, retrying a dead pooled stream.
func (t *RaftTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.retry(func() error { return t.NetworkTransport.TimeoutNow(id, target, args, resp) })
}
