package state

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// confirmSetup is a chain where alice asks a second confirmation from her
// key for HKD over 100.00 and CNY over 1000.
type confirmSetup struct {
	*payChain
	alice, bob, key, key2, compliance, bank common.Address
	hkd                                     common.Address
	cnyThreshold                            *big.Int
}

const hkdThreshold = 10_000 // 100.00 HKD

var confirms = chain.ConfirmationsAddress

func newConfirmSetup(t *testing.T) *confirmSetup {
	t.Helper()
	c := &confirmSetup{payChain: newPayChain(t), alice: devAddr(t, 0), bob: devAddr(t, 1), key: devAddr(t, 2), key2: devAddr(t, 3),
		compliance: devAddr(t, genesis.DevComplianceIndex), bank: devAddr(t, genesis.DevBankBIndex), hkd: chain.AssetAddress(1),
		cnyThreshold: new(big.Int).Exp(big.NewInt(10), big.NewInt(21), nil)}
	r := c.ok(c.alice, confirms, &chain.ConfirmationsABI, "setConfirmation", c.key,
		[]common.Address{c.hkd, chain.AssetAddress(0)}, []*big.Int{big.NewInt(hkdThreshold), c.cnyThreshold})
	if !hasEvent(r, confirms, chain.ConfirmationsABI.Events["ConfirmationSet"]) {
		t.Fatal("setConfirmation without a key in force: no ConfirmationSet")
	}
	return c
}

func (c *confirmSetup) pay(amount int64) (uint64, bool) {
	c.t.Helper()
	r := c.ok(c.alice, c.hkd, &chain.AssetABI, "transfer", c.bob, big.NewInt(amount))
	for _, l := range r.Logs {
		if l.Address == confirms && l.Topics[0] == chain.ConfirmationsABI.Events["ConfirmationRequired"].ID {
			return new(big.Int).SetBytes(l.Topics[1][:]).Uint64(), true
		}
	}
	return 0, false
}

// TestConfirmThreshold: below and exactly at the threshold a transfer
// moves at once; above it, it is held in escrow, and the key's
// confirmation moves it from the escrow (the audit's conservation check
// runs on every block: Execute).
func TestConfirmThreshold(t *testing.T) {
	for _, tc := range []struct {
		name   string
		amount int64
		held   bool
	}{{"below", hkdThreshold - 1, false}, {"at", hkdThreshold, false}, {"above", hkdThreshold + 1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfirmSetup(t)
			aliceBefore, bobBefore := c.balance(1, c.alice), c.balance(1, c.bob)
			id, held := c.pay(tc.amount)
			if held != tc.held {
				t.Fatalf("held %v, want %v", held, tc.held)
			}
			amt := big.NewInt(tc.amount)
			if got := new(big.Int).Sub(aliceBefore, c.balance(1, c.alice)); got.Cmp(amt) != 0 {
				t.Fatalf("alice paid %s, want %s", got, amt)
			}
			bobGot := new(big.Int).Sub(c.balance(1, c.bob), bobBefore)
			if !tc.held {
				if bobGot.Cmp(amt) != 0 || c.escrow(1).Sign() != 0 {
					t.Fatalf("bob got %s, escrow %s", bobGot, c.escrow(1))
				}
				return
			}
			if bobGot.Sign() != 0 || c.escrow(1).Cmp(amt) != 0 {
				t.Fatalf("held: bob got %s, escrow %s", bobGot, c.escrow(1))
			}
			p := c.held(id)
			if p.Status != HeldPending || p.From != c.alice || p.To != c.bob || p.Kind != HeldKindTransfer || p.ExpiresMs != p.CreatedMs+testHoldSeconds*1000 {
				t.Fatalf("held payment %+v", p)
			}
			r := c.ok(c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", new(big.Int).SetUint64(id))
			if got := new(big.Int).Sub(c.balance(1, c.bob), bobBefore); got.Cmp(amt) != 0 || c.escrow(1).Sign() != 0 {
				t.Fatalf("confirmed: bob got %s, escrow %s", got, c.escrow(1))
			}
			if c.held(id).Status != HeldConfirmed {
				t.Fatalf("status %d", c.held(id).Status)
			}
			// The Transfer of a confirmation is from the escrow (the facade).
			var fromFacade bool
			for _, l := range r.Logs {
				if l.Address == c.hkd && l.Topics[0] == chain.AssetABI.Events["Transfer"].ID {
					fromFacade = common.BytesToAddress(l.Topics[1][:]) == c.hkd && common.BytesToAddress(l.Topics[2][:]) == c.bob
				}
			}
			if !fromFacade || !hasEvent(r, confirms, chain.ConfirmationsABI.Events["PaymentConfirmed"]) {
				t.Fatalf("confirmation logs %v", r.Logs)
			}
			c.refused("pending payment 1 is already confirmed", c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(1))
		})
	}
}

