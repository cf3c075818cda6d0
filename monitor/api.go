package monitor

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tally-ledger/tally/config"
	"github.com/tally-ledger/tally/internal/oplog"
)

// Review API paths (docs/monitor.md, "Review API"). Every one but
// /healthz needs an operator's bearer token.
const (
	PathAlerts  = "/v1/alerts"  // GET ?status=&rule=&account=&after=&limit=
	PathAlert   = "/v1/alerts/" // GET /v1/alerts/{id}; POST /v1/alerts/{id}/{acknowledge|dismiss|escalate}
	PathActions = "/v1/actions" // GET ?from=&limit=
	PathStatus  = "/v1/status"
	PathMetrics = "/metrics"
	PathHealth  = "/healthz"
)

// APIError is the body of every refused request.
type APIError struct {
	Msg string `json:"error"`
}

func (e *APIError) Error() string { return e.Msg }

// ReviewRequest is the body of a POST to an alert's action.
type ReviewRequest struct {
	Reason string `json:"reason"`
}

// ActionLog is what GET /v1/actions answers: entries and the head.
type ActionLog struct {
	Entries []*oplog.Entry `json:"entries"`
	Head    oplog.Head     `json:"head"`
}

// StatusView is what GET /v1/status answers.
type StatusView struct {
	// Next is the next block to judge; Prev the hash of the one before.
	Next       uint64      `json:"next"`
	Prev       common.Hash `json:"prev"`
	Unresolved int         `json:"unresolved"`
	Pending    int64       `json:"webhookPending"`
	LastError  string      `json:"lastError,omitempty"`
}

// maxReviewBody bounds a review request's body.
const maxReviewBody = 16 << 10

func (m *Monitor) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("GET "+PathMetrics, m.auth(func(w http.ResponseWriter, r *http.Request, _ string) {
		promhttp.HandlerFor(m.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	}))
	mux.Handle("GET "+PathAlerts, m.auth(m.listAlerts))
	mux.Handle("GET "+PathAlert+"{id}", m.auth(func(w http.ResponseWriter, r *http.Request, _ string) {
		id, ok := alertID(w, r)
		if !ok {
			return
		}
		a, err := m.store.Alert(id)
		m.reply(w, a, err)
	}))
	mux.Handle("POST "+PathAlert+"{id}/{action}", m.auth(m.review))
	mux.Handle("GET "+PathActions, m.auth(func(w http.ResponseWriter, r *http.Request, _ string) {
		q := r.URL.Query()
		from, err := uintParam(q.Get("from"), 1)
		if err != nil {
			writeError(w, http.StatusBadRequest, "from: "+err.Error())
			return
		}
		limit, err := uintParam(q.Get("limit"), 0)
		if err != nil {
			writeError(w, http.StatusBadRequest, "limit: "+err.Error())
			return
		}
		es, head, err := m.store.Actions(from, int(min(limit, 1<<30)))
		if es == nil {
			es = []*oplog.Entry{}
		}
		m.reply(w, &ActionLog{Entries: es, Head: head}, err)
	}))
	mux.Handle("GET "+PathStatus, m.auth(func(w http.ResponseWriter, r *http.Request, _ string) {
		cur, err := m.store.Cursor()
		if err != nil {
			m.reply(w, nil, err)
			return
		}
		un, err := m.store.Unresolved()
		st := &StatusView{Next: cur.Next, Prev: cur.Prev, Unresolved: len(un), Pending: m.pendingCount()}
		st.LastError = m.workers.LastError()
		m.reply(w, st, err)
	}))
	return mux
}

// auth admits a request with an operator's bearer token
// (operator.tokens-file) and passes on the operator's name.
func (m *Monitor) auth(h func(http.ResponseWriter, *http.Request, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, err := m.operators.Authenticate(r.Header.Get("Authorization"))
		if err != nil {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		h(w, r, who)
	})
}

func (m *Monitor) listAlerts(w http.ResponseWriter, r *http.Request, _ string) {
	q := r.URL.Query()
	f := AlertFilter{Status: q.Get("status"), Rule: q.Get("rule"), Limit: m.cfg.Queue.MaxList}
	if f.Status != "" && f.Status != "unresolved" && !validStatus(f.Status) {
		writeError(w, http.StatusBadRequest, "status: "+strconv.Quote(f.Status)+" is not open, acknowledged, dismissed, escalated or unresolved")
		return
	}
	if f.Rule != "" && !validRule(f.Rule) {
		writeError(w, http.StatusBadRequest, "rule: "+strconv.Quote(f.Rule)+" is not a rule")
		return
	}
	if s := q.Get("account"); s != "" {
		if !common.IsHexAddress(s) {
			writeError(w, http.StatusBadRequest, "account: "+strconv.Quote(s)+" is not an address")
			return
		}
		a := common.HexToAddress(s)
		f.Account = &a
	}
	var err error
	if f.After, err = uintParam(q.Get("after"), 0); err != nil {
		writeError(w, http.StatusBadRequest, "after: "+err.Error())
		return
	}
	if s := q.Get("limit"); s != "" {
		l, err := uintParam(s, 0)
		if err != nil || l < 1 || l > uint64(m.cfg.Queue.MaxList) {
			writeError(w, http.StatusBadRequest, "limit: must be 1.."+strconv.Itoa(m.cfg.Queue.MaxList)+" (queue.max-list)")
			return
		}
		f.Limit = int(l)
	}
	as, err := m.store.Alerts(f)
	if as == nil {
		as = []*Alert{}
	}
	m.reply(w, as, err)
}

func (m *Monitor) review(w http.ResponseWriter, r *http.Request, who string) {
	id, ok := alertID(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBody+1))
	if err != nil || len(body) > maxReviewBody {
		writeError(w, http.StatusBadRequest, "the body must be a JSON object of at most "+strconv.Itoa(maxReviewBody)+" bytes")
		return
	}
	var req ReviewRequest
	if len(body) > 0 {
		if err := config.DecodeJSON(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
	}
	a, err := m.Review(id, who, r.PathValue("action"), req.Reason)
	m.reply(w, a, err)
}

// reply writes v as JSON, or the error with its status: 404 for an
// unknown alert, 409 for an action the queue's rules refuse, else 500.
func (m *Monitor) reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case isReviewError(err):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		m.log.Error("review API", "err", err)
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

func alertID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, "alert id "+strconv.Quote(r.PathValue("id"))+": a positive integer")
		return 0, false
	}
	return id, true
}

func uintParam(s string, def uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New(strconv.Quote(s) + " is not a non-negative integer")
	}
	return v, nil
}

func validStatus(s string) bool {
	for _, x := range Statuses {
		if string(x) == s {
			return true
		}
	}
	return false
}

func validRule(s string) bool {
	for _, x := range Rules {
		if x == s {
			return true
		}
	}
	return false
}
