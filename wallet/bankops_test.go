package wallet

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// testBankEdge drives the bank-edge builders and views against a dev node:
// a withdrawal CNY cannot pay is refused by eth_call with the reason; one
// it can pay is claimed by bank A (bank B's claim then fails), settled and
// returned; bank A's mint is reversed; the views decode each step.
func testBankEdge(ctx context.Context, t *testing.T, c *Client) {
	holder, bankA, bankB := devKey(t, 2), devKey(t, genesis.DevBankAIndex), devKey(t, genesis.DevBankBIndex)
	const cny = 0
	send := func(key *crypto.PrivateKey, op Op, err error) *types.Receipt {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		tx, err := c.Send(ctx, key, op)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.WaitReceipt(ctx, tx.Hash())
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			_, serr := c.Simulate(ctx, key.Address(), op)
			t.Fatalf("%s: receipt %v, %v (now: %v)", op.Method, r, err, serr)
		}
		return r
	}
	wantRevert := func(from common.Address, op Op, err error, reason string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Simulate(ctx, from, op)
		var rev *RevertError
		if !errors.As(err, &rev) || !strings.Contains(rev.Reason, reason) {
			t.Fatalf("%s: %v, want a revert with %q", op.Method, err, reason)
		}
	}

	if m, err := c.MinorUnits(ctx, cny); err != nil || m != 2 {
		t.Fatalf("minorUnits(CNY) = %d, %v; want 2", m, err)
	}
	subCent, _ := ParseAmount("1.234567", NativeDecimals)
	op, err := AssetOp(cny, "requestWithdrawal", subCent, [32]byte{})
	wantRevert(holder.Address(), op, err, "is not a whole number of CNY minor units")

	amount, _ := ParseAmount("2.50", NativeDecimals)
	op, err = AssetOp(cny, "requestWithdrawal", amount, [32]byte{})
	r := send(holder, op, err)
	var id uint64
	for _, l := range r.Logs {
		if l.Topics[0] == chain.AssetABI.Events["WithdrawalRequested"].ID {
			id = l.Topics[1].Big().Uint64()
		}
	}
	w, err := c.Withdrawal(ctx, cny, id)
	if err != nil || w.Status != WithdrawalPending || w.Claimed() || w.Holder != holder.Address() || w.Amount.Cmp(amount) != 0 {
		t.Fatalf("withdrawal %d before the claim: %+v, %v", id, w, err)
	}
	op, err = SettleWithdrawalOp(cny, id)
	wantRevert(bankA.Address(), op, err, "is not claimed")

	order := common.HexToHash("0x0123")
	op, err = ClaimWithdrawalOp(cny, id, order)
	send(bankA, op, err)
	send(bankA, op, nil) // the same claim again: a no-op success (a bridge's crash recovery)
	op, err = ClaimWithdrawalOp(cny, id, order)
	wantRevert(bankB.Address(), op, err, "is already claimed by "+bankA.Address().Hex())
	op, err = ClaimWithdrawalOp(cny, id, common.HexToHash("0x0456"))
	wantRevert(bankA.Address(), op, err, "with order")
	if w, err = c.Withdrawal(ctx, cny, id); err != nil || w.Bank != bankA.Address() || w.OrderID != order {
		t.Fatalf("withdrawal %d after the claim: %+v, %v", id, w, err)
	}
	op, err = SettleWithdrawalOp(cny, id)
	wantRevert(bankB.Address(), op, err, "is claimed by")
	send(bankA, op, err)
	op, err = ReturnWithdrawalOp(cny, id, "AC04 closed account")
	send(bankA, op, err)
	if w, err = c.Withdrawal(ctx, cny, id); err != nil || w.Status != WithdrawalReturned {
		t.Fatalf("withdrawal %d after the return: %+v, %v", id, w, err)
	}

	ref := common.HexToHash("0xdead")
	op, err = MintOp(cny, holder.Address(), amount, ref)
	mint := send(bankA, op, err)
	op, err = ReverseMintOp(cny, ref, "credit reversed")
	wantRevert(bankB.Address(), op, err, "was minted by")
	send(bankA, op, err)
	m, err := c.MintRecord(ctx, cny, ref)
	if err != nil || m.Bank != bankA.Address() || m.Holder != holder.Address() || m.Amount.Cmp(amount) != 0 || !m.Reversed || m.Height != mint.BlockNumber.Uint64() {
		t.Fatalf("mintRecord: %+v, %v", m, err)
	}
	is, err := c.BankIssuance(ctx, cny, bankA.Address())
	two := new(big.Int).Add(amount, amount)
	if err != nil || is.Minted.Cmp(two) != 0 || is.Burned.Cmp(two) != 0 || is.Outstanding.Sign() != 0 || is.Cap != nil {
		t.Fatalf("bankIssuance(bank A): %+v, %v", is, err)
	}
	// The holder's history names the withdrawal of the return and the
	// bank reference of the reversal.
	page, err := c.AccountHistory(ctx, holder.Address(), nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	var sawReturn, sawReversal bool
	for _, it := range page.Items {
		switch it.Operation {
		case "returnWithdrawal":
			sawReturn = it.WithdrawalID != nil && (*big.Int)(it.WithdrawalID).Uint64() == id
		case "reverseMint":
			sawReversal = it.Reference != nil && *it.Reference == ref
		}
	}
	if !sawReturn || !sawReversal {
		t.Fatalf("holder history (return with withdrawal %d: %v, reversal with reference %s: %v): %+v", id, sawReturn, ref, sawReversal, page.Items)
	}
	if op, err := ProposeSetIssuanceCapOp(cny, bankA.Address(), big.NewInt(-1)); err == nil {
		t.Fatalf("a negative cap encoded: %+v", op)
	}
}
