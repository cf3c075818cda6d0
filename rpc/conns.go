package rpc

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// NewHTTPServer returns the http.Server the JSON-RPC port is served by,
// with l's timeouts: a request's header and whole body must arrive within
// ReadHeaderTimeout and ReadTimeout (a client trickling a body is cut off,
// so it cannot hold a connection and its file descriptor for ever), its
// response must be written within WriteTimeout, and an idle keep-alive
// connection is closed after IdleTimeout. A WebSocket upgrade clears the
// deadlines (gorilla/websocket does), and go-ethereum's codec then pings the
// client and drops it when it stops answering; each message it sends must
// still arrive within ReadTimeout (messageTimeoutConn).
func NewHTTPServer(h http.Handler, l Limits) *http.Server {
	l = l.withDefaults()
	return &http.Server{Handler: h, ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout,
		WriteTimeout: l.WriteTimeout, IdleTimeout: l.IdleTimeout}
}

// LimitListener bounds the connections ln hands out: at most l.MaxConns
// open at once, and at most l.MaxConnsPerIP from one client address (an
// IPv4 address or an IPv6 /64, as the per-IP rate limit counts). A
// connection over either bound is answered HTTP 503 with a JSON-RPC
// -32005 error and closed at once, so it never holds a file descriptor: a
// flood of slow or idle connections from one address cannot take the
// descriptors the node's stores and peers need, nor the slots of other
// clients. WebSocket connections count too, for as long as they live.
func LimitListener(ln net.Listener, l Limits) net.Listener {
	l = l.withDefaults()
	return NewLimitListener(ln, ConnLimits{Max: l.MaxConns, MaxKey: "http.max-connections",
		PerIP: l.MaxConnsPerIP, PerIPKey: "http.max-connections-per-ip", OnRefused: l.OnRefused})
}

// ConnLimits are the connection bounds of one listener and the config
// keys that name them in refusals and in OnRefused.
type ConnLimits struct {
	// Max bounds the open connections (at least 1).
	Max    int
	MaxKey string
	// PerIP bounds those of one client address (0: no per-address bound).
	PerIP    int
	PerIPKey string
	// OnRefused, if set, is called with the key of each refusal.
	OnRefused func(bound string)
}

// NewLimitListener bounds ln's connections as LimitListener does, for any
// listener (the admin port has its own key, admin.max-connections).
func NewLimitListener(ln net.Listener, c ConnLimits) net.Listener {
	if c.PerIP <= 0 {
		c.PerIP = c.Max
	}
	return &limitListener{Listener: ln, max: c.Max, perIP: c.PerIP, maxKey: c.MaxKey, perIPKey: c.PerIPKey,
		byIP: make(map[netip.Prefix]int), onRefused: c.OnRefused}
}

type limitListener struct {
	net.Listener
	max, perIP       int
	maxKey, perIPKey string
	onRefused        func(bound string)

	mu    sync.Mutex
	open  int
	byIP  map[netip.Prefix]int
	count uint64 // connections refused, for tests and logs
}

// Accept returns the next connection within the bounds, refusing the
// others as they arrive.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, hasKey := clientKey(c.RemoteAddr().String())
		l.mu.Lock()
		var refusal, bound string
		switch {
		case l.open >= l.max:
			bound = l.maxKey
			refusal = fmt.Sprintf("too many connections: the node serves at most %d (%s); retry later", l.max, bound)
		case hasKey && l.byIP[key] >= l.perIP:
			bound = l.perIPKey
			refusal = fmt.Sprintf("too many connections from %s: at most %d (%s); reuse connections (keep-alive)", clientString(key), l.perIP, bound)
		}
		if refusal != "" {
			l.count++
			l.mu.Unlock()
			countRefusal(l.onRefused, bound)
			refuse(c, refusal)
			continue
		}
		l.open++
		if hasKey {
			l.byIP[key]++
		}
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l, key: key, hasKey: hasKey}, nil
	}
}

// refused reports how many connections were refused so far.
func (l *limitListener) refused() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

func (l *limitListener) release(key netip.Prefix, hasKey bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if hasKey {
		if l.byIP[key]--; l.byIP[key] <= 0 {
			delete(l.byIP, key)
		}
	}
}

// refuseWriteTimeout bounds writing the refusal: a fresh connection's send
// buffer is empty, so it only matters for a peer that is already gone.
const refuseWriteTimeout = 100 * time.Millisecond

// refuse answers an over-limit connection HTTP 503 with a JSON-RPC error,
// without reading its request, and closes it.
func refuse(c net.Conn, msg string) {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":null,"error":{"code":%d,"message":%q}}`+"\n", CodeLimitExceeded, msg)
	c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s", len(body), body)
	c.Close()
}

// limitedConn gives its slot back when closed (once: net/http may close a
// connection twice).
type limitedConn struct {
	net.Conn
	l      *limitListener
	key    netip.Prefix
	hasKey bool
	once   sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key, c.hasKey) })
	return err
}
