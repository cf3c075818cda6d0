package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/bridge/iso20022"
	"github.com/tally-ledger/tally/config"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/wallet"
)

// Intake endpoints.
const (
	PathNotifications = "/v1/notifications"
	PathLinks         = "/v1/links"
	PathPaymentStatus = "/v1/payment-status"
	PathStatus        = "/v1/status"
)

// Verdicts on one entry or status item, in the answer's "verdict".
const (
	VerdictAccepted  = "accepted"  // a new deposit, to be minted
	VerdictDuplicate = "duplicate" // already recorded; nothing changes
	VerdictHeld      = "held"      // recorded, not minted: reason says why
	VerdictConflict  = "conflict"  // the reference is recorded with other content; nothing changes
	VerdictIgnored   = "ignored"   // not for the bridge (a pending entry, a debit not of a payout)
	VerdictSettling  = "settling"  // a payout outcome: paid, settleWithdrawal follows
	VerdictRefunding = "refunding" // a payout outcome: rejected, refundWithdrawal follows
	VerdictReturning = "returning" // a settled payout came back: returnWithdrawal follows
	VerdictNoted     = "noted"     // an intermediate payout status; nothing changes
	VerdictUnknown   = "unknown"   // no payout has this EndToEndId
	VerdictReversed  = "reversed"  // the bank took a deposit back: recorded on the deposit
)

