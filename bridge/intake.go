package bridge

import (
	"bytes"
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
	VerdictNoted     = "noted"     // an intermediate payout status; nothing changes
	VerdictUnknown   = "unknown"   // no payout has this EndToEndId
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
	mux.HandleFunc("GET "+PathStatus, b.handleStatus)
	mux.Handle("GET /metrics", b.metrics.handler())
	mux.HandleFunc("GET /healthz", b.handleHealthz)
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
	if err := Verify(b.secret, body, r.Header.Get(SignatureHeader), b.now(), b.cfg.Auth.MaxSkew.D()); err != nil {
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
		if err := checkText("ref", e.Ref, maxRefLen); err != nil {
			return fmt.Errorf("entries[%d]: %w", i, err)
		}
	}
	return nil
}

// processNotification records the credit entries as deposits in one
// synced batch and applies the debit entries as payout outcomes. The
// answer is 200 when every entry went through (or was a duplicate of one
// that did), 422 when any entry is held or conflicts: those are recorded
// too, so a resend changes nothing and gets the same answer.
func (b *Bridge) processNotification(ep string, n *Notification) (Response, int, error) {
	resp := Response{MsgID: n.MsgID, Entries: make([]Verdict, len(n.Entries))}
	var deps []*Deposit
	var depIdx []int
	var holds []string // refusal kind per deposit (empty when accepted)
	now := b.now().UTC()
	for i, e := range n.Entries {
		if !e.Booked {
			resp.Entries[i] = Verdict{Ref: e.Ref, Verdict: VerdictIgnored, Reason: "entry is not booked yet; it is minted when reported booked"}
			continue
		}
		if !e.Credit {
			resp.Entries[i] = b.applyOutcome(ep, n.MsgID, StatusItem{EndToEndID: e.EndToEndID, Status: "BOOK"}, true)
			resp.Entries[i].Ref = e.Ref
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
			v.Reason = fmt.Sprintf("reference %q is already recorded for account %q, amount %s %s; this entry says account %q, amount %s %s",
				d.Ref, res.Deposit.Account, res.Deposit.Amount, res.Deposit.Currency, d.Account, d.Amount, d.Currency)
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
	if problem {
		resp.Error = "some entries were not accepted (see their verdicts); all are recorded, do not resend"
		return resp, http.StatusUnprocessableEntity, nil
	}
	return resp, http.StatusOK, nil
}

// newDeposit turns a credit entry into a deposit record: accepted when it
// can be minted as is, else held with the reason and the refusal kind.
func (b *Bridge) newDeposit(msgID string, e Entry, now time.Time) (*Deposit, string) {
	d := &Deposit{BankRef: BankRef(b.bank, b.info.Symbol, e.Ref), Ref: e.Ref, MsgID: msgID, EndToEndID: e.EndToEndID,
		Account: e.Account, Amount: e.Amount, Currency: e.Currency, Status: DepositAccepted, ReceivedAt: now, UpdatedAt: now}
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
	if err := checkText("account", e.Account, maxAccountLen); err != nil {
		return hold(RefusedUnknownAccount, "%v", err)
	}
	l, err := b.store.Link(e.Account)
	if errors.Is(err, ErrNotFound) {
		return hold(RefusedUnknownAccount, "account %q is not linked to a wallet", e.Account)
	}
	if err != nil {
		return hold(RefusedUnknownAccount, "account %q: %v", e.Account, err)
	}
	d.Wallet = l.Wallet
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
	for _, it := range rep.Items {
		v := b.applyOutcome(ep, rep.MsgID, it, false)
		if v.Verdict == VerdictUnknown || v.Verdict == VerdictConflict {
			code = http.StatusUnprocessableEntity
			resp.Error = "some statuses were not applied (see their verdicts)"
		}
		resp.Entries = append(resp.Entries, v)
	}
	b.reply(w, ep, code, resp)
}

// applyOutcome applies one payout outcome: a payout still new or ordered
// moves to settling (ACSC, ACCP, a booked debit) or refunding (RJCT);
// the same outcome again is a duplicate; the opposite outcome after one
// was recorded is a conflict, refused: the first outcome stands. fromDebit
// marks a camt.054 debit entry, which is ignored when it carries no payout
// id of this bridge (the omnibus account has other debits too).
func (b *Bridge) applyOutcome(ep, msgID string, it StatusItem, fromDebit bool) Verdict {
	v := Verdict{EndToEndID: it.EndToEndID}
	id, ok := parsePayoutMsgID(b.info.ChainID, b.info.Symbol, it.EndToEndID)
	if !ok && fromDebit {
		v.Verdict, v.Reason = VerdictIgnored, "a debit entry without an EndToEndId of this bridge's payouts"
		b.metrics.entries.WithLabelValues(v.Verdict).Inc()
		return v
	}
	unknown := func(reason string) Verdict {
		v.Verdict, v.Reason = VerdictUnknown, reason
		b.record(&Refusal{Endpoint: ep, Kind: RefusedUnknownPayout, MsgID: msgID, Ref: truncate(it.EndToEndID, 40), Message: reason})
		b.metrics.entries.WithLabelValues(v.Verdict).Inc()
		return v
	}
	if !ok {
		return unknown(fmt.Sprintf("EndToEndId %q is not a payout of this bridge (TALLY-%d-%s-W<id>)",
			truncate(it.EndToEndID, 40), b.info.ChainID, b.info.Symbol))
	}
	settled, rejected := settledStatus(it.Status), rejectedStatus(it.Status)
	var conflict string
	p, err := b.store.ModifyPayout(id, func(p *Payout) (bool, error) {
		switch p.Status {
		case PayoutNew, PayoutOrdered:
			switch {
			case settled:
				p.Status, p.Outcome = PayoutSettling, it.Status
			case rejected:
				p.Status, p.Outcome = PayoutRefunding, it.Status
				p.Reason = it.Reason
				if p.Reason == "" {
					p.Reason = "no reason given"
				}
			default:
				v.Verdict = VerdictNoted
				return false, nil
			}
			p.UpdatedAt = b.now().UTC()
			return true, nil
		}
		// An outcome is already recorded.
		wasSettled := p.Outcome != "" && settledStatus(p.Outcome)
		switch {
		case settled && wasSettled, rejected && !wasSettled:
			v.Verdict = VerdictDuplicate
		case settled || rejected:
			v.Verdict = VerdictConflict
			conflict = fmt.Sprintf("payout %s already has outcome %s; %s is refused", p.MsgID, p.Outcome, it.Status)
		default:
			v.Verdict = VerdictNoted
		}
		return false, nil
	})
	if errors.Is(err, ErrNotFound) {
		return unknown(fmt.Sprintf("no payout of withdrawal %d is recorded", id))
	}
	if err != nil {
		// The outcome is not recorded: the core resends it (5xx would be
		// better, but the other items may have gone through; say so).
		v.Verdict, v.Reason = VerdictUnknown, "not recorded, resend: "+err.Error()
		b.log.Error("record payout outcome", "id", id, "err", err)
		return v
	}
	if v.Verdict == "" {
		if p.Status == PayoutSettling {
			v.Verdict = VerdictSettling
		} else {
			v.Verdict = VerdictRefunding
		}
		kick(b.kickCloser)
	}
	if conflict != "" {
		v.Reason = conflict
		b.record(&Refusal{Endpoint: ep, Kind: RefusedConflict, MsgID: msgID, Ref: p.MsgID, Message: conflict})
	}
	v.Status = string(p.Status)
	b.metrics.entries.WithLabelValues(v.Verdict).Inc()
	return v
}

// ---- links ----

// LinkMessage is the text a wallet signs (EIP-191 personal_sign) to link a
// bank account to itself: four lines joined by "\n", no trailing newline;
// addresses EIP-55 checksummed.
func LinkMessage(bank common.Address, account string, wallet common.Address) string {
	return "Tally account link\nbank: " + bank.Hex() + "\naccount: " + account + "\nwallet: " + wallet.Hex()
}

// LinkRequest is the body of POST /v1/links.
type LinkRequest struct {
	Account   string `json:"account"`
	Wallet    string `json:"wallet"`
	Signature string `json:"signature"`
}

func (b *Bridge) handleLinks(w http.ResponseWriter, r *http.Request) {
	const ep = PathLinks
	body, ok := b.readSigned(w, r, ep)
	if !ok {
		return
	}
	var req LinkRequest
	if err := decodeStrict(body, &req); err != nil {
		b.refuse(w, ep, http.StatusBadRequest, RefusedMalformed, "", "link request: "+err.Error())
		return
	}
	l, err := b.verifyLink(&req)
	if err != nil {
		b.refuse(w, ep, http.StatusBadRequest, RefusedBadLink, "", err.Error())
		return
	}
	if err := b.store.PutLink(l); err != nil {
		b.log.Error("link not recorded", "account", l.Account, "err", err)
		b.reply(w, ep, http.StatusServiceUnavailable, Response{Error: "not recorded, resend: " + err.Error()})
		return
	}
	b.log.Info("account linked", "account", l.Account, "wallet", l.Wallet)
	b.reply(w, ep, http.StatusOK, map[string]any{"account": l.Account, "wallet": l.Wallet, "linkedAt": l.LinkedAt})
}

// verifyLink checks that the signature over LinkMessage recovers the wallet.
func (b *Bridge) verifyLink(req *LinkRequest) (*Link, error) {
	if err := checkText("account", req.Account, maxAccountLen); err != nil {
		return nil, err
	}
	wallet, err := crypto.ParseAddress(req.Wallet)
	if err != nil {
		return nil, fmt.Errorf("wallet: %v", err)
	}
	orig, err := hexutil.Decode(req.Signature)
	if err != nil || len(orig) != 65 {
		return nil, errors.New("signature: want 0x and 130 hex digits (65 bytes: r, s, v)")
	}
	sig := bytes.Clone(orig)
	if sig[64] >= 27 {
		sig[64] -= 27
	}
	if sig[64] > 1 {
		return nil, fmt.Errorf("signature: recovery id v=%d is not 0, 1, 27 or 28", orig[64])
	}
	msg := LinkMessage(b.bank, req.Account, wallet)
	pub, err := ethcrypto.SigToPub(accounts.TextHash([]byte(msg)), sig)
	if err != nil {
		return nil, fmt.Errorf("signature does not recover a key: %v", err)
	}
	if got := ethcrypto.PubkeyToAddress(*pub); got != wallet {
		return nil, fmt.Errorf("signature is by %s, not by wallet %s (the signed text must be exactly %q)", got, wallet, msg)
	}
	return &Link{Account: req.Account, Wallet: wallet, Signature: orig, LinkedAt: b.now().UTC()}, nil
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
