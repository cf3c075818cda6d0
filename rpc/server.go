package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/rs/cors"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

// Limits bound what a client can make the node do: every cost a client
// controls (connections, request time, stored filters and subscriptions,
// response bytes, concurrent heavy reads, submission rate) has one.
// NewServer, NewHTTPServer and LimitListener take a zero field as its
// DefaultLimits value.
type Limits struct {
	// MaxBodyBytes bounds an HTTP request body.
	MaxBodyBytes int
	// MaxBatchItems bounds the calls in one batch.
	MaxBatchItems int
	// MaxBatchResponseBytes bounds a batch's response: the calls after it
	// would be passed are answered -32003 "response too large" (as
	// go-ethereum's BatchResponseMaxSize, set to batchCut). It must be
	// above MaxResponseBytes.
	MaxBatchResponseBytes int
	// WSOrigins are the browser origins allowed to open a WebSocket ("*":
	// any). Empty allows only http://localhost and the host's own name, as
	// go-ethereum does; clients that are not browsers send no origin and
	// are always allowed.
	WSOrigins []string
	// CORSOrigins are the browser origins whose pages may call the HTTP
	// JSON-RPC endpoint ("*": any). Empty sends no CORS headers, so
	// browsers keep every other origin's page from reading the replies.
	CORSOrigins []string
	// Rate bounds how fast clients submit transactions (off when both
	// rates are 0).
	Rate RateLimits
	// MaxLogBlockRange bounds the blocks one eth_getLogs covers, and one
	// poll of a filter reads (0: the default).
	MaxLogBlockRange uint64
	// MaxLogResults bounds the logs one eth_getLogs returns (0: the default).
	MaxLogResults int
	// MaxFilters bounds the filters installed across all clients (0: the default).
	MaxFilters int
	// MaxFiltersPerIP bounds the filters one client address installs, so
	// one client cannot take all MaxFilters.
	MaxFiltersPerIP int
	// FilterTimeout removes a filter not polled for this long (0: the default).
	FilterTimeout time.Duration
	// MaxSubscriptionsPerIP and MaxSubscriptionsPerConn bound the
	// eth_subscribe subscriptions of one client address and of one
	// WebSocket connection (the HeadFeed bounds them across all clients).
	MaxSubscriptionsPerIP   int
	MaxSubscriptionsPerConn int

	// ReadHeaderTimeout and ReadTimeout bound how long a request's header,
	// and the whole request with its body, may take to arrive;
	// WriteTimeout bounds writing its response; IdleTimeout closes an idle
	// keep-alive connection (NewHTTPServer).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxConns and MaxConnsPerIP bound the open connections, WebSocket
	// ones included, in all and from one client address (LimitListener).
	MaxConns, MaxConnsPerIP int
	// MaxWSConns bounds the open WebSocket connections.
	MaxWSConns int

	// MaxResponseBytes bounds the response of one heavy read
	// (tally_getRawBlocks returns fewer blocks; eth_getLogs is refused
	// -32005): only a single stored block larger than it is ever sent
	// whole, so that any block can be audited.
	MaxResponseBytes int
	// MaxHeavyReads bounds the heavy reads (heavyMethods) running at once
	// (heavyGate). A request (over WebSocket, a batch or a single call)
	// that made a heavy read holds its slot until its reply is written,
	// since that is when its memory is freed.
	MaxHeavyReads int
	// MaxHeavyReadsPerIP is one client address's share of them: a read
	// beyond it waits, as does one that finds every slot taken; a freed
	// slot goes to the waiting client holding the fewest.
	MaxHeavyReadsPerIP int
	// MaxHeavyReadQueue and MaxHeavyReadQueuePerIP bound the heavy reads
	// waiting for a slot, in all and of one client address, and
	// HeavyReadWait how long one waits; past any of them it is refused
	// -32005.
	MaxHeavyReadQueue, MaxHeavyReadQueuePerIP int
	HeavyReadWait                             time.Duration

	// OnRefused, if set, is called with a bound's config key (such as
	// "http.max-connections-per-ip" or "ratelimit.per-ip") each time it
	// refuses a connection, request or call: the node counts them in a
	// metric. It must be cheap and safe for concurrent use.
	OnRefused func(bound string)

	// MaxMulticallCalls bounds the inner calls of one eth_call to
	// Multicall3, nested ones included (0: DefaultMaxMulticallCalls).
	MaxMulticallCalls int
}

