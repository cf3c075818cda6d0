package state

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

var governance = chain.GovernanceAddress

// govern has the dev governance (two of three members) approve the
// change method(args) and runs empty blocks until it is in force, then
// returns the rules as the state holds them.
func (c *payChain) govern(method string, args ...any) *Rules {
	c.t.Helper()
	m1, m2 := devAddr(c.t, genesis.DevGovernanceIndex), devAddr(c.t, genesis.DevGovernanceIndex+1)
	r := c.ok(m1, governance, &chain.GovernanceABI, method, args...)
	id := new(big.Int).SetBytes(r.Logs[0].Topics[1][:])
	c.ok(m2, governance, &chain.GovernanceABI, "vote", id, true)
	for i := uint64(0); i < c.g.Governance.ActivationDelay; i++ {
		c.empty(c.timeMs)
	}
	p, _, err := c.overlay().Proposal(id.Uint64())
	if err != nil || p.Status != ProposalExecuted {
		c.t.Fatalf("proposal %s (%s): status %s, %v", id, method, statusName(p.Status), err)
	}
	rules, err := LoadRules(c.base)
	if err != nil {
		c.t.Fatal(err)
	}
	return rules
}

// TestGovernPayments: governance changes the payment-trust times and an
// asset's dispute window on a running chain; a bad value is refused when
// proposed, naming the field, and nothing is written.
func TestGovernPayments(t *testing.T) {
	member, stranger := devAddr(t, genesis.DevGovernanceIndex), devAddr(t, 0)
	cny, hkd := chain.AssetAddress(0), chain.AssetAddress(1)
	for _, tc := range []struct {
		name, method, want string
		from               common.Address
		args               []any
	}{
		{"hold under the minimum", "proposeSetPayments", "payments.holdSeconds 59 is under 60", member, []any{uint64(59), uint64(0), uint64(0)}},
		{"delay over the maximum", "proposeSetPayments", "payments.keyChangeDelaySeconds 7776001 is over 7776000", member,
			[]any{uint64(0), uint64(genesis.MaxPaymentSeconds + 1), uint64(0)}},
		{"response over the maximum", "proposeSetPayments", "payments.disputeResponseSeconds 7776001 is over 7776000", member,
			[]any{uint64(0), uint64(0), uint64(genesis.MaxPaymentSeconds + 1)}},
		{"not a member", "proposeSetPayments", "is not a governance member", stranger, []any{uint64(120), uint64(0), uint64(0)}},
		{"window over the maximum", "proposeSetDisputeWindow", "assets[0].disputeWindowSeconds 34560001 is over 34560000", member,
			[]any{cny, uint64(genesis.MaxDisputeWindowSeconds + 1)}},
		{"window unchanged", "proposeSetDisputeWindow", "assets[1].disputeWindowSeconds of HKD is already 2592000", member, []any{hkd, uint64(testDisputeWindow)}},
		{"no such asset", "proposeSetDisputeWindow", "no asset at", member, []any{chain.AssetAddress(9), uint64(60)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newPayChain(t)
			c.refused(tc.want, tc.from, governance, &chain.GovernanceABI, tc.method, tc.args...)
		})
	}

	t.Run("times", func(t *testing.T) {
		c := &confirmSetup{payChain: newPayChain(t), alice: devAddr(t, 0), bob: devAddr(t, 1), key: devAddr(t, 2), key2: devAddr(t, 3), hkd: hkd}
		c.ok(c.alice, confirms, &chain.ConfirmationsABI, "setConfirmation", c.key, []common.Address{hkd}, []*big.Int{big.NewInt(hkdThreshold)})
		c.pay(hkdThreshold + 1) // id 1, under the old hold
		rules := c.govern("proposeSetPayments", uint64(120), uint64(600), uint64(60))
		if rules.Hold() != 120 || rules.KeyChangeDelay() != 600 || rules.DisputeResponse() != 60 {
			t.Fatalf("rules after the change: hold %d, delay %d, response %d", rules.Hold(), rules.KeyChangeDelay(), rules.DisputeResponse())
		}
		// A payment held now waits the new hold; one held before keeps its expiry.
		c.pay(hkdThreshold + 1) // id 2
		if p1, p2 := c.held(1), c.held(2); p2.ExpiresMs != expiryOf(p2.CreatedMs, 120) || p1.ExpiresMs != expiryOf(p1.CreatedMs, testHoldSeconds) {
			t.Fatalf("expiries %d (held %d), %d (held %d)", p1.ExpiresMs, p1.CreatedMs, p2.ExpiresMs, p2.CreatedMs)
		}
		// A removal of the key waits the new delay.
		at := c.timeMs
		c.ok(c.alice, confirms, &chain.ConfirmationsABI, "setConfirmation", common.Address{}, []common.Address{}, []*big.Int{})
		s, _ := c.overlay().ConfirmSettings(c.alice)
		if len(s.Change) != 1 || s.Change[0].EffectiveMs != at+600_000 {
			t.Fatalf("waiting change %+v, want effective at %d", s.Change, at+600_000)
		}
		// Zeros are the defaults again.
		if rules := c.govern("proposeSetPayments", uint64(0), uint64(0), uint64(0)); rules.Payments != nil || rules.Hold() != genesis.DefaultHoldSeconds {
			t.Fatalf("payments %+v after setting the defaults", rules.Payments)
		}
	})

	t.Run("dispute window", func(t *testing.T) {
		c := newDisputeSetup(t)
		ref := [32]byte{'C', 'N', 'Y', '-', '1'}
		c.ok(c.alice, cny, &chain.AssetABI, "transferWithReference", c.bob, big.NewInt(1_000), ref)
		c.refused("CNY takes no disputes", c.alice, disputes, &chain.DisputesABI, "openDispute", cny, c.bob, ref, big.NewInt(1), DisputeFraud, [32]byte{})
		if rules := c.govern("proposeSetDisputeWindow", cny, uint64(3600)); rules.Assets[0].DisputeWindowSeconds != 3600 {
			t.Fatalf("CNY window %d", rules.Assets[0].DisputeWindowSeconds)
		}
		// A payment from before CNY recorded payment times cannot be
		// disputed; one made since can, within the new window.
		c.refused("was made before CNY recorded payment times", c.alice, disputes, &chain.DisputesABI, "openDispute", cny, c.bob, ref, big.NewInt(1), DisputeFraud, [32]byte{})
		ref2 := [32]byte{'C', 'N', 'Y', '-', '2'}
		paid := c.timeMs
		c.ok(c.alice, cny, &chain.AssetABI, "transferWithReference", c.bob, big.NewInt(1_000), ref2)
		c.ok(c.alice, disputes, &chain.DisputesABI, "openDispute", cny, c.bob, ref2, big.NewInt(1_000), DisputeFraud, [32]byte{})
		ref3 := [32]byte{'C', 'N', 'Y', '-', '3'}
		c.ok(c.alice, cny, &chain.AssetABI, "transferWithReference", c.bob, big.NewInt(1_000), ref3)
		c.timeMs = paid + 3600*1000 + 3000 // ref3 was paid 2 s after ref2: 1 s past its window
		c.refused("the dispute window of the payment under reference", c.alice, disputes, &chain.DisputesABI, "openDispute", cny, c.bob, ref3, big.NewInt(1), DisputeFraud, [32]byte{})
		// Closing the window refuses new disputes; a refund still closes
		// the one open.
		c.govern("proposeSetDisputeWindow", cny, uint64(0))
		r := c.ok(c.bob, cny, &chain.AssetABI, "refund", ref2, c.alice, big.NewInt(1_000))
		if !hasEvent(r, disputes, chain.DisputesABI.Events["DisputeRefunded"]) || c.dispute(1).Status != DisputeRefunded {
			t.Fatalf("refund after the window closed: dispute %+v", c.dispute(1))
		}
	})
}