// TestConfirmOutcomes: reject, cancel and the wrong callers of each, with
// the money back to the sender and nothing written by a refused call.
func TestConfirmOutcomes(t *testing.T) {
	one := big.NewInt(1)
	for _, tc := range []struct {
		name   string
		run    func(c *confirmSetup)
		status uint8
	}{
		{"rejected by the key", func(c *confirmSetup) {
			c.refused("only the confirmation key", c.alice, confirms, &chain.ConfirmationsABI, "rejectPayment", one)
			c.ok(c.key, confirms, &chain.ConfirmationsABI, "rejectPayment", one)
		}, HeldRejected},
		{"cancelled by the sender", func(c *confirmSetup) {
			c.refused("only the sender", c.key, confirms, &chain.ConfirmationsABI, "cancelPayment", one)
			c.refused("only the sender", c.bob, confirms, &chain.ConfirmationsABI, "cancelPayment", one)
			c.ok(c.alice, confirms, &chain.ConfirmationsABI, "cancelPayment", one)
		}, HeldCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfirmSetup(t)
			before := c.balance(1, c.alice)
			if _, held := c.pay(50_000); !held {
				t.Fatal("not held")
			}
			// The primary key (a thief holding it) cannot confirm.
			c.refused("only the confirmation key", c.alice, confirms, &chain.ConfirmationsABI, "confirmPayment", one)
			c.refused("only the confirmation key", c.bob, confirms, &chain.ConfirmationsABI, "confirmPayment", one)
			c.refused("no pending payment 2", c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(2))
			tc.run(c)
			if c.balance(1, c.alice).Cmp(before) != 0 || c.escrow(1).Sign() != 0 || c.held(1).Status != tc.status {
				t.Fatalf("alice %s (had %s), escrow %s, status %d", c.balance(1, c.alice), before, c.escrow(1), c.held(1).Status)
			}
			c.refused("is already", c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", one)
			c.refused("is already", c.alice, confirms, &chain.ConfirmationsABI, "cancelPayment", one)
			if _, pending, _ := c.overlay().heldCursor(); pending != 0 {
				t.Fatalf("%d pending counted", pending)
			}
		})
	}
}

// expired returns the ids and amounts of r's PaymentExpired events, and
// checks each comes after the Transfer from the facade back to its sender.
func expired(t *testing.T, r *types.Receipt) map[uint64]int64 {
	t.Helper()
	out := map[uint64]int64{}
	ev := chain.ConfirmationsABI.Events["PaymentExpired"]
	for i, l := range r.Logs {
		if l.Address != confirms || l.Topics[0] != ev.ID {
			continue
		}
		vals, err := ev.Inputs.NonIndexed().Unpack(l.Data)
		if err != nil {
			t.Fatal(err)
		}
		from, asset, amount := common.BytesToAddress(l.Topics[2][:]), vals[0].(common.Address), vals[1].(*big.Int)
		if i == 0 || r.Logs[i-1].Address != asset || r.Logs[i-1].Topics[0] != chain.AssetABI.Events["Transfer"].ID ||
			common.BytesToAddress(r.Logs[i-1].Topics[1][:]) != asset || common.BytesToAddress(r.Logs[i-1].Topics[2][:]) != from {
			t.Fatalf("PaymentExpired %d without its Transfer(facade → sender) before it: %v", i, r.Logs)
		}
		out[new(big.Int).SetBytes(l.Topics[1][:]).Uint64()] = amount.Int64()
	}
	return out
}

func (c *confirmSetup) due() bool {
	c.t.Helper()
	due, err := HeldDue(c.base, c.timeMs)
	if err != nil {
		c.t.Fatal(err)
	}
	return due
}

