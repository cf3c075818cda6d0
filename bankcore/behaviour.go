package bankcore

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/tally-ledger/tally/bridge/iso20022"
	"github.com/tally-ledger/tally/config"
)

// This file holds the behaviours of a real bank gateway that a bridge must
// survive (docs/bridge.md, "Bank core simulator"): progress statuses
// before the final one, DU01 for a re-sent MsgId, acknowledgements and
// reports lost or delayed, returns and reversals, batch bookings, and a
// seeded random mode that mixes them.

// minorUnits is the number of decimals of an ISO 4217 currency: a bank
// books amounts at that precision and no finer.
func minorUnits(ccy string) int {
	switch ccy {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	}
	return 2
}

// formatIn writes a non-negative amount with exactly ccy's decimals; the
// amount must not be finer (checkPrecision).
func formatIn(v *big.Int, ccy string) string {
	d := minorUnits(ccy)
	q, r := new(big.Int).QuoRem(new(big.Int).Abs(v), unit, new(big.Int))
	s := q.String()
	if d > 0 {
		s += "." + fmt.Sprintf("%0*d", scale, r)[:d]
	}
	if v.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// checkPrecision refuses an amount finer than its currency allows.
func checkPrecision(v *big.Int, ccy string) error {
	step := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale-minorUnits(ccy))), nil)
	if new(big.Int).Rem(v, step).Sign() != 0 {
		return fmt.Errorf("amount has more decimals than %s has (%d)", ccy, minorUnits(ccy))
	}
	return nil
}

// RandomConfig is the seeded random mode ([random] in sim.toml, or
// --random-seed): with Seed non-zero, each order and report meets each
// misbehaviour with its probability, decided by a generator seeded with
// Seed, so a run can be repeated.
type RandomConfig struct {
	Seed uint64 `toml:"seed" json:"seed"`
	// LoseAck: an accepted order's answer never reaches the bridge (the
	// connection is closed after the order is recorded): the bridge
	// re-sends, and the re-send meets the DU01 check.
	LoseAck float64 `toml:"lose-ack" json:"loseAck"`
	// LoseReport: a progress report (ACTC, ACCP, a DU01) is never sent;
	// with notify-debits a final report may be lost too (the debit's
	// camt.054 still tells).
	LoseReport float64 `toml:"lose-report" json:"loseReport"`
	// DelayReport: a report is held back up to MaxDelay, so later ones
	// overtake it (a late ACCP after the ACSC, a DU01 after the ACSC).
	DelayReport float64  `toml:"delay-report" json:"delayReport"`
	MaxDelay    Duration `toml:"max-delay" json:"maxDelay"`
	// Duplicate: a message to the bridge is delivered twice.
	Duplicate float64 `toml:"duplicate" json:"duplicate"`
	// Reject: a payout is rejected (MS03) after its ACCP.
	Reject float64 `toml:"reject" json:"reject"`
	// Return: a settled payout comes back later (AC04: a camt.054 credit
	// with RtrInf, or a pacs.004, one or the other at random).
	Return float64 `toml:"return" json:"return"`
}

func (r *RandomConfig) validate() error {
	for _, p := range []struct {
		key string
		v   float64
	}{{"lose-ack", r.LoseAck}, {"lose-report", r.LoseReport}, {"delay-report", r.DelayReport}, {"duplicate", r.Duplicate},
		{"reject", r.Reject}, {"return", r.Return}} {
		if p.v < 0 || p.v > 1 {
			return fmt.Errorf("%s: %v is not a probability (0..1)", p.key, p.v)
		}
	}
	if r.MaxDelay < 0 {
		return errors.New("max-delay: must not be negative")
	}
	return nil
}

// chanceLocked draws one decision of the random mode (never, when off).
func (s *Sim) chanceLocked(p float64) bool {
	return s.rng != nil && p > 0 && s.rng.Float64() < p
}

func newRNG(seed uint64) *rand.Rand {
	if seed == 0 {
		return nil
	}
	return rand.New(rand.NewPCG(seed, 0x7a11_9e55))
}

