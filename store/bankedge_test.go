package store

import (
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// bankEdgeCases are the operations of the bank edge (DESIGN.md decision
// 11) through the real Build/ApplyBlock path: claims, refunds of claimed
// withdrawals, returns and mint reversals. A fresh chain's first
// withdrawal id is 1.
func bankEdgeCases() []opCase {
	A, C := who(idAlice), who(idCarol)
	bankA, bankB := who(idBankA), who(idBankB)
	cnyF := chain.AssetAddress(assetCNY)
	zero := common.Address{}
	payout := ref("payout")
	requested := []opStep{txWithdraw(idAlice, assetCNY, cny(100))}
	claimed := append(requested, txClaim(idBankA, assetCNY, 1, "order-1"))
	settled := append(claimed[:len(claimed):len(claimed)], txSettle(idBankA, assetCNY, 1))
	minted := []opStep{txMint(idBankA, assetCNY, idCarol, cny(100), "dep-1")}
	view := func(status uint8, bank common.Address, order [32]byte) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "withdrawal(1)", h.assetView(assetCNY, "withdrawal", bn(1)), A, cny(100), payout, status, bank, order)
		}
	}
	issuance := func(bank uint32, minted, burned *big.Int) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "bankIssuance", h.assetView(assetCNY, "bankIssuance", who(bank)), minted, burned, new(big.Int).Sub(minted, burned), maxUint256)
		}
	}
	both := func(fs ...func(t *testing.T, h *opHarness)) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			for _, f := range fs {
				f(t, h)
			}
		}
	}
	return []opCase{
		// Claims: one bank, one order, before any payment order leaves a bridge.
		{name: "claim/by bank A", setup: requested, op: txClaim(idBankA, assetCNY, 1, "order-1"),
			logs: []string{wantLog(cnyF, "WithdrawalClaimed", bn(1), bankA, ref("order-1"))},
			keys: []string{"withdrawal"}, check: view(state.WithdrawalPending, bankA, ref("order-1"))},
		{name: "claim/again with the same order is a no-op", setup: claimed, op: txClaim(idBankA, assetCNY, 1, "order-1"),
			keys: []string{}, check: view(state.WithdrawalPending, bankA, ref("order-1"))},
		{name: "claim/by the same bank with another order", setup: claimed, op: txClaim(idBankA, assetCNY, 1, "order-2"),
			reason: "withdrawal 1 is already claimed by " + bankA.Hex() + " with order " + common.Hash(ref("order-1")).Hex() + ", not " + common.Hash(ref("order-2")).Hex()},
		{name: "claim/by the other bank", setup: claimed, op: txClaim(idBankB, assetCNY, 1, "order-1"),
			reason: "withdrawal 1 is already claimed by " + bankA.Hex()},
		{name: "claim/by a non-bank", setup: requested, op: txClaim(idAlice, assetCNY, 1, "o"), reason: "is not an issuing bank of CNY"},
		{name: "claim/HKD withdrawal by bank A", setup: []opStep{txWithdraw(idAlice, assetHKD, hkd(1))},
			op: txClaim(idBankA, assetHKD, 1, "o"), reason: "is not an issuing bank of HKD"},
		{name: "claim/zero order id", setup: requested, op: assetTx(idBankA, assetCNY, "claimWithdrawal", bn(1), [32]byte{}),
			reason: "orderId must not be zero"},
		{name: "claim/unknown id", setup: requested, op: txClaim(idBankA, assetCNY, 2, "o"), reason: "no CNY withdrawal 2"},
		{name: "claim/after a refund", setup: append(requested[:1:1], txRefundW(idBankB, assetCNY, 1, "unroutable")),
			op: txClaim(idBankA, assetCNY, 1, "o"), reason: "withdrawal 1 is already refunded"},
		{name: "claim/after settlement", setup: settled, op: txClaim(idBankA, assetCNY, 1, "order-1"), reason: "withdrawal 1 is already settled"},
		{name: "claim/by a frozen bank", setup: append(requested[:1:1], txFreeze(idBankA)),
			op: txClaim(idBankA, assetCNY, 1, "o"), reason: "account " + bankA.Hex() + " is frozen"},

		// Refunds of claimed withdrawals: only the claiming bank.
		{name: "refundWithdrawal/claimed, by the other bank", setup: claimed, op: txRefundW(idBankB, assetCNY, 1, "rejected"),
			reason: "withdrawal 1 is claimed by " + bankA.Hex() + ", not " + bankB.Hex()},
		{name: "refundWithdrawal/claimed, by its bank", setup: claimed, op: txRefundW(idBankA, assetCNY, 1, "AM04"),
			bals:   []balChange{bal(assetCNY, idAlice, cny(100))},
			supply: []supplyChange{{asset: assetCNY, escrow: neg(cny(100))}},
			logs:   []string{logTransfer(assetCNY, cnyF, A, cny(100)), wantLog(cnyF, "WithdrawalRefunded", bn(1), bankA, A, cny(100), "AM04")},
			keys:   []string{"withdrawal"}, check: view(state.WithdrawalRefunded, bankA, ref("order-1"))},

		// Returns: a settled withdrawal back to the holder, once.
		{name: "return/by the claiming bank", setup: settled, op: txReturnW(idBankA, assetCNY, 1, "AC04 closed account"),
			bals:   []balChange{bal(assetCNY, idAlice, cny(100))},
			supply: []supplyChange{{asset: assetCNY, minted: cny(100)}},
			logs: []string{logTransfer(assetCNY, zero, A, cny(100)),
				wantLog(cnyF, "WithdrawalReturned", bn(1), bankA, A, cny(100), "AC04 closed account")},
			keys:  []string{"withdrawal", "issuance"},
			check: both(view(state.WithdrawalReturned, bankA, ref("order-1")), issuance(idBankA, cny(100), cny(100)))},
		{name: "return/twice", setup: append(settled[:len(settled):len(settled)], txReturnW(idBankA, assetCNY, 1, "AC04")),
			op: txReturnW(idBankA, assetCNY, 1, "AC04"), reason: "withdrawal 1 is already returned"},
		{name: "return/pending", setup: claimed, op: txReturnW(idBankA, assetCNY, 1, "AC04"),
			reason: "withdrawal 1 is not settled: a pending withdrawal is refunded, not returned"},
		{name: "return/refunded", setup: append(claimed[:len(claimed):len(claimed)], txRefundW(idBankA, assetCNY, 1, "AM04")),
			op: txReturnW(idBankA, assetCNY, 1, "AC04"), reason: "withdrawal 1 was refunded, not settled"},
		{name: "return/by the other bank", setup: settled, op: txReturnW(idBankB, assetCNY, 1, "AC04"),
			reason: "withdrawal 1 is claimed by " + bankA.Hex() + ", not " + bankB.Hex()},
		{name: "return/by a non-bank", setup: settled, op: txReturnW(idAlice, assetCNY, 1, "AC04"), reason: "is not an issuing bank of CNY"},
		{name: "return/without a reason", setup: settled, op: txReturnW(idBankA, assetCNY, 1, ""), reason: "a reason is required"},
		{name: "return/unknown id", setup: settled, op: txReturnW(idBankA, assetCNY, 7, "AC04"), reason: "no CNY withdrawal 7"},
		{name: "return/settle after return", setup: append(settled[:len(settled):len(settled)], txReturnW(idBankA, assetCNY, 1, "AC04")),
			op: txSettle(idBankA, assetCNY, 1), reason: "withdrawal 1 is already settled and returned"},
		{name: "return/to a frozen holder", setup: append(settled[:len(settled):len(settled)], txFreeze(idAlice)),
			op:     txReturnW(idBankA, assetCNY, 1, "AC04"),
			bals:   []balChange{bal(assetCNY, idAlice, cny(100))},
			supply: []supplyChange{{asset: assetCNY, minted: cny(100)}},
			logs:   []string{logTransfer(assetCNY, zero, A, cny(100)), wantLog(cnyF, "WithdrawalReturned", bn(1), bankA, A, cny(100), "AC04")}},

		// Reversed deposits: the minting bank burns the mint from the holder, once.
		{name: "reverseMint/by the minting bank", setup: minted, op: txReverse(idBankA, assetCNY, "dep-1", "credit reversed (RvslInd)"),
			bals:   []balChange{bal(assetCNY, idCarol, neg(cny(100)))},
			supply: []supplyChange{{asset: assetCNY, burned: cny(100)}},
			logs: []string{logTransfer(assetCNY, C, zero, cny(100)),
				wantLog(cnyF, "MintReversed", ref("dep-1"), bankA, C, cny(100), "credit reversed (RvslInd)")},
			keys: []string{"bankRef", "issuance"},
			check: both(issuance(idBankA, cny(100), cny(100)), func(t *testing.T, h *opHarness) {
				expectView(t, "mintRecord(dep-1)", h.assetView(assetCNY, "mintRecord", ref("dep-1")), bankA, C, cny(100), uint64(1), true)
				expectView(t, "bankRefUsed(dep-1)", h.assetView(assetCNY, "bankRefUsed", ref("dep-1")), true)
			})},
		{name: "reverseMint/twice", setup: append(minted[:1:1], txReverse(idBankA, assetCNY, "dep-1", "reversed")),
			op: txReverse(idBankA, assetCNY, "dep-1", "reversed"), reason: "the mint of bank reference " + common.Hash(ref("dep-1")).Hex() + " is already reversed"},
		{name: "reverseMint/by the other bank", setup: minted, op: txReverse(idBankB, assetCNY, "dep-1", "reversed"),
			reason: "bank reference " + common.Hash(ref("dep-1")).Hex() + " was minted by " + bankA.Hex() + ", not " + bankB.Hex()},
		{name: "reverseMint/through another asset's facade", setup: []opStep{txMint(idBankB, assetHKD, idCarol, hkd(5), "dep-h")},
			op: txReverse(idBankB, assetCNY, "dep-h", "reversed"), reason: "minted another asset (id 1)"},
		{name: "reverseMint/never minted", op: txReverse(idBankA, assetCNY, "dep-9", "reversed"),
			reason: "bank reference " + common.Hash(ref("dep-9")).Hex() + " has not minted"},
		{name: "reverseMint/without a reason", setup: minted, op: txReverse(idBankA, assetCNY, "dep-1", ""), reason: "a reason is required"},
		{name: "reverseMint/by a non-bank", setup: minted, op: txReverse(idCarol, assetCNY, "dep-1", "mine"), reason: "is not an issuing bank of CNY"},
		{name: "reverseMint/the holder spent it",
			setup: []opStep{txSetTier(idFull, 2), txMint(idBankA, assetCNY, idFull, cny(100), "dep-1"), valueTx(idFull, A, cny(60))},
			op:    txReverse(idBankA, assetCNY, "dep-1", "reversed"),
			reason: "cannot reverse the mint of bank reference " + common.Hash(ref("dep-1")).Hex() + ": " + who(idFull).Hex() +
				" holds 40000000000000000000, less than the 100000000000000000000 minted"},
		{name: "reverseMint/from a frozen holder", setup: append(minted[:1:1], txFreeze(idCarol)),
			op:     txReverse(idBankA, assetCNY, "dep-1", "reversed"),
			bals:   []balChange{bal(assetCNY, idCarol, neg(cny(100)))},
			supply: []supplyChange{{asset: assetCNY, burned: cny(100)}},
			logs:   []string{logTransfer(assetCNY, C, zero, cny(100)), wantLog(cnyF, "MintReversed", ref("dep-1"), bankA, C, cny(100), "reversed")}},
	}
}

