package merchant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tally-ledger/tally/config"
	kv "github.com/tally-ledger/tally/internal/pebblekv"
	"github.com/tally-ledger/tally/wallet"
)

// API paths (docs/merchants.md, "The order API"). Every one but /healthz
// needs a bearer token of api.tokens-file.
const (
	PathOrders  = "/v1/orders"  // POST: register (the body is a payment request's JSON)
	PathOrder   = "/v1/orders/" // GET /v1/orders/{reference}: the order and its status; DELETE: forget it
	PathStatus  = "/v1/status"
	PathMetrics = "/metrics"
	PathHealth  = "/healthz"
)

// APIError is the body of every refused request.
type APIError struct {
	Msg string `json:"error"`
}

func (e *APIError) Error() string { return e.Msg }

// StatusView is what GET /v1/status answers.
type StatusView struct {
	// Next is the next block to read.
	Next      uint64 `json:"next"`
	Orders    uint64 `json:"orders"`
	Pending   int64  `json:"webhookPending"`
	LastError string `json:"lastError,omitempty"`
}

// maxOrderBody bounds a registration's body: a request is under 1 KiB.
const maxOrderBody = 16 << 10

// refusal is a registration the notifier refuses, with the HTTP status.
type refusal struct {
	code int
	msg  string
}

func (r *refusal) Error() string { return r.msg }

func refuse(code int, format string, args ...any) error {
	return &refusal{code: code, msg: fmt.Sprintf(format, args...)}
}

func (n *Notifier) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("GET "+PathMetrics, n.auth(func(w http.ResponseWriter, r *http.Request) {
		promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	}))
	mux.Handle("POST "+PathOrders, n.auth(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxOrderBody+1))
		if err != nil || len(body) > maxOrderBody {
			writeError(w, http.StatusBadRequest, "the body must be a payment request's JSON of at most "+strconv.Itoa(maxOrderBody)+" bytes")
			return
		}
		var req wallet.PaymentRequest
		if err := config.DecodeJSON(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		// 200 whether the order is new or was registered already with
		// the same terms: a client retrying a registration whose answer
		// it lost sees the same answer.
		o, _, err := n.Register(r.Context(), &req)
		n.reply(w, o, err)
	}))
	mux.Handle("GET "+PathOrder+"{ref}", n.auth(func(w http.ResponseWriter, r *http.Request) {
		ref, err := wallet.ParseReference(r.PathValue("ref"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "reference: "+err.Error())
			return
		}
		o, err := n.store.Order(ref)
		if err == nil {
			o = o.View(n.now())
		}
		n.reply(w, o, err)
	}))
	mux.Handle("DELETE "+PathOrder+"{ref}", n.auth(func(w http.ResponseWriter, r *http.Request) {
		ref, err := wallet.ParseReference(r.PathValue("ref"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "reference: "+err.Error())
			return
		}
		o, err := n.Delete(ref)
		n.reply(w, o, err)
	}))
	mux.Handle("GET "+PathStatus, n.auth(func(w http.ResponseWriter, r *http.Request) {
		next, set, err := n.store.Cursor()
		if err != nil {
			n.reply(w, nil, err)
			return
		}
		if !set {
			next = n.cfg.Follow.StartBlock
		}
		count, err := n.store.Orders()
		st := &StatusView{Next: next, Orders: count}
		if n.outbox != nil {
			st.Pending = n.outbox.Pending()
		}
		st.LastError = n.workers.LastError()
		n.reply(w, st, err)
	}))
	return mux
}