// report queues a pain.002 on order o for the bridge, unless the random
// mode or the loseReports fault loses it (final reports only with
// notify-debits), or holds it back (delayed reports arrive after later
// ones).
func (s *Sim) reportLocked(rep *iso20022.StatusReport, final bool) {
	var buf bytes.Buffer
	if err := iso20022.WritePain002(&buf, rep); err != nil {
		s.log.Error("write pain.002", "msgId", rep.MsgID, "err", err)
		return
	}
	m := outMsg{path: s.cfg.StatusPath, msgID: rep.MsgID, contentType: "application/xml", body: buf.Bytes()}
	if !final || s.cfg.NotifyDebits {
		if s.faults.LoseReports > 0 {
			s.faults.LoseReports--
			s.log.Info("status report lost (fault)", "msgId", rep.MsgID, "status", rep.GroupStatus)
			return
		}
		if s.chanceLocked(s.cfg.Random.LoseReport) {
			s.log.Info("status report lost (random)", "msgId", rep.MsgID)
			return
		}
	}
	delay := s.faults.DelayReports
	if delay == 0 && s.chanceLocked(s.cfg.Random.DelayReport) && s.cfg.Random.MaxDelay > 0 {
		delay = time.Duration(s.rng.Int64N(int64(s.cfg.Random.MaxDelay.D())) + 1)
	}
	if delay > 0 {
		s.afterLocked(delay, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.enqueueLocked(m)
		})
		return
	}
	s.enqueueLocked(m)
}

// duplicateReport is the bank's answer to a message whose MsgId it has
// already received: the whole message rejected, reason DU01, at group
// level. The first message stands and is executed.
func (s *Sim) duplicateReport(o *iso20022.PaymentOrder, now time.Time) *iso20022.StatusReport {
	return &iso20022.StatusReport{MsgID: fmt.Sprintf("SIM-PSR-%d", s.ledger.next()), Created: now,
		OriginalMsgID: o.MsgID, OriginalMsgName: iso20022.Pain001Version, OriginalCreated: o.Created,
		GroupStatus: iso20022.StatusRejected, GroupReasons: []iso20022.StatusReason{{Code: "DU01", AdditionalInfo: []string{"duplicate message ID"}}}}
}

// ---- returns and reversals ----

// ReturnRequest is the body of POST /sim/returns: the beneficiary's bank
// sends a settled payout back.
type ReturnRequest struct {
	EndToEndID string `json:"endToEndId"`
	// Reason is "<ExternalReturnReason1Code> <text>", e.g. "AC04 account closed".
	Reason string `json:"reason"`
	// Form is how the return reaches the bridge: "camt054" (default), a
	// credit notification with RtrInf, or "pacs004", the interbank
	// PaymentReturn forwarded to the status path.
	Form string `json:"form,omitempty"`
}

// Return forms.
const (
	ReturnCamt054 = "camt054"
	ReturnPacs004 = "pacs004"
)

