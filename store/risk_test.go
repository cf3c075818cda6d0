package store

import (
	"fmt"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// This file tests the preventive risk rules (state/risk.go, DESIGN.md
// decision 14) on the real execution path: signed transactions, Build,
// ApplyBlock into Pebble, the stored receipts and their kept reasons.

// idBasic2 is a second fresh account raised to tier 1 by the setups.
const idBasic2 = 540

// Minutes and hours after genesis (block times the cases choose; the dev
// genesis starts at 2026-01-01T00:00:00Z, on a bucket boundary).
const (
	minute = uint64(60_000)
	hour   = 60 * minute
)

// riskGenesis is the dev genesis with velocity rules on tier 1: three
// transfers of CNY per rolling hour, 10,000 CNY per rolling day, and two
// HKD transfers per rolling hour, which suspends the sender for 30 minutes.
func riskGenesis(t testing.TB) *genesis.Genesis {
	g := genesis.Dev()
	g.Risk = &genesis.Risk{Velocity: []genesis.VelocityRule{
		{Name: "cny-count", Tier: 1, Asset: "CNY", Window: genesis.WindowHour, MaxTransfers: 3},
		{Name: "cny-amount", Tier: 1, Asset: "CNY", Window: genesis.WindowDay, MaxAmount: &genesis.Amount{Int: cny(10_000)}},
		{Name: "hkd-burst", Tier: 1, Asset: "HKD", Window: genesis.WindowHour, MaxTransfers: 2, SuspendSeconds: 1800},
	}}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	return g
}

// riskStep is one transaction at a block time and the exact reason it
// must fail with ("" for success).
type riskStep struct {
	atMs uint64 // after genesis; 0: a second after the head
	step opStep
	want string
}

func at(ms uint64, s opStep, want string) riskStep { return riskStep{atMs: ms, step: s, want: want} }

// run applies each step in a block of its own and checks its outcome.
func (h *opHarness) run(steps []riskStep) {
	h.t.Helper()
	for i, s := range steps {
		r := h.block(s.atMs, s.step)[0]
		if r.reason != s.want {
			h.t.Fatalf("step %d (%s at +%ds):\n got %q\nwant %q", i, s.step, s.atMs/1000, r.reason, s.want)
		}
	}
}

// riskSetup raises basic and basic2 to tier 1 and funds them.
func riskSetup() []opStep {
	return []opStep{txSetTier(idBasic, 1), txSetTier(idBasic2, 1), txSetTier(idFull, 2),
		fundCNY(idBasic, cny(40_000)), fundHKD(idBasic, hkd(40_000)),
		fundCNY(idBasic2, cny(40_000)), fundCNY(idFull, cny(40_000))}
}

func velocityCount(n int) string {
	return fmt.Sprintf("velocity cny-count: %d transfers in 1h, limit 3", n)
}

// TestVelocityCaps: every velocity rule on the real path, one table case
// per behaviour, each on a fresh chain.
func TestVelocityCaps(t *testing.T) {
	A, B2 := who(idAlice), who(idBasic2)
	send := func(from uint32, n int64) opStep { return valueTx(from, A, cny(n)) }
	cases := []struct {
		name  string
		steps []riskStep
	}{
		{name: "count: the fourth transfer in the rolling hour is refused", steps: []riskStep{
			at(10*minute, send(idBasic, 1), ""),
			at(10*minute+1, send(idBasic, 1), ""),
			at(20*minute, send(idBasic, 1), ""),
			at(21*minute, send(idBasic, 1), velocityCount(4)),
		}},
		{name: "count: the hour is the 12 five-minute buckets ending with the block's", steps: []riskStep{
			// Three transfers in the bucket [10 min, 15 min).
			at(10*minute, send(idBasic, 1), ""), at(11*minute, send(idBasic, 1), ""), at(14*minute, send(idBasic, 1), ""),
			// At 64:59 and 65:00 the window still reaches back to 10:00.
			at(64*minute+59_000, send(idBasic, 1), velocityCount(4)),
			at(65*minute, send(idBasic, 1), velocityCount(4)),
			at(69*minute+59_999, send(idBasic, 1), velocityCount(4)),
			// From 70:00 the window starts at 15:00: the bucket left it.
			at(70*minute, send(idBasic, 1), ""),
		}},
		{name: "amount: the rolling day's total is capped, in the asset's units", steps: []riskStep{
			at(1*hour, send(idBasic, 4_000), ""),
			at(2*hour, send(idBasic, 4_000), ""),
			at(2*hour+1, send(idBasic, 2_000), ""),
			at(23*hour, valueTx(idBasic, A, big.NewInt(1)), "velocity cny-amount: 10000.000000000000000001 CNY sent in 24h, limit 10000.00 CNY"),
			// At 24:59 the day still starts at 01:00; from 25:00 at 02:00.
			at(24*hour+59*minute, send(idBasic, 1), "velocity cny-amount: 10001.00 CNY sent in 24h, limit 10000.00 CNY"),
			at(25*hour, send(idBasic, 4_000), ""),
			at(25*hour+1, send(idBasic, 1), "velocity cny-amount: 10001.00 CNY sent in 24h, limit 10000.00 CNY"),
		}},
		{name: "refused transfers do not count", steps: []riskStep{
			at(1*minute, send(idBasic, 1), ""),
			at(2*minute, send(idBasic, 5_001), "amount 5001.00 CNY is over the per-transfer limit 5000.00 CNY of tier 1"),
			at(3*minute, valueTx(idBasic, who(idNew), cny(1001)), fmt.Sprintf("balance of %s would be 1001.00 CNY, over the maximum 1000.00 CNY of tier 0", who(idNew))),
			at(4*minute, send(idBasic, 1), ""),
			at(5*minute, send(idBasic, 1), ""),
			at(6*minute, send(idBasic, 1), velocityCount(4)),
		}},
		{name: "every kind of payment counts", steps: []riskStep{
			at(1*minute, txPay(idBasic, assetCNY, idAlice, cny(1), "order-1"), ""),
			at(2*minute, txWithdraw(idBasic, assetCNY, cny(1)), ""),
			at(3*minute, txOffer(idBasic, assetCNY, cny(1), assetHKD, hkd(1), idAlice, 1767225600+86_400), ""),
			at(4*minute, send(idBasic, 0), velocityCount(4)),
		}},
		{name: "a batch transfer counts each leg", steps: []riskStep{
			at(1*minute, send(idBasic, 1), ""),
			at(2*minute, assetTx(idBasic, assetCNY, "batchTransfer", []common.Address{A, B2, A}, []*big.Int{cny(1), cny(1), cny(1)}, ref("split")), velocityCount(4)),
			at(3*minute, assetTx(idBasic, assetCNY, "batchTransfer", []common.Address{A, B2}, []*big.Int{cny(1), cny(1)}, ref("split")), ""),
			at(4*minute, send(idBasic, 0), velocityCount(4)),
		}},
		{name: "transferFrom counts for the owner, not the spender", steps: []riskStep{
			at(1*minute, txApprove(idBasic, assetCNY, idBasic2, cny(100)), ""),
			at(2*minute, txTransferFrom(idBasic2, assetCNY, idBasic, idAlice, cny(1)), ""),
			at(3*minute, txTransferFrom(idBasic2, assetCNY, idBasic, idAlice, cny(1)), ""),
			at(4*minute, txTransferFrom(idBasic2, assetCNY, idBasic, idAlice, cny(1)), ""),
			at(5*minute, txTransferFrom(idBasic2, assetCNY, idBasic, idAlice, cny(1)), velocityCount(4)),
			at(6*minute, send(idBasic2, 1), ""),
		}},
		{name: "rules are per account, per tier and per asset", steps: []riskStep{
			at(1*minute, send(idBasic, 1), ""), at(2*minute, send(idBasic, 1), ""), at(3*minute, send(idBasic, 1), ""),
			at(4*minute, send(idBasic2, 1), ""), // another account's counters
			at(5*minute, send(idFull, 1), ""), at(6*minute, send(idFull, 1), ""), at(7*minute, send(idFull, 1), ""),
			at(8*minute, send(idFull, 1), ""),                                // tier 2 has no rule
			at(9*minute, txTransfer(idBasic, assetHKD, idAlice, hkd(1)), ""), // HKD is counted apart
			at(10*minute, send(idBasic, 1), velocityCount(4)),
		}},
		{name: "when two rules refuse, the first in the rules' order is named", steps: []riskStep{
			at(1*minute, send(idBasic, 5_000), ""), at(2*minute, send(idBasic, 5_000), ""), at(3*minute, send(idBasic, 0), ""),
			// Both cny-count (4 transfers) and cny-amount (10001 CNY) are broken.
			at(4*minute, send(idBasic, 1), velocityCount(4)),
			at(70*minute, send(idBasic, 1), "velocity cny-amount: 10001.00 CNY sent in 24h, limit 10000.00 CNY"),
		}},
		{name: "a tier change moves the account under its new tier's rules", steps: []riskStep{
			at(1*minute, send(idFull, 1), ""), at(2*minute, send(idFull, 1), ""), at(3*minute, send(idFull, 1), ""),
			at(4*minute, txSetTier(idFull, 1), ""),
			// Counted only while a rule applied: the transfers at tier 2 are not in the counters.
			at(5*minute, send(idFull, 1), ""), at(6*minute, send(idFull, 1), ""), at(7*minute, send(idFull, 1), ""),
			at(8*minute, send(idFull, 1), velocityCount(4)),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newOpHarnessOn(t, riskGenesis(t))
			h.mustBlock(0, riskSetup()...)
			h.run(c.steps)
		})
	}
}

// TestVelocityCallAgrees: eth_call (state.Call at the head) gives the
// refusal execution gives, and writes nothing.
func TestVelocityCallAgrees(t *testing.T) {
	h := newOpHarnessOn(t, riskGenesis(t))
	h.mustBlock(0, riskSetup()...)
	h.mustBlock(0, valueTx(idBasic, who(idAlice), cny(1)), valueTx(idBasic, who(idAlice), cny(1)), valueTx(idBasic, who(idAlice), cny(1)))
	_, _, err := state.Call(h.db, h.db.HeadContext(), who(idBasic), who(idAlice), cny(1), nil)
	if err == nil || err.Error() != velocityCount(4) {
		t.Fatalf("eth_call of a fourth transfer: %v, want %q", err, velocityCount(4))
	}
}

// suspendedUntil is the reason of a refused transfer that suspends basic.
func suspendedUntil(rule string, n int, untilISO string) string {
	return fmt.Sprintf("velocity %s: %d transfers in 1h, limit 2; %s suspended until %s", rule, n, who(idBasic), untilISO)
}

// TestAutomaticSuspension: a rule with suspendSeconds refuses the transfer
// and suspends its sender (a temporary freeze, named risk:<rule>:<numbers>)
// until block time reaches its end, unless compliance confirms it (then a
// freeze until unfreeze) or lifts it early.
func TestAutomaticSuspension(t *testing.T) {
	B := who(idBasic)
	hkdTo := func(from, to uint32) opStep { return txTransfer(from, assetHKD, to, hkd(1)) }
	// The third HKD transfer, at +10 min, fires hkd-burst: suspended until +40 min.
	fire := []riskStep{
		at(1*minute, hkdTo(idBasic, idAlice), ""),
		at(2*minute, hkdTo(idBasic, idAlice), ""),
		at(10*minute, hkdTo(idBasic, idAlice), suspendedUntil("hkd-burst", 3, "2026-01-01T00:40:00.000Z")),
	}
	const why = "risk:hkd-burst:3 transfers in 1h, limit 2"
	suspended := fmt.Sprintf("account %s is suspended until 2026-01-01T00:40:00.000Z: %s", B, why)
	cases := []struct {
		name  string
		steps []riskStep
		// after the steps: isFrozen and the suspension view
		frozen bool
		active bool
	}{
		{name: "a suspension stops sending and receiving, then lifts itself", steps: []riskStep{
			at(11*minute, valueTx(idBasic, who(idAlice), cny(1)), suspended), // any asset
			at(12*minute, valueTx(idAlice, B, cny(1)), suspended),            // receiving too
			at(13*minute, txApprove(idBasic, assetCNY, idAlice, cny(1)), suspended),
			at(14*minute, txWithdraw(idBasic, assetCNY, cny(1)), suspended),
			at(39*minute+59_999, valueTx(idBasic, who(idAlice), cny(1)), suspended),
			// At +40 min the suspension has ended: no transaction lifted it.
			at(40*minute, valueTx(idBasic, who(idAlice), cny(1)), ""),
			at(41*minute, valueTx(idAlice, B, cny(1)), ""),
		}},
		{name: "compliance confirms: a freeze that outlasts the suspension", steps: []riskStep{
			at(11*minute, complianceTx(idCompliance, "confirmSuspension", B, "case 42: confirmed"), ""),
			at(50*minute, valueTx(idBasic, who(idAlice), cny(1)), fmt.Sprintf("account %s is frozen", B)),
			at(51*minute, complianceTx(idCompliance, "liftSuspension", B, "again"), fmt.Sprintf("account %s has no active suspension", B)),
		}, frozen: true},
		{name: "a confirmed suspension is lifted by unfreeze", steps: []riskStep{
			at(11*minute, complianceTx(idCompliance, "confirmSuspension", B, "case 42: confirmed"), ""),
			at(12*minute, txUnfreeze(idBasic), ""),
			at(13*minute, valueTx(idBasic, who(idAlice), cny(1)), ""),
		}},
		{name: "compliance lifts it early", steps: []riskStep{
			at(11*minute, complianceTx(idCompliance, "liftSuspension", B, "false positive: payroll"), ""),
			at(12*minute, valueTx(idBasic, who(idAlice), cny(1)), ""),
			// The counters still hold the two HKD transfers: a third fires again.
			at(13*minute, hkdTo(idBasic, idAlice), suspendedUntil("hkd-burst", 3, "2026-01-01T00:43:00.000Z")),
		}, frozen: true, active: true},
		{name: "only the authority confirms or lifts, with a reason, an active suspension", steps: []riskStep{
			at(11*minute, complianceTx(idAlice, "liftSuspension", B, "mine"), fmt.Sprintf("only the compliance authority %s may call liftSuspension", who(idCompliance))),
			at(12*minute, complianceTx(idCompliance, "confirmSuspension", B, ""), "a reason is required"),
			at(13*minute, complianceTx(idCompliance, "confirmSuspension", who(idBasic2), "no"), fmt.Sprintf("account %s has no active suspension", who(idBasic2))),
			// An expired suspension can be neither confirmed nor lifted.
			at(40*minute, complianceTx(idCompliance, "confirmSuspension", B, "too late"), fmt.Sprintf("account %s has no active suspension", B)),
		}},
		{name: "an expired suspension is replaced by the next one", steps: []riskStep{
			// At +45 min the hour still holds the transfers of +1 and +2 min.
			at(45*minute, hkdTo(idBasic, idAlice), suspendedUntil("hkd-burst", 3, "2026-01-01T01:15:00.000Z")),
			at(46*minute, valueTx(idBasic, who(idAlice), cny(1)), fmt.Sprintf("account %s is suspended until 2026-01-01T01:15:00.000Z: %s", B, why)),
		}, frozen: true, active: true},
		{name: "a frozen account's transfer is refused before the velocity rules", steps: []riskStep{
			at(40*minute, txFreeze(idBasic), ""),
			at(41*minute, hkdTo(idBasic, idAlice), fmt.Sprintf("account %s is frozen", B)),
		}, frozen: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newOpHarnessOn(t, riskGenesis(t))
			h.mustBlock(0, riskSetup()...)
			h.run(fire)
			expectView(t, "isFrozen(basic) once suspended", h.complianceView("isFrozen", B), true)
			expectView(t, "suspension(basic)", h.complianceView("suspension", B), true, why, uint64(1767225600000+40*minute))
			expectView(t, "remainingDailyAllowance(basic, CNY) while suspended", h.complianceView("remainingDailyAllowance", B, chain.AssetAddress(assetCNY)), bn(0))
			h.run(c.steps)
			expectView(t, "isFrozen(basic) after", h.complianceView("isFrozen", B), c.frozen)
			if !c.active {
				expectView(t, "suspension(basic) after", h.complianceView("suspension", B), false, "", uint64(0))
			}
		})
	}
}