// TestConfirmExpiry: a held payment may be confirmed until the block time
// before its expiry; from it, confirming is refused, HeldDue says so, and
// expirePayments (sent by anyone) returns the money with PaymentExpired.
// Before, with nothing due, expirePayments is refused and writes nothing.
func TestConfirmExpiry(t *testing.T) {
	c := newConfirmSetup(t)
	before := c.balance(1, c.alice)
	c.pay(20_000) // id 1
	c.pay(30_000) // id 2
	p1 := c.held(1)
	// One ms before: id 2 confirms; id 1 is not due.
	c.timeMs = p1.ExpiresMs - 1
	c.ok(c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(2))
	c.timeMs = p1.ExpiresMs - 1
	if c.due() {
		t.Fatal("due one ms before its expiry")
	}
	c.refused("no held payment is due to expire at", c.bob, confirms, &chain.ConfirmationsABI, "expirePayments")
	if c.held(1).Status != HeldPending {
		t.Fatalf("expired early: %+v", c.held(1))
	}
	c.timeMs = p1.ExpiresMs
	if !c.due() {
		t.Fatal("not due at its expiry")
	}
	c.refused("pending payment 1 expired at", c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(1))
	c.timeMs = p1.ExpiresMs
	// Still held until someone sends expirePayments: a stranger may.
	if c.held(1).Status != HeldPending || c.escrow(1).Int64() != 20_000 {
		t.Fatalf("before expirePayments: %+v, escrow %s", c.held(1), c.escrow(1))
	}
	at := c.timeMs
	r := c.ok(c.bob, confirms, &chain.ConfirmationsABI, "expirePayments")
	if got := expired(t, r); len(got) != 1 || got[1] != 20_000 {
		t.Fatalf("PaymentExpired events %v, want {1: 20000}", got)
	}
	if p := c.held(1); p.Status != HeldExpired || p.ClosedMs != at {
		t.Fatalf("after expirePayments: %+v", p)
	}
	want := new(big.Int).Sub(before, big.NewInt(30_000))
	if c.balance(1, c.alice).Cmp(want) != 0 || c.escrow(1).Sign() != 0 {
		t.Fatalf("alice %s want %s, escrow %s", c.balance(1, c.alice), want, c.escrow(1))
	}
	if c.due() {
		t.Fatal("due after expirePayments")
	}
	c.refused("no held payment is due", c.bob, confirms, &chain.ConfirmationsABI, "expirePayments")
	c.refused("is already expired", c.alice, confirms, &chain.ConfirmationsABI, "cancelPayment", big.NewInt(1))
	// Nothing pending: an empty block writes nothing at all.
	c.empty(c.timeMs + 3_600_000)
	if n := c.last.Writes.Len(); n != 0 {
		t.Fatalf("empty block with nothing pending wrote %d keys", n)
	}
}

// TestConfirmExpiryAfterGap: payments pending across a long gap in block
// time (a cluster down for hours) all expire in the first expirePayments
// after it, the cursor having stopped at the first due bucket, and the
// buckets they were listed in are gone. A cancellation after the expiry
// time, before the sweep, still returns the money (as a cancellation).
func TestConfirmExpiryAfterGap(t *testing.T) {
	c := newConfirmSetup(t)
	for i := 0; i < 4; i++ {
		c.pay(20_000 + int64(i))
		c.timeMs += 120_000 // each in another minute
	}
	c.ok(c.alice, confirms, &chain.ConfirmationsABI, "cancelPayment", big.NewInt(2))
	c.empty(c.held(4).ExpiresMs + 10*3_600_000)
	if cursor, pending, _ := c.overlay().heldCursor(); pending != 3 || cursor+1 != c.held(1).ExpiresMs/heldSlotMs {
		t.Fatalf("cursor %d, %d pending: want the second before payment 1's expiry, 3", cursor, pending)
	}
	if !c.due() {
		t.Fatal("nothing due after the gap")
	}
	c.ok(c.alice, confirms, &chain.ConfirmationsABI, "cancelPayment", big.NewInt(4))
	if got := expired(t, c.ok(c.key2, confirms, &chain.ConfirmationsABI, "expirePayments")); len(got) != 2 || got[1] != 20_000 || got[3] != 20_002 {
		t.Fatalf("PaymentExpired %v, want 1 and 3", got)
	}
	for id, want := range map[uint64]uint8{1: HeldExpired, 2: HeldCancelled, 3: HeldExpired, 4: HeldCancelled} {
		if got := c.held(id).Status; got != want {
			t.Fatalf("payment %d: %s, want %s", id, HeldStatusName(got), HeldStatusName(want))
		}
	}
	for id := uint64(1); id <= 4; id++ {
		p := c.held(id)
		sec := p.ExpiresMs / heldSlotMs
		next, live, err := c.overlay().heldBucket(sec)
		entry, _ := c.overlay().Get(heldEntryKey(sec, p.ExpiryIndex))
		if err != nil || next != 0 || live != 0 || entry != nil {
			t.Fatalf("bucket of %d: next %d, live %d, entry %x (%v)", id, next, live, entry, err)
		}
	}
	if _, pending, _ := c.overlay().heldCursor(); pending != 0 || c.escrow(1).Sign() != 0 || c.due() {
		t.Fatalf("%d pending, escrow %s", pending, c.escrow(1))
	}
}

