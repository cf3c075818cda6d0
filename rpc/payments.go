package rpc

import (
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/rpc/schema"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/txdecode"
)

// Page bounds of tally_getDisputes and tally_getHeldPayments: a page holds
// at most MaxPaymentsLimit items (default DefaultPaymentsLimit), and one
// call reads at most MaxPaymentsScan records, newest first, whatever its
// filter matches: a filter that matches few records pages on through
// nextCursor, so one call's work is bounded however many there are.
const (
	DefaultPaymentsLimit = 50
	MaxPaymentsLimit     = 500
	MaxPaymentsScan      = 5000
)

// DisputeFilter selects disputes: all given fields must match. Account
// matches the payer or the merchant; Status is a status name; Before is
// the previous page's nextCursor (null: the newest).
type DisputeFilter struct {
	Account  *common.Address `json:"account"`
	Payer    *common.Address `json:"payer"`
	Merchant *common.Address `json:"merchant"`
	Status   *string         `json:"status"`
	Before   *hexutil.Uint64 `json:"before"`
	Limit    *hexutil.Uint   `json:"limit"`
}

// HeldFilter selects held payments: Account matches the sender or the
// recipient; Status is a status name.
type HeldFilter struct {
	Account *common.Address `json:"account"`
	Status  *string         `json:"status"`
	Before  *hexutil.Uint64 `json:"before"`
	Limit   *hexutil.Uint   `json:"limit"`
}

// statusCode returns the code of a status name among names (0: no filter).
func statusCode(name *string, names func(uint8) string, max uint8) (uint8, error) {
	if name == nil {
		return 0, nil
	}
	for c := uint8(1); c <= max; c++ {
		if names(c) == *name {
			return c, nil
		}
	}
	var all []string
	for c := uint8(1); c <= max; c++ {
		all = append(all, names(c))
	}
	return 0, invalidParams("status %q is not one of %v", *name, all)
}

// scanDown calls visit for ids from min(before-1, last) down to 1, at
// most MaxPaymentsScan of them and until visit says the page is full; it
// returns the cursor of the next page (nil once id 1 was read).
func scanDown(last uint64, before *hexutil.Uint64, visit func(id uint64) (full bool, err error)) (*hexutil.Uint64, error) {
	if before != nil {
		last = min(last, max(uint64(*before), 1)-1)
	}
	scanned := 0
	for id := last; id >= 1; id-- {
		full, err := visit(id)
		if err != nil {
			return nil, err
		}
		if scanned++; full || scanned == MaxPaymentsScan {
			if id == 1 {
				return nil, nil
			}
			c := hexutil.Uint64(id)
			return &c, nil
		}
	}
	return nil, nil
}

// GetDisputes pages through the disputes, newest first, that match f.
func (api *LedgerAPI) GetDisputes(f *DisputeFilter) (*schema.DisputePage, error) {
	if f == nil {
		f = &DisputeFilter{}
	}
	items, next, err := pageRecords(api, records[state.Dispute]{
		what: "dispute", limit: f.Limit, before: f.Before, status: f.Status,
		statusName: func(c uint8) string { return state.DisputeStatusNames[c] }, maxStatus: state.DisputeDismissed,
		last: (*state.Overlay).LastDisputeID, get: (*state.Overlay).Dispute,
		match: func(d state.Dispute, status uint8) bool {
			return (f.Account == nil || *f.Account == d.Payer || *f.Account == d.Merchant) &&
				(f.Payer == nil || *f.Payer == d.Payer) &&
				(f.Merchant == nil || *f.Merchant == d.Merchant) &&
				(status == 0 || d.Status == status)
		},
	}, func(id uint64, d state.Dispute, rules *state.Rules, assets txdecode.Assets) schema.Dispute {
		return disputeOf(id, d, assets, rules.DisputeResponse())
	})
	if err != nil {
		return nil, err
	}
	return &schema.DisputePage{Items: items, NextCursor: next}, nil
}

// records are the paged records of one kind (disputes, held payments),
// ids 1 to the last, and a call's filter on them.
type records[R any] struct {
	what       string // "dispute": names a missing record
	limit      *hexutil.Uint
	before     *hexutil.Uint64
	status     *string // a status name; nil: any
	statusName func(uint8) string
	maxStatus  uint8
	last       func(*state.Overlay) (uint64, error)
	get        func(*state.Overlay, uint64) (R, bool, error)
	match      func(r R, status uint8) bool // status 0: any
}