// TestSuspensionEvents: confirming and lifting are logged with the
// suspension they end and compliance's reason.
func TestSuspensionEvents(t *testing.T) {
	h := newOpHarnessOn(t, riskGenesis(t))
	B := who(idBasic)
	h.mustBlock(0, riskSetup()...)
	base := h.db.Tip().Head.TimeMs - h.t0
	for _, name := range []string{"liftSuspension", "confirmSuspension"} {
		h.run([]riskStep{
			at(base+1*minute, txTransfer(idBasic, assetHKD, idAlice, hkd(1)), ""),
			at(base+2*minute, txTransfer(idBasic, assetHKD, idAlice, hkd(1)), ""),
		})
		r := h.block(base+3*minute, txTransfer(idBasic, assetHKD, idAlice, hkd(1)))[0]
		if r.ok() {
			t.Fatal("third HKD transfer in an hour succeeded")
		}
		res := h.mustBlock(base+4*minute, complianceTx(idCompliance, name, B, "reviewed"))
		logs := res[0].receipt.Logs
		if len(logs) != 1 {
			t.Fatalf("%s: %d logs", name, len(logs))
		}
		ev := map[string]string{"liftSuspension": "SuspensionLifted", "confirmSuspension": "SuspensionConfirmed"}[name]
		want := wantLog(chain.ComplianceAddress, ev, B, who(idCompliance), "risk:hkd-burst:3 transfers in 1h, limit 2", "reviewed")
		if got := decodeLog(logs[0]); got != want {
			t.Errorf("%s log:\n got %s\nwant %s", name, got, want)
		}
		base += 2 * hour // the next round starts with an empty hour
	}
}

