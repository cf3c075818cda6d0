package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/wallet"
)

// workBatch bounds the records one worker round reads from the store; the
// next round takes the rest.
const workBatch = 100

// outboxRound is one round of the deposit outbox (docs/bridge.md, deposits
// steps 4 and 5): first the submitted deposits, whose transactions a
// previous round or run signed (recovery), then the accepted ones, each in
// arrival order. A node error ends the round; the next one resumes from
// the records.
func (b *Bridge) outboxRound(ctx context.Context) error {
	subs, err := b.store.QueuedDeposits(DepositSubmitted, workBatch)
	if err != nil {
		return err
	}
	for _, d := range subs {
		if err := b.settleSubmitted(ctx, d, true); err != nil {
			return fmt.Errorf("deposit %s (%s): %w", d.Ref, d.BankRef, err)
		}
	}
	acc, err := b.store.QueuedDeposits(DepositAccepted, workBatch)
	if err != nil {
		return err
	}
	for _, d := range acc {
		if err := b.mintDeposit(ctx, d); err != nil {
			return fmt.Errorf("deposit %s (%s): %w", d.Ref, d.BankRef, err)
		}
	}
	return nil
}

// mintDeposit signs, records, sends and awaits the mint of an accepted
// deposit (or of a submitted one whose transaction was lost). It asks the
// chain first whether the bankRef has minted, and runs the mint on the
// latest state, so a deposit the chain would refuse (a frozen wallet, a
// balance over its tier's maximum) is held with the reason instead of
// burning a nonce on a failing transaction.
func (b *Bridge) mintDeposit(ctx context.Context, d *Deposit) error {
	if d.Wallet == (common.Address{}) || d.Units == nil || d.Units.Sign() <= 0 {
		return b.setDeposit(d, DepositHeld, "no linked wallet or no positive amount recorded")
	}
	used, err := b.bankRefUsed(ctx, d.BankRef)
	if err != nil {
		return err
	}
	if used {
		return b.setDeposit(d, DepositMinted, "found minted on chain before signing (an earlier run got that far)")
	}
	op, err := wallet.MintOp(b.info.AssetID, d.Wallet, d.Units, d.BankRef)
	if err != nil {
		return err
	}
	if _, err := b.nodes.simulate(ctx, b.bank, op); err != nil {
		var rev *wallet.RevertError
		if errors.As(err, &rev) {
			return b.mintRefused(d, rev.Reason)
		}
		return err
	}
	_, sent, err := b.signAndSend(ctx, op, func(st *SignedTx) error {
		d.Status, d.Tx, d.UpdatedAt = DepositSubmitted, st, b.now().UTC()
		return b.store.UpdateDeposit(d)
	}, crashAfterMintRecorded, crashAfterMintSent)
	if err != nil || !sent {
		return err // recorded as submitted: the next round looks it up
	}
	return b.settleSubmitted(ctx, d, false)
}

// settleSubmitted finds out what became of a submitted deposit's
// transaction: applied → minted; failed → minted anyway if the bankRef
// has minted (an earlier transaction did it), else held with the reason
// (or retried, up to outbox.max-attempts, if the mint would pass now);
// unknown to the nodes (refused, or lost with a leader) → re-signed with
// a fresh nonce, which is safe because the chain refuses a second mint
// under the same bankRef; still pending → left for the next round. resign
// is false right after sending, so a transaction a node drops at once is
// re-signed by the next round rather than in a loop.
func (b *Bridge) settleSubmitted(ctx context.Context, d *Deposit, resign bool) error {
	if d.Tx == nil {
		return b.mintDeposit(ctx, d)
	}
	out, err := b.lookupTx(ctx, d.Tx, b.cfg.Outbox.ReceiptTimeout.D())
	if err != nil {
		return err
	}
	switch out {
	case txPending:
		b.log.Info("mint still pending", "ref", d.Ref, "tx", d.Tx.Hash)
		return nil
	case txApplied:
		b.log.Info("deposit minted", "ref", d.Ref, "bankRef", d.BankRef, "wallet", d.Wallet, "amount", d.Amount, "tx", d.Tx.Hash)
		return b.setDeposit(d, DepositMinted, "")
	case txUnknown:
		if !resign {
			return nil
		}
		b.log.Warn("mint transaction unknown to the nodes; re-signing", "ref", d.Ref, "tx", d.Tx.Hash, "nonce", d.Tx.Nonce)
		return b.mintDeposit(ctx, d)
	}
	// Failed: did an earlier transaction mint it?
	used, err := b.bankRefUsed(ctx, d.BankRef)
	if err != nil {
		return err
	}
	if used {
		return b.setDeposit(d, DepositMinted, "minted by an earlier transaction (the last one, "+d.Tx.Hash.Hex()+", reverted)")
	}
	op, err := wallet.MintOp(b.info.AssetID, d.Wallet, d.Units, d.BankRef)
	if err != nil {
		return err
	}
	if _, err := b.nodes.simulate(ctx, b.bank, op); err != nil {
		var rev *wallet.RevertError
		if errors.As(err, &rev) {
			return b.mintRefused(d, rev.Reason)
		}
		return err
	}
	d.Attempts++
	if d.Attempts >= b.cfg.Outbox.MaxAttempts {
		return b.setDeposit(d, DepositHeld, fmt.Sprintf("mint reverted %d times though it passes eth_call (outbox.max-attempts)", d.Attempts))
	}
	b.log.Warn("mint reverted but would pass now; retrying", "ref", d.Ref, "tx", d.Tx.Hash, "attempt", d.Attempts)
	return b.setDeposit(d, DepositAccepted, "")
}

// mintRefused handles a mint the chain would revert: already minted →
// minted; a reason that is about the bank or the asset, not the deposit
// (the key lost its issuer role, the asset is paused) → an error, retried
// later, so deposits are not held for an operator's fix elsewhere; any
// other reason (about the wallet or the amount) → held.
func (b *Bridge) mintRefused(d *Deposit, reason string) error {
	switch {
	case strings.Contains(reason, "has already minted"):
		return b.setDeposit(d, DepositMinted, "found minted on chain (an earlier transaction)")
	case strings.Contains(reason, "is not an issuing bank"), strings.Contains(reason, "is paused"):
		return fmt.Errorf("mint would revert: %s", reason)
	}
	b.log.Warn("deposit held: the mint would revert", "ref", d.Ref, "wallet", d.Wallet, "reason", reason)
	return b.setDeposit(d, DepositHeld, "mint would revert: "+reason)
}

// setDeposit moves d to status with reason, durably.
func (b *Bridge) setDeposit(d *Deposit, st DepositStatus, reason string) error {
	d.Status, d.Reason, d.UpdatedAt = st, reason, b.now().UTC()
	return b.store.UpdateDeposit(d)
}

// bankRefUsed asks the chain whether ref has minted.
func (b *Bridge) bankRefUsed(ctx context.Context, ref common.Hash) (bool, error) {
	op, err := wallet.AssetOp(b.info.AssetID, "bankRefUsed", [32]byte(ref))
	if err != nil {
		return false, err
	}
	out, err := b.nodes.view(ctx, op)
	if err != nil {
		return false, err
	}
	used, ok := out[0].(bool)
	if !ok {
		return false, fmt.Errorf("bankRefUsed returned %T", out[0])
	}
	return used, nil
}
