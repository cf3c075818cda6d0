package state

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

var disputes = chain.DisputesAddress

// disputeSetup: alice paid bob (a merchant) 50.00 HKD under ORDER-9.
type disputeSetup struct {
	*payChain
	alice, bob, carol, bank, bankA, compliance common.Address
	hkd                                        common.Address
	ref                                        [32]byte
	paidMs                                     uint64
}

func newDisputeSetup(t *testing.T) *disputeSetup {
	t.Helper()
	c := &disputeSetup{payChain: newPayChain(t), alice: devAddr(t, 0), bob: devAddr(t, 1), carol: devAddr(t, 2),
		bank: devAddr(t, genesis.DevBankBIndex), bankA: devAddr(t, genesis.DevBankAIndex), compliance: devAddr(t, genesis.DevComplianceIndex),
		hkd: chain.AssetAddress(1), ref: [32]byte{'O', 'R', 'D', 'E', 'R', '-', '9'}}
	c.paidMs = c.timeMs
	c.ok(c.alice, c.hkd, &chain.AssetABI, "transferWithReference", c.bob, big.NewInt(5_000), c.ref)
	return c
}

func (c *disputeSetup) open(amount int64, reason uint8) {
	c.t.Helper()
	r := c.ok(c.alice, disputes, &chain.DisputesABI, "openDispute", c.hkd, c.bob, c.ref, big.NewInt(amount), reason, [32]byte{0xaa})
	if !hasEvent(r, disputes, chain.DisputesABI.Events["DisputeOpened"]) {
		c.t.Fatal("no DisputeOpened")
	}
}

// TestDisputeOpen: who may open a dispute, on what, when, and for how much.
func TestDisputeOpen(t *testing.T) {
	c := newDisputeSetup(t)
	for _, tc := range []struct {
		name, want string
		from       common.Address
		asset      common.Address
		merchant   common.Address
		amount     int64
		reason     uint8
	}{
		{"asset without a window", "CNY takes no disputes", c.alice, chain.AssetAddress(0), c.bob, 1, DisputeFraud},
		{"no such asset", "no asset at", c.alice, chain.AssetAddress(7), c.bob, 1, DisputeFraud},
		{"bad reason code", "dispute reason 6 is not a reason code", c.alice, c.hkd, c.bob, 1, 6},
		{"reason code 0", "dispute reason 0 is not a reason code", c.alice, c.hkd, c.bob, 1, 0},
		{"zero amount", "amount must be positive", c.alice, c.hkd, c.bob, 0, DisputeDuplicate},
		{"not the payer", "paid " + c.bob.Hex() + " nothing under reference", c.carol, c.hkd, c.bob, 1, DisputeDuplicate},
		{"wrong merchant", "nothing under reference", c.alice, c.hkd, c.carol, 1, DisputeDuplicate},
		{"more than paid", "is more than the 50.00 HKD paid and not refunded", c.alice, c.hkd, c.bob, 5_001, DisputeWrongAmount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.refused(tc.want, tc.from, disputes, &chain.DisputesABI, "openDispute", tc.asset, tc.merchant, c.ref, big.NewInt(tc.amount), tc.reason, [32]byte{})
		})
	}
	c.open(5_000, DisputeNotReceived)
	d := c.dispute(1)
	if d.Status != DisputeOpen || d.Payer != c.alice || d.Merchant != c.bob || d.Amount.Int64() != 5_000 || d.TxHash != (common.Hash{0xaa}) {
		t.Fatalf("dispute %+v", d)
	}
	c.refused("already has dispute 1", c.alice, disputes, &chain.DisputesABI, "openDispute", c.hkd, c.bob, c.ref, big.NewInt(1), DisputeFraud, [32]byte{})
}

// TestDisputeWindow: the window is inclusive of its last millisecond.
func TestDisputeWindow(t *testing.T) {
	c := newDisputeSetup(t)
	closes := c.paidMs + testDisputeWindow*1000
	c.timeMs = closes + 1
	c.refused("the dispute window of the payment under reference", c.alice, disputes, &chain.DisputesABI, "openDispute", c.hkd, c.bob, c.ref, big.NewInt(1), DisputeFraud, [32]byte{})
	c = newDisputeSetup(t)
	c.timeMs = c.paidMs + testDisputeWindow*1000
	c.open(1, DisputeFraud)
}

