package store

import (
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// This file tests split payments (batchTransfer) and the exchange's
// offers through the same path as ops_test.go: signed transactions, Build,
// ApplyBlock into Pebble, conservation checked after every block, exact
// state diffs and logs. On top of conservation (balances + escrow = minted
// − burned), every case checks that the escrow is exactly what the pending
// withdrawals and the open offers hold.

func exchangeTx(from uint32, method string, args ...any) opStep {
	return systemTx(&chain.ExchangeABI, chain.ExchangeAddress, from, method, args...)
}

// txOffer is createOffer by maker: amountOut of out for amountIn of in, to cp.
func txOffer(maker, out uint32, amountOut *big.Int, in uint32, amountIn *big.Int, cp uint32, expiry uint64) opStep {
	return exchangeTx(maker, "createOffer", chain.AssetAddress(out), amountOut, chain.AssetAddress(in), amountIn, who(cp), expiry)
}
func txAccept(from uint32, id int64) opStep { return exchangeTx(from, "acceptOffer", bn(id)) }
func txCancel(from uint32, id int64) opStep { return exchangeTx(from, "cancelOffer", bn(id)) }

// leg is one recipient of a batch transfer.
type leg struct {
	to     common.Address
	amount *big.Int
}

func legTo(i uint32, amount *big.Int) leg { return leg{who(i), amount} }

func txBatch(from, asset uint32, order string, legs ...leg) opStep {
	to := make([]common.Address, len(legs))
	amounts := make([]*big.Int, len(legs))
	for i, l := range legs {
		to[i], amounts[i] = l.to, l.amount
	}
	return assetTx(from, asset, "batchTransfer", to, amounts, ref(order))
}

// genesisSec is the dev genesis time in Unix seconds: offer expiries are
// written relative to it. A case's setup block runs at genesisSec+1, its
// operation a second after the setup (genesisSec+1 without one) unless the
// case says otherwise.
var genesisSec = genesis.Dev().TimestampMs / 1000

// escrowHeld sums, per asset, what the pending withdrawals and the open
// offers of the applied state hold.
func escrowHeld(t testing.TB, h *opHarness) map[uint32]*big.Int {
	t.Helper()
	held := map[uint32]*big.Int{}
	add := func(asset uint32, v *big.Int) {
		if held[asset] == nil {
			held[asset] = new(big.Int)
		}
		held[asset].Add(held[asset], v)
	}
	for k, v := range h.stateDump() {
		switch {
		case strings.HasPrefix(k, string(prefixWithdraw)) && len(k) == len(prefixWithdraw)+8:
			var w state.Withdrawal
			if err := rlp.DecodeBytes(v, &w); err != nil {
				t.Fatalf("withdrawal %x: %v", k, err)
			}
			if w.Status == state.WithdrawalPending {
				add(w.Asset, w.Amount)
			}
		case strings.HasPrefix(k, string(prefixOffer)) && len(k) == len(prefixOffer)+8:
			var f state.Offer
			if err := rlp.DecodeBytes(v, &f); err != nil {
				t.Fatalf("offer %x: %v", k, err)
			}
			if f.Status == state.OfferOpen {
				add(f.AssetOut, f.AmountOut)
			}
		}
	}
	return held
}

// checkEscrow checks that each asset's escrow is exactly what its pending
// withdrawals and open offers hold, and that balanceOf(facade) reports it.
func checkEscrow(t testing.TB, h *opHarness) {
	t.Helper()
	held := escrowHeld(t, h)
	for _, id := range []uint32{assetCNY, assetHKD} {
		s, err := h.db.Supply(id)
		if err != nil {
			t.Fatal(err)
		}
		want := held[id]
		if want == nil {
			want = new(big.Int)
		}
		if s.Escrow.Cmp(want) != 0 {
			t.Errorf("asset %d: escrow %s, pending withdrawals and open offers hold %s", id, s.Escrow, want)
		}
		expectView(t, fmt.Sprintf("balanceOf(facade %d)", id), h.assetView(id, "balanceOf", chain.AssetAddress(id)), s.Escrow)
	}
}

func (h *opHarness) offerView(id int64) []any {
	return h.view(&chain.ExchangeABI, chain.ExchangeAddress, "offer", bn(id))
}

// offerIs checks offer id through the offer view.
func offerIs(id int64, maker, out uint32, amountOut *big.Int, in uint32, amountIn *big.Int, cp uint32, expiry uint64, status uint8) func(t *testing.T, h *opHarness) {
	return func(t *testing.T, h *opHarness) {
		expectView(t, fmt.Sprintf("offer(%d)", id), h.offerView(id),
			who(maker), chain.AssetAddress(out), amountOut, chain.AssetAddress(in), amountIn, who(cp), expiry, status)
	}
}

// both runs two checks.
func both(a, b func(t *testing.T, h *opHarness)) func(t *testing.T, h *opHarness) {
	return func(t *testing.T, h *opHarness) {
		a(t, h)
		b(t, h)
	}
}

func batchCases() []opCase {
	A, B, C, D := who(idAlice), who(idBob), who(idCarol), who(idDave)
	basic, newAcct := who(idBasic), who(idNew)
	cnyF, hkdF := chain.AssetAddress(assetCNY), chain.AssetAddress(assetHKD)
	order := ref("order-7")
	payLogs := func(asset uint32, from common.Address, legs ...leg) []string {
		var l []string
		for _, g := range legs {
			l = append(l, logTransfer(asset, from, g.to, g.amount),
				wantLog(chain.AssetAddress(asset), "PaymentReference", order, from, g.to, g.amount))
		}
		return l
	}
	paidUnder := func(merchant common.Address, payer common.Address, paid, refunded *big.Int) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "paidUnderReference("+nameOf(merchant)+")", h.assetView(assetHKD, "paidUnderReference", merchant, order, payer), paid, refunded)
		}
	}
	remaining := func(want *big.Int) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "remainingDailyAllowance", h.complianceView("remainingDailyAllowance", basic, cnyF), want)
		}
	}
	split := []leg{legTo(idBob, hkd(10)), legTo(idCarol, hkd(20)), legTo(idDave, hkd(5))}
	paidSplit := []opStep{txBatch(idAlice, assetHKD, "order-7", split...)}

	// The longest batch: MaxBatchTransfer legs over three merchants.
	var longest []leg
	longBals := []balChange{bal(assetHKD, idAlice, neg(bn(chain.MaxBatchTransfer)))}
	for i := range chain.MaxBatchTransfer {
		r := []uint32{idBob, idCarol, idDave}[i%3]
		longest = append(longest, legTo(r, bn(1)))
		longBals = append(longBals, bal(assetHKD, r, bn(1)))
	}
	tooLong := append(append([]leg(nil), longest...), legTo(idBob, bn(1)))

	return []opCase{
		{name: "batch/three merchants", op: txBatch(idAlice, assetHKD, "order-7", split...),
			bals: []balChange{bal(assetHKD, idAlice, neg(hkd(35))), bal(assetHKD, idBob, hkd(10)), bal(assetHKD, idCarol, hkd(20)), bal(assetHKD, idDave, hkd(5))},
			logs: payLogs(assetHKD, A, split...), keys: []string{"payment", "payment", "payment"},
			check: both(paidUnder(B, A, hkd(10), bn(0)), both(paidUnder(C, A, hkd(20), bn(0)), paidUnder(D, A, hkd(5), bn(0))))},
		{name: "batch/one leg", op: txBatch(idAlice, assetHKD, "order-7", legTo(idBob, hkd(1))),
			bals: []balChange{bal(assetHKD, idAlice, neg(hkd(1))), bal(assetHKD, idBob, hkd(1))},
			logs: payLogs(assetHKD, A, legTo(idBob, hkd(1))), keys: []string{"payment"}},
		{name: "batch/CNY through its facade", op: txBatch(idAlice, assetCNY, "order-7", legTo(idBob, cny(1)), legTo(idCarol, cny(2))),
			bals: []balChange{bal(assetCNY, idAlice, neg(cny(3))), bal(assetCNY, idBob, cny(1)), bal(assetCNY, idCarol, cny(2))},
			logs: payLogs(assetCNY, A, legTo(idBob, cny(1)), legTo(idCarol, cny(2))), keys: []string{"payment", "payment"}},
		{name: "batch/one merchant twice accumulates", op: txBatch(idAlice, assetHKD, "order-7", legTo(idBob, hkd(1)), legTo(idBob, hkd(2))),
			bals: []balChange{bal(assetHKD, idAlice, neg(hkd(3))), bal(assetHKD, idBob, hkd(3))},
			logs: payLogs(assetHKD, A, legTo(idBob, hkd(1)), legTo(idBob, hkd(2))), keys: []string{"payment"},
			check: paidUnder(B, A, hkd(3), bn(0))},
		{name: "batch/a leg to the payer itself", op: txBatch(idAlice, assetHKD, "order-7", legTo(idAlice, hkd(5)), legTo(idBob, hkd(5))),
			bals: []balChange{bal(assetHKD, idAlice, neg(hkd(5))), bal(assetHKD, idBob, hkd(5))},
			logs: payLogs(assetHKD, A, legTo(idAlice, hkd(5)), legTo(idBob, hkd(5))), keys: []string{"payment", "payment"}},
		{name: "batch/zero legs are payments of zero", op: txBatch(idAlice, assetHKD, "order-7", legTo(idBob, bn(0)), legTo(idCarol, bn(1))),
			bals: []balChange{bal(assetHKD, idAlice, bn(-1)), bal(assetHKD, idCarol, bn(1))},
			logs: payLogs(assetHKD, A, legTo(idBob, bn(0)), legTo(idCarol, bn(1))), keys: []string{"payment", "payment"}},
		{name: "batch/the longest batch", op: txBatch(idAlice, assetHKD, "order-7", longest...),
			bals: longBals, logs: payLogs(assetHKD, A, longest...), keys: []string{"payment", "payment", "payment"}},
		{name: "batch/one leg over the cap", op: txBatch(idAlice, assetHKD, "order-7", tooLong...),
			reason: fmt.Sprintf("a batch transfer of %d legs is over the limit of %d", chain.MaxBatchTransfer+1, chain.MaxBatchTransfer)},
		{name: "batch/no legs", op: txBatch(idAlice, assetHKD, "order-7"), reason: "a batch transfer needs at least one recipient"},
		{name: "batch/lengths differ", op: assetTx(idAlice, assetHKD, "batchTransfer", []common.Address{B, C}, []*big.Int{bn(1)}, order),
			reason: "a batch transfer has 2 recipients but 1 amounts"},
		{name: "batch/frozen payer", setup: []opStep{txFreeze(idAlice)}, op: txBatch(idAlice, assetHKD, "order-7", split...),
			reason: "account " + A.Hex() + " is frozen"},
		{name: "batch/tier 0 payer", setup: []opStep{fundHKD(idNew, hkd(5))}, op: txBatch(idNew, assetHKD, "order-7", legTo(idBob, bn(1))),
			reason: "account " + newAcct.Hex() + " is not KYC-verified"},
		{name: "batch/a frozen recipient fails the whole batch", setup: []opStep{txFreeze(idCarol)}, op: txBatch(idAlice, assetHKD, "order-7", split...),
			reason: "to[1]: account " + C.Hex() + " is frozen"},
		{name: "batch/a leg to the zero address", op: txBatch(idAlice, assetHKD, "order-7", legTo(idBob, bn(1)), leg{common.Address{}, bn(1)}),
			reason: "to[1]: transfer to the zero address"},
		{name: "batch/a leg to a system address", op: txBatch(idAlice, assetHKD, "order-7", leg{hkdF, bn(1)}), reason: "to[0]: transfer to system address " + hkdF.Hex()},
		{name: "batch/the second leg takes a recipient over its maximum",
			op:     txBatch(idAlice, assetHKD, "order-7", legTo(idNew, hkd(600)), legTo(idBob, hkd(1)), legTo(idNew, hkd(600))),
			reason: "to[2]: balance of " + newAcct.Hex() + " would be 1200.00 HKD, over the maximum 1000.00 HKD of tier 0"},
		{name: "batch/a recipient exactly at its maximum", op: txBatch(idAlice, assetHKD, "order-7", legTo(idNew, hkd(600)), legTo(idNew, hkd(400))),
			bals: []balChange{bal(assetHKD, idAlice, neg(hkd(1000))), bal(assetHKD, idNew, hkd(1000))},
			logs: payLogs(assetHKD, A, legTo(idNew, hkd(600)), legTo(idNew, hkd(400))), keys: []string{"payment"}},
		// The per-transfer limit is per leg; the daily outflow counts the total.
		{name: "batch/every leg at the per-transfer limit", setup: basicWith(cny(20_000)),
			op:   txBatch(idBasic, assetCNY, "order-7", legTo(idAlice, cny(basicMaxTx)), legTo(idBob, cny(basicMaxTx)), legTo(idCarol, cny(basicMaxTx))),
			bals: []balChange{bal(assetCNY, idBasic, neg(cny(3*basicMaxTx))), bal(assetCNY, idAlice, cny(basicMaxTx)), bal(assetCNY, idBob, cny(basicMaxTx)), bal(assetCNY, idCarol, cny(basicMaxTx))},
			logs: payLogs(assetCNY, basic, legTo(idAlice, cny(basicMaxTx)), legTo(idBob, cny(basicMaxTx)), legTo(idCarol, cny(basicMaxTx))),
			keys: []string{"outflow", "payment", "payment", "payment"}, check: remaining(cny(basicDaily - 3*basicMaxTx))},
		{name: "batch/one leg over the per-transfer limit", setup: basicWith(cny(20_000)),
			op:     txBatch(idBasic, assetCNY, "order-7", legTo(idAlice, cny(1)), legTo(idBob, plus(cny(basicMaxTx), 1))),
			reason: "amounts[1]: amount 5000.000000000000000001 CNY is over the per-transfer limit 5000.00 CNY of tier 1"},
		{name: "batch/total exactly the daily limit", setup: basicWith(cny(30_000)),
			op:   txBatch(idBasic, assetCNY, "order-7", legTo(idAlice, cny(basicMaxTx)), legTo(idBob, cny(basicMaxTx)), legTo(idAlice, cny(basicMaxTx)), legTo(idBob, cny(basicMaxTx))),
			bals: []balChange{bal(assetCNY, idBasic, neg(cny(basicDaily))), bal(assetCNY, idAlice, cny(2*basicMaxTx)), bal(assetCNY, idBob, cny(2*basicMaxTx))},
			logs: payLogs(assetCNY, basic, legTo(idAlice, cny(basicMaxTx)), legTo(idBob, cny(basicMaxTx)), legTo(idAlice, cny(basicMaxTx)), legTo(idBob, cny(basicMaxTx))),
			keys: []string{"outflow", "payment", "payment"}, check: remaining(bn(0))},
		{name: "batch/total one over the daily limit", setup: basicWith(cny(30_000)),
			op: txBatch(idBasic, assetCNY, "order-7", legTo(idAlice, cny(basicMaxTx)), legTo(idBob, cny(basicMaxTx)), legTo(idAlice, cny(basicMaxTx)),
				legTo(idBob, cny(basicMaxTx)), legTo(idCarol, bn(1))),
			reason: "batch total 20000.000000000000000001 CNY is over the daily outflow limit 20000.00 CNY of tier 1: 20000.00 CNY left today (UTC)"},
		{name: "batch/total over what is left today", setup: basicSpentToday(3),
			op:     txBatch(idBasic, assetCNY, "order-7", legTo(idAlice, cny(3000)), legTo(idBob, plus(cny(2000), 1))),
			reason: "batch total 5000.000000000000000001 CNY is over the daily outflow limit 20000.00 CNY of tier 1: 5000.00 CNY left today (UTC)"},
		{name: "batch/insufficient balance for the total", setup: []opStep{txSetTier(idFull, 2), fundHKD(idFull, hkd(10))},
			op:     txBatch(idFull, assetHKD, "order-7", legTo(idBob, hkd(6)), legTo(idCarol, hkd(5))),
			reason: "insufficient balance: " + who(idFull).Hex() + " has 10.00 HKD, needs 11.00 HKD"},
		{name: "batch/the whole balance", setup: []opStep{txSetTier(idFull, 2), fundHKD(idFull, hkd(10))},
			op:   txBatch(idFull, assetHKD, "order-7", legTo(idBob, hkd(6)), legTo(idCarol, hkd(4))),
			bals: []balChange{bal(assetHKD, idFull, neg(hkd(10))), bal(assetHKD, idBob, hkd(6)), bal(assetHKD, idCarol, hkd(4))},
			logs: payLogs(assetHKD, who(idFull), legTo(idBob, hkd(6)), legTo(idCarol, hkd(4))), keys: []string{"outflow", "payment", "payment"}},
		// Each merchant refunds its own leg, and no more.
		{name: "batch/a merchant refunds its leg", setup: paidSplit, op: txRefund(idCarol, assetHKD, "order-7", idAlice, hkd(20)),
			bals: []balChange{bal(assetHKD, idCarol, neg(hkd(20))), bal(assetHKD, idAlice, hkd(20))},
			logs: []string{logTransfer(assetHKD, C, A, hkd(20)), wantLog(hkdF, "Refund", order, C, A, hkd(20))}, keys: []string{"payment"},
			check: both(paidUnder(C, A, hkd(20), hkd(20)), paidUnder(B, A, hkd(10), bn(0)))},
		{name: "batch/a merchant cannot refund more than its leg", setup: paidSplit, op: txRefund(idBob, assetHKD, "order-7", idAlice, plus(hkd(10), 1)),
			reason: "refund of 1001 is more than the 1000 left to refund to " + A.Hex()},
	}
}

