package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// exchange sends msg from a to b over the stream layers and expects it
// echoed back, checking the adapters' addresses on both ends.
func exchange(t *testing.T, la, lb *StreamLayer, a, b *Host, msg []byte) {
	t.Helper()
	type accepted struct {
		c   net.Conn
		err error
	}
	got := make(chan accepted, 1)
	go func() {
		c, err := lb.Accept()
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, len(msg))
			if _, err = io.ReadFull(c, buf); err == nil {
				_, err = c.Write(buf)
			}
		}
		got <- accepted{c, err}
	}()
	c, err := la.Dial(raft.ServerAddress(b.ID().String()), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatalf("SetDeadline: %v", err)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("Write: %v", err)
	}
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(c, echo); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(echo, msg) {
		t.Fatalf("echo %q, want %q", echo, msg)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("accept side: %v", r.err)
	}
	defer r.c.Close()
	for _, tc := range []struct {
		name      string
		got, want string
	}{
		{"dialer local", c.LocalAddr().String(), a.ID().String()},
		{"dialer remote", c.RemoteAddr().String(), b.ID().String()},
		{"acceptor local", r.c.LocalAddr().String(), b.ID().String()},
		{"acceptor remote", r.c.RemoteAddr().String(), a.ID().String()},
		{"layer addr", lb.Addr().String(), b.ID().String()},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	// Close on the dialer closes both directions: the acceptor reads EOF.
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, err := r.c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("acceptor read after remote Close = %d, %v; want EOF", n, err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

func TestStreamLayerExchange(t *testing.T) {
	for _, tc := range []struct {
		name      string
		listen    []string
		transport string // multiaddr protocol every connection must use
	}{
		{"tcp", []string{tcpLoopback}, "tcp"},
		{"quic only", []string{quicLoopback}, "quic-v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ka, kb := newKey(t), newKey(t)
			a := newHost(t, ka, tc.listen, peerID(t, kb))
			b := newHost(t, kb, tc.listen, peerID(t, ka))
			addPeers(t, a, b)
			la, lb := a.StreamLayer(testProto), b.StreamLayer(testProto)
			exchange(t, la, lb, a, b, []byte("raft says hello"))
			exchange(t, lb, la, b, a, bytes.Repeat([]byte{0xab}, 256<<10))
			for _, c := range a.Libp2p().Network().ConnsToPeer(b.ID()) {
				if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.ProtocolWithName(tc.transport).Code); err != nil {
					t.Errorf("connection over %s, want %s", c.RemoteMultiaddr(), tc.transport)
				}
			}
			if !connected(b, a.ID()) {
				t.Error("b does not list a as connected")
			}
		})
	}
}

func TestStreamConnDeadline(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	a := newHost(t, ka, []string{tcpLoopback}, peerID(t, kb))
	b := newHost(t, kb, []string{tcpLoopback}, peerID(t, ka))
	addPeers(t, a, b)
	la := a.StreamLayer(testProto)
	lb := b.StreamLayer(testProto)
	c, err := la.Dial(raft.ServerAddress(b.ID().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	in, err := lb.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := in.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(in, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	_, err = in.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read past deadline = %v, want a timeout", err)
		}
	}
}

func TestStreamLayerDialBadAddress(t *testing.T) {
	k := newKey(t)
	h := newHost(t, k, []string{tcpLoopback})
	l := h.StreamLayer(testProto)
	stranger := peerID(t, newKey(t))
	for _, tc := range []struct {
		name    string
		addr    string
		wantErr error
	}{
		{"empty", "", nil},
		{"garbage", "not a peer id", nil},
		{"host:port", "127.0.0.1:8645", nil},
		{"multiaddr", "/ip4/127.0.0.1/tcp/8645", nil},
		{"truncated id", stranger.String()[:20], nil},
		{"long", strings.Repeat("1", 10000), nil},
		{"binary", "\x00\xff\x12\x20", nil},
		{"unknown peer", stranger.String(), ErrNotAllowed},
		{"self", h.ID().String(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := l.Dial(raft.ServerAddress(tc.addr), 500*time.Millisecond)
			if err == nil {
				c.Close()
				t.Fatalf("Dial(%.40q) succeeded", tc.addr)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Dial(%.40q) = %v, want %v", tc.addr, err, tc.wantErr)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error message is %d bytes long", len(err.Error()))
			}
		})
	}
}