// capGenesis is the dev genesis with bank A's CNY issuance capped at 100 CNY.
func capGenesis(t *testing.T) *genesis.Genesis {
	g := genesis.Dev()
	g.Assets[0].IssuanceCaps = []genesis.IssuanceCap{{Bank: who(idBankA), Cap: genesis.Amount{Int: cny(100)}}}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestIssuanceCap: a capped bank's mints stop at its cap; its settlements
// and reversals make room again, its returns count against it without
// being refused; another bank's issuance is its own.
func TestIssuanceCap(t *testing.T) {
	h := newOpHarnessOn(t, capGenesis(t))
	A := who(idBankA)
	outstanding := func(bank uint32, want *big.Int) {
		t.Helper()
		v := h.assetView(assetCNY, "bankIssuance", who(bank))
		if got := v[2].(*big.Int); got.Cmp(want) != 0 {
			t.Fatalf("outstanding issuance of %s = %s, want %s (%s)", nameOf(who(bank)), got, want, fmtVals(v))
		}
	}
	expectView(t, "bankIssuance(bankA)", h.assetView(assetCNY, "bankIssuance", A), bn(0), bn(0), bn(0), cny(100))
	h.mustBlock(0,
		txMint(idBankA, assetCNY, idCarol, cny(60), "a-1"),
		txMint(idBankA, assetCNY, idCarol, cny(41), "a-2").failing("mint of 41000000000000000000 would take the outstanding issuance of "+A.Hex()+
			" to 101000000000000000000, over its cap 100000000000000000000"),
		txMint(idBankA, assetCNY, idCarol, cny(40), "a-3"),
		txMint(idBankA, assetCNY, idCarol, bn(1), "a-4").failing("over its cap"),
		txMint(idBankB, assetCNY, idCarol, cny(1000), "b-1"),
	)
	outstanding(idBankA, cny(100))
	outstanding(idBankB, cny(1000))
	// The failed mints did not use their references.
	expectView(t, "bankRefUsed(a-2)", h.assetView(assetCNY, "bankRefUsed", ref("a-2")), false)

	// A settlement by A makes room; one by B of money A minted lowers B's
	// outstanding below zero (B paid out more than it took in).
	h.mustBlock(0, txWithdraw(idAlice, assetCNY, cny(30)), txClaim(idBankA, assetCNY, 1, "o-1"), txSettle(idBankA, assetCNY, 1),
		txWithdraw(idAlice, assetCNY, cny(2000)), txClaim(idBankB, assetCNY, 2, "o-2"), txSettle(idBankB, assetCNY, 2))
	outstanding(idBankA, cny(70))
	outstanding(idBankB, cny(-1000))
	h.mustBlock(0, txMint(idBankA, assetCNY, idCarol, cny(30), "a-5"), txMint(idBankA, assetCNY, idCarol, bn(1), "a-6").failing("over its cap"))
	// A return is never refused by the cap (the bank holds the money) but counts.
	h.mustBlock(0, txReturnW(idBankA, assetCNY, 1, "AC04"))
	outstanding(idBankA, cny(130))
	h.mustBlock(0, txMint(idBankA, assetCNY, idCarol, cny(1), "a-7").failing("over its cap"))
	// A reversal makes room.
	h.mustBlock(0, txReverse(idBankA, assetCNY, "a-1", "reversed"), txMint(idBankA, assetCNY, idCarol, cny(30), "a-8"))
	outstanding(idBankA, cny(100))
	expectView(t, "bankIssuance(bankA)", h.assetView(assetCNY, "bankIssuance", A), cny(60+40+30+30+30), cny(30+60), cny(100), cny(100))
}

// TestBankRotationKeepsEdge: a rotated bank key inherits the old key's
// claims, mints, outstanding issuance and cap.
func TestBankRotationKeepsEdge(t *testing.T) {
	h := newOpHarnessOn(t, capGenesis(t))
	newKey := who(idNewBankKey)
	h.mustBlock(0,
		txMint(idBankA, assetCNY, idCarol, cny(80), "a-1"),
		txWithdraw(idAlice, assetCNY, cny(10)), txClaim(idBankA, assetCNY, 1, "o-1"),
		govTx(idGov1, "proposeRotateBankKey", chain.AssetAddress(assetCNY), who(idBankA), newKey))
	h.mustBlock(0, txVote(idGov2, 1, true))
	for range genesis.Dev().Governance.ActivationDelay {
		h.mustBlock(0)
	}
	if !h.assetView(assetCNY, "isIssuer", newKey)[0].(bool) {
		t.Fatal("rotation not in force")
	}
	expectView(t, "bankIssuance(new key)", h.assetView(assetCNY, "bankIssuance", newKey), cny(80), bn(0), cny(80), cny(100))
	expectView(t, "bankIssuance(old key)", h.assetView(assetCNY, "bankIssuance", who(idBankA)), bn(0), bn(0), bn(0), maxUint256)
	h.mustBlock(0,
		txMint(idNewBankKey, assetCNY, idCarol, cny(21), "n-1").failing("over its cap"),
		txClaim(idNewBankKey, assetCNY, 1, "o-1"), // the old key's claim is the new key's: the same claim again
		txClaim(idNewBankKey, assetCNY, 1, "o-2").failing("already claimed"),
		txSettle(idNewBankKey, assetCNY, 1),
		txReverse(idNewBankKey, assetCNY, "a-1", "reversed"),
		txClaim(idBankA, assetCNY, 1, "o-1").failing("is not an issuing bank of CNY"),
	)
	expectView(t, "bankIssuance(new key)", h.assetView(assetCNY, "bankIssuance", newKey), cny(80), cny(90), cny(-10), cny(100))
}

// TestPausedAssetWithdrawalOutcomes: pausing an asset stops new money
// moving, but a bank can still record the outcome of a withdrawal it was
// already paying: claim, settle, return.
func TestPausedAssetWithdrawalOutcomes(t *testing.T) {
	h := newOpHarness(t)
	h.mustBlock(0,
		txWithdraw(idAlice, assetCNY, cny(10)), txWithdraw(idAlice, assetCNY, cny(20)), txMint(idBankA, assetCNY, idCarol, cny(5), "dep-1"),
		govTx(idGov1, "proposeSetAssetPaused", chain.AssetAddress(assetCNY), true))
	h.mustBlock(0, txVote(idGov2, 1, true))
	for range genesis.Dev().Governance.ActivationDelay {
		h.mustBlock(0)
	}
	h.mustBlock(0,
		txWithdraw(idAlice, assetCNY, cny(1)).failing("asset CNY is paused"),
		txClaim(idBankA, assetCNY, 1, "o-1"), txSettle(idBankA, assetCNY, 1), txReturnW(idBankA, assetCNY, 1, "AC04"),
		txClaim(idBankB, assetCNY, 2, "o-2"), txRefundW(idBankB, assetCNY, 2, "AM04"),
		txReverse(idBankA, assetCNY, "dep-1", "reversed").failing("asset CNY is paused"),
	)
}

// TestMinorUnitsRevertThroughCall: eth_call and eth_estimateGas (state.Call)
// refuse a withdrawal the currency cannot pay with the reason, as the
// included transaction does.
func TestMinorUnitsRevertThroughCall(t *testing.T) {
	h := newOpHarness(t)
	data, err := chain.AssetABI.Pack("requestWithdrawal", big.NewInt(1_234_567_000_000_000_000), ref("p"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = state.Call(h.db, h.db.HeadContext(), who(idAlice), chain.AssetAddress(assetCNY), nil, data)
	r, ok := state.IsRevert(err)
	if !ok || !strings.Contains(r.Reason, "not a whole number of CNY minor units") {
		t.Fatalf("eth_call: %v, want the minor-units revert", err)
	}
	if v := h.assetView(assetCNY, "minorUnits"); v[0].(uint8) != 2 {
		t.Fatalf("CNY minorUnits() = %v, want 2", v[0])
	}
	if v := h.assetView(assetHKD, "minorUnits"); v[0].(uint8) != 2 {
		t.Fatalf("HKD minorUnits() = %v, want 2", v[0])
	}
}