// RefusalBounds are the config keys Limits.OnRefused (and the admin
// listener's ConnLimits.OnRefused) is called with.
var RefusalBounds = []string{
	"http.max-connections", "http.max-connections-per-ip", "http.max-ws-connections", "http.read-timeout",
	"http.max-heavy-read-queue", "http.max-heavy-read-queue-per-ip", "http.heavy-read-wait", "http.max-batch-response-bytes", "http.max-response-bytes", "http.max-log-results",
	"http.max-filters", "http.max-filters-per-ip",
	"http.max-subscriptions", "http.max-subscriptions-per-ip", "http.max-subscriptions-per-connection",
	"ratelimit.per-ip", "ratelimit.per-account",
	"admin.max-connections",
	"http.max-multicall-calls",
}

// refused reports a refusal by bound to OnRefused.
func (l Limits) refused(bound string) { countRefusal(l.OnRefused, bound) }

func countRefusal(onRefused func(string), bound string) {
	if onRefused != nil {
		onRefused(bound)
	}
}

// DefaultLimits fit a batch of 1,000 raw transfers (about 250 KB). The
// rate limits let a sender burst a 100-transaction batch and a client ten
// such batches, sustained at 50 and 500 tx/s. The connection bounds keep
// well below a production open-file limit (ulimit -n, 65536 and more),
// leaving the stores and peers theirs; heavy reads hold at most
// MaxHeavyReads x MaxBatchResponseBytes of replies (128 MiB) at once.
var DefaultLimits = Limits{MaxBodyBytes: 5 << 20, MaxBatchItems: 2000, MaxBatchResponseBytes: 16 << 20,
	MaxLogBlockRange: 10_000, MaxLogResults: 10_000, MaxFilters: 1000, MaxFiltersPerIP: 100, FilterTimeout: 5 * time.Minute,
	MaxSubscriptionsPerIP: 100, MaxSubscriptionsPerConn: 32,
	ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
	MaxConns: 2048, MaxConnsPerIP: 128, MaxWSConns: 1024,
	MaxResponseBytes: 8 << 20, MaxHeavyReads: 8, MaxHeavyReadsPerIP: 4, MaxHeavyReadQueue: 64, MaxHeavyReadQueuePerIP: 16, HeavyReadWait: 5 * time.Second,
	Rate: RateLimits{PerAccount: 50, AccountBurst: 100, PerIP: 500, IPBurst: 1000, MaxTracked: 100_000}}

// withDefaults returns l with every zero bound replaced by DefaultLimits'.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	for _, f := range []struct{ v, def *int }{
		{&l.MaxBodyBytes, &d.MaxBodyBytes}, {&l.MaxBatchItems, &d.MaxBatchItems}, {&l.MaxBatchResponseBytes, &d.MaxBatchResponseBytes},
		{&l.MaxLogResults, &d.MaxLogResults}, {&l.MaxFilters, &d.MaxFilters}, {&l.MaxFiltersPerIP, &d.MaxFiltersPerIP},
		{&l.MaxSubscriptionsPerIP, &d.MaxSubscriptionsPerIP}, {&l.MaxSubscriptionsPerConn, &d.MaxSubscriptionsPerConn},
		{&l.MaxConns, &d.MaxConns}, {&l.MaxConnsPerIP, &d.MaxConnsPerIP}, {&l.MaxWSConns, &d.MaxWSConns},
		{&l.MaxResponseBytes, &d.MaxResponseBytes}, {&l.MaxHeavyReads, &d.MaxHeavyReads}, {&l.MaxHeavyReadsPerIP, &d.MaxHeavyReadsPerIP},
		{&l.MaxHeavyReadQueue, &d.MaxHeavyReadQueue}, {&l.MaxHeavyReadQueuePerIP, &d.MaxHeavyReadQueuePerIP},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *time.Duration }{
		{&l.FilterTimeout, &d.FilterTimeout}, {&l.ReadHeaderTimeout, &d.ReadHeaderTimeout}, {&l.ReadTimeout, &d.ReadTimeout},
		{&l.WriteTimeout, &d.WriteTimeout}, {&l.IdleTimeout, &d.IdleTimeout}, {&l.HeavyReadWait, &d.HeavyReadWait},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	if l.MaxLogBlockRange == 0 {
		l.MaxLogBlockRange = d.MaxLogBlockRange
	}
	return l
}

// Server is the JSON-RPC endpoint.
type Server struct {
	rpc     *gethrpc.Server
	ws      http.Handler
	b       Backend
	senders *chain.SenderCache
	// node is the backend; admit is its BatchAdmitter (nil when it has
	// none) and halted its halt check. The pipeline (admitCalls) charges
	// the rate limits before it hands them a transaction.
	node    Backend
	admit   BatchAdmitter
	halted  func() error
	limits  Limits
	limiter *RateLimiter // nil when rate limits are off
	heavy   *heavyGate
	// wsConns counts the open WebSocket connections (MaxWSConns).
	wsConns atomic.Int64
	// wsPlans holds each open WebSocket connection's send plans
	// (*wsPlans), by its client's address (sendplan.go).
	wsPlans sync.Map
	// http serves the requests that are not WebSocket upgrades: serveHTTP,
	// behind the CORS handler when CORSOrigins are set.
	http http.Handler
}