func TestStreamLayerClose(t *testing.T) {
	h := newHost(t, newKey(t), []string{tcpLoopback})
	l := h.StreamLayer(testProto)
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	if got := h.Libp2p().Mux().Protocols(); contains(got, testProto) {
		t.Fatalf("protocol %s still registered after Close: %v", testProto, got)
	}
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// An unknown libp2p key cannot connect: in either direction the dial fails
// and no connection remains on the other side.
func TestUnknownKeyCannotConnect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen string
	}{
		{"tcp", tcpLoopback},
		{"quic", quicLoopback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ka, ku := newKey(t), newKey(t)
			// a allows nobody but itself; the stranger u allows a, so only
			// a's gater stands between them.
			a := newHost(t, ka, []string{tc.listen})
			u := newHost(t, ku, []string{tc.listen}, a.ID())
			la, lu := a.StreamLayer(testProto), u.StreamLayer(testProto)
			u.Libp2p().Peerstore().AddAddrs(a.ID(), a.Libp2p().Addrs(), time.Minute)
			a.Libp2p().Peerstore().AddAddrs(u.ID(), u.Libp2p().Addrs(), time.Minute)

			// Stranger dials a: a refuses after the handshake.
			if c, err := lu.Dial(raft.ServerAddress(a.ID().String()), 2*time.Second); err == nil {
				c.Close()
				t.Fatal("stranger opened a stream to a")
			}
			// The stranger's raw libp2p Connect may well return nil: the
			// dialer finishes its side of the Noise/TLS handshake before a
			// sees its identity, and Connect ignores a failed identify.
			// a closes the connection at once; the check below proves
			// nothing remains on either side.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = u.Libp2p().Connect(ctx, peer.AddrInfo{ID: a.ID()})
			cancel()

			// a dials the stranger: refused before any packet is sent.
			if c, err := la.Dial(raft.ServerAddress(u.ID().String()), 2*time.Second); !errors.Is(err, ErrNotAllowed) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("a -> stranger Dial = %v, want ErrNotAllowed", err)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
			err := a.Libp2p().Connect(ctx, peer.AddrInfo{ID: u.ID()})
			cancel()
			if err == nil {
				t.Fatal("a's libp2p host connected to the stranger")
			}

			waitFor(t, 2*time.Second, "no connection between a and the stranger", func() bool {
				return len(a.Libp2p().Network().ConnsToPeer(u.ID())) == 0 &&
					len(u.Libp2p().Network().ConnsToPeer(a.ID())) == 0
			})
			if a.Allowed(u.ID()) || len(a.ConnectedPeers()) != 0 {
				t.Fatalf("a: allowed=%v connected=%v", a.Allowed(u.ID()), a.ConnectedPeers())
			}
			// No protocol ran with the stranger: identify never filled in
			// its protocols.
			if protos, _ := a.Libp2p().Peerstore().GetProtocols(u.ID()); len(protos) != 0 {
				t.Fatalf("identify ran with the stranger: %v", protos)
			}
		})
	}
}

func TestSetAllowedIsolateHeal(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	ida, idb := peerID(t, ka), peerID(t, kb)
	a := newHost(t, ka, []string{tcpLoopback, quicLoopback}, idb)
	b := newHost(t, kb, []string{tcpLoopback, quicLoopback}, ida)
	addPeers(t, a, b)
	addPeers(t, b, a)
	la, lb := a.StreamLayer(testProto), b.StreamLayer(testProto)
	both := func() bool { return connected(a, idb) && connected(b, ida) }
	neither := func() bool { return !connected(a, idb) && !connected(b, ida) }
	waitFor(t, 5*time.Second, "background dialers to connect a and b", both)

	// Isolate closes the connection at once and refuses reconnects.
	a.Isolate(idb)
	if connected(a, idb) {
		t.Fatal("a still connected to b right after Isolate")
	}
	if a.Allowed(idb) {
		t.Fatal("isolated peer reported allowed")
	}
	waitFor(t, 2*time.Second, "b to see the connection closed", neither)
	// b's dialer keeps trying; a must never hold a connection meanwhile.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if len(a.Libp2p().Network().ConnsToPeer(idb)) != 0 {
			t.Fatal("isolated peer reconnected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := la.Dial(raft.ServerAddress(idb.String()), time.Second); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("Dial to isolated peer = %v, want ErrNotAllowed", err)
	}
	if c, err := lb.Dial(raft.ServerAddress(ida.String()), time.Second); err == nil {
		c.Close()
		t.Fatal("isolated peer opened a stream")
	}

	// Heal: the background dialer reconnects.
	a.Heal(idb)
	waitFor(t, 5*time.Second, "reconnect after Heal", both)
	exchange(t, la, lb, a, b, []byte("healed"))

	// SetAllowed without b closes the connection at once.
	a.SetAllowed(nil)
	if connected(a, idb) || a.Allowed(idb) {
		t.Fatal("a still connected to / allowing b after SetAllowed(nil)")
	}
	if !a.Allowed(ida) {
		t.Fatal("the host itself must always be allowed")
	}
	waitFor(t, 2*time.Second, "b to see the connection closed", neither)
	// Allowing b again lets the dialers reconnect.
	a.SetAllowed([]peer.ID{idb})
	waitFor(t, 5*time.Second, "reconnect after SetAllowed", both)
}