// Verdict is the bridge's answer about one entry or status item.
type Verdict struct {
	Ref        string `json:"ref,omitempty"`
	BankRef    string `json:"bankRef,omitempty"`
	EndToEndID string `json:"endToEndId,omitempty"`
	Verdict    string `json:"verdict"`
	// Status is the record's status after the request.
	Status string `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	// later: not applied because this instance has not recorded yet what
	// the chain already has (a report of an order its sibling sent); the
	// whole message is answered 503 so the bank resends it.
	later bool
}

// Response is the JSON answer of the POST endpoints.
type Response struct {
	MsgID   string    `json:"msgId,omitempty"`
	Error   string    `json:"error,omitempty"`
	Entries []Verdict `json:"entries,omitempty"`
}

func (b *Bridge) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathNotifications, b.handleNotifications)
	mux.HandleFunc("POST "+PathLinks, b.handleLinks)
	mux.HandleFunc("POST "+PathPaymentStatus, b.handlePaymentStatus)
	mux.HandleFunc("GET /healthz", b.handleHealthz)
	if b.cfg.Operator.Listen == "" {
		b.operatorRoutes(mux)
	}
	return mux
}

// reply writes a JSON answer and counts it.
func (b *Bridge) reply(w http.ResponseWriter, endpoint string, code int, v any) {
	b.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// refuse records a refused input and answers code with the message.
func (b *Bridge) refuse(w http.ResponseWriter, endpoint string, code int, kind, msgID, msg string) {
	b.record(&Refusal{Endpoint: endpoint, Kind: kind, MsgID: msgID, Message: msg})
	b.reply(w, endpoint, code, Response{MsgID: msgID, Error: msg})
}

// record stores refusals; a failure to store one is logged, never fatal:
// the refusal itself has already been decided.
func (b *Bridge) record(rs ...*Refusal) {
	for _, r := range rs {
		r.At = b.now().UTC()
		b.metrics.refusals.WithLabelValues(r.Kind).Inc()
		b.log.Info("input refused", "endpoint", r.Endpoint, "kind", r.Kind, "msgId", r.MsgID, "ref", r.Ref, "reason", r.Message)
	}
	if err := b.store.AddRefusals(rs...); err != nil {
		b.log.Error("record refused input", "err", err)
	}
}

// readSigned reads a bounded body and checks its HMAC. On failure it has
// answered (and recorded) already and returns ok=false.
func (b *Bridge) readSigned(w http.ResponseWriter, r *http.Request, endpoint string) ([]byte, bool) {
	max := int64(b.cfg.Limits.MaxBodyBytes)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.refuse(w, endpoint, http.StatusRequestEntityTooLarge, RefusedTooLarge, "",
			fmt.Sprintf("body is over %d bytes (limits.max-body-bytes)", max))
		return nil, false
	}
	if err != nil {
		b.refuse(w, endpoint, http.StatusBadRequest, RefusedMalformed, "", "read body: "+err.Error())
		return nil, false
	}
	if err := Verify(b.intakeSecret, body, r.Header.Get(SignatureHeader), b.now(), b.cfg.Auth.MaxSkew.D()); err != nil {
		var ae *AuthError
		kind := RefusedBadSignature
		if errors.As(err, &ae) {
			kind = ae.Kind
		}
		b.refuse(w, endpoint, http.StatusUnauthorized, kind, "", err.Error())
		return nil, false
	}
	return body, true
}

// isXML tells XML from JSON by the first byte that is not white space or
// a byte order mark.
func isXML(body []byte) bool {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	body = bytes.TrimLeft(body, " \t\r\n")
	return len(body) > 0 && body[0] == '<'
}

// ---- notifications ----

func (b *Bridge) handleNotifications(w http.ResponseWriter, r *http.Request) {
	const ep = PathNotifications
	body, ok := b.readSigned(w, r, ep)
	if !ok {
		return
	}
	var n *Notification
	var err error
	if isXML(body) {
		n, err = parseCamt054(body)
	} else {
		n, err = parseJSONNotification(body)
	}
	if err != nil {
		b.refuse(w, ep, http.StatusBadRequest, RefusedMalformed, "", err.Error())
		return
	}
	if err := b.checkNotification(n); err != nil {
		b.refuse(w, ep, http.StatusBadRequest, RefusedMalformed, n.MsgID, err.Error())
		return
	}
	resp, code, err := b.processNotification(ep, n)
	if err != nil {
		// Not durable: the core must resend, and will get the same verdicts.
		b.log.Error("notification not recorded", "msgId", n.MsgID, "err", err)
		b.reply(w, ep, http.StatusServiceUnavailable, Response{MsgID: n.MsgID, Error: "not recorded, resend: " + err.Error()})
		return
	}
	b.reply(w, ep, code, resp)
}

// checkNotification refuses a notification as a whole: no message id, no
// entries or too many, an entry without a usable reference (a deposit is
// keyed by it, so without one it cannot be recorded even as held).
func (b *Bridge) checkNotification(n *Notification) error {
	if err := checkText("msgId", n.MsgID, maxRefLen); err != nil {
		return err
	}
	if len(n.Entries) == 0 {
		return errors.New("the notification has no entries")
	}
	if len(n.Entries) > b.cfg.Limits.MaxEntries {
		return fmt.Errorf("the notification has %d entries, at most %d are accepted (limits.max-entries)", len(n.Entries), b.cfg.Limits.MaxEntries)
	}
	for i, e := range n.Entries {
		// A batch's transaction without a reference of its own is
		// "<entry ref>/<n>": a little over Max35Text.
		if err := checkText("ref", e.Ref, maxRefLen+8); err != nil {
			return fmt.Errorf("entries[%d]: %w", i, err)
		}
	}
	return nil
}

// processNotification records the credit entries as deposits in one
// synced batch, applies the debit entries and returns as payout outcomes
// and the reversed credits as deposit reversals. The answer is 200 when
// every entry went through (or was a duplicate of one that did), 422 when
// any entry is held, conflicts or names nothing known: those are recorded
// too, so a resend changes nothing and gets the same answer. A reversal of
// a deposit whose mint is in flight is answered 503: the bank resends it
// and by then the mint has an outcome.
func (b *Bridge) processNotification(ep string, n *Notification) (Response, int, error) {
	resp := Response{MsgID: n.MsgID, Entries: make([]Verdict, len(n.Entries))}
	var deps []*Deposit
	var depIdx []int
	var holds []string // refusal kind per deposit (empty when accepted)
	now := b.now().UTC()
	retry := false
	for i, e := range n.Entries {
		if e.ReportedAccount == "" {
			e.ReportedAccount = b.cfg.BankCore.DebtorAccount
		}
		if !e.Booked {
			resp.Entries[i] = Verdict{Ref: e.Ref, Verdict: VerdictIgnored, Reason: "entry is not booked yet; it is minted when reported booked"}
			continue
		}
		if it, ok := payoutItem(e); ok {
			resp.Entries[i] = b.applyOutcome(ep, n.MsgID, it)
			resp.Entries[i].Ref = e.Ref
			retry = retry || resp.Entries[i].later
			continue
		}
		if !e.Credit { // a reversed credit: a deposit taken back
			v, again := b.reverseDeposit(ep, n.MsgID, e, now)
			resp.Entries[i], retry = v, retry || again
			continue
		}
		d, kind := b.newDeposit(n.MsgID, e, now)
		deps = append(deps, d)
		depIdx = append(depIdx, i)
		holds = append(holds, kind)
	}
	results, err := b.store.AddDeposits(deps)
	if err != nil {
		return resp, 0, err
	}
	if len(deps) > 0 && b.crashAt(crashAfterDepositsRecorded) {
		return resp, 0, errCrashed // answered 503: the core resends
	}
	var refusals []*Refusal
	problem := false
	newAccepted := false
	for k, res := range results {
		i, d := depIdx[k], deps[k]
		v := Verdict{Ref: d.Ref, BankRef: d.BankRef.Hex(), Status: string(res.Deposit.Status), Reason: res.Deposit.Reason}
		switch {
		case res.Duplicate && res.Deposit.sameEntry(d):
			// A resend gets the answer the first send got.
			v.Verdict = VerdictDuplicate
			problem = problem || res.Deposit.Status == DepositHeld
		case res.Duplicate:
			v.Verdict = VerdictConflict
			v.Reason = fmt.Sprintf("deposit key %s (account %s, reference %q, booked %s) is already recorded (message %s) with %s: a key reused with other content is refused, not taken as a duplicate",
				d.BankRef.Hex()[:10], d.Key.Account, d.Key.Ref, orNone(d.Key.BookingDate), res.Deposit.MsgID, res.Deposit.differs(d))
			refusals = append(refusals, &Refusal{Endpoint: ep, Kind: RefusedConflict, MsgID: n.MsgID, Ref: d.Ref, Message: v.Reason})
			problem = true
		case d.Status == DepositHeld:
			v.Verdict = VerdictHeld
			refusals = append(refusals, &Refusal{Endpoint: ep, Kind: holds[k], MsgID: n.MsgID, Ref: d.Ref, Message: d.Reason})
			problem = true
		default:
			v.Verdict = VerdictAccepted
			newAccepted = true
		}
		b.metrics.entries.WithLabelValues(v.Verdict).Inc()
		resp.Entries[i] = v
	}
	for _, v := range resp.Entries {
		if v.Verdict == VerdictConflict || v.Verdict == VerdictUnknown {
			problem = true
		}
	}
	if len(refusals) > 0 {
		b.record(refusals...)
	}
	if newAccepted {
		kick(b.kickOutbox)
	}
	if retry {
		resp.Error = "an entry cannot be applied yet (a reversed deposit's mint in flight, or a payout this instance has not followed yet); the others are recorded, resend this notification"
		return resp, http.StatusServiceUnavailable, nil
	}
	if problem {
		resp.Error = "some entries were not accepted (see their verdicts); all are recorded, do not resend"
		return resp, http.StatusUnprocessableEntity, nil
	}
	return resp, http.StatusOK, nil
}

func orNone(s string) string {
	if s == "" {
		return "(no date)"
	}
	return s
}

// reverseDeposit applies a reversed credit (a debit entry with RvslInd):
// the deposit it names (same account and transaction reference, booked
// any day) is reversed: not minted → never minted; minted → reversing, an
// unhandled reversal raised to the operator (refusal record, metric, log)
// until the chain takes the money back. retry is set while the deposit's
// mint is in flight.
func (b *Bridge) reverseDeposit(ep, msgID string, e Entry, now time.Time) (v Verdict, retry bool) {
	v = Verdict{Ref: e.Ref}
	ds, err := b.store.DepositsByRef(e.ReportedAccount, e.Ref, 8)
	if err != nil {
		v.Verdict, v.Reason = VerdictUnknown, "not recorded, resend: "+err.Error()
		return v, false
	}
	var match []*Deposit
	for _, d := range ds {
		if d.Amount == e.Amount && d.Currency == e.Currency || len(ds) == 1 {
			match = append(match, d)
		}
	}
	if len(match) != 1 {
		v.Verdict = VerdictUnknown
		v.Reason = fmt.Sprintf("reversal of %q on account %s names %d recorded deposits (%d with amount %s %s); an operator must match it",
			e.Ref, e.ReportedAccount, len(ds), len(match), e.Amount, e.Currency)
		b.metrics.unhandled.WithLabelValues("deposit-reversal").Inc()
		b.log.Error("deposit reversal not matched", "ref", e.Ref, "reason", v.Reason)
		b.record(&Refusal{Endpoint: ep, Kind: RefusedUnhandledReversal, MsgID: msgID, Ref: truncate(e.Ref, 40), Message: v.Reason})
		return v, false
	}
	d, changed, err := b.store.ReverseDeposit(match[0].BankRef, Reversal{At: now, MsgID: msgID, Ref: e.EntryRef, Reason: e.Return})
	if err != nil {
		v.Verdict, v.Reason = VerdictUnknown, "not recorded, resend: "+err.Error()
		return v, false
	}
	v.BankRef, v.Status = d.BankRef.Hex(), string(d.Status)
	switch {
	case !changed:
		v.Verdict = VerdictDuplicate
	default:
		v.Verdict = VerdictReversed
	}
	switch d.Status {
	case DepositReversing:
		v.Reason = "the deposit was minted: the reverser takes it back from the wallet (reverseMint)"
		if changed {
			b.log.Warn("minted deposit reversed by the bank: reverseMint due", "ref", d.Ref, "bankRef", d.BankRef, "wallet", d.Wallet, "amount", d.Amount)
			kick(b.kickReverser)
		}
	case DepositSubmitted:
		v.Reason = "the deposit's mint is in flight; resend for the outcome"
		return v, true
	default:
		v.Reason = "reversed before it was minted: it never will be"
	}
	b.metrics.entries.WithLabelValues(v.Verdict).Inc()
	return v, false
}

// raiseReversing raises a minted deposit the bank reversed that the chain
// will not take back (d.Reason says why): an error log, the
// unhandled-returns metric and an unhandled-reversal refusal in
// /v1/status, for the operator.
func (b *Bridge) raiseReversing(ep, msgID string, d *Deposit) {
	msg := fmt.Sprintf("deposit %s was minted to %s and the bank reversed it; %s: an operator must settle %s %s with the holder",
		d.Ref, d.Wallet, d.Reason, d.Amount, d.Currency)
	b.metrics.unhandled.WithLabelValues("deposit-reversal").Inc()
	b.log.Error("reversed deposit not taken back", "ref", d.Ref, "bankRef", d.BankRef, "wallet", d.Wallet, "amount", d.Amount, "reason", d.Reason)
	b.record(&Refusal{Endpoint: ep, Kind: RefusedUnhandledReversal, MsgID: msgID, Ref: d.Ref, Message: msg})
}

// newDeposit turns a credit entry into a deposit record: accepted when it
// can be minted as is, else held with the reason and the refusal kind.
func (b *Bridge) newDeposit(msgID string, e Entry, now time.Time) (*Deposit, string) {
	key := DepositKey{Account: e.ReportedAccount, Ref: e.Ref, BookingDate: e.BookingDate}
	d := &Deposit{Key: key, BankRef: key.BankRef(b.bank, b.info.Symbol), Ref: e.Ref, EntryRef: e.EntryRef, MsgID: msgID,
		EndToEndID: e.EndToEndID, UETR: e.UETR, Account: e.Account, Amount: e.Amount, Currency: e.Currency, Status: DepositAccepted,
		ReceivedAt: now, UpdatedAt: now}
	hold := func(kind, format string, args ...any) (*Deposit, string) {
		d.Status = DepositHeld
		d.Reason = fmt.Sprintf(format, args...)
		return d, kind
	}
	if len(d.Amount) > maxAmountLen {
		d.Amount = truncate(d.Amount, maxAmountLen)
	}
	if len(d.Account) > 2*maxAccountLen {
		d.Account = truncate(d.Account, 2*maxAccountLen)
	}
	if e.Problem != "" {
		return hold(RefusedMalformed, "%s", e.Problem)
	}
	if e.Currency != b.info.Symbol {
		return hold(RefusedUnknownCurrency, "currency %q is not this bridge's asset %s", truncate(e.Currency, 8), b.info.Symbol)
	}
	if strings.HasPrefix(strings.TrimSpace(e.Amount), "-") {
		return hold(RefusedBadAmount, "amount %q is negative", d.Amount)
	}
	units, err := wallet.ParseAmount(e.Amount, b.info.Decimals)
	if err != nil {
		return hold(RefusedBadAmount, "amount: %v (%s has %d decimals)", err, b.info.Symbol, b.info.Decimals)
	}
	d.Units = units
	if units.Sign() == 0 {
		return hold(RefusedBadAmount, "amount %q is zero", e.Amount)
	}
	w, how, kind, reason := b.route(e)
	if reason != "" {
		return hold(kind, "%s", reason)
	}
	d.Wallet, d.RoutedBy = w, how
	return d, ""
}

// ---- payment status ----

func (b *Bridge) handlePaymentStatus(w http.ResponseWriter, r *http.Request) {
	const ep = PathPaymentStatus
	body, ok := b.readSigned(w, r, ep)
	if !ok {
		return
	}
	var rep *StatusReport
	var err error
	if isXML(body) {
		rep, err = parseStatusXML(body)
	} else {
		rep, err = parseJSONStatusReport(body)
	}
	if err != nil {
		b.refuse(w, ep, http.StatusBadRequest, RefusedMalformed, "", err.Error())
		return
	}
	if err := checkText("msgId", rep.MsgID, maxRefLen); err != nil {
		b.refuse(w, ep, http.StatusBadRequest, RefusedMalformed, "", err.Error())
		return
	}
	if len(rep.Items) == 0 || len(rep.Items) > b.cfg.Limits.MaxEntries {
		b.refuse(w, ep, http.StatusBadRequest, RefusedMalformed, rep.MsgID,
			fmt.Sprintf("the report has %d statuses, 1..%d are accepted (limits.max-entries)", len(rep.Items), b.cfg.Limits.MaxEntries))
		return
	}
	resp := Response{MsgID: rep.MsgID}
	code := http.StatusOK
	later := false
	for _, it := range rep.Items {
		v := b.applyOutcome(ep, rep.MsgID, it)
		later = later || v.later
		if v.Verdict == VerdictUnknown || v.Verdict == VerdictConflict {
			code = http.StatusUnprocessableEntity
			resp.Error = "some statuses were not applied (see their verdicts)"
		}
		resp.Entries = append(resp.Entries, v)
	}
	if later {
		code = http.StatusServiceUnavailable
		resp.Error = "a status names a payout this instance has not followed yet; the others are recorded, resend this report"
	}
	b.reply(w, ep, code, resp)
}

// outcomeClass is the class of the final word a payout has had (see
// classify): classProgress when none yet.
func outcomeClass(p *Payout) statusClass {
	switch p.Outcome {
	case "":
		return classProgress
	case statusReturned:
		return classReturned
	case statusBooked, iso20022.StatusAcceptedSettlementCompleted:
		return classSettled
	}
	return classRejected
}

// applyOutcome applies one thing the bank said about a payout
// (docs/bridge.md, "Payout statuses"). Progress and duplicate-message
// rejections are noted on the record and decide nothing (a payout still
// new becomes ordered: the bank has its order). The first final word
// decides: settled (a transaction-level ACSC, a booked debit whose
// amount, currency and EndToEndId match) → settling; rejected → refunding,
// only while nothing final was seen; returned → refunding before a
// settlement, returning after one. The same final word again is a
// duplicate; the opposite one is a conflict, refused and recorded: the
// first stands. A booked debit that names no payout of this bridge is
// ignored (the omnibus account has other debits too).
func (b *Bridge) applyOutcome(ep, msgID string, it StatusItem) Verdict {
	return b.applyOutcomeLogged(ep, msgID, it, nil)
}

// applyOutcomeLogged is applyOutcome for an operator's manual outcome
// too: with op set, the payout's change and the operator log entry are
// one batch (the entry's Result says what the rule decided).
func (b *Bridge) applyOutcomeLogged(ep, msgID string, it StatusItem, op *OpEntry) Verdict {
	v := Verdict{EndToEndID: it.EndToEndID}
	if v.EndToEndID == "" {
		v.Ref = it.Ref
	}
	id, _, ok := parsePayoutRef(b.info.ChainID, b.info.Symbol, it.Ref)
	if !ok && it.Level == LevelBooking {
		v.Verdict, v.Reason = VerdictIgnored, "a debit entry without an EndToEndId of this bridge's payouts"
		b.metrics.entries.WithLabelValues(v.Verdict).Inc()
		return v
	}
	unknown := func(reason string) Verdict {
		v.Verdict, v.Reason = VerdictUnknown, reason
		b.record(&Refusal{Endpoint: ep, Kind: RefusedUnknownPayout, MsgID: msgID, Ref: truncate(it.Ref, 40), Message: reason})
		b.metrics.entries.WithLabelValues(v.Verdict).Inc()
		return v
	}
	if !ok {
		return unknown(fmt.Sprintf("%q is not an identifier of this bridge's payouts (TALLY-%d-%s-<M|P|I|W><id>)",
			truncate(it.Ref, 40), b.info.ChainID, b.info.Symbol))
	}
	cls := classify(it)
	now := b.now().UTC()
	var conflict string
	decide := func(p *Payout) (bool, error) {
		if (cls == classSettled || cls == classReturned) && it.Amount != "" {
			if msg := b.sameAmount(p, it); msg != "" {
				v.Verdict, conflict = VerdictConflict, msg
				return false, nil
			}
		}
		was := outcomeClass(p)
		note := StatusNote{At: now, MsgID: msgID, Level: it.Level, Status: it.Status, Reason: it.Reason}
		switch {
		case cls == classProgress || cls == classDuplicate:
			p.note(note)
			if p.Status == PayoutNew {
				p.Status = PayoutOrdered // the bank has the order: stop sending it
			}
			v.Verdict = VerdictNoted
		case was == classProgress && cls == classSettled:
			p.Status, p.Outcome = PayoutSettling, it.Status
		case was == classProgress: // rejected or returned before anything final
			p.Status, p.Outcome, p.Reason = PayoutRefunding, it.Status, it.Reason
			if p.Reason == "" {
				p.Reason = "no reason given"
			}
		case cls == classReturned && was == classSettled:
			if p.Returned != "" {
				v.Verdict = VerdictDuplicate
				return false, nil
			}
			p.Status, p.Returned, p.ReturnReason = PayoutReturning, it.Status, it.Reason
			if p.ReturnReason == "" {
				p.ReturnReason = "no reason given"
			}
		case cls == was, cls == classSettled && was == classReturned:
			// The same word again; or the bank confirms it paid a payout
			// whose return is already known: both are consistent.
			v.Verdict = VerdictDuplicate
			return false, nil
		default:
			v.Verdict = VerdictConflict
			conflict = fmt.Sprintf("payout %s already has outcome %s; %s (%s level) is refused", p.EndToEndID, p.Outcome, it.Status, it.Level)
			return false, nil
		}
		p.UpdatedAt = now
		return true, nil
	}
	p, err := b.store.ModifyPayoutLogged(id, op, func(p *Payout) (bool, error) {
		write, err := decide(p)
		if op != nil {
			op.Result = ResultDone
			switch {
			case v.Verdict == VerdictDuplicate:
				op.Result = "no change: the payout has this outcome already"
			case !write:
				op.Result = strings.TrimSpace("refused: " + v.Verdict + " " + conflict)
			}
		}
		return write, err
	})
	if errors.Is(err, ErrNotFound) {
		if b.followingBehind(id) {
			v.Verdict, v.later = VerdictUnknown, true
			v.Reason = fmt.Sprintf("withdrawal %d is claimed by this bank on chain, not yet followed by this instance: resend", id)
			b.log.Info("payout status for a withdrawal not followed yet: resend asked", "id", id, "msgId", msgID)
			return v
		}
		return unknown(fmt.Sprintf("no payout of withdrawal %d is recorded", id))
	}
	if err != nil {
		// Not recorded: the core resends it (5xx would be better, but
		// the other items may have gone through; say so).
		v.Verdict, v.Reason = VerdictUnknown, "not recorded, resend: "+err.Error()
		b.log.Error("record payout outcome", "id", id, "err", err)
		return v
	}
	if v.EndToEndID == "" {
		v.EndToEndID = p.EndToEndID
	}
	switch {
	case v.Verdict == VerdictNoted:
		b.log.Info("payout status noted", "id", id, "status", it.Status, "level", it.Level, "reason", it.Reason)
	case v.Verdict == "":
		switch p.Status {
		case PayoutSettling:
			v.Verdict = VerdictSettling
		case PayoutReturning:
			v.Verdict = VerdictReturning
			b.log.Warn("settled payout returned by the bank", "id", id, "reason", it.Reason)
		default:
			v.Verdict = VerdictRefunding
		}
		kick(b.kickCloser)
	}
	if conflict != "" {
		v.Reason = conflict
		b.record(&Refusal{Endpoint: ep, Kind: RefusedConflict, MsgID: msgID, Ref: p.EndToEndID, Message: conflict})
	}
	v.Status = string(p.Status)
	b.metrics.entries.WithLabelValues(v.Verdict).Inc()
	return v
}

// sameAmount checks a booked debit's or a return's amount and currency
// against the payout's; it returns why they differ, or "". A return may
// come back short of the bank's charges, so it may be less, never more.
func (b *Bridge) sameAmount(p *Payout, it StatusItem) string {
	if it.Currency != b.info.Symbol {
		return fmt.Sprintf("payout %s is in %s; the bank's %s is in %q", p.EndToEndID, b.info.Symbol, it.Status, truncate(it.Currency, 8))
	}
	units, err := wallet.ParseAmount(it.Amount, b.info.Decimals)
	switch {
	case err != nil:
		return fmt.Sprintf("payout %s: the bank's %s amount %q: %v", p.EndToEndID, it.Status, truncate(it.Amount, 40), err)
	case it.Status == statusReturned && units.Sign() > 0 && units.Cmp(p.Amount) <= 0:
		return ""
	case units.Cmp(p.Amount) != 0:
		return fmt.Sprintf("payout %s is %s %s; the bank's %s says %s", p.EndToEndID, wallet.FormatAmount(p.Amount, b.info.Decimals),
			b.info.Symbol, it.Status, it.Amount)
	}
	return ""
}

// ---- links ----

// route finds the wallet of a deposit the ways routing.by lists: the
// debtor account's link, the creditor reference's or the credited virtual
// account's registration. It returns the wallet and the way, or the
// refusal kind and the reason to hold the deposit: no way names a wallet,
// or (routing.strict) two name different ones.
func (b *Bridge) route(e Entry) (common.Address, string, string, string) {
	var found common.Address
	how := ""
	var tried []string
	for _, way := range b.cfg.Routing.By {
		var id string
		var l *Link
		var err error
		switch way {
		case RouteAccount:
			id = e.Account
			if checkText("account", id, maxAccountLen) != nil {
				tried = append(tried, fmt.Sprintf("debtor account %q is not usable", truncate(id, 40)))
				continue
			}
			l, err = b.store.Link(id)
		case RouteCreditorReference:
			id = e.CreditorRef
			if id == "" {
				continue
			}
			if cerr := iso20022.CheckCreditorReference(id); cerr != nil {
				tried = append(tried, cerr.Error())
				continue
			}
			l, err = b.store.Route(way, id)
		case RouteVirtualAccount:
			id = e.CreditedAccount
			if id == "" {
				continue
			}
			l, err = b.store.Route(way, id)
		}
		switch {
		case errors.Is(err, ErrNotFound):
			tried = append(tried, fmt.Sprintf("%s %q is not linked to a wallet", strings.ReplaceAll(way, "-", " "), id))
			continue
		case err != nil:
			return common.Address{}, "", RefusedUnknownAccount, fmt.Sprintf("%s %q: %v", way, id, err)
		}
		switch {
		case how == "":
			found, how = l.Wallet, way
		case l.Wallet != found && b.cfg.Routing.Strict:
			return common.Address{}, "", RefusedRoutingConflict, fmt.Sprintf("the deposit's %s names wallet %s but its %s names %s (routing.strict)",
				how, found, way, l.Wallet)
		}
		if !b.cfg.Routing.Strict {
			break
		}
	}
	if how == "" {
		if len(tried) == 0 {
			tried = append(tried, "it carries nothing routing.by can route by")
		}
		return common.Address{}, "", RefusedUnknownAccount, "no wallet for this deposit: " + strings.Join(tried, "; ")
	}
	return found, how, "", ""
}

// LinkMessage is the text a wallet signs (EIP-191 personal_sign) to link a
// bank account to itself: four lines joined by "\n", no trailing newline;
// addresses EIP-55 checksummed.
func LinkMessage(bank common.Address, account string, wallet common.Address) string {
	return "Tally account link\nbank: " + bank.Hex() + "\naccount: " + account + "\nwallet: " + wallet.Hex()
}

// LinkRequest is the body of POST /v1/links.
type LinkRequest struct {
	Account   string `json:"account,omitempty"`
	Wallet    string `json:"wallet"`
	Signature string `json:"signature"`
	// Name is the account holder's name (optional, at most 140
	// characters): the creditor name of the account's payout orders,
	// which most banks require. It is not part of the signed text: the
	// bank, which authenticated the customer, vouches for it with the HMAC.
	Name string `json:"name,omitempty"`
	// Reference or VirtualAccount, instead of Account, register an ISO
	// 11649 creditor reference or a virtual account number for the wallet
	// (docs/bridge.md, "Routing deposits"), signed over RouteMessage.
	Reference      string `json:"reference,omitempty"`
	VirtualAccount string `json:"virtualAccount,omitempty"`
}

func (b *Bridge) handleLinks(w http.ResponseWriter, r *http.Request) {
	const ep = PathLinks
	body, ok := b.readSigned(w, r, ep)
	if !ok {
		return
	}
	var req LinkRequest
	if err := config.DecodeJSON(body, &req); err != nil {
		b.refuse(w, ep, http.StatusBadRequest, RefusedMalformed, "", "link request: "+err.Error())
		return
	}
	kind, l, err := b.verifyLink(&req)
	if err != nil {
		b.refuse(w, ep, http.StatusBadRequest, RefusedBadLink, "", err.Error())
		return
	}
	if kind == RouteAccount {
		err = b.store.PutLink(l)
	} else {
		err = b.store.PutRoute(kind, l)
	}
	if err != nil {
		b.log.Error("link not recorded", kind, l.Account, "err", err)
		b.reply(w, ep, http.StatusServiceUnavailable, Response{Error: "not recorded, resend: " + err.Error()})
		return
	}
	b.log.Info(kind+" linked", kind, l.Account, "wallet", l.Wallet)
	// The wallet EIP-55 checksummed, as the signed text has it (a
	// common.Address would answer it in lower case).
	b.reply(w, ep, http.StatusOK, map[string]any{"kind": kind, "account": l.Account, "wallet": l.Wallet.Hex(), "linkedAt": l.LinkedAt})
}

// RouteMessage is the text a wallet signs to have deposits carrying a
// creditor reference (kind RouteCreditorReference) or paid into a virtual
// account (RouteVirtualAccount) minted to it; LinkMessage is the one for
// an account (RouteAccount).
func RouteMessage(kind string, bank common.Address, id string, wallet common.Address) string {
	switch kind {
	case RouteCreditorReference:
		return "Tally creditor reference\nbank: " + bank.Hex() + "\nreference: " + id + "\nwallet: " + wallet.Hex()
	case RouteVirtualAccount:
		return "Tally virtual account\nbank: " + bank.Hex() + "\naccount: " + id + "\nwallet: " + wallet.Hex()
	}
	return LinkMessage(bank, id, wallet)
}

// verifyLink checks a link request: exactly one of account, reference and
// virtualAccount, well formed, and a signature over its RouteMessage that
// recovers the wallet.
func (b *Bridge) verifyLink(req *LinkRequest) (string, *Link, error) {
	kind, id := RouteAccount, req.Account
	n := 0
	for k, v := range map[string]string{RouteAccount: req.Account, RouteCreditorReference: req.Reference, RouteVirtualAccount: req.VirtualAccount} {
		if v != "" {
			kind, id = k, v
			n++
		}
	}
	if n != 1 {
		return "", nil, errors.New("give exactly one of account, reference and virtualAccount")
	}
	switch kind {
	case RouteCreditorReference:
		if err := iso20022.CheckCreditorReference(id); err != nil {
			return "", nil, fmt.Errorf("reference: %v", err)
		}
	default:
		if err := checkText(map[string]string{RouteAccount: "account", RouteVirtualAccount: "virtualAccount"}[kind], id, maxAccountLen); err != nil {
			return "", nil, err
		}
		if looksLikeIBAN(id) {
			if err := iso20022.CheckIBAN(id); err != nil {
				return "", nil, fmt.Errorf("account: %v", err)
			}
		}
	}
	if req.Name != "" {
		if err := checkText("name", req.Name, 140); err != nil {
			return "", nil, err
		}
	}
	wallet, err := crypto.ParseAddress(req.Wallet)
	if err != nil {
		return "", nil, fmt.Errorf("wallet: %v", err)
	}
	orig, err := hexutil.Decode(req.Signature)
	if err != nil || len(orig) != 65 {
		return "", nil, errors.New("signature: want 0x and 130 hex digits (65 bytes: r, s, v)")
	}
	sig := bytes.Clone(orig)
	if sig[64] >= 27 {
		sig[64] -= 27
	}
	if sig[64] > 1 {
		return "", nil, fmt.Errorf("signature: recovery id v=%d is not 0, 1, 27 or 28", orig[64])
	}
	msg := RouteMessage(kind, b.bank, id, wallet)
	pub, err := ethcrypto.SigToPub(accounts.TextHash([]byte(msg)), sig)
	if err != nil {
		return "", nil, fmt.Errorf("signature does not recover a key: %v", err)
	}
	if got := ethcrypto.PubkeyToAddress(*pub); got != wallet {
		return "", nil, fmt.Errorf("signature is by %s, not by wallet %s (the signed text must be exactly %q)", got, wallet, msg)
	}
	return kind, &Link{Account: id, Wallet: wallet, Name: req.Name, Signature: orig, LinkedAt: b.now().UTC()}, nil
}

// ---- status and health ----

// Status is the answer of GET /v1/status.
type Status struct {
	ChainID uint64         `json:"chainId"`
	Asset   string         `json:"asset"`
	Bank    common.Address `json:"bank"`
	Counts
	// LastProcessedHeight is the last block the follower has read (null
	// before the first read).
	LastProcessedHeight *uint64      `json:"lastProcessedHeight"`
	LastError           *WorkerError `json:"lastError"`
	RecentRefusals      []*Refusal   `json:"recentRefusals"`
}

// recentRefusals is how many refusals /v1/status lists.
const recentRefusals = 20

// Status returns what /v1/status shows.
func (b *Bridge) Status() (*Status, error) {
	s := &Status{ChainID: b.info.ChainID, Asset: b.info.Symbol, Bank: b.bank, Counts: b.store.Counts(), LastError: b.lastErr.Load()}
	next, set, err := b.store.Cursor()
	if err != nil {
		return nil, err
	}
	if set && next > 0 {
		h := next - 1
		s.LastProcessedHeight = &h
	}
	if s.RecentRefusals, err = b.store.Refusals(recentRefusals); err != nil {
		return nil, err
	}
	return s, nil
}

func (b *Bridge) handleStatus(w http.ResponseWriter, _ *http.Request) {
	s, err := b.Status()
	if err != nil {
		b.reply(w, PathStatus, http.StatusInternalServerError, Response{Error: err.Error()})
		return
	}
	b.reply(w, PathStatus, http.StatusOK, s)
}

func (b *Bridge) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if _, _, err := b.store.Cursor(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "{\"status\":%q}\n", "store: "+err.Error())
		return
	}
	fmt.Fprintf(w, "{\"status\":\"ok\",\"asset\":%q}\n", b.info.Symbol)
}

// followingBehind reports whether withdrawal id, of which this instance
// has no payout, is claimed by this bank on chain: another instance of
// the bank ordered it and this one's follower has not reached it yet, so
// a report of its outcome must be resent, not refused (a bank does not
// resend a message refused with a 4xx; the instance that ordered would
// wait for an outcome for ever). Unreadable chain: not known to be behind.
func (b *Bridge) followingBehind(id uint64) bool {
	if b.nodes == nil { // a bridge without nodes (the intake fuzz target) cannot tell
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Nodes.Timeout.D())
	defer cancel()
	w, err := b.withdrawalOnChain(ctx, id)
	return err == nil && w.Status != 0 && w.Bank == b.info.Bank
}
