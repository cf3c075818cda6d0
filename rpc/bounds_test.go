package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/gorilla/websocket"
)

// The tests in this file drive a real server on 127.0.0.1 (through
// LimitListener and NewHTTPServer, as the node serves it) past each bound
// of Limits, from clients on distinct loopback addresses (127.0.0.0/8 is
// all loopback), and check that the others are still served.

// boundedServer serves b with limits on 127.0.0.1 as the node does.
type boundedServer struct {
	url string
	ln  *limitListener
	srv *Server
}

func serveBounded(t *testing.T, b Backend, limits Limits) *boundedServer {
	t.Helper()
	srv, err := NewServer(b, limits, "test")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := LimitListener(ln, limits)
	hs := NewHTTPServer(srv, limits)
	done := make(chan struct{})
	go func() { defer close(done); hs.Serve(lim) }()
	t.Cleanup(func() { hs.Close(); srv.Stop(); <-done })
	return &boundedServer{url: "http://" + ln.Addr().String(), ln: lim.(*limitListener), srv: srv}
}

// refusalCounter records Limits.OnRefused calls.
type refusalCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func countRefusals(l *Limits) *refusalCounter {
	c := &refusalCounter{n: map[string]int{}}
	l.OnRefused = func(bound string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.n[bound]++
	}
	return c
}

func (c *refusalCounter) get(bound string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[bound]
}

// Every bound a refusal is counted under is a documented config key.
func TestRefusalBoundsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range RefusalBounds {
		if !strings.Contains(string(doc), "| `"+b+"` |") {
			t.Errorf("bound %s is not a key in docs/config.md", b)
		}
	}
}

func (s *boundedServer) wsURL() string { return "ws" + strings.TrimPrefix(s.url, "http") }

// dialerFrom dials from the loopback address ip.
func dialerFrom(ip string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
}

// clientFrom is a go-ethereum client of s over HTTP (or WebSocket with ws)
// from the loopback address ip.
func clientFrom(t *testing.T, s *boundedServer, ip string, ws bool) *gethrpc.Client {
	t.Helper()
	c, err := dialFrom(s, ip, ws)
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	t.Cleanup(c.Close)
	return c
}

func dialFrom(s *boundedServer, ip string, ws bool) (*gethrpc.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := dialerFrom(ip)
	if ws {
		return gethrpc.DialOptions(ctx, s.wsURL(), gethrpc.WithWebsocketDialer(websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 5 * time.Second}))
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	return gethrpc.DialOptions(ctx, s.url, gethrpc.WithHTTPClient(hc))
}

// served checks that c is answered.
func served(t *testing.T, c *gethrpc.Client, who string) {
	t.Helper()
	var n hexutil.Uint64
	if err := c.Call(&n, "eth_blockNumber"); err != nil {
		t.Fatalf("%s not served: %v", who, err)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inUse is how many heavy-read slots are held.
func (g *heavyGate) inUse() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}

func (l *limitListener) openConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// slowBody opens a connection from ip and sends a request whose body
// never completes: a slowloris client.
func slowBody(t *testing.T, addr, ip string) net.Conn {
	t.Helper()
	c, err := dialerFrom(ip).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\":")
	return c
}

// answer reads the server's answer on c: its HTTP status and JSON-RPC
// error (0 and "" when the connection closed without one).
func answer(t *testing.T, c net.Conn) (status, code int, msg string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server neither answered nor closed the connection within 10 s")
		}
		return 0, 0, ""
	}
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Code    int
			Message string
		}
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error.Code, body.Error.Message
}

// A slow body is cut off after ReadTimeout, and one client address holds
// at most MaxConnsPerIP connections: a flood of slow connections from it
// is refused as it arrives, while another client is served.
func TestSlowConnectionsAreBounded(t *testing.T) {
	limits := DefaultLimits
	limits.ReadHeaderTimeout, limits.ReadTimeout, limits.IdleTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	limits.MaxConns, limits.MaxConnsPerIP = 16, 4
	counted := countRefusals(&limits)
	s := serveBounded(t, newTestBackend(t), limits)
	addr := strings.TrimPrefix(s.url, "http://")

	var flood []net.Conn
	for range 40 {
		flood = append(flood, slowBody(t, addr, "127.0.0.2"))
	}
	waitFor(t, "36 refusals", func() bool { return s.ln.refused() >= 36 })
	if open := s.ln.openConns(); open > 4 {
		t.Fatalf("%d connections held for one client, want at most 4", open)
	}
	served(t, clientFrom(t, s, "127.0.0.1", false), "another client during the flood")

	var refused, timedOut int
	for _, c := range flood {
		switch status, code, msg := answer(t, c); {
		case status == http.StatusServiceUnavailable && code == CodeLimitExceeded && strings.Contains(msg, "too many connections from 127.0.0.2: at most 4 (http.max-connections-per-ip)"):
			refused++
		case status == http.StatusRequestTimeout && code == CodeInvalidRequest && strings.Contains(msg, "request body not received within 300ms (http.read-timeout)"):
			timedOut++
		default:
			t.Fatalf("slow connection answered %d %d %q", status, code, msg)
		}
	}
	if refused != 36 || timedOut != 4 {
		t.Fatalf("%d refused and %d timed out, want 36 and 4", refused, timedOut)
	}
	if counted.get("http.max-connections-per-ip") != 36 || counted.get("http.read-timeout") != 4 {
		t.Fatalf("refusals counted: %v", counted.n)
	}
	waitFor(t, "the slots back", func() bool { return s.ln.openConns() == 0 })

	// All clients together hold at most MaxConns.
	for i := range 16 {
		slowBody(t, addr, fmt.Sprintf("127.0.1.%d", i/4+1))
	}
	waitFor(t, "16 connections held", func() bool { return s.ln.openConns() == 16 })
	status, code, msg := answer(t, slowBody(t, addr, "127.0.2.1"))
	if status != http.StatusServiceUnavailable || code != CodeLimitExceeded || !strings.Contains(msg, "too many connections: the node serves at most 16 (http.max-connections)") {
		t.Fatalf("connection over max-connections: %d %d %q", status, code, msg)
	}
	if counted.get("http.max-connections") != 1 {
		t.Fatalf("refusals counted: %v", counted.n)
	}
	waitFor(t, "the slow connections timed out", func() bool { return s.ln.openConns() == 0 })
	served(t, clientFrom(t, s, "127.0.2.1", false), "a client after the slow ones timed out")
}

