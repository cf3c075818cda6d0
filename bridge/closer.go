package bridge

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/tally-ledger/tally/wallet"
)

// On-chain withdrawal statuses (withdrawal(id) → status).
const (
	withdrawalPending  = 1
	withdrawalSettled  = 2
	withdrawalRefunded = 3
	withdrawalReturned = 4 // settled, then returned
)

// closeRound closes every payout with an outcome (settling, refunding), in
// withdrawal id order: docs/bridge.md, withdrawals step 4.
func (b *Bridge) closeRound(ctx context.Context) error {
	s, err := b.store.QueuedPayouts(PayoutSettling, workBatch)
	if err != nil {
		return err
	}
	r, err := b.store.QueuedPayouts(PayoutRefunding, workBatch)
	if err != nil {
		return err
	}
	ret, err := b.store.QueuedPayouts(PayoutReturning, workBatch)
	if err != nil {
		return err
	}
	ps := append(append(s, r...), ret...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].ID < ps[j].ID })
	var errs []error
	for _, p := range ps {
		if err := b.closePayout(ctx, p); err != nil {
			if errors.Is(err, errCrashed) || ctx.Err() != nil {
				return err
			}
			// One payout that cannot close (a return the chain cannot
			// take yet, a revert an operator must look at) does not hold
			// up the others.
			errs = append(errs, fmt.Errorf("payout %s: %w", p.EndToEndID, err))
		}
	}
	return errors.Join(errs...)
}

// closePayout settles or refunds one withdrawal. The chain's own status of
// the withdrawal decides first: already settled or refunded (by this
// bridge's earlier transaction, before a crash, or by another issuing
// bank) means done. Otherwise it signs settleWithdrawal(id) or
// refundWithdrawal(id, reason) as the deposit path does: record with
// fsync, send, await. The chain accepts only the first of the two for a
// withdrawal, so nothing here can settle and refund one.
func (b *Bridge) closePayout(ctx context.Context, p *Payout) error {
	if p.Tx != nil {
		out, err := b.lookupTx(ctx, p.Tx, b.cfg.Outbox.ReceiptTimeout.D())
		if err != nil {
			return err
		}
		if out == txPending {
			return nil
		}
	}
	status, err := b.withdrawalStatus(ctx, p.ID)
	if err != nil {
		return err
	}
	var op wallet.Op
	switch {
	case status == withdrawalRefunded:
		return b.markClosed(p, "refunded")
	case status == withdrawalReturned:
		return b.markClosed(p, "returned")
	case status == withdrawalSettled && p.Status != PayoutReturning:
		return b.markClosed(p, "settled")
	case status == withdrawalSettled:
		// Paid, burned, and the money came back: the holder is owed it,
		// minted back once by returnWithdrawal.
		op, err = wallet.ReturnWithdrawalOp(b.info.AssetID, p.ID, refundReason(p))
	case status != withdrawalPending:
		return fmt.Errorf("withdrawal %d is not a withdrawal of %s on chain (status %d)", p.ID, b.info.Symbol, status)
	case p.Status == PayoutSettling:
		op, err = wallet.SettleWithdrawalOp(b.info.AssetID, p.ID)
	default:
		// Rejected, or returned before the chain settled it: the escrow
		// goes back to the holder.
		op, err = wallet.RefundWithdrawalOp(b.info.AssetID, p.ID, refundReason(p))
	}
	if err != nil {
		return err
	}
	if _, err := b.nodes.simulate(ctx, b.bank, op); err != nil {
		var rev *wallet.RevertError
		if errors.As(err, &rev) {
			// Closed meanwhile (the next round sees it), or the bank lost
			// its role, or the reason is refused: an operator must look.
			if op.Method == opReturnWithdrawal {
				b.metrics.unhandled.WithLabelValues("payout-return").Inc()
			}
			return fmt.Errorf("%s would revert: %s", op.Method, rev.Reason)
		}
		return err
	}
	_, sent, err := b.signAndSend(ctx, op, func(st *SignedTx) error {
		_, err := b.store.ModifyPayout(p.ID, func(q *Payout) (bool, error) {
			q.Tx, q.UpdatedAt = st, b.now().UTC()
			return true, nil
		})
		p.Tx = st
		return err
	}, crashAfterCloseRecorded, crashAfterCloseSent)
	if err != nil || !sent {
		return err
	}
	out, err := b.lookupTx(ctx, p.Tx, b.cfg.Outbox.ReceiptTimeout.D())
	if err != nil || out != txApplied {
		return err // the next round reads the withdrawal's status again
	}
	switch {
	case p.Status == PayoutSettling:
		return b.markClosed(p, "settled")
	case op.Method == opReturnWithdrawal:
		return b.markClosed(p, "returned")
	}
	return b.markClosed(p, "refunded")
}