func offerCases() []opCase {
	A, B, C := who(idAlice), who(idBob), who(idCarol)
	basic := who(idBasic)
	cnyF, hkdF := chain.AssetAddress(assetCNY), chain.AssetAddress(assetHKD)
	exF := chain.ExchangeAddress
	exp := genesisSec + 3600
	// Alice offers bob 100 HKD for 80 CNY for an hour: offer 1.
	offered := []opStep{txOffer(idAlice, assetHKD, hkd(100), assetCNY, cny(80), idBob, exp)}
	created := wantLog(exF, "OfferCreated", bn(1), A, B, hkdF, hkd(100), cnyF, cny(80), exp)
	isOpen := offerIs(1, idAlice, assetHKD, hkd(100), assetCNY, cny(80), idBob, exp, state.OfferOpen)
	isAccepted := offerIs(1, idAlice, assetHKD, hkd(100), assetCNY, cny(80), idBob, exp, state.OfferAccepted)
	isCancelled := offerIs(1, idAlice, assetHKD, hkd(100), assetCNY, cny(80), idBob, exp, state.OfferCancelled)
	remaining := func(want *big.Int) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "remainingDailyAllowance", h.complianceView("remainingDailyAllowance", basic, cnyF), want)
		}
	}
	accepted := wantLog(exF, "OfferAccepted", bn(1), A, B)
	// at is the op's block time for a Unix second relative to genesis.
	at := func(sec uint64) uint64 { return sec * 1000 }

	return []opCase{
		// createOffer.
		{name: "offer/create", op: offered[0],
			bals:   []balChange{bal(assetHKD, idAlice, neg(hkd(100)))},
			supply: []supplyChange{{asset: assetHKD, escrow: hkd(100)}},
			logs:   []string{logTransfer(assetHKD, A, hkdF, hkd(100)), created},
			keys:   []string{"offer", "offer-seq"}, ret: []any{bn(1)}, check: isOpen},
		{name: "offer/ids count up", setup: offered, op: txOffer(idAlice, assetCNY, cny(1), assetHKD, hkd(1), idCarol, exp),
			bals:   []balChange{bal(assetCNY, idAlice, neg(cny(1)))},
			supply: []supplyChange{{asset: assetCNY, escrow: cny(1)}},
			logs: []string{logTransfer(assetCNY, A, cnyF, cny(1)),
				wantLog(exF, "OfferCreated", bn(2), A, C, cnyF, cny(1), hkdF, hkd(1), exp)},
			keys: []string{"offer", "offer-seq"}, ret: []any{bn(2)},
			check: offerIs(2, idAlice, assetCNY, cny(1), assetHKD, hkd(1), idCarol, exp, state.OfferOpen)},
		{name: "offer/expiring this very second", at: at(2), op: txOffer(idAlice, assetHKD, hkd(100), assetCNY, cny(80), idBob, genesisSec+2),
			bals:   []balChange{bal(assetHKD, idAlice, neg(hkd(100)))},
			supply: []supplyChange{{asset: assetHKD, escrow: hkd(100)}},
			logs: []string{logTransfer(assetHKD, A, hkdF, hkd(100)),
				wantLog(exF, "OfferCreated", bn(1), A, B, hkdF, hkd(100), cnyF, cny(80), genesisSec+2)},
			keys: []string{"offer", "offer-seq"}, ret: []any{bn(1)}},
		{name: "offer/already expired", at: at(2), op: txOffer(idAlice, assetHKD, hkd(100), assetCNY, cny(80), idBob, genesisSec+1),
			reason: fmt.Sprintf("expiry %d is already past: block time is %d", genesisSec+1, genesisSec+2)},
		{name: "offer/the maker's whole balance", setup: []opStep{txSetTier(idFull, 2), fundHKD(idFull, hkd(10))},
			op:     txOffer(idFull, assetHKD, hkd(10), assetCNY, cny(1), idBob, exp),
			bals:   []balChange{bal(assetHKD, idFull, neg(hkd(10)))},
			supply: []supplyChange{{asset: assetHKD, escrow: hkd(10)}},
			logs: []string{logTransfer(assetHKD, who(idFull), hkdF, hkd(10)),
				wantLog(exF, "OfferCreated", bn(1), who(idFull), B, hkdF, hkd(10), cnyF, cny(1), exp)},
			keys: []string{"offer", "offer-seq", "outflow"}, ret: []any{bn(1)}},
		{name: "offer/insufficient balance", setup: []opStep{txSetTier(idFull, 2), fundHKD(idFull, hkd(10))},
			op: txOffer(idFull, assetHKD, plus(hkd(10), 1), assetCNY, cny(1), idBob, exp), reason: "insufficient balance: " + who(idFull).Hex() + " has 10.00 HKD, needs 10.01 HKD"},
		{name: "offer/frozen maker", setup: []opStep{txFreeze(idAlice)}, op: offered[0], reason: "account " + A.Hex() + " is frozen"},
		{name: "offer/tier 0 maker", setup: []opStep{fundHKD(idNew, hkd(5))}, op: txOffer(idNew, assetHKD, hkd(5), assetCNY, cny(1), idBob, exp),
			reason: "is not KYC-verified"},
		{name: "offer/at the maker's per-transfer limit", setup: basicWith(cny(10_000)),
			op:     txOffer(idBasic, assetCNY, cny(basicMaxTx), assetHKD, hkd(1), idAlice, exp),
			bals:   []balChange{bal(assetCNY, idBasic, neg(cny(basicMaxTx)))},
			supply: []supplyChange{{asset: assetCNY, escrow: cny(basicMaxTx)}},
			logs: []string{logTransfer(assetCNY, basic, cnyF, cny(basicMaxTx)),
				wantLog(exF, "OfferCreated", bn(1), basic, A, cnyF, cny(basicMaxTx), hkdF, hkd(1), exp)},
			keys: []string{"offer", "offer-seq", "outflow"}, ret: []any{bn(1)}, check: remaining(cny(basicDaily - basicMaxTx))},
		{name: "offer/over the maker's per-transfer limit", setup: basicWith(cny(10_000)),
			op: txOffer(idBasic, assetCNY, plus(cny(basicMaxTx), 1), assetHKD, hkd(1), idAlice, exp), reason: "over the per-transfer limit"},
		{name: "offer/over the maker's daily limit", setup: basicSpentToday(4),
			op: txOffer(idBasic, assetCNY, bn(1), assetHKD, hkd(1), idAlice, exp), reason: "over the daily outflow limit 20000.00 CNY of tier 1: 0.00 CNY left today"},
		{name: "offer/one asset for itself", op: txOffer(idAlice, assetHKD, hkd(1), assetHKD, hkd(2), idBob, exp),
			reason: "an offer exchanges two different assets: assetOut and assetIn are both HKD"},
		{name: "offer/assetOut is not an asset", op: exchangeTx(idAlice, "createOffer", chain.AssetAddress(7), bn(1), cnyF, bn(1), B, exp),
			reason: "assetOut: no asset at " + chain.AssetAddress(7).Hex()},
		{name: "offer/assetIn is not an asset", op: exchangeTx(idAlice, "createOffer", hkdF, bn(1), C, bn(1), B, exp),
			reason: "assetIn: no asset at " + C.Hex()},
		{name: "offer/zero amountOut", op: txOffer(idAlice, assetHKD, bn(0), assetCNY, cny(80), idBob, exp), reason: "amountOut must be positive"},
		{name: "offer/zero amountIn", op: txOffer(idAlice, assetHKD, hkd(1), assetCNY, bn(0), idBob, exp), reason: "amountIn must be positive"},
		{name: "offer/to the zero address", op: exchangeTx(idAlice, "createOffer", hkdF, bn(1), cnyF, bn(1), common.Address{}, exp),
			reason: "counterparty is the zero address"},
		{name: "offer/to a system address", op: exchangeTx(idAlice, "createOffer", hkdF, bn(1), cnyF, bn(1), exF, exp),
			reason: "counterparty " + exF.Hex() + " is a system address"},
		{name: "offer/to the maker itself", op: txOffer(idAlice, assetHKD, hkd(1), assetCNY, bn(1), idAlice, exp),
			reason: "counterparty " + A.Hex() + " is the maker"},

		// acceptOffer: both legs or neither.
		{name: "accept/swaps both legs", setup: offered, op: txAccept(idBob, 1),
			bals:   []balChange{bal(assetCNY, idBob, neg(cny(80))), bal(assetCNY, idAlice, cny(80)), bal(assetHKD, idBob, hkd(100))},
			supply: []supplyChange{{asset: assetHKD, escrow: neg(hkd(100))}},
			logs:   []string{logTransfer(assetCNY, B, A, cny(80)), logTransfer(assetHKD, hkdF, B, hkd(100)), accepted},
			keys:   []string{"offer"}, check: isAccepted},
		{name: "accept/at the expiry second", setup: offered, at: at(3600) + 999, op: txAccept(idBob, 1),
			bals:   []balChange{bal(assetCNY, idBob, neg(cny(80))), bal(assetCNY, idAlice, cny(80)), bal(assetHKD, idBob, hkd(100))},
			supply: []supplyChange{{asset: assetHKD, escrow: neg(hkd(100))}},
			logs:   []string{logTransfer(assetCNY, B, A, cny(80)), logTransfer(assetHKD, hkdF, B, hkd(100)), accepted},
			keys:   []string{"offer"}},
		{name: "accept/after expiry", setup: offered, at: at(3601), op: txAccept(idBob, 1),
			reason: fmt.Sprintf("offer 1 expired at %d: block time is %d", exp, exp+1)},
		{name: "accept/twice", setup: append(offered, txAccept(idBob, 1)), op: txAccept(idBob, 1), reason: "offer 1 is already accepted"},
		{name: "accept/after cancel", setup: append(offered, txCancel(idAlice, 1)), op: txAccept(idBob, 1), reason: "offer 1 is already cancelled"},
		{name: "accept/by someone else", setup: offered, op: txAccept(idCarol, 1), reason: "only the counterparty " + B.Hex() + " may accept offer 1"},
		{name: "accept/by the maker", setup: offered, op: txAccept(idAlice, 1), reason: "only the counterparty " + B.Hex() + " may accept offer 1"},
		{name: "accept/unknown offer", setup: offered, op: txAccept(idBob, 2), reason: "no offer 2"},
		{name: "accept/offer zero", op: txAccept(idBob, 0), reason: "no offer 0"},
		{name: "accept/huge id", op: exchangeTx(idBob, "acceptOffer", new(big.Int).Lsh(bn(1), 200)), reason: "no offer 1606938044258990275541962092341162602522202993782792835301376"},
		{name: "accept/frozen counterparty", setup: append(offered, txFreeze(idBob)), op: txAccept(idBob, 1), reason: "account " + B.Hex() + " is frozen"},
		{name: "accept/frozen maker", setup: append(offered, txFreeze(idAlice)), op: txAccept(idBob, 1), reason: "account " + A.Hex() + " is frozen"},
		{name: "accept/tier 0 counterparty", setup: []opStep{fundCNY(idNew, cny(1)), txOffer(idAlice, assetHKD, hkd(1), assetCNY, cny(1), idNew, exp)},
			op: txAccept(idNew, 1), reason: "is not KYC-verified"},
		{name: "accept/at the counterparty's per-transfer limit",
			setup:  append(basicWith(cny(10_000)), txOffer(idAlice, assetHKD, hkd(1), assetCNY, cny(basicMaxTx), idBasic, exp)),
			op:     txAccept(idBasic, 1),
			bals:   []balChange{bal(assetCNY, idBasic, neg(cny(basicMaxTx))), bal(assetCNY, idAlice, cny(basicMaxTx)), bal(assetHKD, idBasic, hkd(1))},
			supply: []supplyChange{{asset: assetHKD, escrow: neg(hkd(1))}},
			logs: []string{logTransfer(assetCNY, basic, A, cny(basicMaxTx)), logTransfer(assetHKD, hkdF, basic, hkd(1)),
				wantLog(exF, "OfferAccepted", bn(1), A, basic)},
			keys: []string{"offer", "outflow"}, check: remaining(cny(basicDaily - basicMaxTx))},
		{name: "accept/over the counterparty's per-transfer limit",
			setup: append(basicWith(cny(10_000)), txOffer(idAlice, assetHKD, hkd(1), assetCNY, plus(cny(basicMaxTx), 1), idBasic, exp)),
			op:    txAccept(idBasic, 1), reason: "amount 5000.000000000000000001 CNY is over the per-transfer limit 5000.00 CNY of tier 1"},
		{name: "accept/over the counterparty's daily limit",
			setup: append(basicSpentToday(4), txOffer(idAlice, assetHKD, hkd(1), assetCNY, bn(1), idBasic, exp)),
			op:    txAccept(idBasic, 1), reason: "over the daily outflow limit"},
		{name: "accept/counterparty's insufficient balance",
			setup: []opStep{txSetTier(idFull, 2), fundCNY(idFull, cny(10)), txOffer(idAlice, assetHKD, hkd(1), assetCNY, plus(cny(10), 1), idFull, exp)},
			op:    txAccept(idFull, 1), reason: "insufficient balance: " + who(idFull).Hex() + " has 10.00 CNY, needs 10.000000000000000001 CNY"},
		{name: "accept/over the counterparty's maximum balance",
			setup: append(basicWith(cny(10)), txOffer(idAlice, assetHKD, plus(hkd(basicMaxBalance), 1), assetCNY, cny(1), idBasic, exp)),
			op:    txAccept(idBasic, 1), reason: "balance of " + basic.Hex() + " would be 50000.01 HKD, over the maximum 50000.00 HKD of tier 1"},
		{name: "accept/over the maker's maximum balance",
			setup: append(basicWith(cny(basicMaxBalance-1)), fundHKD(idBasic, hkd(1)), txOffer(idBasic, assetHKD, hkd(1), assetCNY, plus(cny(1), 1), idAlice, exp)),
			op:    txAccept(idAlice, 1), reason: "balance of " + basic.Hex() + " would be 50000.000000000000000001 CNY, over the maximum 50000.00 CNY of tier 1"},

		// cancelOffer.
		{name: "cancel/by the maker", setup: offered, op: txCancel(idAlice, 1),
			bals:   []balChange{bal(assetHKD, idAlice, hkd(100))},
			supply: []supplyChange{{asset: assetHKD, escrow: neg(hkd(100))}},
			logs:   []string{logTransfer(assetHKD, hkdF, A, hkd(100)), wantLog(exF, "OfferCancelled", bn(1), A, A)},
			keys:   []string{"offer"}, check: isCancelled},
		{name: "cancel/by the counterparty before expiry", setup: offered, op: txCancel(idBob, 1),
			reason: fmt.Sprintf("only the maker %s may cancel offer 1 before it expires at %d", A.Hex(), exp)},
		{name: "cancel/by anyone at the expiry second", setup: offered, at: at(3600) + 999, op: txCancel(idCarol, 1),
			reason: "only the maker"},
		{name: "cancel/by anyone after expiry", setup: offered, at: at(3601), op: txCancel(idCarol, 1),
			bals:   []balChange{bal(assetHKD, idAlice, hkd(100))},
			supply: []supplyChange{{asset: assetHKD, escrow: neg(hkd(100))}},
			logs:   []string{logTransfer(assetHKD, hkdF, A, hkd(100)), wantLog(exF, "OfferCancelled", bn(1), A, C)},
			keys:   []string{"offer"}, check: isCancelled},
		{name: "cancel/by a frozen maker, back to its frozen balance", setup: append(offered, txFreeze(idAlice)), op: txCancel(idAlice, 1),
			bals:   []balChange{bal(assetHKD, idAlice, hkd(100))},
			supply: []supplyChange{{asset: assetHKD, escrow: neg(hkd(100))}},
			logs:   []string{logTransfer(assetHKD, hkdF, A, hkd(100)), wantLog(exF, "OfferCancelled", bn(1), A, A)},
			keys:   []string{"offer"}},
		{name: "cancel/back over the maker's maximum",
			setup: append(basicWith(cny(1)), fundHKD(idBasic, hkd(100)), txOffer(idBasic, assetHKD, hkd(100), assetCNY, cny(1), idAlice, exp),
				fundHKD(idBasic, hkd(basicMaxBalance))),
			op:     txCancel(idBasic, 1),
			bals:   []balChange{bal(assetHKD, idBasic, hkd(100))},
			supply: []supplyChange{{asset: assetHKD, escrow: neg(hkd(100))}},
			logs:   []string{logTransfer(assetHKD, hkdF, basic, hkd(100)), wantLog(exF, "OfferCancelled", bn(1), basic, basic)},
			keys:   []string{"offer"},
			check: func(t *testing.T, h *opHarness) {
				expectView(t, "balanceOf(basic)", h.assetView(assetHKD, "balanceOf", basic), hkd(basicMaxBalance+100))
			}},
		{name: "cancel/after accept", setup: append(offered, txAccept(idBob, 1)), op: txCancel(idAlice, 1), reason: "offer 1 is already accepted"},
		{name: "cancel/twice", setup: append(offered, txCancel(idAlice, 1)), op: txCancel(idAlice, 1), reason: "offer 1 is already cancelled"},
		{name: "cancel/unknown offer", op: txCancel(idAlice, 1), reason: "no offer 1"},
		{name: "exchange/unknown selector", op: rawTx(idAlice, exF, []byte{1, 2, 3, 4}), reason: "unknown operation selector"},
		{name: "exchange/value to the exchange", op: valueTx(idAlice, exF, bn(1)), reason: "system operations take no value"},
	}
}

