package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/wallet"
)

// PayoutOrder is the JSON form of a payout order (bankcore.format =
// "json"); the pain.001 form carries the same facts.
type PayoutOrder struct {
	MsgID         string         `json:"msgId"`
	PmtInfID      string         `json:"pmtInfId"`
	InstrID       string         `json:"instrId"`
	EndToEndID    string         `json:"endToEndId"`
	UETR          string         `json:"uetr"`
	WithdrawalID  uint64         `json:"withdrawalId"`
	Account       string         `json:"account"`
	CreditorName  string         `json:"creditorName,omitempty"`
	Amount        string         `json:"amount"`
	Currency      string         `json:"currency"`
	Holder        common.Address `json:"holder"`
	PayoutRef     common.Hash    `json:"payoutRef"`
	DebtorName    string         `json:"debtorName"`
	DebtorAccount string         `json:"debtorAccount,omitempty"`
	// CreatedAt is when this send was made; ExecutionDate the requested
	// execution date, today in the bank's time zone (bankcore.time-zone).
	CreatedAt     time.Time `json:"createdAt"`
	ExecutionDate string    `json:"executionDate"`
	// Remittance is the remittance text (RmtInf/Ustrd) when it is not a
	// withdrawal's ("Tally withdrawal <id>"): a deposit's return order.
	Remittance string `json:"remittance,omitempty"`
}

// order is the payout order of p as sent at now. The identifiers are the
// payout's for ever (PayoutIDs): a re-send keeps the MsgId, so a bank that
// has the first send answers DU01 and pays once; the creation time and
// the requested execution date are refreshed, so a re-send that is the
// first the bank sees asks for today, not for a day already past.
func (b *Bridge) order(p *Payout, now time.Time) PayoutOrder {
	ids := PayoutIDs(b.bank, b.info.ChainID, b.info.Symbol, p.ID)
	loc, err := time.LoadLocation(b.cfg.BankCore.TimeZone)
	if err != nil {
		loc = time.UTC // Validate refused a bad name; an empty one is UTC
	}
	o := PayoutOrder{MsgID: ids.MsgID, PmtInfID: ids.PmtInfID, InstrID: ids.InstrID, EndToEndID: p.EndToEndID, UETR: ids.UETR,
		WithdrawalID: p.ID, Account: p.Account, Amount: orderAmount(p.Amount, b.info.Decimals, b.info.OrderDecimals()), Currency: b.info.Symbol,
		Holder: p.Holder, PayoutRef: p.PayoutRef, DebtorName: b.cfg.BankCore.DebtorName, DebtorAccount: b.cfg.BankCore.DebtorAccount,
		CreatedAt: now.UTC().Truncate(time.Millisecond), ExecutionDate: now.In(loc).Format(time.DateOnly)}
	if l, err := b.store.Link(p.Account); err == nil {
		o.CreditorName = l.Name
	}
	return o
}

// orderAmount writes an amount of base units of an asset with decimals
// decimals at the currency's precision (minor units), as banks write them:
// 97.31 CNY, not 97.310000000000000000 (ISO 20022 amounts have at most 5
// fraction digits). The chain refuses a withdrawal its currency cannot
// express, so the division is exact; an amount that is not (a withdrawal
// requested before the chain checked) is written whole, never rounded, and
// the bank refuses it.
func orderAmount(units *big.Int, decimals, minor uint8) string {
	if minor < decimals {
		q, r := new(big.Int).QuoRem(units, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals-minor)), nil), new(big.Int))
		if r.Sign() == 0 {
			return fixedAmount(q, minor)
		}
	}
	return fixedAmount(units, decimals)
}

// fixedAmount writes base units with exactly decimals decimals ("50.00").
func fixedAmount(units *big.Int, decimals uint8) string {
	s := wallet.FormatAmount(units, decimals)
	if decimals == 0 {
		return s
	}
	whole, frac, _ := strings.Cut(s, ".")
	return whole + "." + frac + strings.Repeat("0", int(decimals)-len(frac))
}

// backoff is one retry schedule.
type backoff struct {
	next  time.Time
	delay time.Duration
}

