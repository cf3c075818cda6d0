package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/wallet"
)

// The operator tools (docs/bridge.md, "Operator tools"): what a bank's
// operations staff do with the records the bridge cannot resolve by
// itself. Every action needs an operator token (operator.tokens-file) and
// a reason, goes through the same rules as the bank's own messages, and
// is written to the operator log in the same batch as its effect.

// Operator endpoints.
const (
	PathOpDeposits       = "/v1/operator/deposits"
	PathOpRelease        = "/v1/operator/deposits/release"
	PathOpReturn         = "/v1/operator/deposits/return"
	PathOpPayouts        = "/v1/operator/payouts"
	PathOpRequeue        = "/v1/operator/payouts/requeue"
	PathOpOutcome        = "/v1/operator/payouts/outcome"
	PathOpCancel         = "/v1/operator/withdrawals/cancel"
	PathOpLog            = "/v1/operator/log"
	maxOperatorReasonLen = 500
	maxOperatorList      = 10_000
)

// OperatorError is an operator request refused: Field names the input at
// fault ("reason", "bankRef", "id", ...); Code is the HTTP status.
type OperatorError struct {
	Code  int    `json:"-"`
	Field string `json:"field,omitempty"`
	Msg   string `json:"error"`
}

func (e *OperatorError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func opErr(code int, field, format string, args ...any) *OperatorError {
	return &OperatorError{Code: code, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// checkReason is the one rule for an operator's reason: required, at most
// maxOperatorReasonLen bytes of UTF-8 text without control characters.
func checkReason(r string) error {
	r = strings.TrimSpace(r)
	switch {
	case r == "":
		return opErr(http.StatusBadRequest, "reason", "required: say why (it goes into the operator log)")
	case len(r) > maxOperatorReasonLen:
		return opErr(http.StatusBadRequest, "reason", "%d bytes, at most %d", len(r), maxOperatorReasonLen)
	case !utf8.ValidString(r) || strings.ContainsFunc(r, func(c rune) bool { return c < 0x20 || c == 0x7f }):
		return opErr(http.StatusBadRequest, "reason", "must be UTF-8 text without control characters")
	}
	return nil
}

// ---- deposits ----

// ListDeposits returns up to limit deposits in status st (all when st is
// ""), oldest first. It reads every deposit record: an operator's tool,
// not a hot path.
func (b *Bridge) ListDeposits(st DepositStatus, limit int) ([]*Deposit, error) {
	if st != "" && !knownDepositStatus(st) {
		return nil, opErr(http.StatusBadRequest, "status", "%q is not a deposit status (%s)", st, depositStatusNames())
	}
	if st != "" && queuedDeposit(st) {
		return b.store.QueuedDeposits(st, limit) // indexed, in arrival order
	}
	all, err := b.store.Deposits(int(^uint(0) >> 1))
	if err != nil {
		return nil, err
	}
	var out []*Deposit
	for _, d := range all {
		if st == "" || d.Status == st {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func knownDepositStatus(st DepositStatus) bool {
	for _, s := range DepositStatuses {
		if s == st {
			return true
		}
	}
	return false
}

func depositStatusNames() string {
	var n []string
	for _, s := range DepositStatuses {
		n = append(n, string(s))
	}
	return strings.Join(n, ", ")
}

// parseBankRef reads a deposit's bankRef (0x + 64 hex digits).
func parseBankRef(s string) (common.Hash, error) {
	if len(s) != 66 || !strings.HasPrefix(s, "0x") {
		return common.Hash{}, opErr(http.StatusBadRequest, "bankRef", "%q is not a bankRef (0x and 64 hex digits, as the deposit lists show)", truncate(s, 80))
	}
	var h common.Hash
	if err := h.UnmarshalText([]byte(s)); err != nil {
		return common.Hash{}, opErr(http.StatusBadRequest, "bankRef", "%q: %v", truncate(s, 80), err)
	}
	return h, nil
}

// depositOp runs an operator action on a held deposit: fn changes it (the
// deposit is held when it runs) and says what it did. A deposit not held
// is refused, and the refusal logged.
func (b *Bridge) depositOp(op *OpEntry, ref common.Hash, fn func(d *Deposit)) (*Deposit, error) {
	var refused *OperatorError
	d, err := b.store.ModifyDepositLogged(ref, op, func(d *Deposit) (bool, error) {
		if d.Status != DepositHeld {
			refused = opErr(http.StatusConflict, "bankRef", "deposit %s is %s, not held: only a held deposit can be released or returned", ref.Hex(), d.Status)
			op.Result = "refused: " + refused.Msg
			return false, nil
		}
		fn(d)
		d.UpdatedAt = op.At
		op.Result = ResultDone
		return true, nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, opErr(http.StatusNotFound, "bankRef", "no deposit %s is recorded", ref.Hex())
	}
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return d, refused
	}
	return d, nil
}

// ReleaseDeposit mints a held deposit to the wallet the operator names:
// the deposit becomes accepted with that wallet, and the outbox mints it
// under its own bankRef, so the chain still mints it at most once.
func (b *Bridge) ReleaseDeposit(operator, bankRef, walletAddr, reason string) (*Deposit, error) {
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	ref, err := parseBankRef(bankRef)
	if err != nil {
		return nil, err
	}
	if !common.IsHexAddress(walletAddr) || common.HexToAddress(walletAddr) == (common.Address{}) {
		return nil, opErr(http.StatusBadRequest, "wallet", "%q is not a wallet address (0x and 40 hex digits, not zero)", truncate(walletAddr, 80))
	}
	w := common.HexToAddress(walletAddr)
	op := &OpEntry{At: b.now().UTC(), Operator: operator, Action: OpReleaseDeposit, Target: ref.Hex(), Detail: "wallet " + w.Hex(), Reason: reason}
	d, err := b.depositOp(op, ref, func(d *Deposit) {
		if d.Units == nil {
			return // the amount does not parse: cannot be minted; refused below
		}
		d.Wallet, d.Status, d.Attempts = w, DepositAccepted, 0
		d.Reason = fmt.Sprintf("released by operator %s to %s: %s", operator, w.Hex(), reason)
		if d.RoutedBy == "" {
			d.RoutedBy = "operator"
		}
	})
	if err == nil && d.Status != DepositAccepted {
		return d, opErr(http.StatusConflict, "bankRef", "deposit %s has no amount the chain can mint (%q %s): return it instead", ref.Hex(), d.Amount, d.Currency)
	}
	if err == nil {
		b.log.Warn("operator released a held deposit", "operator", operator, "bankRef", ref, "wallet", w, "reason", reason)
		kick(b.kickOutbox)
	}
	return d, err
}

// DepositReturn is the return of a held deposit to its payer: the order
// that sends the money back from the omnibus account.
type DepositReturn struct {
	Operator string    `json:"operator"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
	// EndToEndID (TALLY-<chainId>-<symbol>-R<seq>) and MsgID (…-N<seq>)
	// identify the return order; a re-send keeps them.
	EndToEndID string `json:"endToEndId"`
	MsgID      string `json:"msgId"`
	// Orders counts the POSTs; SentAt is when the core acknowledged one.
	Orders    int        `json:"orders"`
	SentAt    *time.Time `json:"sentAt,omitempty"`
	LastError string     `json:"lastError,omitempty"`
}

// ReturnDeposit sends a held deposit back to the account it came from:
// the deposit becomes return-due (never minted from then on) in one batch
// with the log entry, then the return order (a pain.001 from the omnibus
// account to the payer, identifiers derived from the deposit's seq) is
// POSTed to the core like a payout order; on a 2xx the deposit is
// returned. A failed POST leaves it return-due: running the return again
// re-sends the same order (same MsgId and EndToEndId, so the bank pays it
// once).
func (b *Bridge) ReturnDeposit(ctx context.Context, operator, bankRef, reason string) (*Deposit, error) {
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	ref, err := parseBankRef(bankRef)
	if err != nil {
		return nil, err
	}
	op := &OpEntry{At: b.now().UTC(), Operator: operator, Action: OpReturnDeposit, Target: ref.Hex(), Reason: reason}
	cur, err := b.store.Deposit(ref)
	if errors.Is(err, ErrNotFound) {
		return nil, opErr(http.StatusNotFound, "bankRef", "no deposit %s is recorded", ref.Hex())
	}
	if err != nil {
		return nil, err
	}
	var d *Deposit
	if cur.Status == DepositReturnDue {
		op.Detail, op.Result = "re-send of the return order", ResultDone
		if err := b.store.AppendOp(op); err != nil {
			return nil, err
		}
		d = cur
	} else {
		d, err = b.depositOp(op, ref, func(d *Deposit) {
			d.Status = DepositReturnDue
			d.Return = &DepositReturn{Operator: operator, Reason: reason, At: op.At,
				EndToEndID: payoutID(b.info.ChainID, b.info.Symbol, 'R', d.Seq), MsgID: payoutID(b.info.ChainID, b.info.Symbol, 'N', d.Seq)}
		})
		if err != nil {
			return d, err
		}
	}
	b.log.Warn("operator returns a held deposit", "operator", operator, "bankRef", ref, "account", d.Account, "amount", d.Amount, "reason", reason)
	sendErr := b.sendReturnOrder(ctx, d)
	now := b.now().UTC()
	d, err = b.store.ModifyDepositLogged(ref, nil, func(d *Deposit) (bool, error) {
		d.Return.Orders++
		d.UpdatedAt = now
		if sendErr != nil {
			d.Return.LastError = sendErr.Error()
			return true, nil
		}
		d.Return.LastError, d.Return.SentAt, d.Status = "", &now, DepositReturned
		return true, nil
	})
	if err != nil {
		return d, err
	}
	if sendErr != nil {
		return d, opErr(http.StatusBadGateway, "", "the deposit is return-due (it will never be minted), but the bank core did not take the return order: %v; run the return again to re-send it", sendErr)
	}
	return d, nil
}

// sendReturnOrder POSTs the return order of d: the payout order's form,
// from the omnibus account to the payer's account.
func (b *Bridge) sendReturnOrder(ctx context.Context, d *Deposit) error {
	now := b.now()
	h := crypto.Keccak256([]byte("tally-return-uetr-v1"), b.bank[:], []byte(d.Return.EndToEndID))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	loc, err := time.LoadLocation(b.cfg.BankCore.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	o := PayoutOrder{MsgID: d.Return.MsgID, PmtInfID: payoutID(b.info.ChainID, b.info.Symbol, 'Q', d.Seq),
		InstrID: payoutID(b.info.ChainID, b.info.Symbol, 'J', d.Seq), EndToEndID: d.Return.EndToEndID,
		UETR:    fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]),
		Account: d.Account, Amount: d.Amount, Currency: d.Currency, DebtorName: b.cfg.BankCore.DebtorName, DebtorAccount: b.cfg.BankCore.DebtorAccount,
		CreatedAt: now.UTC().Truncate(time.Millisecond), ExecutionDate: now.In(loc).Format(time.DateOnly),
		Remittance: "Tally return of deposit " + truncate(d.Ref, 80)}
	return b.postOrder(ctx, o)
}

// ---- payouts ----

// PayoutView is a payout with its age, for the operator's lists.
type PayoutView struct {
	*Payout
	// AgeSeconds is how long ago the withdrawal was seen.
	AgeSeconds int64 `json:"ageSeconds"`
}

// ListPayouts returns up to limit payouts in status st (all when ""),
// at least minAge old, oldest first.
func (b *Bridge) ListPayouts(st PayoutStatus, minAge time.Duration, limit int) ([]PayoutView, error) {
	statuses := PayoutStatuses
	if st != "" {
		known := false
		for _, s := range PayoutStatuses {
			known = known || s == st
		}
		if !known {
			var n []string
			for _, s := range PayoutStatuses {
				n = append(n, string(s))
			}
			return nil, opErr(http.StatusBadRequest, "status", "%q is not a payout status (%s)", st, strings.Join(n, ", "))
		}
		statuses = []PayoutStatus{st}
	}
	now := b.now()
	var out []PayoutView
	for _, s := range statuses {
		var ps []*Payout
		var err error
		if s == PayoutClosed {
			ps, err = b.store.closedPayouts(maxOperatorList)
		} else {
			ps, err = b.store.QueuedPayouts(s, maxOperatorList)
		}
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			age := now.Sub(p.CreatedAt)
			if age >= minAge {
				out = append(out, PayoutView{Payout: p, AgeSeconds: int64(age / time.Second)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// payoutOp runs an operator action on payout id: fn decides (under the
// store's lock) and returns a refusal or nil; the log entry is written
// with the change, or alone with the refusal.
func (b *Bridge) payoutOp(op *OpEntry, id uint64, fn func(p *Payout) *OperatorError) (*Payout, error) {
	var refused *OperatorError
	p, err := b.store.ModifyPayoutLogged(id, op, func(p *Payout) (bool, error) {
		if refused = fn(p); refused != nil {
			op.Result = "refused: " + refused.Msg
			return false, nil
		}
		p.UpdatedAt = op.At
		op.Result = ResultDone
		return true, nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, opErr(http.StatusNotFound, "id", "no payout of withdrawal %d is recorded", id)
	}
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return p, refused
	}
	return p, nil
}

// RequeuePayout makes the payout sender send a payout's order again, at
// once, with the same identifiers (MsgId, EndToEndId, UETR): the bank pays
// a payment it already has at most once (it answers DU01). Only a payout
// without a final outcome (new or ordered) can be re-queued.
func (b *Bridge) RequeuePayout(operator string, id uint64, reason string) (*Payout, error) {
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	op := &OpEntry{At: b.now().UTC(), Operator: operator, Action: OpRequeuePayout, Target: strconv.FormatUint(id, 10), Reason: reason}
	p, err := b.payoutOp(op, id, func(p *Payout) *OperatorError {
		if p.Status != PayoutNew && p.Status != PayoutOrdered {
			return opErr(http.StatusConflict, "id", "payout %s is %s: only a new or ordered payout (no final outcome) can be re-queued", p.EndToEndID, p.Status)
		}
		p.Status = PayoutNew
		return nil
	})
	if err == nil {
		kick(b.kickPayout)
		b.log.Warn("operator re-queued a payout", "operator", operator, "id", id, "reason", reason)
	}
	return p, err
}

// Manual outcomes an operator records (what the bank's back office
// confirmed), and the bank status each stands for.
const (
	OutcomeSettled  = "settled"
	OutcomeRejected = "rejected"
)

// PayoutOutcome records a payout's outcome as the bank's back office
// confirmed it. It is applied as a transaction-level ACSC or RJCT from
// the bank would be (applyOutcome: one rule for both), so a manual
// "rejected" can never refund a payout whose ACSC was seen, and a manual
// "settled" never settles a rejected one: those are refused (409) and
// logged.
func (b *Bridge) PayoutOutcome(operator string, id uint64, outcome, reason string) (*Payout, Verdict, error) {
	if err := checkReason(reason); err != nil {
		return nil, Verdict{}, err
	}
	var status string
	switch outcome {
	case OutcomeSettled:
		status = "ACSC"
	case OutcomeRejected:
		status = "RJCT"
	default:
		return nil, Verdict{}, opErr(http.StatusBadRequest, "outcome", "%q: use %q or %q", truncate(outcome, 40), OutcomeSettled, OutcomeRejected)
	}
	if _, err := b.store.Payout(id); errors.Is(err, ErrNotFound) {
		return nil, Verdict{}, opErr(http.StatusNotFound, "id", "no payout of withdrawal %d is recorded", id)
	}
	e2e := PayoutEndToEndID(b.info.ChainID, b.info.Symbol, id)
	op := &OpEntry{At: b.now().UTC(), Operator: operator, Action: OpPayoutOutcome, Target: strconv.FormatUint(id, 10), Detail: outcome, Reason: reason}
	it := StatusItem{Ref: e2e, EndToEndID: e2e, Level: LevelTransaction, Status: status, Reason: "operator " + operator + ": " + reason}
	v := b.applyOutcomeLogged(PathOpOutcome, "OPERATOR-"+operator, it, op)
	p, err := b.store.Payout(id)
	if err != nil {
		return nil, v, err
	}
	switch v.Verdict {
	case VerdictSettling, VerdictRefunding, VerdictDuplicate:
		return p, v, nil
	case VerdictConflict:
		return p, v, opErr(http.StatusConflict, "outcome", "%s", v.Reason)
	}
	return p, v, fmt.Errorf("payout %d: outcome not recorded: %s %s", id, v.Verdict, v.Reason)
}

// CancelWithdrawal refunds, on chain, a withdrawal this bridge has not
// sent an order for: an unroutable one (the holder has no linked account
// here) or a payout still new and never sent. It records the payout as
// refunding with outcome CANC and the operator's reason; the closer
// refunds it (refundWithdrawal) like a rejected payout, through the same
// crash-safe path. A withdrawal not pending on chain, or one whose order
// was sent, is refused: an order the bank may be paying is closed only by
// the bank's outcome (or a manual outcome).
func (b *Bridge) CancelWithdrawal(ctx context.Context, operator string, id uint64, reason string) (*Payout, error) {
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	op := &OpEntry{At: b.now().UTC(), Operator: operator, Action: OpCancelPayout, Target: strconv.FormatUint(id, 10), Reason: reason}
	cancelReason := operatorCancelPrefix + operator + ": " + reason
	_, err := b.store.Payout(id)
	if err == nil {
		return b.payoutOp(op, id, func(p *Payout) *OperatorError {
			if p.Status != PayoutNew || p.Orders > 0 || len(p.Progress) > 0 {
				return opErr(http.StatusConflict, "id", "payout %s is %s after %d orders: its order may be with the bank, so only the bank's outcome (or a manual outcome) closes it", p.EndToEndID, p.Status, p.Orders)
			}
			p.Status, p.Outcome, p.Reason = PayoutRefunding, statusCancelled, cancelReason
			return nil
		})
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	w, err := b.withdrawal(ctx, id)
	if err != nil {
		return nil, err
	}
	if w.Status != withdrawalPending || (w.Bank != common.Address{} && w.Bank != b.bank) {
		what := map[uint8]string{0: "no withdrawal of " + b.info.Symbol, withdrawalSettled: "settled", withdrawalRefunded: "refunded",
			withdrawalReturned: "returned"}[w.Status]
		switch {
		case w.Status == withdrawalPending:
			what = "claimed by bank " + w.Bank.Hex() + ", which pays it"
		case what == "":
			what = fmt.Sprintf("in status %d", w.Status)
		}
		op.Result = fmt.Sprintf("refused: withdrawal %d is %s on chain", id, what)
		if err := b.store.AppendOp(op); err != nil {
			return nil, err
		}
		return nil, opErr(http.StatusConflict, "id", "withdrawal %d is %s on chain: nothing to cancel", id, what)
	}
	now := b.now().UTC()
	p := &Payout{ID: id, Holder: w.holder, Amount: w.amount, PayoutRef: w.payoutRef, EndToEndID: PayoutEndToEndID(b.info.ChainID, b.info.Symbol, id),
		Status: PayoutRefunding, Outcome: statusCancelled, Reason: cancelReason, CreatedAt: now, UpdatedAt: now}
	op.Result = ResultDone
	if err := b.store.AddPayoutLogged(p, op); errors.Is(err, ErrExists) {
		return nil, opErr(http.StatusConflict, "id", "withdrawal %d was recorded meanwhile (the follower found it): run the cancel again", id)
	} else if err != nil {
		return nil, err
	}
	kick(b.kickCloser)
	b.log.Warn("operator cancelled a withdrawal", "operator", operator, "id", id, "reason", reason)
	return p, nil
}

// operatorCancelPrefix starts the reason of a payout an operator
// cancelled (outcome CANC); refundReason carries it to the chain as is.
const operatorCancelPrefix = "cancelled by operator "

// withdrawalEscrow is what withdrawal(id) says of a withdrawal's escrow,
// besides its status and claim (chainWithdrawal).
type withdrawalEscrow struct {
	chainWithdrawal
	holder    common.Address
	amount    *big.Int
	payoutRef common.Hash
}

// withdrawal reads withdrawal(id) on chain, all of it.
func (b *Bridge) withdrawal(ctx context.Context, id uint64) (*withdrawalEscrow, error) {
	op, err := wallet.AssetOp(b.info.AssetID, "withdrawal", new(big.Int).SetUint64(id))
	if err != nil {
		return nil, err
	}
	out, err := b.nodes.view(ctx, op)
	if err != nil {
		return nil, fmt.Errorf("read withdrawal %d: %w", id, err)
	}
	if len(out) != 6 {
		return nil, fmt.Errorf("withdrawal(%d) returned %d values", id, len(out))
	}
	w := &withdrawalEscrow{}
	var ok [6]bool
	var ref, order [32]byte
	w.holder, ok[0] = out[0].(common.Address)
	w.amount, ok[1] = out[1].(*big.Int)
	ref, ok[2] = out[2].([32]byte)
	w.Status, ok[3] = out[3].(uint8)
	w.Bank, ok[4] = out[4].(common.Address)
	order, ok[5] = out[5].([32]byte)
	if ok != [6]bool{true, true, true, true, true, true} {
		return nil, fmt.Errorf("withdrawal(%d) returned %T, %T, %T, %T, %T, %T", id, out[0], out[1], out[2], out[3], out[4], out[5])
	}
	w.payoutRef, w.OrderID = ref, order
	return w, nil
}

// ---- HTTP ----

// operatorHandler serves the operator endpoints, /v1/status and /metrics,
// each behind an operator token.
func (b *Bridge) operatorRoutes(mux *http.ServeMux) {
	auth := func(h func(w http.ResponseWriter, r *http.Request, who string)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			who, err := b.operators.Authenticate(r.Header.Get("Authorization"))
			if err != nil {
				b.metrics.requests.WithLabelValues(r.URL.Path, "401").Inc()
				w.Header().Set("WWW-Authenticate", `Bearer realm="tally-bridge"`)
				writeJSON(w, http.StatusUnauthorized, &OperatorError{Msg: err.Error()})
				return
			}
			h(w, r, who)
		}
	}
	mux.HandleFunc("GET "+PathStatus, auth(func(w http.ResponseWriter, r *http.Request, _ string) { b.handleStatus(w, r) }))
	mux.HandleFunc("GET /metrics", auth(func(w http.ResponseWriter, r *http.Request, _ string) { b.metrics.handler().ServeHTTP(w, r) }))
	mux.HandleFunc("GET "+PathOpDeposits, auth(func(w http.ResponseWriter, r *http.Request, _ string) {
		q, limit, err := listQuery(r.URL.Query(), "status", "limit")
		if err != nil {
			b.opReply(w, PathOpDeposits, nil, err)
			return
		}
		ds, err := b.ListDeposits(DepositStatus(q.Get("status")), limit)
		if ds == nil {
			ds = []*Deposit{}
		}
		b.opReply(w, PathOpDeposits, ds, err)
	}))
	mux.HandleFunc("GET "+PathOpPayouts, auth(func(w http.ResponseWriter, r *http.Request, _ string) {
		q, limit, err := listQuery(r.URL.Query(), "status", "limit", "older-than")
		if err != nil {
			b.opReply(w, PathOpPayouts, nil, err)
			return
		}
		var age time.Duration
		if s := q.Get("older-than"); s != "" {
			if age, err = time.ParseDuration(s); err != nil || age < 0 {
				b.opReply(w, PathOpPayouts, nil, opErr(http.StatusBadRequest, "older-than", "%q is not a duration (e.g. 30m, 2h)", truncate(s, 40)))
				return
			}
		}
		ps, err := b.ListPayouts(PayoutStatus(q.Get("status")), age, limit)
		if ps == nil {
			ps = []PayoutView{}
		}
		b.opReply(w, PathOpPayouts, ps, err)
	}))
	mux.HandleFunc("POST "+PathOpRelease, auth(func(w http.ResponseWriter, r *http.Request, who string) {
		var req struct {
			BankRef string `json:"bankRef"`
			Wallet  string `json:"wallet"`
			Reason  string `json:"reason"`
		}
		if b.opDecode(w, r, PathOpRelease, &req, "bankRef", "wallet", "reason") {
			d, err := b.ReleaseDeposit(who, req.BankRef, req.Wallet, req.Reason)
			b.opReply(w, PathOpRelease, d, err)
		}
	}))
	mux.HandleFunc("POST "+PathOpReturn, auth(func(w http.ResponseWriter, r *http.Request, who string) {
		var req struct {
			BankRef string `json:"bankRef"`
			Reason  string `json:"reason"`
		}
		if b.opDecode(w, r, PathOpReturn, &req, "bankRef", "reason") {
			d, err := b.ReturnDeposit(r.Context(), who, req.BankRef, req.Reason)
			b.opReply(w, PathOpReturn, d, err)
		}
	}))
	mux.HandleFunc("POST "+PathOpRequeue, auth(func(w http.ResponseWriter, r *http.Request, who string) {
		var req struct {
			ID     *uint64 `json:"id"`
			Reason string  `json:"reason"`
		}
		if b.opDecode(w, r, PathOpRequeue, &req, "id", "reason") && b.opNeedID(w, PathOpRequeue, req.ID) {
			p, err := b.RequeuePayout(who, *req.ID, req.Reason)
			b.opReply(w, PathOpRequeue, p, err)
		}
	}))
	mux.HandleFunc("POST "+PathOpOutcome, auth(func(w http.ResponseWriter, r *http.Request, who string) {
		var req struct {
			ID      *uint64 `json:"id"`
			Outcome string  `json:"outcome"`
			Reason  string  `json:"reason"`
		}
		if b.opDecode(w, r, PathOpOutcome, &req, "id", "outcome", "reason") && b.opNeedID(w, PathOpOutcome, req.ID) {
			p, _, err := b.PayoutOutcome(who, *req.ID, req.Outcome, req.Reason)
			b.opReply(w, PathOpOutcome, p, err)
		}
	}))
	mux.HandleFunc("POST "+PathOpCancel, auth(func(w http.ResponseWriter, r *http.Request, who string) {
		var req struct {
			ID     *uint64 `json:"id"`
			Reason string  `json:"reason"`
		}
		if b.opDecode(w, r, PathOpCancel, &req, "id", "reason") && b.opNeedID(w, PathOpCancel, req.ID) {
			p, err := b.CancelWithdrawal(r.Context(), who, *req.ID, req.Reason)
			b.opReply(w, PathOpCancel, p, err)
		}
	}))
	mux.HandleFunc("GET "+PathOpLog, auth(func(w http.ResponseWriter, r *http.Request, _ string) {
		if _, _, err := listQuery(r.URL.Query()); err != nil {
			b.opReply(w, PathOpLog, nil, err)
			return
		}
		entries, head, err := b.store.OpLog(1, 0)
		if entries == nil {
			entries = []*OpEntry{}
		}
		b.opReply(w, PathOpLog, OpLogView{Entries: entries, Head: head}, err)
	}))
}

// OpLogView is the answer of GET /v1/operator/log: every entry and the
// head the store records; VerifyOpLog checks them.
type OpLogView struct {
	Entries []*OpEntry `json:"entries"`
	Head    OpHead     `json:"head"`
}

// listQuery checks a list's query parameters: only the allowed names,
// each once; limit 1..maxOperatorList (default 100).
func listQuery(q url.Values, allowed ...string) (url.Values, int, error) {
	for k, v := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return nil, 0, opErr(http.StatusBadRequest, k, "unknown parameter (use %s)", strings.Join(allowed, ", "))
		}
		if len(v) != 1 {
			return nil, 0, opErr(http.StatusBadRequest, k, "given %d times", len(v))
		}
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxOperatorList {
			return nil, 0, opErr(http.StatusBadRequest, "limit", "%q: 1..%d", truncate(s, 20), maxOperatorList)
		}
		limit = n
	}
	return q, limit, nil
}

// opDecode reads an operator request's JSON body strictly: an unknown
// field or a missing one is refused naming it. Field names are matched
// exactly as documented (camelCase).
func (b *Bridge) opDecode(w http.ResponseWriter, r *http.Request, ep string, v any, fields ...string) bool {
	body, err := readAllMax(w, r, int64(b.cfg.Limits.MaxBodyBytes))
	if err != nil {
		b.opReply(w, ep, nil, opErr(http.StatusBadRequest, "", "read body: %v", err))
		return false
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		b.opReply(w, ep, nil, opErr(http.StatusBadRequest, "", "body is not a JSON object: %v", err))
		return false
	}
	for k := range raw {
		ok := false
		for _, f := range fields {
			ok = ok || f == k
		}
		if !ok {
			b.opReply(w, ep, nil, opErr(http.StatusBadRequest, k, "unknown field (use %s)", strings.Join(fields, ", ")))
			return false
		}
	}
	for _, f := range fields {
		if _, ok := raw[f]; !ok {
			b.opReply(w, ep, nil, opErr(http.StatusBadRequest, f, "required"))
			return false
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			b.opReply(w, ep, nil, opErr(http.StatusBadRequest, te.Field, "must be a %s", te.Type))
			return false
		}
		b.opReply(w, ep, nil, opErr(http.StatusBadRequest, "", "%v", err))
		return false
	}
	return true
}

func (b *Bridge) opNeedID(w http.ResponseWriter, ep string, id *uint64) bool {
	if id == nil {
		b.opReply(w, ep, nil, opErr(http.StatusBadRequest, "id", "required: the withdrawal id"))
		return false
	}
	return true
}

// opReply answers an operator request: v with 200, or the error (an
// OperatorError with its code and field, anything else 500).
func (b *Bridge) opReply(w http.ResponseWriter, ep string, v any, err error) {
	if err != nil {
		var oe *OperatorError
		if !errors.As(err, &oe) {
			oe = &OperatorError{Code: http.StatusInternalServerError, Msg: err.Error()}
		}
		b.metrics.requests.WithLabelValues(ep, strconv.Itoa(oe.Code)).Inc()
		writeJSON(w, oe.Code, oe)
		return
	}
	b.metrics.requests.WithLabelValues(ep, "200").Inc()
	writeJSON(w, http.StatusOK, v)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func readAllMax(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	return buf.Bytes(), err
}
