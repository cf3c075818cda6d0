package bridge

import (
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// TestTwoBanksOneWithdrawal is issue 13's reproduction 1: CNY is issued by
// banks A and B, each with its bridge and its core; a holder linked at
// both withdraws. Exactly one bank's bridge claims the withdrawal on chain
// and sends a payment order; the other closes its payout unordered
// (claimed-elsewhere); the winner's ACSC settles it once. Before claims
// both bridges sent a pain.001 and the customer was paid twice.
func TestTwoBanksOneWithdrawal(t *testing.T) {
	e := newTestEnv(t)
	coreA, coreB := newFakeCore(t, e.orderSecret), e.core
	open := func(bank uint32, core *fakeCore) *Bridge {
		cfg := e.config(t)
		cfg.Asset = "CNY"
		cfg.BankCore.URL = core.srv.URL
		b, err := New(cfg, Options{Key: devKey(t, bank), Logger: cfg.NewLogger(testWriter{t})})
		if err != nil {
			t.Fatalf("new bridge of bank %d: %v", bank, err)
		}
		if err := b.Start(e.ctx); err != nil {
			b.Close()
			t.Fatalf("start bridge of bank %d: %v", bank, err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	bA, bB := open(genesis.DevBankAIndex, coreA), open(genesis.DevBankBIndex, coreB)
	holder := devKey(t, 9)
	e.link(t, bA, holder, "CN-A-0009")
	e.link(t, bB, holder, "CN-B-0009")

	amount, err := wallet.ParseAmount("12.34", wallet.NativeDecimals)
	if err != nil {
		t.Fatal(err)
	}
	op, err := wallet.AssetOp(0, "requestWithdrawal", amount, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	r := e.send(t, holder, op)
	var id uint64
	for _, l := range r.Logs {
		if l.Topics[0] == chain.AssetABI.Events["WithdrawalRequested"].ID {
			id = l.Topics[1].Big().Uint64()
		}
	}
	if id == 0 {
		t.Fatal("no WithdrawalRequested log")
	}
	e2e := PayoutEndToEndID(genesis.DevChainID, "CNY", id)

	// Both bridges follow the withdrawal; exactly one orders it.
	var winner, loser *Bridge
	var winnerCore *fakeCore
	waitFor(t, "one bridge to order the payout and the other to close it", func() bool {
		pa, errA := bA.Store().Payout(id)
		pb, errB := bB.Store().Payout(id)
		if errA != nil || errB != nil {
			return false
		}
		switch {
		case pa.Status == PayoutOrdered && pb.Status == PayoutClosed:
			winner, loser, winnerCore = bA, bB, coreA
		case pb.Status == PayoutOrdered && pa.Status == PayoutClosed:
			winner, loser, winnerCore = bB, bA, coreB
		default:
			return false
		}
		return true
	})
	time.Sleep(100 * time.Millisecond) // give a second order every chance
	if a, b := len(coreA.orders(e2e)), len(coreB.orders(e2e)); a+b != 1 || len(winnerCore.orders(e2e)) != 1 {
		t.Fatalf("bank A's core received %d orders and bank B's %d for %s, want 1 in all, from the winner", a, b, e2e)
	}
	lp, err := loser.Store().Payout(id)
	if err != nil || lp.Closed != "claimed-elsewhere" || lp.Orders != 0 {
		t.Fatalf("the other bank's payout: %+v, %v", lp, err)
	}
	w, err := e.client.Withdrawal(e.ctx, 0, id)
	if err != nil || w.Bank != winner.Bank() || w.Status != wallet.WithdrawalPending {
		t.Fatalf("withdrawal %d on chain: %+v, %v; want claimed by %s", id, w, err, winner.Bank())
	}

	// The loser's core never got an order, so it reports nothing; the
	// winner's ACSC settles the withdrawal, by the winner, once.
	if code, resp := e.reportStatus(t, winner, "PS-2B-1", e2e, "ACSC", ""); code != http.StatusOK {
		t.Fatalf("ACSC: %d %+v", code, resp)
	}
	if p := waitPayout(t, winner, id, PayoutClosed); p.Closed != "settled" {
		t.Fatalf("the winner's payout: %+v", p)
	}
	settled := cnyLogs(t, e, "WithdrawalSettled", common.BigToHash(new(big.Int).SetUint64(id)))
	if len(settled) != 1 || common.BytesToAddress(settled[0].Topics[2][:]) != winner.Bank() {
		t.Fatalf("WithdrawalSettled logs %+v, want one by %s", settled, winner.Bank())
	}
}

// cnyLogs returns the CNY facade's logs of event whose first topic is first.
func cnyLogs(t *testing.T, e *testEnv, event string, first common.Hash) []types.Log {
	t.Helper()
	q := ethereum.FilterQuery{FromBlock: big.NewInt(0), Addresses: []common.Address{chain.AssetAddress(0)},
		Topics: [][]common.Hash{{chain.AssetABI.Events[event].ID}, {first}}}
	logs, err := e.client.Eth().FilterLogs(e.ctx, q)
	if err != nil {
		t.Fatalf("eth_getLogs %s: %v", event, err)
	}
	return logs
}

// TestTwoInstancesOfOneBank: two bridge instances of bank B (one key, two
// data dirs, one core) follow the same withdrawal. Each draws its own order
// id; the chain records one claim, so exactly one instance sends a payment
// order and the other closes its payout unordered.
func TestTwoInstancesOfOneBank(t *testing.T) {
	e := newTestEnv(t)
	b1, b2 := e.open(t, e.config(t), nil), e.open(t, e.config(t), nil)
	holder := devKey(t, 10)
	e.link(t, b1, holder, "HK-TWO-10")
	e.link(t, b2, holder, "HK-TWO-10")
	id := e.withdraw(t, holder, "7.00", [32]byte{})
	e2e := PayoutEndToEndID(genesis.DevChainID, "HKD", id)

	winner, loser := waitOneOrders(t, b1, b2, id)
	time.Sleep(100 * time.Millisecond) // give a second order every chance
	if n := len(e.core.orders(e2e)); n != 1 {
		t.Fatalf("the core received %d orders for %s, want 1", n, e2e)
	}
	wp, err := winner.Store().Payout(id)
	if err != nil || wp.ClaimOrder == nil {
		t.Fatalf("the winner's payout: %+v, %v", wp, err)
	}
	lp, err := loser.Store().Payout(id)
	if err != nil || lp.Closed != "claimed-by-instance" || lp.Orders != 0 || lp.ClaimOrder == nil || *lp.ClaimOrder == *wp.ClaimOrder {
		t.Fatalf("the other instance's payout: %+v, %v", lp, err)
	}
	w, err := e.client.Withdrawal(e.ctx, hkdID, id)
	if err != nil || w.Bank != e.bank.Address() || w.OrderID != *wp.ClaimOrder {
		t.Fatalf("withdrawal %d on chain: %+v, %v; want the winner's order %s", id, w, err, wp.ClaimOrder)
	}
	if code, resp := e.reportStatus(t, winner, "PS-2I-1", e2e, "ACSC", ""); code != http.StatusOK {
		t.Fatalf("ACSC: %d %+v", code, resp)
	}
	if p := waitPayout(t, winner, id, PayoutClosed); p.Closed != "settled" {
		t.Fatalf("the winner's payout: %+v", p)
	}
}