// TestDisputePaths: every way a dispute ends.
func TestDisputePaths(t *testing.T) {
	one := big.NewInt(1)
	for _, tc := range []struct {
		name   string
		run    func(c *disputeSetup)
		status uint8
		alice  int64 // what alice got back
	}{
		{"refunded in full", func(c *disputeSetup) {
			c.refused("only the merchant", c.alice, disputes, &chain.DisputesABI, "contestDispute", one, "delivered")
			c.ok(c.bob, c.hkd, &chain.AssetABI, "refund", c.ref, c.alice, big.NewInt(1_000))
			if d := c.dispute(1); d.Status != DisputeOpen || d.Refunded.Int64() != 1_000 {
				c.t.Fatalf("after a partial refund: %+v", d)
			}
			r := c.ok(c.bob, c.hkd, &chain.AssetABI, "refund", c.ref, c.alice, big.NewInt(2_000))
			if !hasEvent(r, disputes, chain.DisputesABI.Events["DisputeRefunded"]) {
				c.t.Fatal("no DisputeRefunded")
			}
		}, DisputeRefunded, 3_000},
		{"contested, upheld by the bank", func(c *disputeSetup) {
			r := c.ok(c.bob, disputes, &chain.DisputesABI, "contestDispute", one, "delivered on 2 Jan, signed for")
			if !hasEvent(r, disputes, chain.DisputesABI.Events["DisputeContested"]) {
				c.t.Fatal("no DisputeContested")
			}
			c.refused("already contested", c.bob, disputes, &chain.DisputesABI, "contestDispute", one, "again")
			c.refused("is not an issuing bank of HKD", c.bankA, disputes, &chain.DisputesABI, "upholdDispute", one, big.NewInt(3_000), "courier lost it")
			c.refused("is not an issuing bank of HKD", c.compliance, disputes, &chain.DisputesABI, "dismissDispute", one, "no")
			c.refused("is more than the 30.00 HKD of dispute 1 not refunded", c.bank, disputes, &chain.DisputesABI, "upholdDispute", one, big.NewInt(3_001), "courier lost it")
			c.refused("a reason is required", c.bank, disputes, &chain.DisputesABI, "upholdDispute", one, big.NewInt(3_000), "")
			r = c.ok(c.bank, disputes, &chain.DisputesABI, "upholdDispute", one, big.NewInt(3_000), "courier lost it")
			if !hasEvent(r, disputes, chain.DisputesABI.Events["DisputeUpheld"]) || !hasEvent(r, c.hkd, chain.AssetABI.Events["Transfer"]) {
				c.t.Fatal("uphold logs")
			}
			// The payment's refundable amount went down by the forced transfer.
			c.refused("refund of 2001 is more than the 2000 left", c.bob, c.hkd, &chain.AssetABI, "refund", c.ref, c.alice, big.NewInt(2_001))
		}, DisputeUpheld, 3_000},
		{"contested, dismissed by the bank", func(c *disputeSetup) {
			c.ok(c.bob, disputes, &chain.DisputesABI, "contestDispute", one, "delivered")
			r := c.ok(c.bank, disputes, &chain.DisputesABI, "dismissDispute", one, "proof of delivery")
			if !hasEvent(r, disputes, chain.DisputesABI.Events["DisputeDismissed"]) {
				c.t.Fatal("no DisputeDismissed")
			}
		}, DisputeDismissed, 0},
		{"unanswered, decided after the response time", func(c *disputeSetup) {
			answerBy := c.dispute(1).OpenedMs + testResponseSeconds*1000
			c.timeMs = answerBy - 1
			c.refused("dispute 1 awaits the merchant's refund or answer until", c.bank, disputes, &chain.DisputesABI, "upholdDispute", one, big.NewInt(1), "x")
			c.timeMs = answerBy
			c.ok(c.bank, disputes, &chain.DisputesABI, "upholdDispute", one, big.NewInt(3_000), "merchant did not answer")
		}, DisputeUpheld, 3_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newDisputeSetup(t)
			c.open(3_000, DisputeDuplicate)
			before := c.balance(1, c.alice)
			tc.run(c)
			d := c.dispute(1)
			if d.Status != tc.status || d.ClosedMs == 0 {
				t.Fatalf("dispute %+v, want status %s", d, DisputeStatusNames[tc.status])
			}
			if got := new(big.Int).Sub(c.balance(1, c.alice), before); got.Int64() != tc.alice {
				t.Fatalf("alice got %s back, want %d", got, tc.alice)
			}
			for _, op := range [][]any{{c.bob, "contestDispute", one, "late"}, {c.bank, "dismissDispute", one, "late"}, {c.bank, "upholdDispute", one, big.NewInt(1), "late"}} {
				c.refused("dispute 1 is already "+DisputeStatusNames[tc.status], op[0].(common.Address), disputes, &chain.DisputesABI, op[1].(string), op[2:]...)
			}
			if id, _ := c.overlay().ActiveDispute(1, c.bob, c.ref, c.alice); id != 0 {
				t.Fatalf("closed dispute still active: %d", id)
			}
			// A closed dispute frees the payment for another, within the window.
			if p, _ := c.overlay().Payment(1, c.bob, c.ref, c.alice); new(big.Int).Sub(p.Paid, p.Refunded).Sign() > 0 {
				c.open(1, DisputeFraud)
			}
		})
	}
}

// TestDisputeUpholdMerchantShort: a forced transfer the merchant cannot
// cover is refused with the balances, and the dispute stays contested.
func TestDisputeUpholdMerchantShort(t *testing.T) {
	c := newDisputeSetup(t)
	c.open(5_000, DisputeNotReceived)
	c.ok(c.bob, disputes, &chain.DisputesABI, "contestDispute", big.NewInt(1), "delivered")
	all := c.balance(1, c.bob)
	c.ok(c.bob, c.hkd, &chain.AssetABI, "transfer", c.carol, all)
	c.refused("insufficient balance: "+c.bob.Hex()+" has 0.00 HKD, needs 50.00 HKD", c.bank, disputes, &chain.DisputesABI, "upholdDispute", big.NewInt(1), big.NewInt(5_000), "refund")
	if c.dispute(1).Status != DisputeContested {
		t.Fatal("dispute closed by a refused decision")
	}
}