// Register records the order of a payment request (what `tally request
// --json` prints). The request is checked against the chain and the
// config: the chain id, the asset and its facade and decimals, a payee of
// orders.payees, the amount in units and base units, the reference of the
// order id, and the URI, which must be the one these fields make. An
// order registered already under the reference with the same terms is
// returned as it is (a retried registration); with other terms it is
// refused. Payments and refunds under the reference in the last
// orders.lookback blocks the follower read already (a QR code paid before
// its order was registered) are the new order's too, written with it. It
// returns whether the order is new.
func (n *Notifier) Register(ctx context.Context, req *wallet.PaymentRequest) (*Order, bool, error) {
	asset, ok := n.assets[req.Asset]
	switch {
	case !ok:
		return nil, false, refuse(http.StatusBadRequest, "asset: %q is not an asset of this chain", req.Asset)
	case req.ChainID != n.chainID:
		return nil, false, refuse(http.StatusBadRequest, "chainId: %d, the node's chain is %d", req.ChainID, n.chainID)
	case req.AssetAddress != asset.Address && req.AssetAddress != ([20]byte{}):
		return nil, false, refuse(http.StatusBadRequest, "assetAddress: %s is not %s's facade %s", req.AssetAddress, asset.Symbol, asset.Address)
	case req.Decimals != asset.Decimals:
		return nil, false, refuse(http.StatusBadRequest, "decimals: %d, %s has %d", req.Decimals, asset.Symbol, asset.Decimals)
	case !slices.Contains(n.payees, req.Payee):
		return nil, false, refuse(http.StatusBadRequest, "payee: %s is not one of orders.payees", req.Payee)
	case req.Expires.IsZero():
		return nil, false, refuse(http.StatusBadRequest, "expires: required")
	}
	amount, err := wallet.ParseAmount(req.Amount, asset.Decimals)
	if err != nil {
		return nil, false, refuse(http.StatusBadRequest, "amount: %v", err)
	}
	if req.AmountBase != "" {
		if base, ok := new(big.Int).SetString(req.AmountBase, 10); !ok || base.Cmp(amount) != 0 {
			return nil, false, refuse(http.StatusBadRequest, "amountBase: %q is not amount %s in base units (%s)", req.AmountBase, req.Amount, amount)
		}
	}
	want, err := wallet.NewPaymentRequest(n.chainID, asset, req.Payee, amount, req.Order, req.Expires)
	if err != nil {
		return nil, false, refuse(http.StatusBadRequest, "%v", err)
	}
	if req.Reference != ([32]byte{}) && req.Reference != want.Reference {
		return nil, false, refuse(http.StatusBadRequest, "reference: %s is not order %q's reference %s", req.Reference, req.Order, want.Reference)
	}
	if req.URI != "" && req.URI != want.URI {
		return nil, false, refuse(http.StatusBadRequest, "uri: %q is not the URI of this request's fields, %q", req.URI, want.URI)
	}
	s := n.store
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := readOrder(s.db, want.Reference)
	switch {
	case err == nil:
		if !sameTerms(&old.PaymentRequest, want) {
			return nil, false, refuse(http.StatusConflict, "order %q is registered already with other terms (%s %s to %s, expires %s)",
				want.Order, old.Amount, old.Asset, old.Payee, old.Expires.Format("2006-01-02T15:04:05Z07:00"))
		}
		return old.View(n.now()), false, nil
	case !errors.Is(err, ErrNotFound):
		return nil, false, err
	}
	count, err := kv.GetUint(s.db, keyOrders)
	if err != nil {
		return nil, false, err
	}
	if count >= uint64(n.cfg.Orders.Max) {
		return nil, false, refuse(http.StatusConflict, "%d orders are registered, the most orders.max allows", count)
	}
	o := &Order{PaymentRequest: *want, Registered: n.now().UTC(), Status: StatusAwaiting, Paid: "0", Refunded: "0",
		NetText: units(new(big.Int), asset.Decimals, asset.MinorUnits, asset.Symbol), Payments: []Movement{}, Refunds: []Movement{}}
	// The blocks before the cursor are the follower's past: look back
	// there for this reference. The lock keeps the follower from moving
	// the cursor meanwhile, so each event is read once, here or there.
	next, set, err := s.Cursor()
	if err != nil {
		return nil, false, err
	}
	if !set {
		next = n.cfg.Follow.StartBlock
	}
	var past []types.Log
	if back := min(next, uint64(n.cfg.Orders.Lookback)); back > 0 {
		if past, err = n.logs(ctx, next-back, next-1, want.Reference); err != nil {
			return nil, false, refuse(http.StatusServiceUnavailable, "look back for payments of order %q: %v", want.Order, err)
		}
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	if err := putOrder(b, o); err != nil {
		return nil, false, err
	}
	if err := b.Set(keyOrders, kv.BE8(count+1), nil); err != nil {
		return nil, false, err
	}
	if err := b.Set(expiryKey(o), nil, nil); err != nil {
		return nil, false, err
	}
	queued, err := n.apply(b, past, nil)
	if err != nil {
		return nil, false, err
	}
	if err := n.commit(b, queued); err != nil {
		return nil, false, fmt.Errorf("register order %q: %w", o.Order, err)
	}
	if o, err = readOrder(s.db, want.Reference); err != nil {
		return nil, false, err
	}
	n.log.Info("order registered", "order", o.Order, "amount", o.Amount+" "+o.Asset, "payee", o.Payee, "expires", o.Expires)
	return o.View(n.now()), true, nil
}

// Delete forgets the order of ref and returns it as it was: its
// reference, expiry and disputes leave the indexes and it no longer
// counts against orders.max. Payments and refunds under the reference
// from now on are unmatched (counted, not notified); a registration
// under it is a new order (whose look-back finds the earlier payments
// again, notified with their own delivery ids, which a receiver that
// handled them already recognises). Notifications already queued for the
// order are still delivered: each is an event that happened while the
// order was registered, and its body carries the order as it was.
func (n *Notifier) Delete(ref common.Hash) (*Order, error) {
	s := n.store
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := readOrder(s.db, ref)
	if err != nil {
		return nil, err
	}
	count, err := kv.GetUint(s.db, keyOrders)
	if err != nil {
		return nil, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, d := range o.Disputes {
		id, ok := new(big.Int).SetString(d.ID, 10)
		if !ok {
			return nil, fmt.Errorf("order %q: dispute id %q", o.Order, d.ID)
		}
		if err := b.Delete(disputeKey(common.BigToHash(id)), nil); err != nil {
			return nil, err
		}
	}
	if err := b.Delete(expiryKey(o), nil); err != nil {
		return nil, err
	}
	if err := b.Delete(orderKey(ref), nil); err != nil {
		return nil, err
	}
	if err := b.Set(keyOrders, kv.BE8(count-min(count, 1)), nil); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("delete order %q: %w", o.Order, err)
	}
	n.log.Info("order deleted", "order", o.Order, "status", o.Status)
	return o.View(n.now()), nil
}

// auth admits a request with a bearer token of api.tokens-file.
func (n *Notifier) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := n.tokens.Authenticate(r.Header.Get("Authorization")); err != nil {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		h(w, r)
	})
}

// reply writes v as JSON, or the error with its status: 404 for an
// unknown order, a refusal's own, else 500.
func (n *Notifier) reply(w http.ResponseWriter, v any, err error) {
	var r *refusal
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.As(err, &r):
		writeError(w, r.code, r.msg)
	case err != nil:
		n.log.Error("order API", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(&APIError{Msg: msg})
}

// sameTerms says whether two requests ask the same payment (times by
// instant, not by representation).
func sameTerms(a, b *wallet.PaymentRequest) bool {
	x, y := *a, *b
	x.Expires, y.Expires = time.Time{}, time.Time{}
	return x == y && a.Expires.Equal(b.Expires)
}