func TestNewRejectsBadConfig(t *testing.T) {
	k := newKey(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no key", Config{}},
		{"bad listen", Config{Key: k, ListenAddrs: []string{"127.0.0.1:8645"}}},
		{"no transport for listen", Config{Key: k, ListenAddrs: []string{"/ip4/127.0.0.1/udp/0"}}},
		{"peer without id", Config{Key: k, Peers: []string{"/ip4/127.0.0.1/tcp/1"}}},
		{"bad peer", Config{Key: k, Peers: []string{"nonsense"}}},
		{"low above high", Config{Key: k, ConnMgrLow: 10, ConnMgrHigh: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if h, err := New(tc.cfg); err == nil {
				h.Close()
				t.Fatal("New succeeded")
			}
		})
	}
	// A shared peer list naming the host itself is fine.
	self := ma.StringCast("/ip4/127.0.0.1/tcp/1/p2p/" + peerID(t, k).String())
	h, err := New(Config{Key: k, Peers: []string{self.String()}})
	if err != nil {
		t.Fatalf("New with own entry in Peers: %v", err)
	}
	defer h.Close()
	for _, addr := range []ma.Multiaddr{nil, self, ma.StringCast("/ip4/127.0.0.1/tcp/1")} {
		if err := h.AddPeer(addr); err == nil {
			t.Errorf("AddPeer(%v) succeeded", addr)
		}
	}
}

// A peer cannot hold more than MaxStreamsPerPeer inbound streams on a layer;
// closing one frees its slot.
func TestMaxStreamsPerPeer(t *testing.T) {
	const limit = 2
	ka, kb := newKey(t), newKey(t)
	a := newHost(t, ka, []string{tcpLoopback}, peerID(t, kb))
	b, err := New(Config{Key: kb, ListenAddrs: []string{tcpLoopback}, Allowed: []peer.ID{a.ID()}, Logger: testLogger(), MaxStreamsPerPeer: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	addPeers(t, a, b)
	la, lb := a.StreamLayer(testProto), b.StreamLayer(testProto)
	// open dials b and makes sure b's handler has seen the stream; it
	// reports whether the stream survived.
	open := func() (net.Conn, bool) {
		c, err := la.Dial(raft.ServerAddress(b.ID().String()), 2*time.Second)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write([]byte("x")); err != nil {
			return c, false
		}
		// Nobody accepts, so a surviving stream times out; a refused one
		// is reset.
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		return c, errors.As(err, &ne) && ne.Timeout()
	}
	var conns []net.Conn
	for i := range limit {
		c, ok := open()
		if !ok {
			t.Fatalf("stream %d refused below the limit", i)
		}
		conns = append(conns, c)
	}
	if c, ok := open(); ok {
		t.Fatal("stream above MaxStreamsPerPeer was admitted")
	} else {
		c.Close()
	}
	// Accept and close one: its slot is free again.
	in, err := lb.Accept()
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	waitFor(t, 2*time.Second, "a free stream slot", func() bool {
		c, ok := open()
		if ok {
			conns = append(conns, c)
		} else {
			c.Close()
		}
		return ok
	})
	for _, c := range conns {
		c.Close()
	}
}