// Return books the return of a settled payout (beneficiary → omnibus) and
// notifies it as a camt.054 credit whose transaction carries the payout's
// EndToEndId and RtrInf.
func (s *Sim) Return(body []byte) (string, error) {
	var r ReturnRequest
	if err := config.DecodeJSON(body, &r); err != nil {
		return "", fmt.Errorf("return: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.returnLocked(r, s.now().UTC())
}

func (s *Sim) returnLocked(r ReturnRequest, now time.Time) (string, error) {
	if r.Reason == "" {
		r.Reason = "AC04 account closed"
	}
	if _, err := reasonOf(r.Reason); err != nil {
		return "", fmt.Errorf("return: reason: %w", err)
	}
	if r.Form == "" {
		r.Form = ReturnCamt054
	}
	if r.Form != ReturnCamt054 && r.Form != ReturnPacs004 {
		return "", fmt.Errorf("return: form %q is neither %q nor %q", r.Form, ReturnCamt054, ReturnPacs004)
	}
	o := s.ledger.order("", r.EndToEndID)
	if o == nil || o.Status != iso20022.StatusAcceptedSettlementCompleted {
		return "", fmt.Errorf("return: no settled payout has EndToEndId %q", r.EndToEndID)
	}
	if o.Returned {
		return "", fmt.Errorf("return: payout %s is already returned", r.EndToEndID)
	}
	amt, _ := parseAmount(o.Amount)
	seq := s.ledger.next()
	s.ledger.move(o.Account, s.cfg.OmnibusAccount, amt)
	le := LedgerEntry{Seq: seq, Ref: fmt.Sprintf("SIM-RTR-%d", seq), Credit: true, Amount: formatIn(amt, o.Currency), Currency: o.Currency,
		Account: o.Account, EndToEndID: o.EndToEndID, MsgID: o.MsgID, Return: r.Reason, BookedAt: now}
	s.ledger.Entries = append(s.ledger.Entries, le)
	o.Returned = true
	var m outMsg
	var err error
	if r.Form == ReturnPacs004 {
		m, err = s.paymentReturn(o, le, now)
	} else {
		m, err = s.notification([]iso20022.Entry{s.isoEntry(le)}, now)
	}
	if err != nil {
		return "", err
	}
	if err := s.saveLocked(); err != nil {
		return "", err
	}
	s.enqueueLocked(m)
	s.log.Info("payout returned", "endToEndId", o.EndToEndID, "reason", r.Reason)
	return le.Ref, nil
}

// paymentReturn writes the pacs.004 of a returned payout: the original's
// MsgId, InstrId, EndToEndId and UETR, the amount, the reason.
func (s *Sim) paymentReturn(o *Order, le LedgerEntry, now time.Time) (outMsg, error) {
	id := fmt.Sprintf("SIM-RTRMSG-%d", s.ledger.next())
	code, text := reasonWords(le.Return)
	rt := iso20022.Return{ReturnID: le.Ref, OriginalMsgID: o.MsgID, OriginalMsgName: iso20022.Pain001Version,
		OriginalEndToEndID: o.EndToEndID, Amount: le.Amount, Currency: le.Currency, SettlementDate: now.Format(time.DateOnly),
		Reason: iso20022.ReturnInfo{Reason: code}}
	if text != "" {
		rt.Reason.AdditionalInfo = []string{truncate(text, 105)}
	}
	if o.Original != nil {
		if ts := o.Original.Transfers(); len(ts) == 1 {
			rt.OriginalInstrID, rt.OriginalUETR = ts[0].InstrID, ts[0].UETR
		}
	}
	var buf bytes.Buffer
	if err := iso20022.WritePacs004(&buf, &iso20022.PaymentReturn{MsgID: id, Created: now, SettlementMethod: iso20022.SettlementClearingSystem,
		Returns: []iso20022.Return{rt}}); err != nil {
		return outMsg{}, fmt.Errorf("write pacs.004 %s: %w", id, err)
	}
	return outMsg{path: s.cfg.StatusPath, msgID: id, contentType: "application/xml", body: buf.Bytes()}, nil
}

// ReversalRequest is the body of POST /sim/reversals: the bank takes back
// one of its bookings (a deposit's credit, or a payout's debit).
type ReversalRequest struct {
	Reference string `json:"reference"`
}

// Reverse books the reversal of the booking under reference and notifies
// it as a camt.054 entry with RvslInd: a debit for a reversed deposit
// (carrying the deposit's transaction reference), a credit for a reversed
// payout (carrying its EndToEndId).
func (s *Sim) Reverse(body []byte) (string, error) {
	var r ReversalRequest
	if err := config.DecodeJSON(body, &r); err != nil {
		return "", fmt.Errorf("reversal: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var orig *LedgerEntry
	for i := range s.ledger.Entries {
		e := &s.ledger.Entries[i]
		if e.Ref == r.Reference && !e.Reversal && e.Return == "" {
			orig = e
		}
		if e.Reversal && e.Reverses == r.Reference {
			return "", fmt.Errorf("reversal: booking %s is already reversed", r.Reference)
		}
	}
	if orig == nil {
		return "", fmt.Errorf("reversal: no booking has reference %q", r.Reference)
	}
	now := s.now().UTC()
	amt, _ := parseAmount(orig.Amount)
	seq := s.ledger.next()
	if orig.Credit {
		s.ledger.move(s.cfg.OmnibusAccount, orig.Account, amt)
	} else {
		s.ledger.move(orig.Account, s.cfg.OmnibusAccount, amt)
	}
	le := LedgerEntry{Seq: seq, Ref: fmt.Sprintf("SIM-RVSL-%d", seq), Credit: !orig.Credit, Amount: orig.Amount, Currency: orig.Currency,
		Account: orig.Account, EndToEndID: orig.EndToEndID, MsgID: orig.MsgID, Reversal: true, Reverses: orig.Ref, BookedAt: now}
	s.ledger.Entries = append(s.ledger.Entries, le)
	m, err := s.notification([]iso20022.Entry{s.isoEntry(le)}, now)
	if err != nil {
		return "", err
	}
	if err := s.saveLocked(); err != nil {
		return "", err
	}
	s.enqueueLocked(m)
	s.log.Info("booking reversed", "reference", orig.Ref, "reversal", le.Ref)
	return le.Ref, nil
}

// reasonWords splits "AC04 account closed" for RtrInf.
func reasonWords(s string) (code, text string) {
	code, text, _ = strings.Cut(strings.TrimSpace(s), " ")
	return code, strings.TrimSpace(text)
}