// pageRecords is the paging of tally_getDisputes and
// tally_getHeldPayments: it checks the page limit and the status name,
// then reads the records newest first from below the cursor (scanDown),
// rendering those that match, until the page is full.
func pageRecords[R, I any](api *LedgerAPI, q records[R], render func(id uint64, r R, rules *state.Rules, assets txdecode.Assets) I) ([]I, *hexutil.Uint64, error) {
	if err := api.halted(); err != nil {
		return nil, nil, err
	}
	n, err := pageLimit(q.limit, DefaultPaymentsLimit, MaxPaymentsLimit)
	if err != nil {
		return nil, nil, err
	}
	status, err := statusCode(q.status, q.statusName, q.maxStatus)
	if err != nil {
		return nil, nil, err
	}
	db := api.b.State()
	rules, err := db.Rules()
	if err != nil {
		return nil, nil, err
	}
	assets := txdecode.FromGenesis(rules.Assets)
	view := state.NewOverlay(db)
	last, err := q.last(view)
	if err != nil {
		return nil, nil, err
	}
	items := []I{}
	next, err := scanDown(last, q.before, func(id uint64) (bool, error) {
		r, ok, err := q.get(view, id)
		switch {
		case err != nil:
			return false, err
		case !ok:
			return false, fmt.Errorf("%s %d missing below the last id %d", q.what, id, last)
		case !q.match(r, status):
			return false, nil
		}
		items = append(items, render(id, r, rules, assets))
		return len(items) == n, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return items, next, nil
}

// disputeOf renders dispute id.
func disputeOf(id uint64, d state.Dispute, assets txdecode.Assets, responseSec uint64) schema.Dispute {
	a := assets.Of(d.Asset)
	out := schema.Dispute{ID: hexutil.Uint64(id), Payer: d.Payer, Merchant: d.Merchant, Reference: referenceOf(d.Ref),
		Amount: amountOf(a, d.Amount), Reason: state.DisputeReasonNames[d.Reason], Status: state.DisputeStatusNames[d.Status],
		Refunded: amountOf(a, d.Refunded), OpenedMs: hexutil.Uint64(d.OpenedMs), AnswerByMs: hexutil.Uint64(d.OpenedMs + responseSec*1000),
		Answer: d.Answer, Decision: d.Decision}
	if d.TxHash != (common.Hash{}) {
		h := d.TxHash
		out.TxHash = &h
	}
	if d.ClosedMs != 0 {
		c := hexutil.Uint64(d.ClosedMs)
		out.ClosedMs = &c
	}
	if d.Bank != (common.Address{}) {
		b := d.Bank
		out.Bank = &b
	}
	return out
}

// GetHeldPayments pages through the payments held for a second
// confirmation, newest first, that match f.
func (api *LedgerAPI) GetHeldPayments(f *HeldFilter) (*schema.HeldPaymentPage, error) {
	if f == nil {
		f = &HeldFilter{}
	}
	items, next, err := pageRecords(api, records[state.HeldPayment]{
		what: "held payment", limit: f.Limit, before: f.Before, status: f.Status,
		statusName: state.HeldStatusName, maxStatus: state.HeldExpired,
		last: (*state.Overlay).LastHeldID, get: (*state.Overlay).HeldPayment,
		match: func(p state.HeldPayment, status uint8) bool {
			return (f.Account == nil || *f.Account == p.From || *f.Account == p.To) &&
				(status == 0 || p.Status == status)
		},
	}, func(id uint64, p state.HeldPayment, _ *state.Rules, assets txdecode.Assets) schema.HeldPayment {
		return heldOf(id, p, assets)
	})
	if err != nil {
		return nil, err
	}
	return &schema.HeldPaymentPage{Items: items, NextCursor: next}, nil
}

// heldKinds name the held payment kinds in JSON.
var heldKinds = map[uint8]string{state.HeldKindNative: "native-transfer", state.HeldKindTransfer: "transfer",
	state.HeldKindPayment: "payment", state.HeldKindWithdrawal: "withdrawal"}

func heldOf(id uint64, p state.HeldPayment, assets txdecode.Assets) schema.HeldPayment {
	out := schema.HeldPayment{ID: hexutil.Uint64(id), From: p.From, Amount: amountOf(assets.Of(p.Asset), p.Amount), Kind: heldKinds[p.Kind],
		Status: state.HeldStatusName(p.Status), CreatedMs: hexutil.Uint64(p.CreatedMs), ExpiresMs: hexutil.Uint64(p.ExpiresMs)}
	if p.Kind != state.HeldKindWithdrawal {
		to := p.To
		out.To = &to
	}
	if p.Kind == state.HeldKindPayment || p.Kind == state.HeldKindWithdrawal {
		out.Reference = referenceOf(p.Ref)
	}
	if p.ClosedMs != 0 {
		c := hexutil.Uint64(p.ClosedMs)
		out.ClosedMs = &c
	}
	return out
}

// GetConfirmation returns an account's confirmation settings in force at
// the head's block time, and the change waiting, if any.
func (api *LedgerAPI) GetConfirmation(a common.Address) (*schema.ConfirmationSettings, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	db := api.b.State()
	rules, err := db.Rules()
	if err != nil {
		return nil, err
	}
	assets := txdecode.FromGenesis(rules.Assets)
	stored, err := state.NewOverlay(db).ConfirmSettings(a)
	if err != nil {
		return nil, err
	}
	now := stored.At(db.HeadContext().TimeMs)
	thresholds := func(ts []state.Threshold) []*schema.Amount {
		out := make([]*schema.Amount, len(ts))
		for i, t := range ts {
			out[i] = amountOf(assets.Of(t.Asset), t.Amount)
		}
		return out
	}
	keyOf := func(k common.Address) *common.Address {
		if k == (common.Address{}) {
			return nil
		}
		return &k
	}
	out := &schema.ConfirmationSettings{Account: a, Key: keyOf(now.Key), Thresholds: thresholds(now.Thresholds)}
	if len(now.Change) == 1 {
		c := now.Change[0]
		out.Change = &schema.ConfirmationChange{Key: keyOf(c.Key), Thresholds: thresholds(c.Thresholds), EffectiveMs: hexutil.Uint64(c.EffectiveMs)}
	}
	return out, nil
}