// A slow header is cut off too (http.read-header-timeout), and an idle
// keep-alive connection is closed (http.idle-timeout).
func TestSlowHeaderAndIdleConnectionsClosed(t *testing.T) {
	limits := DefaultLimits
	limits.ReadHeaderTimeout, limits.IdleTimeout = 200*time.Millisecond, 200*time.Millisecond
	s := serveBounded(t, newTestBackend(t), limits)
	addr := strings.TrimPrefix(s.url, "http://")
	for name, prefix := range map[string]string{"slow header": "POST / HTTP/1.1\r\nHost: no", "idle": ""} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if name == "idle" {
			req := `{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}`
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(req), req)
			if status, _, _ := answer(t, c); status != http.StatusOK {
				t.Fatalf("idle: first request %d", status)
			}
		} else {
			io.WriteString(c, prefix)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		_, err = io.ReadAll(c) // returns when the server closes
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: connection still open after 10 s", name)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s: closed after %v", name, d)
		}
	}
	waitFor(t, "slots back", func() bool { return s.ln.openConns() == 0 })
	served(t, clientFrom(t, s, "127.0.0.1", false), "a client after the slow header and the idle connection")
}

// WebSocket connections are bounded on their own (MaxWSConns), and one
// over the bound is refused before the upgrade while HTTP clients and the
// open WebSockets are still served.
func TestWebSocketConnectionCap(t *testing.T) {
	c := newFilterChain(t)
	limits := DefaultLimits
	limits.MaxWSConns = 3
	s := serveBounded(t, c, limits)
	var open []*gethrpc.Client
	for i := range 3 {
		open = append(open, clientFrom(t, s, fmt.Sprintf("127.0.3.%d", i+1), true))
	}
	_, err := dialFrom(s, "127.0.3.9", true)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a fourth WebSocket: %v, want HTTP 503", err)
	}
	// The refusal is a JSON-RPC error an HTTP client can read too.
	req, _ := http.NewRequest(http.MethodGet, s.url, nil)
	for k, v := range map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code":-32005`) ||
		!strings.Contains(string(body), "too many WebSocket connections: the node serves at most 3 (http.max-ws-connections)") {
		t.Fatalf("refusal %d %s", resp.StatusCode, body)
	}
	served(t, clientFrom(t, s, "127.0.3.9", false), "an HTTP client")
	for i, ws := range open {
		served(t, ws, fmt.Sprintf("open WebSocket %d", i))
	}
	open[0].Close()
	waitFor(t, "a WebSocket slot back", func() bool {
		ws, err := dialFrom(s, "127.0.3.9", true)
		if err != nil {
			return false
		}
		defer ws.Close()
		var n hexutil.Uint64
		return ws.Call(&n, "eth_blockNumber") == nil
	})
}

