package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

// Limits bound what one client request may make the node do.
type Limits struct {
	// MaxBodyBytes bounds an HTTP request body.
	MaxBodyBytes int
	// MaxBatchItems bounds the calls in one batch.
	MaxBatchItems int
	// MaxBatchResponseBytes bounds a batch's response.
	MaxBatchResponseBytes int
	// WSOrigins are the browser origins allowed to open a WebSocket ("*": any).
	WSOrigins []string
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
	// FilterTimeout removes a filter not polled for this long (0: the default).
	FilterTimeout time.Duration
}

// DefaultLimits fit a batch of 1,000 raw transfers (about 250 KB). The
// rate limits let a sender burst a 100-transaction batch and a client ten
// such batches, sustained at 50 and 500 tx/s.
var DefaultLimits = Limits{MaxBodyBytes: 5 << 20, MaxBatchItems: 2000, MaxBatchResponseBytes: 25 << 20, WSOrigins: []string{"*"},
	MaxLogBlockRange: 10_000, MaxLogResults: 10_000, MaxFilters: 1000, FilterTimeout: 5 * time.Minute,
	Rate: RateLimits{PerAccount: 50, AccountBurst: 100, PerIP: 500, IPBurst: 1000, MaxTracked: 100_000}}

// Server is the JSON-RPC endpoint.
type Server struct {
	rpc     *gethrpc.Server
	ws      http.Handler
	senders *chain.SenderCache
	batch   BatchSubmitter // nil when the backend has none
	limits  Limits
	limiter *RateLimiter // nil when rate limits are off
}

// NewServer registers the eth, net and web3 namespaces over b. With rate
// limits on, the API submits through a limitedBackend wrapping b.
func NewServer(b Backend, limits Limits, clientVersion string) (*Server, error) {
	// The node's own BatchSubmitter: the wrapper below hides it, and
	// ServeHTTP hands it only what the limiter let through.
	bs, _ := b.(BatchSubmitter)
	var limiter *RateLimiter
	if limits.Rate.Enabled() {
		var err error
		if limiter, err = NewRateLimiter(limits.Rate); err != nil {
			return nil, err
		}
		b = &limitedBackend{Backend: b, limiter: limiter}
	}
	srv := gethrpc.NewServer()
	srv.SetBatchLimits(limits.MaxBatchItems, limits.MaxBatchResponseBytes)
	// The body is bounded in ServeHTTP with a JSON-RPC error; this is a backstop.
	srv.SetHTTPBodyLimit(limits.MaxBodyBytes + 1)
	for name, svc := range map[string]any{
		"net":  &NetAPI{chainID: b.State().ChainID()},
		"web3": &Web3API{version: clientVersion},
		// tally_* also gets tally_nodeInfo from the node.
		"tally": NewLedgerAPI(b),
	} {
		if err := srv.RegisterName(name, svc); err != nil {
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
	}
	for _, svc := range ethServices(b, limits) {
		if err := srv.RegisterName("eth", svc); err != nil {
			return nil, fmt.Errorf("register eth %T: %w", svc, err)
		}
	}
	srv.SetWebsocketReadLimit(int64(limits.MaxBodyBytes))
	return &Server{rpc: srv, ws: srv.WebsocketHandler(limits.WSOrigins), senders: b.Senders(), batch: bs, limits: limits, limiter: limiter}, nil
}

// ethServices are the receivers registered under "eth" (go-ethereum's
// server merges their methods). Every exported method of each starts
// with the halted check (haltCheck); TestHaltedAnswersEveryEthMethod
// calls every one of them, so a receiver or method added here without it
// fails the test.
func ethServices(b Backend, limits Limits) []any {
	return []any{NewEthAPI(b), NewFilterAPI(b, limits)}
}

// RegisterName adds another namespace (tally_*, admin_* are added by the node).
func (s *Server) RegisterName(name string, svc any) error { return s.rpc.RegisterName(name, svc) }

// Stop stops the server.
func (s *Server) Stop() { s.rpc.Stop() }

// ServeHTTP bounds the body, pre-recovers the senders of a batch's raw
// transactions in parallel, charges them to the rate limits and hands the
// request to go-ethereum's server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.ws.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodPost {
		s.rpc.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.limits.MaxBodyBytes)+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "read request body: "+err.Error())
		return
	}
	if len(body) > s.limits.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, CodeInvalidRequest,
			fmt.Sprintf("request body too large: limit %d bytes", s.limits.MaxBodyBytes))
		return
	}
	if first := firstByte(body); first == '[' {
		if v := s.prerecover(body, r.RemoteAddr); v != nil {
			r = r.WithContext(context.WithValue(r.Context(), batchVerdictsKey{}, v))
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	s.rpc.ServeHTTP(w, r)
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

// prerecover decodes the raw transactions of a batch and recovers their
// senders on all cores into the cache, so the sequential handling of the
// batch finds them there. Anything malformed is left for the handler to
// report. With rate limits on, it charges the transactions to the client at
// remoteAddr (the connection's address, as go-ethereum reports it to
// SubmitTx) before the BatchSubmitter starts any, so a refused one is never
// forwarded, and returns the verdicts for SubmitTx to answer with.
func (s *Server) prerecover(body []byte, remoteAddr string) *batchVerdicts {
	var calls []struct {
		Method string            `json:"method"`
		Params []json.RawMessage `json:"params"`
	}
	if json.Unmarshal(body, &calls) != nil || len(calls) > s.limits.MaxBatchItems {
		return nil
	}
	txs := make([]*types.Transaction, 0, len(calls))
	for _, c := range calls {
		if c.Method != "eth_sendRawTransaction" || len(c.Params) != 1 {
			continue
		}
		var raw hexutil.Bytes
		if json.Unmarshal(c.Params[0], &raw) != nil {
			continue
		}
		if tx, err := chain.DecodeTx(raw); err == nil {
			txs = append(txs, tx)
		}
	}
	if len(txs) <= 1 {
		return nil // a lone transaction is charged by SubmitTx
	}
	froms, errs := s.senders.Senders(txs)
	var charged []error
	var verdicts *batchVerdicts
	if s.limiter != nil {
		charged = s.limiter.chargeBatch(remoteAddr, txs, froms, errs)
		verdicts = newBatchVerdicts(txs, charged)
	}
	if s.batch != nil {
		valid := make([]*types.Transaction, 0, len(txs))
		for i, tx := range txs {
			if (errs == nil || errs[i] == nil) && (charged == nil || charged[i] == nil) {
				valid = append(valid, tx)
			}
		}
		s.batch.SubmitBatch(valid)
	}
	return verdicts
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