// NewServer registers the eth, net and web3 namespaces over b. Every
// eth_sendRawTransaction, single or batched, over HTTP or WebSocket, is
// admitted through the server's pipeline (admitCalls), which charges the
// rate limits.
func NewServer(b Backend, limits Limits, clientVersion string) (*Server, error) {
	limits = limits.withDefaults()
	// Every transaction a client sends goes through the admission
	// pipeline (admitCalls), which charges the rate limits and hands the
	// node only what they let through.
	admit, _ := b.(BatchAdmitter)
	var limiter *RateLimiter
	if limits.Rate.Enabled() {
		var err error
		if limiter, err = NewRateLimiter(limits.Rate); err != nil {
			return nil, err
		}
		limiter.onRefused = limits.OnRefused
	}
	if limits.MaxResponseBytes >= limits.MaxBatchResponseBytes {
		return nil, fmt.Errorf("max response bytes %d must be below max batch response bytes %d", limits.MaxResponseBytes, limits.MaxBatchResponseBytes)
	}
	srv := gethrpc.NewServer()
	// go-ethereum's own batch bounds: more items is -32600 "batch too
	// large"; once the results pass the limit, the calls after get -32003
	// "response too large". go-ethereum checks after each call, so the
	// call that passes it is answered whole: its limit is set one call's
	// bound (MaxResponseBytes) below MaxBatchResponseBytes, which no reply
	// then passes (batchCut).
	srv.SetBatchLimits(limits.MaxBatchItems, batchCut(limits))
	// The body is bounded in ServeHTTP with a JSON-RPC error; this is a backstop.
	srv.SetHTTPBodyLimit(limits.MaxBodyBytes + 1)
	heavy := newHeavyGate(limits)
	ledger := NewLedgerAPI(b)
	ledger.heavy, ledger.maxBlockRange = heavy, limits.MaxLogBlockRange
	for name, svc := range map[string]any{
		"net":  &NetAPI{chainID: b.State().ChainID()},
		"web3": &Web3API{version: clientVersion},
		// tally_* also gets tally_nodeInfo from the node.
		"tally": ledger,
	} {
		if err := srv.RegisterName(name, svc); err != nil {
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
	}
	var s *Server // set below; eth_sendRawTransaction reaches its pipeline
	send := func(ctx context.Context, raw []byte) (common.Hash, error) { return s.sendOne(ctx, raw) }
	for _, svc := range ethServices(b, limits, heavy, send) {
		if err := srv.RegisterName("eth", svc); err != nil {
			return nil, fmt.Errorf("register eth %T: %w", svc, err)
		}
	}
	srv.SetWebsocketReadLimit(int64(limits.MaxBodyBytes))
	s = &Server{rpc: srv, ws: srv.WebsocketHandler(limits.WSOrigins), b: b, senders: b.Senders(), node: b, admit: admit, halted: haltCheck(b), limits: limits, limiter: limiter, heavy: heavy}
	s.http = corsHandler(http.HandlerFunc(s.serveHTTP), limits.CORSOrigins)
	return s, nil
}

// corsHandler answers browsers' CORS preflights and marks the replies
// that pages of origins may read, as go-ethereum's node does
// (node/rpcstack.go, with rs/cors): a preflight (OPTIONS with
// Access-Control-Request-Method) from an allowed origin gets 204 with
// Access-Control-Allow-Origin (the origin, or "*" when any is allowed),
// -Methods and -Headers (the ones requested), -Max-Age and Vary: Origin;
// one from another origin gets 204 without them, so the browser refuses
// the call. A page of an allowed origin on a public network may call a node
// on a private one (Chrome's Private Network Access): the operator named
// the origin. Without origins, h is returned as is.
func corsHandler(h http.Handler, origins []string) http.Handler {
	if len(origins) == 0 {
		return h
	}
	return cors.New(cors.Options{
		AllowedOrigins:      origins,
		AllowedMethods:      []string{http.MethodPost, http.MethodGet},
		AllowedHeaders:      []string{"*"},
		MaxAge:              CORSMaxAge,
		AllowPrivateNetwork: true,
	}).Handler(h)
}

// CORSMaxAge is how long, in seconds, a browser may keep a preflight's
// answer (go-ethereum's 600).
const CORSMaxAge = 600

// batchCut is the reply size after which go-ethereum refuses a batch's
// remaining calls: every call adds at most MaxResponseBytes (a heavy read
// is cut or refused at it, and the heavy gate charges each against what
// its batch has left), so a batch's reply stays within
// MaxBatchResponseBytes however its light and heavy calls are ordered.
// The one exception is kept on purpose: a single stored block larger than
// MaxResponseBytes is still sent whole by the first heavy read of a
// request, so that every block can be audited.
func batchCut(l Limits) int { return l.MaxBatchResponseBytes - l.MaxResponseBytes }

// ethServices are the receivers registered under "eth" (go-ethereum's
// server merges their methods), sharing one subscription quota and the
// server's heavy-read gate. Every exported method of each starts with the
// halted check (haltCheck); TestHaltedAnswersEveryEthMethod calls every
// one of them, so a receiver or method added here without it fails the
// test.
//
// send is eth_sendRawTransaction's admission (Server.sendOne; nil: the
// backend's SubmitTx).
func ethServices(b Backend, limits Limits, heavy *heavyGate, send func(context.Context, []byte) (common.Hash, error)) []any {
	subs := newSubQuota(limits)
	eth, filters := NewEthAPI(b), NewFilterAPI(b, limits)
	eth.subs, eth.heavy, eth.send = subs, heavy, send
	eth.maxMulticall, eth.onRefused = limits.MaxMulticallCalls, limits.OnRefused
	filters.subs, filters.heavy = subs, heavy
	return []any{eth, filters}
}

// RegisterName adds another namespace (tally_*, admin_* are added by the node).
func (s *Server) RegisterName(name string, svc any) error { return s.rpc.RegisterName(name, svc) }

// Stop stops the server.
func (s *Server) Stop() { s.rpc.Stop() }

// ServeHTTP serves a WebSocket upgrade (serveWebSocket) or a JSON-RPC
// request over HTTP (serveHTTP, behind CORS).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.serveWebSocket(w, r)
		return
	}
	s.http.ServeHTTP(w, r)
}