// TestConfirmExpiryBounded: one expirePayments returns at most
// MaxExpiriesPerCall payments, oldest expiry first; the next call the rest.
func TestConfirmExpiryBounded(t *testing.T) {
	c := newConfirmSetup(t)
	for i := 0; i <= MaxExpiriesPerCall; i++ {
		c.pay(hkdThreshold + 1)
	}
	c.timeMs = c.held(MaxExpiriesPerCall + 1).ExpiresMs
	first := expired(t, c.ok(c.bob, confirms, &chain.ConfirmationsABI, "expirePayments"))
	if len(first) != MaxExpiriesPerCall || !c.due() {
		t.Fatalf("first call expired %d, due after: %v", len(first), c.due())
	}
	for id := uint64(1); id <= MaxExpiriesPerCall; id++ {
		if _, ok := first[id]; !ok {
			t.Fatalf("payment %d (of the oldest) not expired first: %v", id, first)
		}
	}
	if rest := expired(t, c.ok(c.bob, confirms, &chain.ConfirmationsABI, "expirePayments")); len(rest) != 1 || rest[MaxExpiriesPerCall+1] != hkdThreshold+1 {
		t.Fatalf("second call expired %v", rest)
	}
	if c.escrow(1).Sign() != 0 || c.due() {
		t.Fatalf("escrow %s after both calls", c.escrow(1))
	}
}