// opReturnWithdrawal gives a settled withdrawal's amount back to its
// holder when the bank reports the payment returned.
const opReturnWithdrawal = "returnWithdrawal"

// markClosed records that the chain closed the withdrawal as what. It
// decides on the stored record, not on p: the bank's return of the
// payout may have come in since p was read (while the settlement was in
// flight); then a settled withdrawal is not closed but stays returning,
// and the next round gives the money back (returnWithdrawal).
func (b *Bridge) markClosed(p *Payout, what string) error {
	var want string
	returnDue := false
	_, err := b.store.ModifyPayout(p.ID, func(q *Payout) (bool, error) {
		want = "settled"
		switch {
		case q.Status == PayoutReturning && what == "settled":
			returnDue = true
			return false, nil
		case q.Status == PayoutRefunding:
			want = "refunded"
		case q.Status == PayoutReturning && what == "refunded":
			want = "refunded" // returned before the chain settled it
		case q.Status == PayoutReturning:
			want = "returned"
		}
		q.Status, q.Closed, q.UpdatedAt = PayoutClosed, what, b.now().UTC()
		if what != want {
			q.LastError = fmt.Sprintf("the bank reported %s but the chain shows the withdrawal %s (by another issuing bank?)", q.Outcome, what)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if returnDue {
		b.log.Info("withdrawal settled; the bank returned the payment meanwhile: returnWithdrawal follows", "id", p.ID, "endToEndId", p.EndToEndID)
		return nil
	}
	if what != want {
		b.log.Error("withdrawal closed on chain against the bank's outcome", "id", p.ID, "outcome", p.Outcome, "chain", what)
	} else {
		b.log.Info("withdrawal "+what, "id", p.ID, "endToEndId", p.EndToEndID)
	}
	return nil
}

// refundReason is the reason refundWithdrawal (or returnWithdrawal)
// carries: the bank's, within the chain's 256 bytes.
func refundReason(p *Payout) string {
	r := "payout " + p.EndToEndID + " rejected by the bank: " + p.Reason
	switch {
	case p.Outcome == statusCancelled && strings.HasPrefix(p.Reason, operatorCancelPrefix):
		r = "payout " + p.EndToEndID + " " + p.Reason
	case p.Returned != "":
		r = "payout " + p.EndToEndID + " returned by the bank: " + p.ReturnReason
	case p.Outcome == statusReturned:
		r = "payout " + p.EndToEndID + " returned by the bank: " + p.Reason
	}
	if len(r) <= maxReasonLen {
		return r
	}
	r = r[:maxReasonLen]
	for !utf8.ValidString(r) {
		r = r[:len(r)-1]
	}
	return r
}

// withdrawalStatus reads withdrawal(id)'s status: 1 pending, 2 settled, 3
// refunded, 4 returned, 0 not a withdrawal of this asset.
func (b *Bridge) withdrawalStatus(ctx context.Context, id uint64) (uint8, error) {
	w, err := b.withdrawalOnChain(ctx, id)
	return w.Status, err
}
