package audit_test

import (
	"math/big"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/state"
)

// TestAuditReplaysSuspensions: the audit's replay recomputes every
// automatic suspension and its lifting from the rules in force. A chain
// where a velocity rule suspends a sender, refuses its next transfer and
// lets it go once the suspension ended audits clean; the same chain with a
// suspension forged into a block (re-sealed by its proposer, as a
// dishonest leader would), erased from the state, or reworded in a kept
// reason does not.
func TestAuditReplaysSuspensions(t *testing.T) {
	g := chaintest.Genesis(t)
	g.Risk = &genesis.Risk{Velocity: []genesis.VelocityRule{{Name: "hkd-once", Tier: genesis.DevTierInstitutional, Asset: "HKD",
		Window: genesis.WindowHour, MaxTransfers: 1, SuspendSeconds: 2}}}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	c := chaintest.NewOn(t, g)
	payer, payee, innocent := chaintest.Addr(0), chaintest.Addr(1), chaintest.Addr(3)
	hkd := func() *types.Transaction { return c.Asset(0, 1, "transfer", payee, big.NewInt(100)) }
	cny := func() *types.Transaction { return c.Tx(0, payee, big.NewInt(1), nil) }
	watched := c.Apply(hkd(), // block 1: counted; an address listed
		c.Call(genesis.DevComplianceIndex, chain.ComplianceAddress, &chain.ComplianceABI, "watch", chaintest.Addr(4), "sanctions list hit"))
	if watched.Receipts[1].Status != state.StatusSuccess {
		t.Fatal("watch failed")
	}
	suspended := c.Apply(hkd()) // block 2: refused, payer suspended for 2 s
	refused := c.Apply(cny())   // block 3 (+1 s): refused, still suspended
	lifted := c.Apply(cny())    // block 4 (+2 s): the suspension has ended
	for _, s := range []struct {
		name string
		r    *types.Receipt
		want uint64
	}{{"the rule's refusal", suspended.Receipts[0], state.StatusFailed}, {"the suspended sender's transfer", refused.Receipts[0], state.StatusFailed},
		{"the transfer after the suspension", lifted.Receipts[0], state.StatusSuccess}} {
		if s.r.Status != s.want {
			t.Fatalf("%s: status %d, want %d", s.name, s.r.Status, s.want)
		}
	}
	// Block 5, honest; its forged twin suspends an innocent account.
	honest := c.Build(c.Certificates(), c.Tx(2, payee, big.NewInt(1), nil))
	forged := forgeSuspension(t, c, honest, innocent)
	if _, err := c.ApplyBlock(honest.Block); err != nil {
		t.Fatal(err)
	}
	head := honest.Block.Number()
	c.Close()
	g2, err := genesis.Parse(c.GenesisJSON)
	if err != nil {
		t.Fatal(err)
	}
	if rep := runDir(t, g2, c.Dir, nil); !rep.OK {
		t.Fatalf("clean chain: %+v", rep.Failures)
	}
	suspensionKey := append([]byte(state.SuspensionPrefix), payer.Bytes()...)
	for _, tc := range []struct {
		name   string
		edit   func(t *testing.T, db *pebble.DB)
		check  string
		height uint64
	}{
		{"suspension forged into a block", func(t *testing.T, db *pebble.DB) {
			_, rs := getBlock(t, db, head)
			putBlock(t, db, forged, rs)
		}, audit.CheckStateRoot, head},
		{"suspension erased from the state", func(t *testing.T, db *pebble.DB) {
			if err := db.Delete(suspensionKey, nil); err != nil {
				t.Fatal(err)
			}
		}, audit.CheckFinalState, head},
		{"watch list entry without a reason", func(t *testing.T, db *pebble.DB) {
			b, rs := getBlock(t, db, 1)
			ev := chain.ComplianceABI.Events["Watched"]
			data, err := ev.Inputs.NonIndexed().Pack("")
			if err != nil {
				t.Fatal(err)
			}
			rs[1].Logs[0].Data = data
			putBlock(t, db, b, rs)
		}, audit.CheckComplianceReason, 1},
		{"suspension reworded in the kept reason", func(t *testing.T, db *pebble.DB) {
			setReason(t, db, 2, 0, "velocity hkd-once: 2 transfers in 1h, limit 1; "+payer.Hex()+" suspended until 2030-01-01T00:00:00.000Z", true)
		}, audit.CheckReceiptReason, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := runDir(t, g2, tamper(t, c.Dir, func(db *pebble.DB) { tc.edit(t, db) }), nil)
			if rep.OK || !rep.Failed(tc.check, tc.height) {
				t.Fatalf("want %s at %d; failures: %+v", tc.check, tc.height, rep.Failures)
			}
		})
	}
}

// forgeSuspension returns built's block with a suspension of victim added
// to its writes (state root recomputed) and re-sealed by its proposer.
func forgeSuspension(t *testing.T, c *chaintest.Chain, built *state.Built, victim common.Address) *chain.Block {
	t.Helper()
	rec, err := rlp.EncodeToBytes(&state.Suspension{Rule: "hkd-once", Reason: "risk:hkd-once:2 transfers in 1h, limit 1", SinceMs: 0, UntilMs: 1 << 62, Height: built.Block.Number()})
	if err != nil {
		t.Fatal(err)
	}
	parent := c.DB.Tip().Head.StateRoot
	built.Writes.Set(append([]byte(state.SuspensionPrefix), victim.Bytes()...), rec)
	built.Writes.Set(append([]byte(state.AccountPrefix), victim.Bytes()...), []byte{genesis.DevTierInstitutional, 2})
	h := types.CopyHeader(built.Block.Header)
	h.Root = built.Writes.Root(parent)
	h.Extra = h.Extra[:chain.ExtraLen-chain.SealLen]
	if err := chain.Seal(h, c.Genesis.ChainID, c.Validator(h.Coinbase)); err != nil {
		t.Fatal(err)
	}
	b := chain.NewBlock(h, built.Block.Txs)
	b.Certs = built.Block.Certs
	return b
}
