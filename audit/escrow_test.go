package audit_test

import (
	"math/big"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/state"
)

// TestAuditEscrow: a chain with held payments (one confirmed, one
// cancelled, one expired by expirePayments, one still pending) audits
// clean, with the pending one counted in the escrow; a data dir whose
// held payment record was forged (its amount raised, or its status closed
// while its money stays in escrow) fails the escrow check of the stored
// state, as well as the final state.
func TestAuditEscrow(t *testing.T) {
	g := chaintest.Genesis(t)
	g.Payments = &genesis.Payments{HoldSeconds: 60}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	c := chaintest.NewOn(t, g)
	payer, payee, key := uint32(0), chaintest.Addr(1), uint32(2)
	hkd := chain.AssetAddress(1)
	conf := func(from uint32, method string, args ...any) {
		t.Helper()
		a := c.Apply(c.Call(from, chain.ConfirmationsAddress, &chain.ConfirmationsABI, method, args...))
		if a.Receipts[0].Status != state.StatusSuccess {
			t.Fatalf("%s failed", method)
		}
	}
	conf(payer, "setConfirmation", chaintest.Addr(key), []common.Address{hkd}, []*big.Int{big.NewInt(100)})
	pay := func(amount int64) {
		t.Helper()
		if a := c.Apply(c.Asset(payer, 1, "transfer", payee, big.NewInt(amount))); a.Receipts[0].Status != state.StatusSuccess {
			t.Fatal("transfer failed")
		}
	}
	pay(500)                                    // held payment 1
	pay(600)                                    // 2
	pay(700)                                    // 3
	conf(key, "confirmPayment", big.NewInt(1))  // confirmed
	conf(payer, "cancelPayment", big.NewInt(2)) // cancelled
	c.Advance(2 * time.Minute)                  // 3 is due
	conf(1, "expirePayments")                   // expired, by anyone
	pay(800)                                    // 4 stays pending
	head := c.Apply()
	_ = head
	c.Close()
	g2, err := genesis.Parse(c.GenesisJSON)
	if err != nil {
		t.Fatal(err)
	}
	rep := runDir(t, g2, c.Dir, nil)
	if !rep.OK {
		t.Fatalf("clean chain: %+v", rep.Failures)
	}
	for _, s := range rep.Supply {
		if s.Symbol == "HKD" && s.Escrow != "800" {
			t.Fatalf("HKD escrow %s, want the pending 800", s.Escrow)
		}
	}
	heldKey := func(id uint64) []byte { return append([]byte(state.HeldPrefix), numKey(0, id)[1:]...) }
	forge := func(id uint64, edit func(p *state.HeldPayment)) func(t *testing.T, db *pebble.DB) {
		return func(t *testing.T, db *pebble.DB) {
			v, closer, err := db.Get(heldKey(id))
			if err != nil {
				t.Fatal(err)
			}
			var p state.HeldPayment
			err = rlp.DecodeBytes(v, &p)
			closer.Close()
			if err != nil {
				t.Fatal(err)
			}
			edit(&p)
			enc, _ := rlp.EncodeToBytes(&p)
			if err := db.Set(heldKey(id), enc, pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, db *pebble.DB)
	}{
		{"pending amount raised", forge(4, func(p *state.HeldPayment) { p.Amount = big.NewInt(8000) })},
		{"pending marked expired, escrow kept", forge(4, func(p *state.HeldPayment) { p.Status = state.HeldExpired })},
		{"confirmed payment reopened", forge(1, func(p *state.HeldPayment) { p.Status = state.HeldPending })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := runDir(t, g2, tamper(t, c.Dir, func(db *pebble.DB) { tc.edit(t, db) }), nil)
			if rep.OK || !rep.Failed(audit.CheckEscrow, rep.To) || !rep.Failed(audit.CheckFinalState, rep.To) {
				t.Fatalf("want %s and %s at %d; failures: %+v", audit.CheckEscrow, audit.CheckFinalState, rep.To, rep.Failures)
			}
		})
	}
}
