package monitor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/internal/oplog"
	"github.com/tally-ledger/tally/internal/service"
	"github.com/tally-ledger/tally/wallet"
)

// freezeWait bounds how long one freeze waits for its receipt before the
// round moves on (the next round looks again).
const freezeWait = 30 * time.Second

// freezeRound carries every escalated alert whose freeze is pending or
// sent to its end: the account frozen through the compliance key with
// the reason monitor:<alert id>:<rule>, each step recorded before the
// next so a crash repeats nothing it should not:
//
//   - pending: if the account is frozen already, done (nothing sent);
//     else the freeze is signed with the key's pending nonce and the
//     signed transaction recorded (sent), then sent;
//   - sent: the receipt decides: status 1, done; status 0, done if the
//     account is frozen by then (another freeze won), else failed with
//     the chain's reason; no receipt and no node knows the transaction:
//     the same signed bytes are sent again.
func (m *Monitor) freezeRound(ctx context.Context) error {
	if m.key == nil || m.client == nil {
		return nil
	}
	m.freezeMu.Lock()
	defer m.freezeMu.Unlock()
	var todo []*Alert
	for after := uint64(0); ; {
		as, err := m.store.Alerts(AlertFilter{Status: string(StatusEscalated), After: after, Limit: 1000})
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.Freeze != nil && (a.Freeze.State == FreezePending || a.Freeze.State == FreezeSent) {
				todo = append(todo, a)
			}
		}
		if len(as) < 1000 {
			break
		}
		after = as[len(as)-1].ID
	}
	var errs []error
	for _, a := range todo {
		if err := m.freeze(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("freeze for alert %d: %w", a.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Monitor) freeze(ctx context.Context, a *Alert) error {
	if a.Freeze.State == FreezePending {
		frozen, err := m.isFrozen(ctx, a)
		if err != nil {
			return err
		}
		if frozen {
			return m.freezeDone(a, FreezeDone, "", "the account was frozen already")
		}
		op, err := wallet.ComplianceOp("freeze", a.Account, a.Freeze.Reason)
		if err != nil {
			return err
		}
		nonce, err := m.client.PendingNonce(ctx, m.key.Address())
		if err != nil {
			return err
		}
		tx, err := wallet.SignOp(m.key, m.chainID, nonce, op)
		if err != nil {
			return err
		}
		raw, err := tx.MarshalBinary()
		if err != nil {
			return err
		}
		if err := m.setFreeze(a, func(f *Freeze) { f.State, f.Tx, f.Raw = FreezeSent, tx.Hash(), raw }, nil); err != nil {
			return err
		}
		if err := m.client.SendSigned(ctx, tx); err != nil {
			return err
		}
		m.metrics.freezes.WithLabelValues("sent").Inc()
	}
	wctx, cancel := context.WithTimeout(ctx, freezeWait)
	defer cancel()
	r, err := m.client.Receipt(wctx, a.Freeze.Tx)
	if errors.Is(err, wallet.ErrNotFound) {
		var tx types.Transaction
		if err := tx.UnmarshalBinary(a.Freeze.Raw); err != nil {
			return fmt.Errorf("recorded freeze transaction: %w", err)
		}
		if _, _, err := m.client.TransactionByHash(wctx, tx.Hash()); errors.Is(err, wallet.ErrNotFound) {
			if err := m.client.SendSigned(wctx, &tx); err != nil {
				return err
			}
		}
		r, err = m.client.WaitReceipt(wctx, a.Freeze.Tx)
	}
	if err != nil {
		return err
	}
	if r.Status == types.ReceiptStatusSuccessful {
		m.metrics.freezes.WithLabelValues("done").Inc()
		return m.freezeDone(a, FreezeDone, "", "tx "+a.Freeze.Tx.Hex()+" in block "+r.BlockNumber.String())
	}
	frozen, err := m.isFrozen(ctx, a)
	if err != nil {
		return err
	}
	if frozen {
		return m.freezeDone(a, FreezeDone, "", "tx "+a.Freeze.Tx.Hex()+" failed: the account was frozen already")
	}
	reason, _, err := m.client.TransactionReason(ctx, a.Freeze.Tx)
	if err != nil {
		reason = "status 0 (reason unknown: " + err.Error() + ")"
	}
	m.metrics.freezes.WithLabelValues("failed").Inc()
	return m.freezeDone(a, FreezeFailed, reason, "tx "+a.Freeze.Tx.Hex()+" failed: "+reason)
}

func (m *Monitor) isFrozen(ctx context.Context, a *Alert) (bool, error) {
	op, err := wallet.ComplianceOp("isFrozen", a.Account)
	if err != nil {
		return false, err
	}
	out, err := m.client.View(ctx, op)
	if err != nil {
		return false, err
	}
	frozen, _ := out[0].(bool)
	return frozen, nil
}

// freezeDone records a freeze's end with its log entry and webhook.
func (m *Monitor) freezeDone(a *Alert, state, errMsg, detail string) error {
	e := &oplog.Entry{At: m.now().UTC(), Operator: SystemOperator, Action: ActionFreeze, Target: strconv.FormatUint(a.ID, 10),
		Detail: a.Account.Hex() + " reason " + a.Freeze.Reason + ": " + detail, Reason: "escalation of alert " + strconv.FormatUint(a.ID, 10), Result: oplog.ResultDone}
	if state == FreezeFailed {
		e.Result = "failed: " + errMsg
	}
	err := m.setFreeze(a, func(f *Freeze) { f.State, f.Error = state, errMsg }, e)
	if err == nil {
		m.log.Info("escalation freeze", "alert", a.ID, "account", a.Account, "state", state, "detail", detail)
	}
	return err
}

// setFreeze changes alert a's freeze (and a in place), with a log entry
// and, when it ends, the frozen webhook, in one batch.
func (m *Monitor) setFreeze(a *Alert, change func(*Freeze), e *oplog.Entry) error {
	s := m.store
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.Alert(a.ID)
	if err != nil {
		return err
	}
	old := *cur
	f := *cur.Freeze
	change(&f)
	cur.Freeze = &f
	b := s.db.NewIndexedBatch()
	defer b.Close()
	if err := putAlert(b, &old, cur); err != nil {
		return err
	}
	if e != nil {
		if err := actionLog.Append(b, b, e); err != nil {
			return err
		}
		if f.State == FreezeDone {
			if err := m.enqueue(b, cur, EventFrozen); err != nil {
				return err
			}
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		m.recountPending()
		return fmt.Errorf("alert %d freeze: %w", a.ID, err)
	}
	*a = *cur
	service.Kick(m.kickWebhook)
	return nil
}

// rawTx is a signed transaction's bytes in JSON.
type rawTx = hexutil.Bytes