// TestWatchList: compliance lists an address with a reason; payments to
// or from it are refused with that reason until it is unlisted.
func TestWatchList(t *testing.T) {
	C := who(idCarol)
	const why = "OFAC SDN match, case 2026-117"
	listed := fmt.Sprintf("%s is on the watch list: %s", C, why)
	h := newOpHarnessOn(t, riskGenesis(t))
	h.run([]riskStep{
		at(0, complianceTx(idAlice, "watch", C, why), fmt.Sprintf("only the compliance authority %s may call watch", who(idCompliance))),
		at(0, complianceTx(idCompliance, "watch", C, ""), "a reason is required"),
		at(0, complianceTx(idCompliance, "watch", common.Address{}, why), "the zero address is not an account"),
		at(0, complianceTx(idCompliance, "watch", chain.ComplianceAddress, why), fmt.Sprintf("%s is a system contract address, not an account", chain.ComplianceAddress)),
		at(0, complianceTx(idCompliance, "unwatch", C, "never listed"), fmt.Sprintf("%s is not on the watch list", C)),
		at(0, complianceTx(idCompliance, "watch", C, why), ""),
		at(0, complianceTx(idCompliance, "watch", C, why), fmt.Sprintf("%s is already on the watch list", C)),
	})
	listedAt := h.db.Tip().Head.Number - 1
	expectView(t, "watchEntry(carol)", h.complianceView("watchEntry", C), true, why, listedAt)
	h.run([]riskStep{
		at(0, valueTx(idAlice, C, cny(1)), listed),                             // to
		at(0, valueTx(idCarol, who(idAlice), cny(1)), listed),                  // from
		at(0, txTransfer(idAlice, assetHKD, idCarol, hkd(1)), listed),          // any asset
		at(0, txPay(idCarol, assetHKD, idAlice, hkd(1), "order-7"), listed),    // payments
		at(0, txWithdraw(idCarol, assetCNY, cny(1)), listed),                   // money leaving to a bank
		at(0, txMint(idBankA, assetCNY, idCarol, cny(1), "dep-carol"), listed), // money arriving from a bank
		at(0, assetTx(idAlice, assetCNY, "batchTransfer", []common.Address{who(idBob), C}, []*big.Int{cny(1), cny(1)}, ref("split")), "to[1]: "+listed),
		at(0, txApprove(idCarol, assetCNY, idAlice, cny(5)), ""), // not a payment
		at(0, txTransferFrom(idAlice, assetCNY, idCarol, idBob, cny(1)), listed),
		// A forced transfer (compliance moving the money) is not refused.
		at(0, txForce(idCompliance, assetCNY, idCarol, idBob, cny(1), "court order"), ""),
		at(0, complianceTx(idCompliance, "unwatch", C, "cleared"), ""),
		at(0, valueTx(idAlice, C, cny(1)), ""),
		at(0, valueTx(idCarol, who(idAlice), cny(1)), ""),
	})
	expectView(t, "watchEntry(carol) after unwatch", h.complianceView("watchEntry", C), false, "", uint64(0))
}

