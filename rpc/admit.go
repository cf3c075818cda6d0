package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
)

// Admission is one transaction of a batch on its way into the node: the
// decoded transaction (its hash computed once, its sender recovered and
// cached) and the raw bytes the client sent, which the node journals,
// forwards and replicates as they are instead of encoding the transaction
// again.
type Admission struct {
	Tx  *types.Transaction
	Raw []byte
}

// BatchAdmitter is implemented by a backend that admits a batch's
// transactions together: the leader admits them in order into its pool and
// makes them durable and replicated with one journal sync and one
// replication round; a follower forwards them to the leader as one
// message. errs[i] is the verdict on batch[i], worded as SubmitTx's. The
// server calls it only with transactions whose senders are recovered and
// whose client the rate limits let through.
type BatchAdmitter interface {
	AdmitBatch(ctx context.Context, batch []Admission) []error
}

// sendCall is one call of a batch made only of eth_sendRawTransaction
// calls, as parseSendBatch reads it.
type sendCall struct {
	ID  json.RawMessage
	Raw []byte
}

// parseSendBatch reads body, a JSON-RPC batch, in one pass when it is made
// only of well-formed eth_sendRawTransaction calls: version "2.0", a
// number or string id, and exactly one parameter, the transaction's
// 0x-hex (read as go-ethereum reads a hexutil.Bytes argument). Such a
// batch is admitted by the server's pipeline (Server.serveSendBatch);
// anything else (another method, a notification, a malformed call, an
// empty batch or one over maxItems) gives ok false and is left to
// go-ethereum's server, which answers it call by call with its own
// errors.
func parseSendBatch(body []byte, maxItems int) (calls []sendCall, ok bool) {
	var msgs []struct {
		Version string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  []hexutil.Bytes `json:"params"`
	}
	if json.Unmarshal(body, &msgs) != nil || len(msgs) == 0 || len(msgs) > maxItems {
		return nil, false
	}
	calls = make([]sendCall, len(msgs))
	for i, m := range msgs {
		if m.Version != "2.0" || m.Method != "eth_sendRawTransaction" || len(m.Params) != 1 || !plainID(m.ID) {
			return nil, false
		}
		calls[i] = sendCall{ID: m.ID, Raw: m.Params[0]}
	}
	return calls, true
}

// plainID reports whether id is a JSON number or string (not null, an
// object or an array, which go-ethereum treats otherwise).
func plainID(id json.RawMessage) bool {
	if len(id) == 0 {
		return false
	}
	c := id[0]
	return c == '"' || c == '-' || (c >= '0' && c <= '9')
}

// acceptedContentType reports whether go-ethereum's HTTP server would take
// a request with this Content-Type (it answers 415 otherwise).
func acceptedContentType(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "application/json-rpc", "application/jsonrequest":
		return true
	}
	return false
}

// admitCalls is the admission pipeline for a batch of raw transactions:
// each is decoded once (malformed ones answered at once), the client's
// limits are charged for the batch and the senders of the transactions
// they let through recovered on all cores in one step
// (RateLimiter.recoverBatch, or SenderCache.Senders without limits), and
// the rest is admitted together (BatchAdmitter) or, for a backend without
// it, one by one in the batch's order. errs[i] is raws[i]'s verdict as
// eth_sendRawTransaction answers it (ClientError), nil when admitted;
// hashes[i] its hash. A refused transaction's sender is not kept in the
// cache (ForgetRefused).
func (s *Server) admitCalls(ctx context.Context, remoteAddr string, raws [][]byte) (hashes []common.Hash, errs []error) {
	hashes, errs = make([]common.Hash, len(raws)), make([]error, len(raws))
	if err := s.halted(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return hashes, errs
	}
	txs := make([]*types.Transaction, 0, len(raws))
	idx := make([]int, 0, len(raws)) // txs[k] is raws[idx[k]]
	for i, raw := range raws {
		tx, err := chain.DecodeTx(raw)
		if err != nil {
			errs[i] = ClientError(err)
			continue
		}
		hashes[i] = tx.Hash()
		txs, idx = append(txs, tx), append(idx, i)
	}
	var verdicts []error
	if s.limiter != nil {
		_, verdicts = s.limiter.recoverBatch(remoteAddr, s.senders, txs)
	} else {
		_, verdicts = s.senders.Senders(txs)
	}
	batch := make([]Admission, 0, len(txs))
	at := make([]int, 0, len(txs)) // batch[k] is raws[at[k]]
	for k, tx := range txs {
		if verdicts != nil && verdicts[k] != nil {
			errs[idx[k]] = verdicts[k]
			continue
		}
		batch, at = append(batch, Admission{Tx: tx, Raw: raws[idx[k]]}), append(at, idx[k])
	}
	var admitted []error
	if s.admit != nil {
		admitted = s.admit.AdmitBatch(ctx, batch)
	} else {
		admitted = make([]error, len(batch))
		for k, a := range batch {
			admitted[k] = s.node.SubmitTx(ctx, a.Tx)
		}
	}
	for k, err := range admitted {
		errs[at[k]] = err
	}
	for k, tx := range txs {
		if err := errs[idx[k]]; err != nil {
			ForgetRefused(s.node, tx)
			errs[idx[k]] = ClientError(err)
		}
	}
	for i, err := range errs {
		if err != nil {
			hashes[i] = common.Hash{}
		}
	}
	return hashes, errs
}

// serveSendBatch answers a batch made only of eth_sendRawTransaction
// calls through the admission pipeline (admitCalls) and writes the replies
// as go-ethereum's server does: one per call, in the batch's order, the
// hash as result or the error with its code. The batch is bounded by the
// request's time as go-ethereum bounds one (gethrpc.ContextRequestTimeout:
// the reply is written before the HTTP server's write timeout).
func (s *Server) serveSendBatch(w http.ResponseWriter, r *http.Request, calls []sendCall) {
	ctx := r.Context()
	if timeout, ok := gethrpc.ContextRequestTimeout(ctx); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	raws := make([][]byte, len(calls))
	for i, c := range calls {
		raws[i] = c.Raw
	}
	hashes, errs := s.admitCalls(ctx, r.RemoteAddr, raws)
	replies := make([]sendReply, len(calls))
	for i, c := range calls {
		replies[i] = sendReply{Version: "2.0", ID: c.ID}
		if errs[i] != nil {
			replies[i].Error = replyError(errs[i])
		} else {
			h := hashes[i]
			replies[i].Result = &h
		}
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(replies); err != nil {
		writeError(w, http.StatusInternalServerError, CodeServerError, "encode batch reply: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(buf.Bytes())
}

// sendReply is one reply of a batch, in go-ethereum's field order.
type sendReply struct {
	Version string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   *replyErr       `json:"error,omitempty"`
	Result  *common.Hash    `json:"result,omitempty"`
}

type replyErr struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// replyError words err as go-ethereum's server does: its ErrorCode (the
// default -32000 without one), its message and its ErrorData.
func replyError(err error) *replyErr {
	e := &replyErr{Code: CodeServerError, Message: err.Error()}
	var coded gethrpc.Error
	if errors.As(err, &coded) {
		e.Code = coded.ErrorCode()
	}
	var data gethrpc.DataError
	if errors.As(err, &data) {
		e.Data = data.ErrorData()
	}
	return e
}