// TestConfirmUnderLimitsInForce: a confirmation runs the payment under the
// rules in force when it is confirmed: a freeze or a lower KYC tier since
// the hold refuses it (the payment stays held), and it goes through once
// they allow it.
func TestConfirmUnderLimitsInForce(t *testing.T) {
	one := big.NewInt(1)
	c := newConfirmSetup(t)
	c.pay(600_000) // 6000.00 HKD: over tier 1's per-transfer 5000.00
	c.ok(c.compliance, chain.ComplianceAddress, &chain.ComplianceABI, "freeze", c.alice, "investigation")
	c.refused("pending payment 1 cannot be confirmed now: account "+c.alice.Hex()+" is frozen", c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", one)
	c.ok(c.compliance, chain.ComplianceAddress, &chain.ComplianceABI, "unfreeze", c.alice, "cleared")
	c.ok(c.compliance, chain.ComplianceAddress, &chain.ComplianceABI, "setKycTier", c.alice, uint8(1), "downgraded")
	c.refused("is over the per-transfer limit", c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", one)
	c.ok(c.compliance, chain.ComplianceAddress, &chain.ComplianceABI, "freeze", c.bob, "recipient frozen")
	c.ok(c.compliance, chain.ComplianceAddress, &chain.ComplianceABI, "setKycTier", c.alice, uint8(3), "restored")
	c.refused("account "+c.bob.Hex()+" is frozen", c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", one)
	c.ok(c.compliance, chain.ComplianceAddress, &chain.ComplianceABI, "unfreeze", c.bob, "cleared")
	c.ok(c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", one)
	// A frozen sender's hold is refused at once, as its transfer would be.
	c.ok(c.compliance, chain.ComplianceAddress, &chain.ComplianceABI, "freeze", c.alice, "again")
	c.refused("is frozen", c.alice, c.hkd, &chain.AssetABI, "transfer", c.bob, big.NewInt(50_000))
}

// TestConfirmKinds: a native transfer, a payment under a reference and a
// withdrawal are held and run as themselves when confirmed; a batch, a
// transferFrom and an exchange offer over the threshold are refused (they
// would be ways around the confirmation).
func TestConfirmKinds(t *testing.T) {
	c := newConfirmSetup(t)
	big1k := new(big.Int).Add(c.cnyThreshold, big.NewInt(1))
	bobCNY := c.balance(0, c.bob)
	r, reason := c.exec(c.alice, c.bob, big1k, nil)
	if r.Status != StatusSuccess || !hasEvent(r, confirms, chain.ConfirmationsABI.Events["ConfirmationRequired"]) {
		t.Fatalf("native transfer over the threshold: status %d %s", r.Status, reason)
	}
	if c.balance(0, c.bob).Cmp(bobCNY) != 0 || c.escrow(0).Cmp(big1k) != 0 || c.held(1).Kind != HeldKindNative {
		t.Fatalf("native hold: bob %s, escrow %s", c.balance(0, c.bob), c.escrow(0))
	}
	c.ok(c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(1))
	if got := new(big.Int).Sub(c.balance(0, c.bob), bobCNY); got.Cmp(big1k) != 0 {
		t.Fatalf("native confirmed: bob got %s", got)
	}

	ref := [32]byte{'O', 'R', 'D', 'E', 'R', '-', '1'}
	c.ok(c.alice, c.hkd, &chain.AssetABI, "transferWithReference", c.bob, big.NewInt(25_000), ref)
	if p := c.held(2); p.Kind != HeldKindPayment || p.Ref != common.Hash(ref) {
		t.Fatalf("payment hold %+v", p)
	}
	if p, _ := c.overlay().Payment(1, c.bob, ref, c.alice); p.Paid.Sign() != 0 {
		t.Fatalf("held payment recorded as paid: %+v", p)
	}
	r = c.ok(c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(2))
	if p, _ := c.overlay().Payment(1, c.bob, ref, c.alice); p.Paid.Int64() != 25_000 || p.PaidMs == 0 {
		t.Fatalf("confirmed payment record %+v", p)
	}
	if !hasEvent(r, c.hkd, chain.AssetABI.Events["PaymentReference"]) {
		t.Fatal("confirmed payment without PaymentReference")
	}

	c.ok(c.alice, c.hkd, &chain.AssetABI, "requestWithdrawal", big.NewInt(40_000), [32]byte{'P', 'A', 'Y'})
	if _, found, _ := c.overlay().Withdrawal(1); found {
		t.Fatal("a held withdrawal was requested")
	}
	escrow := c.escrow(1)
	r = c.ok(c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(3))
	w, found, _ := c.overlay().Withdrawal(1)
	if !found || w.Status != WithdrawalPending || w.Amount.Int64() != 40_000 || c.escrow(1).Cmp(escrow) != 0 {
		t.Fatalf("confirmed withdrawal %+v found %v, escrow %s (was %s)", w, found, c.escrow(1), escrow)
	}
	for _, l := range r.Logs {
		if l.Topics[0] == chain.AssetABI.Events["Transfer"].ID {
			t.Fatalf("a confirmed withdrawal moved nothing but logged %v", l)
		}
	}

	c.refused("only a transfer, transferWithReference or requestWithdrawal can wait", c.alice, c.hkd, &chain.AssetABI, "batchTransfer",
		[]common.Address{c.bob, c.key}, []*big.Int{big.NewInt(6_000), big.NewInt(6_000)}, [32]byte{})
	c.ok(c.alice, c.hkd, &chain.AssetABI, "batchTransfer", []common.Address{c.bob, c.key}, []*big.Int{big.NewInt(5_000), big.NewInt(5_000)}, [32]byte{})
	c.ok(c.alice, c.hkd, &chain.AssetABI, "approve", c.bob, big.NewInt(1_000_000))
	c.refused("transferFrom of", c.bob, c.hkd, &chain.AssetABI, "transferFrom", c.alice, c.bob, big.NewInt(10_001))
	c.ok(c.bob, c.hkd, &chain.AssetABI, "transferFrom", c.alice, c.bob, big.NewInt(10_000))
	c.refused("createOffer of", c.alice, chain.ExchangeAddress, &chain.ExchangeABI, "createOffer", c.hkd, big.NewInt(20_000), chain.AssetAddress(0), big.NewInt(1), c.bob, uint64(c.timeMs/1000+3600))
}

// TestConfirmSettingsChange: a change that is not stricter waits the
// delay; the key approves it at once or cancels it; a stolen primary key
// removing the confirmation cannot move money past it in the meantime.
func TestConfirmSettingsChange(t *testing.T) {
	set := func(c *confirmSetup, key common.Address, threshold int64) (bool, bool) {
		r := c.ok(c.alice, confirms, &chain.ConfirmationsABI, "setConfirmation", key, []common.Address{c.hkd}, []*big.Int{big.NewInt(threshold)})
		return hasEvent(r, confirms, chain.ConfirmationsABI.Events["ConfirmationSet"]), hasEvent(r, confirms, chain.ConfirmationsABI.Events["ConfirmationChangeScheduled"])
	}
	inForce := func(c *confirmSetup) ConfirmSettings {
		s, err := c.overlay().ConfirmSettings(c.alice)
		if err != nil {
			t.Fatal(err)
		}
		return s.At(c.timeMs)
	}
	t.Run("stricter at once", func(t *testing.T) {
		c := newConfirmSetup(t)
		// Lower the HKD threshold and drop CNY: dropping is not stricter.
		now, later := set(c, c.key, 5_000)
		if now || !later {
			t.Fatalf("dropping CNY applied at once (%v, %v)", now, later)
		}
		c.ok(c.alice, confirms, &chain.ConfirmationsABI, "setConfirmation", c.key, []common.Address{c.hkd, chain.AssetAddress(0)}, []*big.Int{big.NewInt(5_000), c.cnyThreshold})
		if th, _ := inForce(c).ThresholdOf(1); th.Int64() != 5_000 || len(inForce(c).Change) != 0 {
			t.Fatalf("stricter change not in force at once: %+v", inForce(c))
		}
	})
	t.Run("stolen primary key removes it", func(t *testing.T) {
		c := newConfirmSetup(t)
		r := c.ok(c.alice, confirms, &chain.ConfirmationsABI, "setConfirmation", common.Address{}, []common.Address{}, []*big.Int{})
		if !hasEvent(r, confirms, chain.ConfirmationsABI.Events["ConfirmationChangeScheduled"]) {
			t.Fatal("removal not scheduled")
		}
		at := c.timeMs - 1000 + testKeyDelaySeconds*1000
		if _, held := c.pay(50_000); !held {
			t.Fatal("removal took effect before its delay")
		}
		c.refused("only "+c.alice.Hex()+" or its confirmation key", c.bob, confirms, &chain.ConfirmationsABI, "cancelConfirmationChange", c.alice)
		c.refused("only the confirmation key", c.alice, confirms, &chain.ConfirmationsABI, "approveConfirmationChange", c.alice)
		r = c.ok(c.key, confirms, &chain.ConfirmationsABI, "cancelConfirmationChange", c.alice)
		if !hasEvent(r, confirms, chain.ConfirmationsABI.Events["ConfirmationChangeCancelled"]) {
			t.Fatal("no ConfirmationChangeCancelled")
		}
		c.timeMs = at + 1
		if _, held := c.pay(50_000); !held {
			t.Fatal("cancelled removal took effect")
		}
		c.refused("has no confirmation change waiting", c.key, confirms, &chain.ConfirmationsABI, "cancelConfirmationChange", c.alice)
	})
	t.Run("removal after the delay", func(t *testing.T) {
		c := newConfirmSetup(t)
		c.ok(c.alice, confirms, &chain.ConfirmationsABI, "setConfirmation", common.Address{}, []common.Address{}, []*big.Int{})
		at := c.timeMs - 1000 + testKeyDelaySeconds*1000
		c.timeMs = at - 1
		if _, held := c.pay(50_000); !held {
			t.Fatal("removal in force 1 ms early")
		}
		c.timeMs = at
		if _, held := c.pay(50_000); held {
			t.Fatal("removal not in force at its time")
		}
		c.refused("has no confirmation key to remove", c.alice, confirms, &chain.ConfirmationsABI, "setConfirmation", common.Address{}, []common.Address{}, []*big.Int{})
		// The held payment of the old key is still the old key's to confirm.
		c.refused("only the confirmation key 0x0000000000000000000000000000000000000000", c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(1))
		c.ok(c.alice, confirms, &chain.ConfirmationsABI, "cancelPayment", big.NewInt(1))
	})
	t.Run("key change approved by the key", func(t *testing.T) {
		c := newConfirmSetup(t)
		if now, later := set(c, c.key2, 100_000); now || !later {
			t.Fatalf("new key applied at once")
		}
		c.refused("only the confirmation key", c.key2, confirms, &chain.ConfirmationsABI, "approveConfirmationChange", c.alice)
		c.ok(c.key, confirms, &chain.ConfirmationsABI, "approveConfirmationChange", c.alice)
		if s := inForce(c); s.Key != c.key2 || len(s.Change) != 0 {
			t.Fatalf("approved change not in force: %+v", s)
		}
		if _, held := c.pay(100_000); held {
			t.Fatal("raised threshold not in force")
		}
		if _, held := c.pay(100_001); !held {
			t.Fatal("not held over the new threshold")
		}
		c.refused("only the confirmation key", c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(1))
		c.ok(c.key2, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(1))
	})
	t.Run("bad settings", func(t *testing.T) {
		c := newConfirmSetup(t)
		for _, tc := range []struct {
			want    string
			key     common.Address
			assets  []common.Address
			amounts []*big.Int
		}{
			{"is the account itself", c.alice, nil, nil},
			{"is a system address", c.hkd, nil, nil},
			{"has 1 assets but 0 thresholds", c.key, []common.Address{c.hkd}, nil},
			{"no asset at", c.key, []common.Address{chain.AssetAddress(9)}, []*big.Int{big.NewInt(1)}},
			{"appears twice", c.key, []common.Address{c.hkd, c.hkd}, []*big.Int{big.NewInt(1), big.NewInt(2)}},
			{"thresholds without a confirmation key", common.Address{}, []common.Address{c.hkd}, []*big.Int{big.NewInt(1)}},
		} {
			if tc.assets == nil {
				tc.assets = []common.Address{}
			}
			if tc.amounts == nil {
				tc.amounts = []*big.Int{}
			}
			c.refused(tc.want, c.alice, confirms, &chain.ConfirmationsABI, "setConfirmation", tc.key, tc.assets, tc.amounts)
		}
	})
}

// TestEscrowOf: every open escrow record is found by EscrowOf with its
// asset and amount, and closed ones are not (the audit sums them).
func TestEscrowOf(t *testing.T) {
	c := newConfirmSetup(t)
	c.pay(20_000)
	c.pay(30_000)
	c.ok(c.key, confirms, &chain.ConfirmationsABI, "confirmPayment", big.NewInt(1))
	sum := new(big.Int)
	for id := uint64(1); id <= 2; id++ {
		k := key(prefixHeld, u64(id))
		v, _ := c.overlay().Get(k)
		asset, amount, open, err := EscrowOf(k, v)
		if err != nil || asset != 1 {
			t.Fatalf("EscrowOf %d: %v %d", id, err, asset)
		}
		if open {
			sum.Add(sum, amount)
		}
	}
	if sum.Cmp(c.escrow(1)) != 0 || sum.Int64() != 30_000 {
		t.Fatalf("open held payments %s, escrow %s", sum, c.escrow(1))
	}
}

// TestHeldBuckets: payments expiring in the same second share a bucket
// whose entries are added and deleted one by one (no record grows with
// the bucket); closing the last live one deletes the bucket, and the
// expiry is the hold rounded up to a whole second.
func TestHeldBuckets(t *testing.T) {
	if got := expiryOf(1_000_500, 60); got != 1_061_000 {
		t.Fatalf("expiryOf(1000500 ms, 60 s) = %d, want 1061000", got)
	}
	if got := expiryOf(1_000_000, 60); got != 1_060_000 {
		t.Fatalf("expiryOf(1000000 ms, 60 s) = %d, want 1060000", got)
	}
	o := NewOverlay(newPayChain(t).base)
	const sec = 77
	var ps []HeldPayment
	for id := uint64(1); id <= 5; id++ {
		i, err := o.enqueueHeld(id, sec*heldSlotMs)
		if err != nil || i != uint32(id-1) {
			t.Fatalf("enqueue %d: index %d, %v", id, i, err)
		}
		ps = append(ps, HeldPayment{ExpiresMs: sec * heldSlotMs, ExpiryIndex: i})
	}
	for k := range 2 { // payments 2 and 4 close
		if err := o.dequeueHeld(ps[1+2*k]); err != nil {
			t.Fatal(err)
		}
	}
	if next, live, _ := o.heldBucket(sec); next != 5 || live != 3 {
		t.Fatalf("bucket after two closes: next %d live %d", next, live)
	}
	if v, _ := o.Get(heldEntryKey(sec, 1)); v != nil {
		t.Fatalf("closed entry still there: %x", v)
	}
	if len(o.writes[string(key(prefixHeldExpiry, u64(sec)))]) != 8 {
		t.Fatal("the bucket record is not 8 bytes")
	}
	for _, i := range []int{0, 2, 4} {
		if err := o.dequeueHeld(ps[i]); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := o.Get(key(prefixHeldExpiry, u64(sec))); v != nil {
		t.Fatalf("empty bucket kept: %x", v)
	}
	if err := o.dequeueHeld(ps[0]); err == nil {
		t.Fatal("dequeue from an empty bucket succeeded")
	}
}

// TestConfirmExpiryKinds: every kind of held payment expires back to its
// sender, a frozen one too: a native transfer with PaymentExpired alone
// (no ERC-20 Transfer), a payment without a payment record, a withdrawal
// without a withdrawal requested.
func TestConfirmExpiryKinds(t *testing.T) {
	ref := [32]byte{'O', 'R', 'D', 'E', 'R', '-', '3'}
	for _, tc := range []struct {
		name  string
		asset uint32
		hold  func(c *confirmSetup, amount *big.Int)
	}{
		{"native transfer", NativeAsset, func(c *confirmSetup, amount *big.Int) {
			if r, reason := c.exec(c.alice, c.bob, amount, nil); r.Status != StatusSuccess {
				t.Fatalf("native transfer: %s", reason)
			}
		}},
		{"payment", 1, func(c *confirmSetup, amount *big.Int) {
			c.ok(c.alice, c.hkd, &chain.AssetABI, "transferWithReference", c.bob, amount, ref)
		}},
		{"withdrawal", 1, func(c *confirmSetup, amount *big.Int) {
			c.ok(c.alice, c.hkd, &chain.AssetABI, "requestWithdrawal", amount, [32]byte{'P', 'A', 'Y'})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfirmSetup(t)
			amount := big.NewInt(hkdThreshold + 1)
			if tc.asset == NativeAsset {
				amount = new(big.Int).Add(c.cnyThreshold, big.NewInt(1))
			}
			before := c.balance(tc.asset, c.alice)
			tc.hold(c, amount)
			if c.held(1).Status != HeldPending || c.escrow(tc.asset).Cmp(amount) != 0 {
				t.Fatalf("not held: %+v, escrow %s", c.held(1), c.escrow(tc.asset))
			}
			c.ok(c.compliance, chain.ComplianceAddress, &chain.ComplianceABI, "freeze", c.alice, "case 7")
			c.timeMs = c.held(1).ExpiresMs
			r := c.ok(c.bob, confirms, &chain.ConfirmationsABI, "expirePayments")
			ev := chain.ConfirmationsABI.Events["PaymentExpired"]
			transfers := 0
			var got []any
			for _, l := range r.Logs {
				switch {
				case l.Topics[0] == chain.AssetABI.Events["Transfer"].ID:
					transfers++
				case l.Address == confirms && l.Topics[0] == ev.ID:
					var err error
					if got, err = ev.Inputs.NonIndexed().Unpack(l.Data); err != nil {
						t.Fatal(err)
					}
				}
			}
			wantTransfers := 1
			if tc.asset == NativeAsset {
				wantTransfers = 0
			}
			if len(got) != 2 || got[0].(common.Address) != chain.AssetAddress(tc.asset) || got[1].(*big.Int).Cmp(amount) != 0 || transfers != wantTransfers {
				t.Fatalf("PaymentExpired %v, %d Transfer events (want %d)", got, transfers, wantTransfers)
			}
			if c.balance(tc.asset, c.alice).Cmp(before) != 0 || c.escrow(tc.asset).Sign() != 0 || c.held(1).Status != HeldExpired {
				t.Fatalf("alice %s (had %s), escrow %s, %+v", c.balance(tc.asset, c.alice), before, c.escrow(tc.asset), c.held(1))
			}
			if p, _ := c.overlay().Payment(1, c.bob, ref, c.alice); p.Paid.Sign() != 0 {
				t.Fatalf("an expired payment was recorded as paid: %+v", p)
			}
			if _, found, _ := c.overlay().Withdrawal(1); found {
				t.Fatal("an expired withdrawal was requested")
			}
		})
	}
}
