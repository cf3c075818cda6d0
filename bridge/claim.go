package bridge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/wallet"
)

// chainWithdrawal is what withdrawal(id) says on chain.
type chainWithdrawal struct {
	Status uint8 // 0 not a withdrawal of this asset, 1 pending, 2 settled, 3 refunded, 4 returned
	// Bank and OrderID are the claim: the issuing bank that pays the
	// withdrawal and the payment order it recorded (zero while unclaimed).
	Bank    common.Address
	OrderID common.Hash
}

// withdrawalOnChain reads withdrawal(id) of the bridge's asset.
func (b *Bridge) withdrawalOnChain(ctx context.Context, id uint64) (chainWithdrawal, error) {
	op, err := wallet.AssetOp(b.info.AssetID, "withdrawal", new(big.Int).SetUint64(id))
	if err != nil {
		return chainWithdrawal{}, err
	}
	out, err := b.nodes.view(ctx, op)
	if err != nil {
		return chainWithdrawal{}, err
	}
	if len(out) != 6 {
		return chainWithdrawal{}, fmt.Errorf("withdrawal(%d) returned %d values", id, len(out))
	}
	st, ok1 := out[3].(uint8)
	bank, ok2 := out[4].(common.Address)
	order, ok3 := out[5].([32]byte)
	if !ok1 || !ok2 || !ok3 {
		return chainWithdrawal{}, fmt.Errorf("withdrawal(%d) returned %T, %T, %T", id, out[3], out[4], out[5])
	}
	return chainWithdrawal{Status: st, Bank: bank, OrderID: order}, nil
}

// claimOrder returns the order id this instance claims p's withdrawal
// with, drawing it at random and recording it (fsync) before its first use.
// Derived ids would be the same in every instance of one bank, and both
// would pass the claim; a random one lets the chain pick one instance.
func (b *Bridge) claimOrder(p *Payout) (common.Hash, error) {
	if p.ClaimOrder != nil {
		return *p.ClaimOrder, nil
	}
	var h common.Hash
	if _, err := rand.Read(h[:]); err != nil {
		return h, fmt.Errorf("draw an order id: %w", err)
	}
	q, err := b.store.ModifyPayout(p.ID, func(q *Payout) (bool, error) {
		if q.ClaimOrder != nil {
			return false, nil
		}
		q.ClaimOrder, q.UpdatedAt = &h, b.now().UTC()
		return true, nil
	})
	if err != nil {
		return h, err
	}
	p.ClaimOrder = q.ClaimOrder
	return *q.ClaimOrder, nil
}

