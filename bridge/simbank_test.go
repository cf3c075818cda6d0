package bridge

import (
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/bankcore"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// TestBridgeAgainstABankThatBehavesLikeOne runs the bridge on a dev node
// against the simulator behaving as real gateways do, scripted: ACTC and
// ACCP before every outcome, an order whose acknowledgement is lost (the
// re-send meets DU01 while the first send is paid), a rejection after
// ACCP, a batch booking of two deposits, a deposit reversed after its mint,
// and a settled payout returned. Each ends in exactly one outcome on
// chain, and what the chain cannot undo by itself is raised.
func TestBridgeAgainstABankThatBehavesLikeOne(t *testing.T) {
	e := newTestEnv(t)
	sim, _, cfg := e.startSim(t, func(c *bankcore.Config) {
		c.StatusDelay = bankcore.Duration(100 * time.Millisecond)
		c.Reject = bankcore.RejectRule{Accounts: []string{"RB-REJECT"}, Reason: "AM04 insufficient funds"}
	})
	cfg.BankCore.DebtorAgentBIC = "BKBBHKHHXXX"
	b := e.open(t, cfg, nil)
	sim.SetBridgeURL("http://" + b.Addr())

	wa, wb, wr := devKey(t, 5), freshKey(t), devKey(t, 6)
	e.link(t, b, wa, "RB-A")
	e.link(t, b, wb, "RB-B")
	e.link(t, b, wr, "RB-REJECT")

	// A batch booking: one entry, two transactions, two deposits. NtryRef
	// is "1" in this message as in every other.
	if _, err := sim.Deposit([]byte(`{"batchBooking": true, "deposits": [{"account": "RB-A", "amount": "100.00", "reference": "RB-DEP-1"},
		{"account": "RB-B", "amount": "7.00", "reference": "RB-DEP-2"}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Deposit([]byte(`{"account": "RB-REJECT", "amount": "5.00", "reference": "RB-DEP-3"}`)); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"RB-DEP-1", "RB-DEP-2", "RB-DEP-3"} {
		waitDeposit(t, b, ref, DepositMinted)
	}

	// The bank reverses a minted deposit: the reverser takes it back from
	// the wallet on chain (reverseMint), once.
	if _, err := sim.Reverse([]byte(`{"reference": "RB-DEP-2"}`)); err != nil {
		t.Fatal(err)
	}
	d := waitDeposit(t, b, "RB-DEP-2", DepositReversed)
	if d.Reversal == nil || d.ReverseTx == nil || e.balance(t, wb.Address()).Sign() != 0 {
		t.Fatalf("reversed deposit %+v; the wallet holds %v", d, e.balance(t, wb.Address()))
	}
	if n := len(e.logs(t, "MintReversed", d.BankRef)); n != 1 {
		t.Fatalf("%d MintReversed logs, want 1", n)
	}

	// A reversed deposit whose wallet has spent the money: the chain
	// refuses reverseMint, the deposit stays reversing and is raised.
	spender := devKey(t, 7)
	e.link(t, b, spender, "RB-C")
	if _, err := sim.Deposit([]byte(`{"account": "RB-C", "amount": "3.00", "reference": "RB-DEP-4"}`)); err != nil {
		t.Fatal(err)
	}
	waitDeposit(t, b, "RB-DEP-4", DepositMinted)
	all := e.balance(t, spender.Address())
	spend, err := wallet.AssetOp(hkdID, "transfer", wa.Address(), all)
	if err != nil {
		t.Fatal(err)
	}
	e.send(t, spender, spend)
	if _, err := sim.Reverse([]byte(`{"reference": "RB-DEP-4"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reversal raised", func() bool {
		rs, _ := b.Store().Refusals(50)
		for _, r := range rs {
			if r.Kind == RefusedUnhandledReversal && r.Ref == "RB-DEP-4" && strings.Contains(r.Message, "less than") {
				return true
			}
		}
		return false
	})
	if d := deposit(t, b, "RB-DEP-4"); d.Status != DepositReversing {
		t.Fatalf("a reversal the chain refused left the deposit %s", d.Status)
	}

	// The acknowledgement of the first order is lost, and so is its ACTC
	// (which would have told the bridge the bank has it): the bridge
	// re-sends under the same MsgId, the bank answers DU01 and pays the
	// first send once.
	if _, err := sim.SetFaults([]byte(`{"loseAcks": 1, "loseReports": 1}`)); err != nil {
		t.Fatal(err)
	}
	paid := e.withdraw(t, wa, "30.00", [32]byte{})
	p := waitPayout(t, b, paid, PayoutClosed)
	if p.Closed != "settled" || p.Outcome != "ACSC" || e.withdrawalStatus(t, paid) != withdrawalSettled {
		t.Fatalf("paid payout %+v", p)
	}
	e2e := PayoutEndToEndID(genesis.DevChainID, "HKD", paid)
	var sends int
	for _, o := range sim.Ledger().Orders {
		if o.EndToEndID == e2e {
			sends = o.Sends
		}
	}
	progress := []string{}
	for _, n := range p.Progress {
		progress = append(progress, n.Status)
	}
	if sends != 2 || !strings.Contains(strings.Join(progress, " "), "RJCT") || !strings.Contains(strings.Join(progress, " "), "ACCP") {
		t.Fatalf("the bank took %d sends of %s; the payout noted %v", sends, e2e, progress)
	}

	// ACCP, then RJCT AM04: refunded.
	rejected := e.withdraw(t, wr, "2.00", [32]byte{})
	if p := waitPayout(t, b, rejected, PayoutClosed); p.Closed != "refunded" || !strings.Contains(p.Reason, "AM04") {
		t.Fatalf("rejected payout %+v", p)
	}

	// The settled payout comes back (as a pacs.004): the holder gets the
	// money back on chain, once (returnWithdrawal).
	before := e.balance(t, wa.Address())
	if _, err := sim.Return([]byte(`{"endToEndId": "` + e2e + `", "reason": "AC04 account closed", "form": "pacs004"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the returned payout closed", func() bool {
		p, _ = b.Store().Payout(paid)
		return p.Closed == "returned"
	})
	if p.Status != PayoutClosed || p.Returned != "RTRN" || !strings.Contains(p.ReturnReason, "AC04") || e.withdrawalStatus(t, paid) != withdrawalReturned {
		t.Fatalf("returned payout %+v, chain status %d", p, e.withdrawalStatus(t, paid))
	}
	if got := e.balance(t, wa.Address()); new(big.Int).Sub(got, before).Cmp(hkd(t, "30.00")) != 0 {
		t.Fatalf("the holder has %v after the return, had %v", got, before)
	}
	if n := len(e.logs(t, "WithdrawalReturned", common.BigToHash(new(big.Int).SetUint64(paid)))); n != 1 {
		t.Fatalf("%d WithdrawalReturned logs, want 1", n)
	}
}
