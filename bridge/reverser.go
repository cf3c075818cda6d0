package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tally-ledger/tally/wallet"
)

// reverseRound takes back, on chain, every minted deposit the bank
// reversed (status reversing), in arrival order: docs/bridge.md, "Returns
// and reversals". For each it reads nothing but the chain's answer to
// reverseMint(bankRef, reason): applied, or already reversed (an earlier
// run got that far) → reversed; refused because the wallet holds less
// than was minted → the deposit stays reversing and is raised for an
// operator; any other error ends the round, retried later.
func (b *Bridge) reverseRound(ctx context.Context) error {
	ds, err := b.store.QueuedDeposits(DepositReversing, workBatch)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range ds {
		if err := b.reverseMint(ctx, d); err != nil {
			if errors.Is(err, errCrashed) || ctx.Err() != nil {
				return err
			}
			errs = append(errs, fmt.Errorf("deposit %s (%s): %w", d.Ref, d.BankRef, err))
		}
	}
	return errors.Join(errs...)
}

func (b *Bridge) reverseMint(ctx context.Context, d *Deposit) error {
	if d.ReverseTx != nil {
		out, err := b.lookupTx(ctx, d.ReverseTx, b.cfg.Outbox.ReceiptTimeout.D())
		if err != nil {
			return err
		}
		switch out {
		case txPending:
			return nil
		case txApplied:
			return b.setDeposit(d, DepositReversed, "the mint is reversed on chain (reverseMint)")
		}
	}
	op, err := wallet.ReverseMintOp(b.info.AssetID, d.BankRef, reversalReason(d))
	if err != nil {
		return err
	}
	if _, err := b.nodes.simulate(ctx, b.bank, op); err != nil {
		var rev *wallet.RevertError
		if !errors.As(err, &rev) {
			return err
		}
		if strings.Contains(rev.Reason, "is already reversed") {
			return b.setDeposit(d, DepositReversed, "the mint is reversed on chain (found reversed)")
		}
		// The wallet spent the money, or the chain refuses for another
		// reason: only an operator can settle it with the holder.
		reason := "reverseMint would revert: " + rev.Reason
		if d.Reason != reason {
			d.Reason = reason
			if err := b.store.UpdateDeposit(d); err != nil {
				return err
			}
			b.raiseReversing(workerReverser, "", d)
		}
		return fmt.Errorf("%s", reason)
	}
	_, sent, err := b.signAndSend(ctx, op, func(st *SignedTx) error {
		d.ReverseTx, d.UpdatedAt = st, b.now().UTC()
		return b.store.UpdateDeposit(d)
	}, crashAfterReverseRecorded, crashAfterReverseSent)
	if err != nil || !sent {
		return err
	}
	out, err := b.lookupTx(ctx, d.ReverseTx, b.cfg.Outbox.ReceiptTimeout.D())
	if err != nil || out != txApplied {
		return err // the next round looks again
	}
	b.log.Info("minted deposit reversed on chain", "ref", d.Ref, "bankRef", d.BankRef, "wallet", d.Wallet, "amount", d.Amount)
	return b.setDeposit(d, DepositReversed, "the mint is reversed on chain (reverseMint)")
}

// reversalReason is the reason reverseMint carries, within the chain's
// 256 bytes.
func reversalReason(d *Deposit) string {
	r := "deposit " + d.Ref + " reversed by the bank"
	if d.Reversal != nil && d.Reversal.Ref != "" {
		r += " (" + d.Reversal.Ref + ")"
	}
	if len(r) > maxReasonLen {
		r = r[:maxReasonLen]
		for !utf8.ValidString(r) {
			r = r[:len(r)-1]
		}
	}
	return r
}
