package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

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
}

// DefaultLimits fit a batch of 1,000 raw transfers (about 250 KB).
var DefaultLimits = Limits{MaxBodyBytes: 5 << 20, MaxBatchItems: 2000, MaxBatchResponseBytes: 25 << 20, WSOrigins: []string{"*"}}

// Server is the JSON-RPC endpoint.
type Server struct {
	rpc     *gethrpc.Server
	ws      http.Handler
	senders *chain.SenderCache
	batch   BatchSubmitter // nil when the backend has none
	limits  Limits
}

// NewServer registers the eth, net and web3 namespaces over b.
func NewServer(b Backend, limits Limits, clientVersion string) (*Server, error) {
	srv := gethrpc.NewServer()
	srv.SetBatchLimits(limits.MaxBatchItems, limits.MaxBatchResponseBytes)
	// The body is bounded in ServeHTTP with a JSON-RPC error; this is a backstop.
	srv.SetHTTPBodyLimit(limits.MaxBodyBytes + 1)
	for name, svc := range map[string]any{
		"eth":  NewEthAPI(b),
		"net":  &NetAPI{chainID: b.State().ChainID()},
		"web3": &Web3API{version: clientVersion},
	} {
		if err := srv.RegisterName(name, svc); err != nil {
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
	}
	bs, _ := b.(BatchSubmitter)
	srv.SetWebsocketReadLimit(int64(limits.MaxBodyBytes))
	return &Server{rpc: srv, ws: srv.WebsocketHandler(limits.WSOrigins), senders: b.Senders(), batch: bs, limits: limits}, nil
}

// RegisterName adds another namespace (tally_*, admin_* are added by the node).
func (s *Server) RegisterName(name string, svc any) error { return s.rpc.RegisterName(name, svc) }

// Stop stops the server.
func (s *Server) Stop() { s.rpc.Stop() }

// ServeHTTP bounds the body, pre-recovers the senders of a batch's raw
// transactions in parallel and hands the request to go-ethereum's server.
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
		s.prerecover(body)
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
// report.
func (s *Server) prerecover(body []byte) {
	var calls []struct {
		Method string            `json:"method"`
		Params []json.RawMessage `json:"params"`
	}
	if json.Unmarshal(body, &calls) != nil || len(calls) > s.limits.MaxBatchItems {
		return
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
	if len(txs) > 1 {
		_, errs := s.senders.Senders(txs)
		if s.batch != nil {
			valid := txs[:0]
			for i, tx := range txs {
				if errs == nil || errs[i] == nil {
					valid = append(valid, tx)
				}
			}
			s.batch.SubmitBatch(valid)
		}
	}
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