// TestExchangeOps runs every batchTransfer and exchange case through
// runOpCase and checks the escrow against the open offers and pending
// withdrawals after it.
func TestExchangeOps(t *testing.T) {
	cases := append(batchCases(), offerCases()...)
	uniqueCaseNames(t, cases)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			check := c.check
			c.check = func(t *testing.T, h *opHarness) {
				if check != nil {
					check(t, h)
				}
				checkEscrow(t, h)
			}
			runOpCase(t, c)
		})
	}
}

// TestExchangeLifecycle runs offers and split payments side by side with
// withdrawals over several blocks, checking after every block that the
// escrow is what the open offers and pending withdrawals hold: an offer
// and a withdrawal of one asset share its escrow, and closing one never
// touches the other's share.
func TestExchangeLifecycle(t *testing.T) {
	h := newOpHarness(t)
	exp := genesisSec + 600
	steps := [][]opStep{
		{
			txOffer(idAlice, assetHKD, hkd(100), assetCNY, cny(80), idBob, exp),   // 1
			txWithdraw(idCarol, assetHKD, hkd(30)),                                // withdrawal 1
			txOffer(idBob, assetHKD, hkd(7), assetCNY, cny(5), idCarol, exp),      // 2
			txOffer(idCarol, assetCNY, cny(9), assetHKD, hkd(9), idDave, exp+600), // 3
			txBatch(idDave, assetHKD, "order-7", legTo(idAlice, hkd(1)), legTo(idBob, hkd(2))),
		},
		{
			txAccept(idBob, 1),
			txAccept(idBob, 1).failing("offer 1 is already accepted"),
			txCancel(idBob, 2),
			txClaim(idBankB, assetHKD, 1, "order-1"),
			txSettle(idBankB, assetHKD, 1),
		},
		{
			txCancel(idAlice, 1).failing("offer 1 is already accepted"),
			txAccept(idCarol, 2).failing("offer 2 is already cancelled"),
			txOffer(idAlice, assetCNY, cny(1), assetHKD, hkd(1), idBob, exp), // 4
			txWithdraw(idAlice, assetCNY, cny(3)),                            // withdrawal 2
		},
	}
	for _, s := range steps {
		h.mustBlock(0, s...)
		checkEscrow(t, h)
	}
	// Past offer 4's expiry, anyone cancels it; offer 3 still runs.
	h.mustBlock((exp-genesisSec+1)*1000,
		txAccept(idBob, 4).failing("offer 4 expired at"),
		txCancel(idDave, 4),
		txAccept(idDave, 3),
		txRefundW(idBankA, assetCNY, 2, "rejected"),
	)
	checkEscrow(t, h)
	for id, s := range map[uint32]string{assetCNY: "CNY", assetHKD: "HKD"} {
		sup, err := h.db.Supply(id)
		if err != nil {
			t.Fatal(err)
		}
		if sup.Escrow.Sign() != 0 {
			t.Errorf("%s escrow %s after every offer and withdrawal closed", s, sup.Escrow)
		}
	}
	for id, status := range map[int64]uint8{1: state.OfferAccepted, 2: state.OfferCancelled, 3: state.OfferAccepted, 4: state.OfferCancelled} {
		if got := h.offerView(id)[7].(uint8); got != status {
			t.Errorf("offer %d status %d, want %d", id, got, status)
		}
	}
	if v := h.offerView(5); v[0].(common.Address) != (common.Address{}) || v[7].(uint8) != 0 {
		t.Errorf("offer 5 = %v, want all zeros", v)
	}
}