// serveHTTP bounds the body, answers a batch made only of
// eth_sendRawTransaction calls through the admission pipeline
// (serveSendBatch), and hands any other request to go-ethereum's server
// with the request's heavy-read hold (heavyGate), released once the reply
// is written, and, for a batch, the plan that admits its runs of sends as
// groups (sendplan.go).
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.rpc.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.limits.MaxBodyBytes)+1))
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			// The connection's read deadline (http.read-timeout) passed:
			// the client is too slow, or trickling on purpose.
			w.Header().Set("Connection", "close")
			s.limits.refused("http.read-timeout")
			writeError(w, http.StatusRequestTimeout, CodeInvalidRequest,
				fmt.Sprintf("request body not received within %v (http.read-timeout)", s.limits.ReadTimeout))
			return
		}
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "read request body: "+err.Error())
		return
	}
	if len(body) > s.limits.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, CodeInvalidRequest,
			fmt.Sprintf("request body too large: limit %d bytes", s.limits.MaxBodyBytes))
		return
	}
	ctx := r.Context()
	if firstByte(body) == '[' && acceptedContentType(r) {
		if calls, ok := parseSendBatch(body, s.limits.MaxBatchItems); ok {
			s.serveSendBatch(w, r, calls)
			return
		}
		ctx = withSendPlan(ctx, s.planSends(body, r.RemoteAddr))
	}
	ctx, release := s.heavy.withRequestHold(ctx)
	defer release()
	r = r.WithContext(ctx)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	s.rpc.ServeHTTP(w, r)
}

// serveWebSocket serves a WebSocket connection for as long as it lives
// (go-ethereum's handler returns when it closes), refusing one over
// MaxWSConns with HTTP 503 and a JSON-RPC -32005 error before the upgrade.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if n := s.wsConns.Add(1); n > int64(s.limits.MaxWSConns) {
		s.wsConns.Add(-1)
		s.limits.refused("http.max-ws-connections")
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, CodeLimitExceeded,
			fmt.Sprintf("too many WebSocket connections: the node serves at most %d (http.max-ws-connections); retry later", s.limits.MaxWSConns))
		return
	}
	defer s.wsConns.Add(-1)
	// The connection's batches are planned before go-ethereum dispatches
	// them, so that their runs of sends are admitted as groups
	// (sendplan.go).
	onBatch, done := s.openWSPlans(r.RemoteAddr)
	defer done()
	// Each message the client sends must arrive within ReadTimeout once
	// it has started, as an HTTP request must (messageTimeoutWriter).
	s.ws.ServeHTTP(&messageTimeoutWriter{ResponseWriter: w, timeout: s.limits.ReadTimeout,
		onTimeout: func() { s.limits.refused("http.read-timeout") },
		onBatch:   onBatch, maxMessage: s.limits.MaxBodyBytes}, r)
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0",
		"id":      nil,
		"error":   map[string]any{"code": code, "message": msg},
	})
}

func keccak(b []byte) common.Hash { return crypto.Keccak256(b) }