// A WebSocket message larger than MaxBodyBytes (the bound of an HTTP
// body) closes its connection with 1009 "message too big", as go-ethereum
// does, and the node goes on serving other WebSocket clients, from the
// same address too.
func TestWebSocketMessageBounded(t *testing.T) {
	limits := DefaultLimits
	limits.MaxBodyBytes = 4096
	s := serveBounded(t, newTestBackend(t), limits)
	d := websocket.Dialer{NetDialContext: dialerFrom("127.0.13.1").DialContext, HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial(s.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var batch []string
	for i := range 100 { // ~6 KB
		batch = append(batch, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"eth_blockNumber"}`, i))
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("["+strings.Join(batch, ",")+"]")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, reply, err := conn.ReadMessage()
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("an oversized WebSocket message: reply %.100s, err %v; want the connection closed", reply, err)
	}
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("closed with %v, want 1009 message too big", err)
	}
	served(t, clientFrom(t, s, "127.0.13.1", true), "another WebSocket client of the same address")
	waitFor(t, "the oversized connection's slot back", func() bool { return s.ln.openConns() <= 1 })
}

// wsFrame is a client's WebSocket frame header (masked, as RFC 6455
// requires of clients) for a payload of n bytes with opcode op, final or
// not; the mask key is zero, so the payload goes as is.
func wsFrame(op byte, fin bool, n int) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	switch {
	case n < 126:
		return []byte{b0, 0x80 | byte(n), 0, 0, 0, 0}
	default:
		return []byte{b0, 0x80 | 126, byte(n >> 8), byte(n), 0, 0, 0, 0}
	}
}

// A WebSocket message must arrive within ReadTimeout once its first byte
// has, as an HTTP request must: a client trickling one frame, or the
// fragments of one message, is disconnected, while an idle WebSocket (a
// subscriber waiting for blocks) stays open and other clients are served.
func TestWebSocketSlowMessageCutOff(t *testing.T) {
	limits := DefaultLimits
	limits.ReadHeaderTimeout, limits.ReadTimeout = 300*time.Millisecond, 300*time.Millisecond
	counted := countRefusals(&limits)
	s := serveBounded(t, newTestBackend(t), limits)
	call := []byte(`{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}`)
	for name, partial := range map[string][]byte{
		// A frame announcing the whole call, of which only a part comes.
		"a frame trickled": append(wsFrame(1, true, len(call)), call[:10]...),
		// A first fragment, complete, and no last one.
		"fragments trickled": append(wsFrame(1, false, 10), call[:10]...),
		// A header cut short.
		"a header trickled": wsFrame(1, true, 200)[:3],
	} {
		d := websocket.Dialer{NetDialContext: dialerFrom("127.0.14.1").DialContext, HandshakeTimeout: 5 * time.Second}
		conn, _, err := d.Dial(s.wsURL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.UnderlyingConn().Write(partial); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err = conn.ReadMessage()
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("%s: connection still open after 10 s (%v)", name, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s: cut off after %v, want about http.read-timeout (300ms)", name, d)
		}
	}
	if n := counted.get("http.read-timeout"); n != 3 {
		t.Fatalf("%d read timeouts counted, want 3", n)
	}
	// An idle WebSocket outlives the read timeout, and messages sent in
	// one piece or in fragments sent at once are served.
	idle := clientFrom(t, s, "127.0.14.2", true)
	time.Sleep(600 * time.Millisecond)
	served(t, idle, "an idle WebSocket past http.read-timeout")
	d := websocket.Dialer{NetDialContext: dialerFrom("127.0.14.3").DialContext, HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial(s.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var frames []byte
	frames = append(append(frames, wsFrame(1, false, 20)...), call[:20]...)
	frames = append(append(frames, wsFrame(9, true, 4)...), "ping"...) // a ping between the fragments
	frames = append(append(frames, wsFrame(0, true, len(call)-20)...), call[20:]...)
	if _, err := conn.UnderlyingConn().Write(frames); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, reply, err := conn.ReadMessage(); err != nil || !strings.Contains(string(reply), `"result":"0x`) {
		t.Fatalf("a fragmented call: %s %v", reply, err)
	}
	time.Sleep(600 * time.Millisecond) // idle after a message: not cut
	if err := conn.WriteMessage(websocket.TextMessage, call); err != nil {
		t.Fatal(err)
	}
	if _, reply, err := conn.ReadMessage(); err != nil || !strings.Contains(string(reply), `"result":"0x`) {
		t.Fatalf("a call after idling: %s %v", reply, err)
	}
}

// Outside a dev chain, browsers may open a WebSocket only from the
// allowed origins (none set: localhost); clients that are not browsers
// send no origin and are always served.
func TestWebSocketOrigins(t *testing.T) {
	c := newFilterChain(t)
	strict := serveBounded(t, c, DefaultLimits)
	ctx := context.Background()
	if _, err := gethrpc.DialWebsocket(ctx, strict.wsURL(), "https://evil.example"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a foreign origin by default: %v, want HTTP 403", err)
	}
	for _, origin := range []string{"", "http://localhost"} {
		ws, err := gethrpc.DialWebsocket(ctx, strict.wsURL(), origin)
		if err != nil {
			t.Fatalf("origin %q: %v", origin, err)
		}
		served(t, ws, "origin "+origin)
		ws.Close()
	}
	limits := DefaultLimits
	limits.WSOrigins = []string{"https://wallet.example"}
	listed := serveBounded(t, c, limits)
	ws, err := gethrpc.DialWebsocket(ctx, listed.wsURL(), "https://wallet.example")
	if err != nil {
		t.Fatalf("a listed origin: %v", err)
	}
	ws.Close()
	if _, err := gethrpc.DialWebsocket(ctx, listed.wsURL(), "https://evil.example"); err == nil {
		t.Fatal("an unlisted origin was let in")
	}
}

// One client address installs at most MaxFiltersPerIP filters, over HTTP
// and WebSocket together, so other clients can still install theirs.
func TestFilterQuotaPerClient(t *testing.T) {
	c := newFilterChain(t)
	limits := DefaultLimits
	limits.MaxFilters, limits.MaxFiltersPerIP = 6, 2
	s := serveBounded(t, c, limits)
	greedyHTTP, greedyWS := clientFrom(t, s, "127.0.4.1", false), clientFrom(t, s, "127.0.4.1", true)
	var ids []string
	for i, cl := range []*gethrpc.Client{greedyHTTP, greedyWS} {
		var id string
		method := []string{"eth_newBlockFilter", "eth_newFilter"}[i]
		args := [][]any{nil, {map[string]any{}}}[i]
		if err := cl.Call(&id, method, args...); err != nil {
			t.Fatalf("filter %d of the client: %v", i, err)
		}
		ids = append(ids, id)
	}
	for _, cl := range []*gethrpc.Client{greedyHTTP, greedyWS} {
		var id string
		wantFilterErr(t, "a third filter", cl.Call(&id, "eth_newBlockFilter"), CodeLimitExceeded,
			"too many installed filters for client 127.0.4.1 (at most 2 per client, http.max-filters-per-ip)")
		wantFilterErr(t, "a third log filter", cl.Call(&id, "eth_newFilter", map[string]any{}), CodeLimitExceeded, "127.0.4.1")
	}
	for i := range 4 { // the others fill the global bound
		var id string
		if err := clientFrom(t, s, fmt.Sprintf("127.0.4.%d", 2+i/2), false).Call(&id, "eth_newBlockFilter"); err != nil {
			t.Fatalf("another client's filter: %v", err)
		}
	}
	var id string
	wantFilterErr(t, "over max-filters", clientFrom(t, s, "127.0.4.9", false).Call(&id, "eth_newBlockFilter"), CodeLimitExceeded, "too many installed filters (at most 6)")
	// The greedy client's filters still work; uninstalling one frees its slot.
	c.block()
	var hashes []common.Hash
	if err := greedyHTTP.Call(&hashes, "eth_getFilterChanges", ids[0]); err != nil || len(hashes) != 1 {
		t.Fatalf("poll: %v %v", hashes, err)
	}
	var ok bool
	if err := greedyHTTP.Call(&ok, "eth_uninstallFilter", ids[1]); err != nil || !ok {
		t.Fatalf("uninstall: %v %v", ok, err)
	}
	if err := greedyWS.Call(&id, "eth_newBlockFilter"); err != nil {
		t.Fatalf("after uninstalling: %v", err)
	}
}

// One WebSocket connection holds at most MaxSubscriptionsPerConn
// subscriptions and one client address MaxSubscriptionsPerIP; a closed
// connection gives its subscriptions back, and other clients keep
// subscribing and being notified.
func TestSubscriptionQuotaPerClient(t *testing.T) {
	c := newFilterChain(t)
	c.heads = NewHeadFeed(100)
	limits := DefaultLimits
	limits.MaxSubscriptionsPerConn, limits.MaxSubscriptionsPerIP = 2, 3
	counted := countRefusals(&limits)
	s := serveBounded(t, c, limits)
	ctx := context.Background()
	subscribe := func(cl *gethrpc.Client) (*gethrpc.ClientSubscription, chan map[string]any, error) {
		ch := make(chan map[string]any, 16)
		sub, err := cl.EthSubscribe(ctx, ch, "newHeads")
		return sub, ch, err
	}
	first := clientFrom(t, s, "127.0.5.1", true)
	for i := range 2 {
		if _, _, err := subscribe(first); err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
	}
	_, _, err := subscribe(first)
	wantFilterErr(t, "a third on one connection", err, CodeLimitExceeded,
		"too many subscriptions for this WebSocket connection (http.max-subscriptions-per-connection: 2)")
	second := clientFrom(t, s, "127.0.5.1", true)
	if _, _, err := subscribe(second); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	_, _, err = subscribe(second)
	wantFilterErr(t, "a fourth from one address", err, CodeLimitExceeded, "too many subscriptions for client 127.0.5.1 (http.max-subscriptions-per-ip: 3)")
	if counted.get("http.max-subscriptions-per-connection") != 1 || counted.get("http.max-subscriptions-per-ip") != 1 {
		t.Fatalf("refusals counted: %v", counted.n)
	}

	other := clientFrom(t, s, "127.0.5.2", true)
	_, ch, err := subscribe(other)
	if err != nil {
		t.Fatalf("another client: %v", err)
	}
	b := c.block()
	select {
	case h := <-ch:
		if h["hash"] != b.Hash().Hex() {
			t.Fatalf("notified %v, want block %s", h["hash"], b.Hash())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("another client's subscription was not notified")
	}
	first.Close()
	waitFor(t, "the closed connection's subscriptions back", func() bool {
		sub, _, err := subscribe(second)
		if err == nil {
			sub.Unsubscribe()
		}
		return err == nil
	})
}

// blockingBackend is a testBackend whose SubmitTx waits until released,
// so a request can be held in the middle of a batch.
type blockingBackend struct {
	*testBackend
	entered chan struct{}
	release chan struct{}
}

func (b *blockingBackend) SubmitTx(ctx context.Context, tx *types.Transaction) error {
	b.entered <- struct{}{}
	<-b.release
	return b.testBackend.SubmitTx(ctx, tx)
}

// heldRead is a batch that takes a heavy-read slot (it reads raw blocks)
// and is then held in the blocking backend's SubmitTx, so its request
// keeps the slot until the test lets it go.
func heldRead(t *testing.T, b *blockingBackend, c *gethrpc.Client, key uint32) chan error {
	t.Helper()
	var raws []RawBlock
	var sent common.Hash
	batch := []gethrpc.BatchElem{
		{Method: "tally_getRawBlocks", Args: []any{hexutil.Uint64(0), hexutil.Uint64(1)}, Result: &raws},
		{Method: "eth_sendRawTransaction", Args: []any{rawHex(t, signedTransfer(t, devKey(t, key), 0))}, Result: &sent},
	}
	done := make(chan error, 1)
	go func() {
		err := c.BatchCall(batch)
		if err == nil {
			err = batch[0].Error
		}
		done <- err
	}()
	<-b.entered // the batch has read its raw blocks and is held
	return done
}

// heavyRead starts a tally_getRawBlocks from c and returns its outcome.
func heavyRead(c *gethrpc.Client) chan error {
	done := make(chan error, 1)
	go func() {
		var raws []RawBlock
		done <- c.Call(&raws, "tally_getRawBlocks", hexutil.Uint64(0), hexutil.Uint64(1))
	}()
	return done
}

func outcome(t *testing.T, what string, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer within 10 s", what)
		return nil
	}
}

// At most MaxHeavyReads heavy reads run at once, and an HTTP request that
// made one holds its slot until its reply is written. Another client's
// heavy read waits for the slot rather than being refused at once: it is
// served once the slot is given back, or refused -32005 after
// HeavyReadWait; light calls are never held up.
func TestHeavyReadConcurrency(t *testing.T) {
	b := &blockingBackend{testBackend: newTestBackend(t), entered: make(chan struct{}), release: make(chan struct{})}
	limits := DefaultLimits
	limits.MaxHeavyReads, limits.HeavyReadWait = 1, 300*time.Millisecond
	limits.Rate = RateLimits{}
	counted := countRefusals(&limits)
	s := serveBounded(t, b, limits)
	holder, other := clientFrom(t, s, "127.0.6.1", false), clientFrom(t, s, "127.0.6.2", false)
	held := heldRead(t, b, holder, 0)

	var logs []types.Log
	var raws []RawBlock
	var history json.RawMessage
	for _, call := range []struct {
		method string
		args   []any
		out    any
	}{
		{"eth_getLogs", []any{map[string]any{"fromBlock": "0x0", "toBlock": "0x0"}}, &logs},
		{"tally_getRawBlocks", []any{hexutil.Uint64(0), hexutil.Uint64(1)}, &raws},
		{"tally_getAccountHistory", []any{common.Address{1}, nil, nil}, &history},
		{"eth_getBlockByNumber", []any{"0x0", true}, &history},
	} {
		start := time.Now()
		wantFilterErr(t, call.method+" while the slot is held", other.Call(call.out, call.method, call.args...), CodeLimitExceeded,
			"server busy: no heavy-read slot within 300ms (http.heavy-read-wait); retry "+call.method+" shortly")
		if waited := time.Since(start); waited < 300*time.Millisecond {
			t.Fatalf("%s refused after %v, before http.heavy-read-wait", call.method, waited)
		}
	}
	if n := counted.get("http.heavy-read-wait"); n != 4 {
		t.Fatalf("%d wait refusals counted, want 4", n)
	}
	served(t, other, "a light call while the heavy slot is held")
	if err := other.Call(&history, "eth_getBlockByNumber", "0x0", false); err != nil {
		t.Fatalf("a block without its transactions is not a heavy read: %v", err)
	}
	// A read that waits is served once the slot comes back.
	waiting := heavyRead(other)
	waitFor(t, "the read queued", func() bool { return s.srv.heavy.waiting() == 1 })
	close(b.release)
	if err := outcome(t, "held batch", held); err != nil {
		t.Fatalf("held batch: %v", err)
	}
	if err := outcome(t, "the waiting read", waiting); err != nil {
		t.Fatalf("the waiting read after the slot came back: %v", err)
	}
}

// One client flooding heavy reads takes its share of the slots
// (MaxHeavyReadsPerIP) and its queue (MaxHeavyReadQueuePerIP); its reads
// beyond the queue are refused at once, those in it wait and time out,
// and another client's heavy read is served meanwhile, without waiting
// for the flood.
func TestHeavyReadFlood(t *testing.T) {
	b := &blockingBackend{testBackend: newTestBackend(t), entered: make(chan struct{}), release: make(chan struct{})}
	limits := DefaultLimits
	limits.MaxHeavyReads, limits.MaxHeavyReadsPerIP = 2, 1
	limits.MaxHeavyReadQueue, limits.MaxHeavyReadQueuePerIP, limits.HeavyReadWait = 4, 2, 2*time.Second
	limits.Rate = RateLimits{}
	counted := countRefusals(&limits)
	s := serveBounded(t, b, limits)
	flooder, other := clientFrom(t, s, "127.0.10.1", false), clientFrom(t, s, "127.0.10.2", false)
	held := heldRead(t, b, flooder, 0)

	const flood = 12
	floods := make([]chan error, flood)
	for i := range floods {
		floods[i] = heavyRead(flooder)
	}
	// Two wait; the others are refused as they arrive.
	waitFor(t, "the flood queued", func() bool { return counted.get("http.max-heavy-read-queue-per-ip") == flood-2 })
	if n := s.srv.heavy.waiting(); n != 2 {
		t.Fatalf("%d reads waiting, want the flooder's queue of 2", n)
	}
	start := time.Now()
	if err := outcome(t, "another client's read", heavyRead(other)); err != nil {
		t.Fatalf("another client during the flood: %v", err)
	}
	if d := time.Since(start); d >= limits.HeavyReadWait {
		t.Fatalf("another client served after %v, not before the flood's reads time out", d)
	}
	refused, timedOut := 0, 0
	for i, ch := range floods {
		var rerr gethrpc.Error
		switch err := outcome(t, "a flood read", ch); {
		case errors.As(err, &rerr) && rerr.ErrorCode() == CodeLimitExceeded &&
			strings.Contains(err.Error(), "server busy: 2 heavy reads of client 127.0.10.1 are waiting already (http.max-heavy-read-queue-per-ip)"):
			refused++
		case errors.As(err, &rerr) && rerr.ErrorCode() == CodeLimitExceeded &&
			strings.Contains(err.Error(), "server busy: no heavy-read slot within 2s (http.heavy-read-wait)"):
			timedOut++
		default:
			t.Fatalf("flood read %d: %v", i, err)
		}
	}
	if refused != flood-2 || timedOut != 2 {
		t.Fatalf("%d refused, %d timed out; want %d and 2", refused, timedOut, flood-2)
	}
	close(b.release)
	if err := outcome(t, "held batch", held); err != nil {
		t.Fatal(err)
	}
	if err := outcome(t, "the flooder after its flood", heavyRead(flooder)); err != nil {
		t.Fatalf("the flooder after its flood: %v", err)
	}
}

// A freed slot goes to the waiting client that holds the fewest, not to
// the one that asked first: while one client holds every slot and has a
// read waiting, another client's read waits behind it in time but is
// served first.
func TestHeavyReadFreedSlotToFewest(t *testing.T) {
	b := &blockingBackend{testBackend: newTestBackend(t), entered: make(chan struct{}), release: make(chan struct{})}
	limits := DefaultLimits
	limits.MaxHeavyReads, limits.MaxHeavyReadsPerIP, limits.HeavyReadWait = 2, 2, 10*time.Second
	limits.Rate = RateLimits{}
	s := serveBounded(t, b, limits)
	flooder, other := clientFrom(t, s, "127.0.11.1", false), clientFrom(t, s, "127.0.11.2", false)
	first, second := heldRead(t, b, flooder, 0), heldRead(t, b, flooder, 1)
	flooderWaits := heavyRead(flooder)
	waitFor(t, "the flooder's read queued", func() bool { return s.srv.heavy.waiting() == 1 })
	otherWaits := heavyRead(other)
	waitFor(t, "the other read queued", func() bool { return s.srv.heavy.waiting() == 2 })

	b.release <- struct{}{} // one held batch goes on and gives its slot back
	if err := outcome(t, "a released batch", first); err != nil {
		t.Fatal(err)
	}
	if err := outcome(t, "the other client's read", otherWaits); err != nil {
		t.Fatalf("the other client's read: %v", err)
	}
	select {
	case err := <-flooderWaits:
		// Served only after the other client's read gave its slot back.
		if err != nil {
			t.Fatalf("the flooder's waiting read: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the flooder's waiting read was not served after the other's")
	}
	b.release <- struct{}{}
	if err := outcome(t, "the second held batch", second); err != nil {
		t.Fatal(err)
	}
}

func (g *heavyGate) runningReads() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}

// A client that gives up while its heavy read waits (its HTTP request
// cancelled, as go-ethereum's and ethers' clients do on their own
// timeouts) leaves the queue at once, and the slot of a WebSocket client
// that goes away in the middle of a batch comes back once the batch ends:
// neither leaves a place taken for ever.
func TestHeavyReadClientsGoingAway(t *testing.T) {
	b := &blockingBackend{testBackend: newTestBackend(t), entered: make(chan struct{}), release: make(chan struct{})}
	limits := DefaultLimits
	limits.MaxHeavyReads, limits.MaxHeavyReadsPerIP, limits.HeavyReadWait = 1, 1, 10*time.Second
	limits.Rate = RateLimits{}
	s := serveBounded(t, b, limits)
	g := s.srv.heavy

	// A WebSocket batch takes the only slot and is held; its client leaves.
	ws := clientFrom(t, s, "127.0.15.1", true)
	held := heldRead(t, b, ws, 0)
	if n := g.runningReads(); n != 1 {
		t.Fatalf("%d reads running, want the held batch's", n)
	}
	// Meanwhile another client's read waits, and gives up.
	other := clientFrom(t, s, "127.0.15.2", false)
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		var raws []RawBlock
		gaveUp <- other.CallContext(ctx, &raws, "tally_getRawBlocks", hexutil.Uint64(0), hexutil.Uint64(1))
	}()
	waitFor(t, "the read queued", func() bool { return g.waiting() == 1 })
	cancel()
	if err := outcome(t, "the read given up", gaveUp); !errors.Is(err, context.Canceled) {
		t.Fatalf("the read given up: %v", err)
	}
	waitFor(t, "the given-up read out of the queue", func() bool { return g.waiting() == 0 })

	// The WebSocket client leaves; its batch still runs and keeps the
	// slot (it is work the node does), and gives it back once done.
	ws.Close()
	close(b.release)
	outcome(t, "the abandoned batch", held)
	waitFor(t, "the WebSocket's slot back", func() bool { return g.runningReads() == 0 })
	for range 2 { // given back once: the gate is whole
		if err := outcome(t, "a read after the WebSocket left", heavyRead(other)); err != nil {
			t.Fatalf("a read after the WebSocket left: %v", err)
		}
	}
	if n := g.runningReads(); n != 0 {
		t.Fatalf("%d reads running after all ended", n)
	}
}

// Two well-behaved clients behind one address (two bridges on one host)
// reading concurrently, more than their address's share at once, are
// both served: their reads beyond the share wait instead of failing.
func TestHeavyReadsTwoClientsOneAddress(t *testing.T) {
	c := transfersChain(t, 4)
	limits := DefaultLimits
	limits.MaxHeavyReads, limits.MaxHeavyReadsPerIP = 2, 1
	s := serveBounded(t, c, limits)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for client := range 2 {
		cl := clientFrom(t, s, "127.0.12.1", client == 1) // one over HTTP, one over WebSocket
		for range 4 {                                     // each with four reads in flight
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					var raws []RawBlock
					if err := cl.Call(&raws, "tally_getRawBlocks", hexutil.Uint64(0), hexutil.Uint64(MaxRawBlocks)); err != nil {
						errs <- err
						return
					}
					var logs []types.Log
					if err := cl.Call(&logs, "eth_getLogs", map[string]any{"fromBlock": "0x0", "toBlock": "0x4"}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a well-behaved client's read: %v", err)
	}
}

// transfersChain is a filterChain with blocks 1..n of four transfers each.
func transfersChain(t *testing.T, n int) *filterChain {
	t.Helper()
	c := newFilterChain(t)
	for range n {
		var txs []*types.Transaction
		for from := range 4 {
			txs = append(txs, c.call(from, 1, "transfer", c.addr(from+4), big.NewInt(1)))
		}
		c.block(txs...)
	}
	return c
}

// One heavy read's reply stays within MaxResponseBytes, and a batch's
// within MaxBatchResponseBytes: the reads after the bound are refused
// -32003 "response too large" (go-ethereum's answer past
// BatchResponseMaxSize) and the other clients are still served.
func TestResponseBytesBounded(t *testing.T) {
	c := transfersChain(t, 24)
	limits := DefaultLimits
	limits.MaxResponseBytes, limits.MaxBatchResponseBytes = 8<<10, 20<<10
	s := serveBounded(t, c, limits)
	client := clientFrom(t, s, "127.0.7.1", false)

	var all []RawBlock
	if err := client.Call(&all, "tally_getRawBlocks", hexutil.Uint64(0), hexutil.Uint64(MaxRawBlocks)); err != nil {
		t.Fatal(err)
	}
	enc, _ := json.Marshal(all)
	if len(all) < 2 || len(all) >= 25 || len(enc) > limits.MaxResponseBytes {
		t.Fatalf("one call: %d blocks in %d bytes, want 2..24 blocks within %d", len(all), len(enc), limits.MaxResponseBytes)
	}

	// A raw batch, as a client sends it: 10 calls of up to 8 KiB each.
	var body bytes.Buffer
	body.WriteByte('[')
	for i := range 10 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"jsonrpc":"2.0","id":%d,"method":"tally_getRawBlocks","params":["0x%x","0x%x"]}`, i, i, MaxRawBlocks)
	}
	body.WriteByte(']')
	resp, err := http.Post(s.url, "application/json", &body)
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var items []struct {
		ID     int
		Result []RawBlock
		Error  *struct {
			Code    int
			Message string
		}
	}
	if err := json.Unmarshal(reply, &items); err != nil || len(items) != 10 {
		t.Fatalf("batch reply of %d bytes: %v", len(reply), err)
	}
	var ok, tooLarge int
	for _, it := range items {
		switch {
		case it.Error == nil && len(it.Result) > 0:
			ok++
		case it.Error != nil && it.Error.Code == CodeResponseTooLarge && strings.Contains(it.Error.Message, "response too large"):
			tooLarge++
		default:
			t.Fatalf("item %d: %+v", it.ID, it.Error)
		}
	}
	// Each error item is under 250 bytes; the results stay within the bound.
	if ok < 2 || tooLarge < 1 || len(reply) > limits.MaxBatchResponseBytes+250*tooLarge {
		t.Fatalf("batch: %d results, %d refused, %d bytes; want the results within %d", ok, tooLarge, len(reply), limits.MaxBatchResponseBytes)
	}

	// eth_getLogs over the per-call bound is refused, not cut.
	var logs []types.Log
	wantFilterErr(t, "logs over the response bound", client.Call(&logs, "eth_getLogs", map[string]any{"fromBlock": "0x1", "toBlock": "0x18"}),
		CodeLimitExceeded, fmt.Sprintf("query returned more than %d bytes (http.max-response-bytes)", limits.MaxResponseBytes))
	if err := client.Call(&logs, "eth_getLogs", map[string]any{"fromBlock": "0x1", "toBlock": "0x2"}); err != nil || len(logs) != 8 {
		t.Fatalf("a narrower range: %d logs, %v", len(logs), err)
	}
	served(t, clientFrom(t, s, "127.0.7.2", false), "another client")
}

// sendBatch sends body as one JSON-RPC batch over HTTP or over a
// WebSocket (one message, as go-ethereum's client sends a batch) and
// returns the reply's items.
func sendBatch(t *testing.T, s *boundedServer, body []byte, ws bool) []json.RawMessage {
	t.Helper()
	var reply []byte
	if ws {
		conn, _, err := websocket.DefaultDialer.Dial(s.wsURL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.WriteMessage(websocket.TextMessage, body); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, reply, err = conn.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	} else {
		resp, err := http.Post(s.url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		reply, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	var items []json.RawMessage
	if err := json.Unmarshal(reply, &items); err != nil {
		t.Fatalf("batch reply %.200s: %v", reply, err)
	}
	return items
}

// A batch's reply never passes MaxBatchResponseBytes, over HTTP and over
// WebSocket, whatever its calls and their order: heavy reads one after
// another, light calls and then a heavy read, reads after a light call
// that passes go-ethereum's cut. The calls past the bound get -32003.
func TestBatchReplyBudgetIsHard(t *testing.T) {
	c := transfersChain(t, 24)
	limits := DefaultLimits
	limits.MaxResponseBytes, limits.MaxBatchResponseBytes = 8<<10, 20<<10
	s := serveBounded(t, c, limits)
	call := func(id int, method, params string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params)
	}
	raw := func(id int) string {
		return call(id, "tally_getRawBlocks", fmt.Sprintf(`["0x%x","0x%x"]`, id%20, MaxRawBlocks))
	}
	light := func(id int) string { return call(id, "eth_getBlockByNumber", fmt.Sprintf(`["0x%x",false]`, 1+id%24)) }
	var heavyOnly, lightFirst, mixed, fullBlocks []string
	for i := range 10 {
		heavyOnly = append(heavyOnly, raw(i))
		b, err := c.db.BlockByNumber(uint64(1 + i))
		if err != nil {
			t.Fatal(err)
		}
		fullBlocks = append(fullBlocks, call(i, "eth_getBlockByHash", fmt.Sprintf(`[%q,true]`, b.Hash())))
	}
	for i := range 15 {
		lightFirst = append(lightFirst, light(i))
	}
	lightFirst = append(lightFirst, raw(15), raw(16))
	for i := range 12 {
		if i%3 == 0 {
			mixed = append(mixed, raw(i))
		} else {
			mixed = append(mixed, light(i))
		}
	}
	for _, ws := range []bool{false, true} {
		for name, calls := range map[string][]string{"heavy reads": heavyOnly, "light calls, then heavy reads": lightFirst, "mixed": mixed, "full blocks": fullBlocks} {
			items := sendBatch(t, s, []byte("["+strings.Join(calls, ",")+"]"), ws)
			if len(items) != len(calls) {
				t.Fatalf("ws %v, %s: %d items for %d calls", ws, name, len(items), len(calls))
			}
			results, refused := 0, 0
			for _, it := range items {
				var item struct {
					Result json.RawMessage
					Error  *struct{ Code int }
				}
				json.Unmarshal(it, &item)
				switch {
				case item.Error == nil:
					results += len(item.Result)
				case item.Error.Code == CodeResponseTooLarge:
					refused++
				default:
					t.Fatalf("ws %v, %s: item %s", ws, name, it)
				}
			}
			if results > limits.MaxBatchResponseBytes || refused == 0 {
				t.Fatalf("ws %v, %s: %d bytes of results and %d calls refused; want at most %d bytes, the rest refused",
					ws, name, results, refused, limits.MaxBatchResponseBytes)
			}
		}
	}
	served(t, clientFrom(t, s, "127.0.7.3", true), "a WebSocket client after the batches")

	// A block larger than one call's bound is sent whole on its own, and
	// refused in a batch after another read.
	limits.MaxResponseBytes = 2 << 10
	small := serveBounded(t, c, limits)
	var block map[string]any
	cl := clientFrom(t, small, "127.0.7.4", false)
	if err := cl.Call(&block, "eth_getBlockByNumber", "0x1", true); err != nil || len(block["transactions"].([]any)) != 4 {
		t.Fatalf("a block over max-response-bytes alone: %v", err)
	}
	for _, ws := range []bool{false, true} {
		items := sendBatch(t, small, []byte("["+call(1, "eth_getBlockByNumber", `["0x1",true]`)+","+call(2, "eth_getBlockByNumber", `["0x2",true]`)+"]"), ws)
		if len(items) != 2 || !strings.Contains(string(items[0]), `"transactions":[{`) ||
			!strings.Contains(string(items[1]), "more than one call of a batch may (http.max-response-bytes: 2048); send it alone") {
			t.Fatalf("ws %v: two blocks over max-response-bytes in a batch: %s", ws, items)
		}
	}
}

// Every method in heavyMethods enters the heavy gate: with the only slot
// taken, each waits and is refused busy.
func TestHeavyMethodsAreGated(t *testing.T) {
	c := newFilterChain(t)
	limits := DefaultLimits
	limits.MaxHeavyReads, limits.HeavyReadWait = 1, 100*time.Millisecond
	s := serveBounded(t, c, limits)
	cl := clientFrom(t, s, "127.0.8.1", false)
	var filterID string
	if err := cl.Call(&filterID, "eth_newFilter", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	args := map[string][]any{
		"tally_getRawBlocks":          {"0x0", "0x1"},
		"tally_getAccountHistory":     {common.Address{1}, nil, nil},
		"tally_getProof":              {common.Hash{1}},
		"tally_stateDigest":           nil,
		"eth_getLogs":                 {map[string]any{"fromBlock": "0x0", "toBlock": "0x0"}},
		"eth_getFilterLogs":           {filterID},
		"eth_getFilterChanges":        {filterID},
		"eth_getBlockByNumber":        {"0x0", true},
		"eth_getBlockByHash":          {common.Hash{1}, true},
		"eth_getBlockReceipts":        {"0x0"},
		"tally_getRecentTransactions": nil,
		"tally_findByReference":       {"ORDER-1", nil, nil},
	}
	if len(args) != len(heavyMethods) {
		t.Fatalf("%d heavy methods, %d tested", len(heavyMethods), len(args))
	}
	g := s.srv.heavy
	g.mu.Lock()
	g.take(netip.Prefix{}) // the only slot, taken
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range heavyMethods {
		a, ok := args[m]
		if !ok {
			t.Fatalf("no arguments for %s", m)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res json.RawMessage
			err := cl.Call(&res, m, a...)
			var rerr gethrpc.Error
			if !errors.As(err, &rerr) || rerr.ErrorCode() != CodeLimitExceeded || !strings.Contains(err.Error(), "server busy") {
				t.Errorf("%s with no slot: %s %v", m, res, err)
			}
		}()
	}
	wg.Wait()
	g.release(netip.Prefix{})
	var res json.RawMessage
	if err := cl.Call(&res, "eth_getBlockByNumber", "0x0", true); err != nil {
		t.Fatalf("with the slot free: %v", err)
	}
}

// A client that stops reading its reply cannot hold the reply's memory,
// its connection or its heavy-read slot: the write gives up after
// WriteTimeout, and the next client's heavy read is served.
func TestSlowReaderCutOff(t *testing.T) {
	c := transfersChain(t, 24)
	limits := DefaultLimits
	limits.WriteTimeout, limits.MaxHeavyReads = 500*time.Millisecond, 1
	s := serveBounded(t, c, limits)
	// A small receive window, so the reply (about 10 MB) cannot all sit
	// in the kernel's buffers.
	d := dialerFrom("127.0.9.1")
	d.Control = func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}
	conn, err := d.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var body bytes.Buffer
	body.WriteByte('[')
	for i := range 200 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"jsonrpc":"2.0","id":%d,"method":"tally_getRawBlocks","params":["0x0","0x%x"]}`, i, MaxRawBlocks)
	}
	body.WriteByte(']')
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", body.Len(), body.Bytes())
	// Never read: wait until the server has given the connection up, and
	// its batch (which notices the closed connection at its next write)
	// has given its heavy-read slot back.
	waitFor(t, "the slow reader's connection closed", func() bool { return s.ln.openConns() == 0 })
	waitFor(t, "the slow reader's heavy-read slot released", func() bool { return s.srv.heavy.inUse() == 0 })
	var raws []RawBlock
	if err := clientFrom(t, s, "127.0.9.2", false).Call(&raws, "tally_getRawBlocks", "0x0", "0x1"); err != nil {
		t.Fatalf("a heavy read after the slow reader: %v", err)
	}
}

// BenchmarkHeavyGate is the gate's cost per heavy read: taking and giving
// back a slot when one is free, and under contention, with 64 goroutines
// of 16 client addresses sharing 8 slots (4 per address), where reads wait
// and freed slots are handed to the client holding the fewest.
func BenchmarkHeavyGate(b *testing.B) {
	limits := DefaultLimits
	limits.MaxHeavyReadQueue, limits.MaxHeavyReadQueuePerIP = 1024, 1024
	b.Run("free", func(b *testing.B) {
		g := newHeavyGate(limits)
		ctx := context.Background()
		client := netip.MustParsePrefix("192.0.2.1/32")
		for b.Loop() {
			if err := g.acquire(ctx, client, "eth_getLogs"); err != nil {
				b.Fatal(err)
			}
			g.release(client)
		}
	})
	b.Run("contended", func(b *testing.B) {
		g := newHeavyGate(limits)
		ctx := context.Background()
		var next atomic.Int64
		b.SetParallelism(32) // 64 goroutines on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			client := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(next.Add(1) % 16)}), 32)
			for pb.Next() {
				if err := g.acquire(ctx, client, "eth_getLogs"); err != nil {
					b.Error(err)
					return
				}
				g.release(client)
			}
		})
	})
}