// BenchmarkExecuteVelocity measures what the velocity rules cost
// execution: a block of 1,000 transfers from 20 top-tier senders executed
// (state.Execute, as ApplyBlock and the audit run it) with no rule, and
// under a rule of their tier and asset that never fires (each transfer
// reads, updates and writes its sender's counters).
func BenchmarkExecuteVelocity(b *testing.B) {
	const perBlock, senders = 1000, 20
	for _, bc := range []struct {
		name string
		risk *genesis.Risk
	}{
		{"none", nil},
		{"velocity", &genesis.Risk{Velocity: []genesis.VelocityRule{
			{Name: "hour", Tier: genesis.DevTierInstitutional, Asset: "CNY", Window: genesis.WindowHour, MaxTransfers: 1 << 40},
			{Name: "day", Tier: genesis.DevTierInstitutional, Asset: "CNY", Window: genesis.WindowDay, MaxAmount: &genesis.Amount{Int: cny(1 << 40)}},
		}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := genesis.Dev()
			g.Risk = bc.risk
			h := newOpHarnessOn(b, g)
			txs := make([]*types.Transaction, perBlock)
			for i := range txs {
				txs[i] = h.sign(valueTx(uint32(i%senders), common.Address{byte(i), 1}, big.NewInt(1)))
			}
			froms, errs := h.senders.Senders(txs)
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			blk := state.BlockContext{Number: 1, TimeMs: h.t0 + 1000}
			b.ResetTimer()
			for range b.N {
				res, err := state.Execute(h.db, blk, txs, froms)
				if err != nil {
					b.Fatal(err)
				}
				if res.Receipts[perBlock-1].Status != state.StatusSuccess {
					b.Fatal("a transfer failed")
				}
			}
			b.ReportMetric(float64(b.N*perBlock)/b.Elapsed().Seconds(), "txs/s")
		})
	}
}