// claim makes sure the chain records this bank as the payer of p's
// withdrawal, with p's order id, before any payment order is sent
// (DESIGN.md decision 11): claimWithdrawal(id, orderID). It reports true
// once the claim on chain is this bridge's. A withdrawal claimed by another
// bank, or by another instance of this bank (another order), is closed
// here without an order; one already closed on chain is closed as the
// chain says. false with a nil error means "ask again next round" (the
// claim is not applied yet).
func (b *Bridge) claim(ctx context.Context, p *Payout) (bool, error) {
	w, err := b.withdrawalOnChain(ctx, p.ID)
	if err != nil {
		return false, err
	}
	mine, err := b.claimOrder(p)
	if err != nil {
		return false, err
	}
	switch {
	case w.Status == withdrawalPending && w.Bank == b.bank && w.OrderID == mine:
		return true, nil
	case w.Status == withdrawalPending && w.Bank == b.bank:
		// Not a fault: the bank's other instance won the race and pays it.
		return false, b.closeClaimed(p, "claimed-by-instance",
			fmt.Sprintf("withdrawal %d is claimed by another instance of this bank (order %s; this instance's is %s)", p.ID, w.OrderID, mine))
	case w.Status == withdrawalPending && w.Bank != (common.Address{}):
		return false, b.closeUnordered(p, "claimed-elsewhere",
			fmt.Sprintf("withdrawal %d is claimed by %s (order %s): another bridge pays it", p.ID, w.Bank, w.OrderID))
	case w.Status == withdrawalSettled || w.Status == withdrawalReturned:
		return false, b.closeUnordered(p, "settled", fmt.Sprintf("withdrawal %d was settled by %s before this bridge ordered it", p.ID, w.Bank))
	case w.Status == withdrawalRefunded:
		return false, b.closeUnordered(p, "refunded", fmt.Sprintf("withdrawal %d was refunded before this bridge ordered it", p.ID))
	case w.Status != withdrawalPending:
		return false, fmt.Errorf("withdrawal %d is not a withdrawal of %s on chain (status %d)", p.ID, b.info.Symbol, w.Status)
	}
	op, err := wallet.ClaimWithdrawalOp(b.info.AssetID, p.ID, mine)
	if err != nil {
		return false, err
	}
	if _, err := b.nodes.simulate(ctx, b.bank, op); err != nil {
		var rev *wallet.RevertError
		if errors.As(err, &rev) {
			return false, fmt.Errorf("%s would revert: %s", op.Method, rev.Reason)
		}
		return false, err
	}
	// The claim needs no record of its own: its order id is recorded, so
	// claiming again after a crash is a no-op.
	st, sent, err := b.signAndSend(ctx, op, func(*SignedTx) error { return nil }, crashAfterClaimSigned, crashAfterClaimSent)
	if err != nil || !sent {
		return false, err
	}
	if out, err := b.lookupTx(ctx, st, b.cfg.Outbox.ReceiptTimeout.D()); err != nil || out != txApplied {
		return false, err // the next round reads the claim again
	}
	w, err = b.withdrawalOnChain(ctx, p.ID)
	if err != nil {
		return false, err
	}
	return w.Status == withdrawalPending && w.Bank == b.bank && w.OrderID == mine, nil
}

// closeUnordered closes a payout this bridge never ordered, as what, with
// a warning: another bank took it, or the chain closed it first.
func (b *Bridge) closeUnordered(p *Payout, what, why string) error {
	err := b.closeAs(p, what, why)
	if err == nil {
		b.log.Warn("payout closed without an order", "id", p.ID, "closed", what, "why", why)
	}
	return err
}

// closeClaimed closes a payout that another instance of this bank pays:
// the normal outcome of running two instances, logged at info.
// The bank's outcome of the sibling's order may have reached this
// instance since p was read (one address in front of both): a payout
// that is settling, refunding or returning keeps that status, so the
// closer applies the outcome on chain; closing it would lose the report
// (no other instance has it) and leave the withdrawal pending for ever.
func (b *Bridge) closeClaimed(p *Payout, what, why string) error {
	var kept PayoutStatus
	_, err := b.store.ModifyPayout(p.ID, func(q *Payout) (bool, error) {
		switch q.Status {
		case PayoutSettling, PayoutRefunding, PayoutReturning, PayoutClosed:
			kept = q.Status
			return false, nil
		}
		q.Status, q.Closed, q.LastError, q.UpdatedAt = PayoutClosed, what, why, b.now().UTC()
		return true, nil
	})
	switch {
	case err != nil:
	case kept != "":
		b.log.Info("payout paid by another instance of this bank; its outcome reached this one, which applies it", "id", p.ID, "status", kept, "why", why)
	default:
		b.log.Info("payout paid by another instance of this bank", "id", p.ID, "why", why)
	}
	return err
}

// closeAs closes payout p unordered as what, durably; why is kept on the
// record for the operator tools.
func (b *Bridge) closeAs(p *Payout, what, why string) error {
	_, err := b.store.ModifyPayout(p.ID, func(q *Payout) (bool, error) {
		q.Status, q.Closed, q.LastError, q.UpdatedAt = PayoutClosed, what, why, b.now().UTC()
		return true, nil
	})
	return err
}