// fail schedules the next try: retry-min, doubling up to retry-max.
func (bo *backoff) fail(now time.Time, min, max time.Duration) {
	if bo.delay == 0 {
		bo.delay = min
	} else {
		bo.delay = minDuration(2*bo.delay, max)
	}
	bo.next = now.Add(bo.delay)
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// payoutState is the payout sender's memory between rounds; only its
// goroutine touches it. A restart forgets it: the first round retries at
// once, which a bank deduplicating by MsgId takes calmly.
type payoutState struct {
	coreDown backoff             // the core as a whole is unreachable
	orders   map[uint64]*backoff // one order the core refused
}

// coreError is a failed POST; down means the core did not answer (or
// answered 5xx), as opposed to refusing this one order.
type coreError struct {
	down bool
	err  error
}

func (e *coreError) Error() string { return e.err.Error() }
func (e *coreError) Unwrap() error { return e.err }

// payoutRound POSTs the order of every new payout, in withdrawal id order,
// with its stable identifiers. 2xx → ordered. The core down (no answer, 5xx)
// ends the round and backs off for the whole core; the core refusing one
// order (4xx) backs off for that order and goes on with the next. The ids
// never change, however often an order is sent.
func (b *Bridge) payoutRound(ctx context.Context) error {
	st := &b.payState
	now := b.now()
	if now.Before(st.coreDown.next) {
		return nil
	}
	ps, err := b.store.QueuedPayouts(PayoutNew, workBatch)
	if err != nil {
		return err
	}
	minD, maxD := b.cfg.Payout.RetryMin.D(), b.cfg.Payout.RetryMax.D()
	var refused error
	for _, p := range ps {
		if bo := st.orders[p.ID]; bo != nil && now.Before(bo.next) {
			continue
		}
		// The chain first: no order leaves unless this bank's claim of
		// the withdrawal is recorded (DESIGN.md decision 11).
		if ok, err := b.claim(ctx, p); err != nil || !ok {
			if err != nil {
				return fmt.Errorf("payout %s: claim: %w", p.EndToEndID, err)
			}
			continue
		}
		err := b.sendOrder(ctx, p)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			b.metrics.orders.WithLabelValues("ok").Inc()
			st.coreDown = backoff{}
			delete(st.orders, p.ID)
			if b.crashAt(crashAfterOrderSent) {
				return errCrashed
			}
			if _, err := b.store.ModifyPayout(p.ID, func(q *Payout) (bool, error) {
				q.Orders++
				q.LastError = ""
				if q.Status == PayoutNew {
					q.Status = PayoutOrdered
				}
				q.UpdatedAt = b.now().UTC()
				return true, nil
			}); err != nil {
				return err
			}
			b.log.Info("payout ordered", "id", p.ID, "endToEndId", p.EndToEndID, "account", p.Account, "amount", wallet.FormatAmount(p.Amount, b.info.Decimals))
			continue
		}
		b.metrics.orders.WithLabelValues("error").Inc()
		if _, merr := b.store.ModifyPayout(p.ID, func(q *Payout) (bool, error) {
			q.Orders++
			q.LastError = err.Error()
			q.UpdatedAt = b.now().UTC()
			return true, nil
		}); merr != nil {
			return merr
		}
		var ce *coreError
		if errors.As(err, &ce) && ce.down {
			st.coreDown.fail(now, minD, maxD)
			return fmt.Errorf("payout %s: bank core unavailable, retrying in %v: %w", p.EndToEndID, st.coreDown.delay, err)
		}
		bo := st.orders[p.ID]
		if bo == nil {
			bo = &backoff{}
			st.orders[p.ID] = bo
		}
		bo.fail(now, minD, maxD)
		refused = fmt.Errorf("payout %s: refused by the bank core, retrying in %v: %w", p.EndToEndID, bo.delay, err)
	}
	return refused
}

// sendOrder POSTs p's order to the core, signed like the core's own POSTs.
func (b *Bridge) sendOrder(ctx context.Context, p *Payout) error {
	return b.postOrder(ctx, b.order(p, b.now()))
}

// postOrder POSTs an order (a payout's, or a deposit's return) to the
// core, signed with auth.order-secret-file.
func (b *Bridge) postOrder(ctx context.Context, o PayoutOrder) error {
	var body []byte
	var err error
	ctype := "application/json"
	if b.cfg.BankCore.Format == FormatPain001 {
		ctype = "application/xml"
		body, err = b.writePain001(o)
	} else {
		body, err = json.Marshal(o)
	}
	if err != nil {
		return fmt.Errorf("encode order %s: %w", o.MsgID, err)
	}
	url := strings.TrimSuffix(b.cfg.BankCore.URL, "/") + b.cfg.BankCore.PayoutPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Idempotency-Key", o.MsgID)
	req.Header.Set(SignatureHeader, Sign(b.orderSecret, body, b.now()))
	resp, err := b.core.Do(req)
	if err != nil {
		return &coreError{down: true, err: fmt.Errorf("POST %s: %w", url, err)}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return &coreError{down: resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests,
		err: fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))}
}
