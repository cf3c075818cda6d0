package state

import (
	"errors"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

// TestConservationAssertedPerBlock: an operation that creates or destroys
// money (injected through brokenOpForTest after the block's real
// transactions) makes Build and Transition fail with ErrConservation, which
// is not a rejection (the FSM halts on it; store's TestCertificateHalts
// shows a halting error commits nothing). Writes that do balance pass.
func TestConservationAssertedPerBlock(t *testing.T) {
	holder := common.Address{0x77}
	bump := func(o *Overlay, f func(s *Supply)) {
		s, err := o.Supply(NativeAsset)
		if err != nil {
			t.Fatal(err)
		}
		f(&s)
		o.SetSupply(NativeAsset, s)
	}
	credit := func(o *Overlay, a common.Address, v int64) {
		bal, err := o.Balance(NativeAsset, a)
		if err != nil {
			t.Fatal(err)
		}
		o.SetBalance(NativeAsset, a, bal.Add(bal, big.NewInt(v)))
	}
	one := big.NewInt(1)
	for _, tc := range []struct {
		name   string
		op     func(o *Overlay)
		broken bool
	}{
		{"balance out of nothing", func(o *Overlay) { credit(o, holder, 1) }, true},
		{"escrow out of nothing", func(o *Overlay) { bump(o, func(s *Supply) { s.Escrow.Add(s.Escrow, one) }) }, true},
		{"mint without a credit", func(o *Overlay) { bump(o, func(s *Supply) { s.Minted.Add(s.Minted, one) }) }, true},
		{"burn without a debit", func(o *Overlay) { bump(o, func(s *Supply) { s.Burned.Add(s.Burned, one) }) }, true},
		{"debit into escrow twice", func(o *Overlay) {
			credit(o, holder, -1) // the block's transfer gave holder 5
			bump(o, func(s *Supply) { s.Escrow.Add(s.Escrow, big.NewInt(2)) })
		}, true},
		{"mint with a credit", func(o *Overlay) {
			credit(o, holder, 1)
			bump(o, func(s *Supply) { s.Minted.Add(s.Minted, one) })
		}, false},
		{"withdrawal into escrow", func(o *Overlay) {
			credit(o, holder, -2)
			bump(o, func(s *Supply) { s.Escrow.Add(s.Escrow, big.NewInt(2)) })
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newGenesisChain(t)
			good, err := c.build(c.transfer(0, 0, holder, 5))
			if err != nil {
				t.Fatal(err)
			}
			brokenOpForTest = tc.op
			defer func() { brokenOpForTest = nil }()

			_, buildErr := c.build(good.Block.Txs...)
			res, violations, applyErr := c.transition(good.Block)
			if !tc.broken {
				if buildErr != nil {
					t.Fatalf("build: %v", buildErr)
				}
				// The block was built without the op: its state root differs,
				// so it is rejected, as any block execution does not reproduce.
				if applyErr != nil || len(violations) == 0 || violations[0].Rule != RuleStateRoot {
					t.Fatalf("transition: violations %v, err %v; want %s", violations, applyErr, RuleStateRoot)
				}
				return
			}
			if !errors.Is(buildErr, ErrConservation) {
				t.Fatalf("build: %v, want ErrConservation", buildErr)
			}
			// Halting, not a rejection: no result to commit, no violation.
			if !errors.Is(applyErr, ErrConservation) || res != nil || len(violations) > 0 {
				t.Fatalf("transition: %v, %v, want ErrConservation alone", applyErr, violations)
			}
		})
	}
}