// pauseAsset pauses (or resumes) asset through governance, the only way:
// a member proposes, a second approves, and blocks pass until the change is
// in force for the next block.
func (h *opHarness) pauseAsset(asset uint32, paused bool) {
	h.t.Helper()
	res := h.mustBlock(0, govTx(idGov1, "proposeSetAssetPaused", chain.AssetAddress(asset), paused))
	id := new(big.Int).SetBytes(res[0].output).Int64()
	h.mustBlock(0, txVote(idGov2, id, true))
	_, _, _, eff := h.proposalView(id)
	for h.db.Tip().Head.Number < eff-1 {
		h.mustBlock(0)
	}
	rules, err := h.db.Rules()
	if err != nil {
		h.t.Fatal(err)
	}
	if rules.Assets[asset].Paused != paused {
		h.t.Fatalf("asset %d paused %v after the change took effect", asset, rules.Assets[asset].Paused)
	}
}

// TestExchangePaused: while an asset is paused, no offer involving it can
// be made or accepted and no batch of it paid, but its open offers can be
// cancelled, so money never stays locked in escrow by a pause.
func TestExchangePaused(t *testing.T) {
	h := newOpHarness(t)
	exp := genesisSec + 3600
	h.mustBlock(0,
		txOffer(idAlice, assetHKD, hkd(100), assetCNY, cny(80), idBob, exp), // 1: HKD out
		txOffer(idAlice, assetCNY, cny(80), assetHKD, hkd(100), idBob, exp), // 2: HKD in
		txOffer(idAlice, assetCNY, cny(80), assetHKD, hkd(100), idBob, exp), // 3: HKD in
	)
	h.pauseAsset(assetHKD, true)
	h.mustBlock(0,
		txAccept(idBob, 1).failing("asset HKD is paused"),
		txAccept(idBob, 2).failing("asset HKD is paused"),
		txOffer(idAlice, assetHKD, hkd(1), assetCNY, cny(1), idBob, exp).failing("asset HKD is paused"),
		txOffer(idAlice, assetCNY, cny(1), assetHKD, hkd(1), idBob, exp).failing("asset HKD is paused"),
		txBatch(idAlice, assetHKD, "order-7", legTo(idBob, hkd(1))).failing("asset HKD is paused"),
		txBatch(idAlice, assetCNY, "order-7", legTo(idBob, cny(1))),
		txCancel(idAlice, 1),
		txCancel(idAlice, 2),
	)
	checkEscrow(t, h)
	if s, _ := h.db.Supply(assetHKD); s.Escrow.Sign() != 0 {
		t.Fatalf("HKD escrow %s after cancelling its offer while paused", s.Escrow)
	}
	h.pauseAsset(assetHKD, false)
	h.mustBlock(0, txAccept(idBob, 3))
	checkEscrow(t, h)
}
