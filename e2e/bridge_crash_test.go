package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/bankcore"
	"github.com/tally-ledger/tally/bridge"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/wallet"
)

// The bridge crash test: `tally bridge` SIGKILLs itself at each crash
// point of the deposit and payout paths (TALLY_BRIDGE_CRASH_AT), is
// restarted without it, and nothing happens twice or not at all. One
// single-validator cluster and one simulator serve the five cases.

// crashAccount is the bank account linked to dev wallet i.
func crashAccount(i int) string { return fmt.Sprintf("HK-CRASH-%02d", i) }

// startBridgeCrashAt starts the bridge with bridge.CrashAtEnv = point.
func (e *bridgeEnv) startBridgeCrashAt(point string) {
	e.t.Helper()
	if err := os.Setenv(bridge.CrashAtEnv, point); err != nil {
		e.t.Fatal(err)
	}
	defer os.Unsetenv(bridge.CrashAtEnv)
	e.startBridge()
}

// stopBridge SIGTERMs the bridge and waits for its exit.
func (e *bridgeEnv) stopBridge() {
	e.t.Helper()
	e.bridge.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.bridge.done:
	case <-time.After(15 * time.Second):
		e.t.Fatalf("%s did not stop within 15s of SIGTERM", e.bridge.name)
	}
}

// waitKilled waits for the bridge to die of SIGKILL (its crash point).
func (e *bridgeEnv) waitKilled(point string) {
	e.t.Helper()
	select {
	case <-e.bridge.done:
	case <-time.After(30 * time.Second):
		e.t.Fatalf("%s did not crash at %s within 30s\n%s", e.bridge.name, point, tail(e.bridge.log, 30))
	}
	var ee *exec.ExitError
	if !errors.As(e.bridge.err, &ee) {
		e.t.Fatalf("%s exited with %v, want SIGKILL at %s\n%s", e.bridge.name, e.bridge.err, point, tail(e.bridge.log, 30))
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		e.t.Fatalf("%s exited with %v, want SIGKILL at %s\n%s", e.bridge.name, e.bridge.err, point, tail(e.bridge.log, 30))
	}
	e.t.Logf("%s died of SIGKILL at %s", e.bridge.name, point)
}

// closedByID counts bank B's WithdrawalSettled and WithdrawalRefunded
// logs of withdrawal id.
func (e *bridgeEnv) closedByID(id uint64) (settled, refunded int) {
	topic := common.BigToHash(new(big.Int).SetUint64(id))
	settled = len(e.logs("WithdrawalSettled", []common.Hash{topic}, []common.Hash{e.bankTopic()}))
	refunded = len(e.logs("WithdrawalRefunded", []common.Hash{topic}, []common.Hash{e.bankTopic()}))
	return
}

// ordersOf counts the simulator's orders under msgID, and returns the
// status of the last.
func (e *bridgeEnv) ordersOf(msgID string) (n int, status string) {
	for _, o := range e.ledger().Orders {
		if o.MsgID == msgID || o.EndToEndID == msgID {
			n++
			status = o.Status
		}
	}
	return
}

func TestBridgeCrash(t *testing.T) {
	skipShort(t)
	began := time.Now()
	buildTally(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	c := newTestCluster(t, 1, nil)
	c.startAll()
	c.waitLeader(ctx, []int{0}, "", 30*time.Second)

	// Setup run: link dev wallets 0 and 1, then stop.
	e, bank, keys, sup0 := setupBridge(t, ctx, c, "e2e-bridge-crash-hmac-secret-0123", 2, crashAccount)
	wc, err := wallet.Dial(ctx, c.specs[0].RPC)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	e.stopBridge()
	t.Logf("setup done after %v", time.Since(began).Round(time.Millisecond))

	// settle waits until the bridge's records are all final and the
	// simulator has nothing left to deliver, then a little longer, so a
	// second mint, order or close would have shown.
	settle := func(deposits, payouts uint64) {
		t.Helper()
		pollUntil(t, 30*time.Second, func() string {
			return fmt.Sprintf("%d deposits minted and %d payouts closed (status %+v)", deposits, payouts, e.status())
		}, func() bool {
			s := e.status()
			return s.Deposits["minted"] == deposits && s.Payouts["closed"] == payouts
		})
		time.Sleep(time.Second)
	}

	var depTotal, settledTotal, reversedTotal int64
	var deposits uint64 // deposit cases run so far

	// deposit runs one deposit through a bridge that crashes at point.
	depositCase := func(point, ref string, amount int64, wantMintedBefore bool) {
		t.Helper()
		e.startBridgeCrashAt(point)
		e.deposit([]depReq{{Account: crashAccount(0), Amount: cents(amount), Reference: ref}})
		bankRef := e.depositBankRef(bank.Address(), ref)
		e.waitKilled(point)
		if n := e.mintedRefs()[bankRef]; n != 0 && !wantMintedBefore {
			t.Fatalf("%s: deposit %s minted %d times before the restart", point, ref, n)
		}
		e.startBridge()
		depTotal += amount
		deposits++
		settle(deposits, 0)
		if n := e.mintedRefs()[bankRef]; n != 1 {
			t.Fatalf("%s: deposit %s (bankRef %s) minted %d times, want 1", point, ref, bankRef, n)
		}
		t.Logf("%s: after the restart: %v duplicate verdicts, %v mints sent", point,
			e.metric("tally_bridge_entries_total", `verdict="duplicate"`), e.metric("tally_bridge_txs_sent_total", `op="mint"`))
		e.stopBridge()
		t.Logf("%s: deposit %s minted exactly once (%v)", point, ref, time.Since(began).Round(time.Millisecond))
	}

	// reversalCase has the bank reverse the minted deposit ref while the
	// bridge crashes at point on its way to reverseMint: after the restart
	// the mint is reversed exactly once.
	reversalCase := func(point, ref string, amount int64) {
		t.Helper()
		bankRef := e.depositBankRef(bank.Address(), ref)
		e.startBridgeCrashAt(point)
		if code, out := e.post(e.simURL+bankcore.PathReversals, []byte(`{"reference": "`+ref+`"}`)); code/100 != 2 {
			t.Fatalf("POST /sim/reversals: %d %s", code, out)
		}
		e.waitKilled(point)
		if n := len(e.logs("MintReversed", []common.Hash{bankRef})); n != 0 && point == "after-reverse-record" {
			t.Fatalf("%s: deposit %s reversed %d times before the restart", point, ref, n)
		}
		e.startBridge()
		reversedTotal += amount
		pollUntil(t, 30*time.Second, func() string {
			return fmt.Sprintf("deposit %s reversed (status %+v)", ref, e.status())
		}, func() bool { return e.status().Deposits["reversed"] == 1 })
		time.Sleep(time.Second) // a second reverseMint would have shown
		if n := len(e.logs("MintReversed", []common.Hash{bankRef})); n != 1 {
			t.Fatalf("%s: deposit %s (bankRef %s) reversed %d times, want 1", point, ref, bankRef, n)
		}
		e.stopBridge()
		t.Logf("%s: deposit %s reversed exactly once (%v)", point, ref, time.Since(began).Round(time.Millisecond))
	}

	// withdraw asks for a withdrawal from dev wallet w and returns its id.
	withdraw := func(w int, amount int64) uint64 {
		t.Helper()
		op, err := wallet.AssetOp(brHKD, "requestWithdrawal", big.NewInt(amount), [32]byte{})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := wc.Send(ctx, keys[w], op)
		if err != nil {
			t.Fatalf("requestWithdrawal: %v", err)
		}
		r, err := wc.WaitReceipt(ctx, tx.Hash())
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("requestWithdrawal receipt %v: %v", r, err)
		}
		for _, l := range r.Logs {
			if l.Topics[0] == chain.AssetABI.Events["WithdrawalRequested"].ID {
				return new(big.Int).SetBytes(l.Topics[1][:]).Uint64()
			}
		}
		t.Fatal("no WithdrawalRequested log")
		return 0
	}

	// payoutCase runs one withdrawal through a bridge that crashes at
	// point; reject makes the simulator reject the order (a refund).
	payoutCase := func(point string, w int, amount int64, reject bool, closed uint64) {
		t.Helper()
		e.startBridgeCrashAt(point)
		id := withdraw(w, amount)
		msgID := fmt.Sprintf("TALLY-%d-HKD-W%d", devChainID, id)
		e.waitKilled(point)
		if point == "after-order" {
			if n, _ := e.ordersOf(msgID); n != 1 {
				t.Fatalf("%s: the simulator has %d orders %s at the crash, want 1 (the POST answered 2xx)", point, n, msgID)
			}
		}
		e.startBridge()
		if !reject {
			settledTotal += amount
		}
		settle(deposits, closed)
		n, status := e.ordersOf(msgID)
		wantStatus := "ACSC"
		if reject {
			wantStatus = "RJCT"
		}
		if n != 1 || status != wantStatus {
			t.Errorf("%s: the simulator received payout %s %d times (status %s), want once (%s)", point, msgID, n, status, wantStatus)
		}
		s, r := e.closedByID(id)
		switch {
		case s+r != 1:
			t.Errorf("%s: withdrawal %d settled %d times and refunded %d times, want one of them once", point, id, s, r)
		case reject && r != 1, !reject && s != 1:
			t.Errorf("%s: withdrawal %d settled %d, refunded %d; want reject=%v", point, id, s, r, reject)
		}
		t.Logf("%s: after the restart: %v orders answered 2xx, %v settle/refund transactions sent", point,
			e.metric("tally_bridge_payout_orders_total", `result="ok"`),
			e.metric("tally_bridge_txs_sent_total", `op="settleWithdrawal"`)+e.metric("tally_bridge_txs_sent_total", `op="refundWithdrawal"`))
		e.stopBridge()
		t.Logf("%s: withdrawal %d (%s) ordered once, closed once (%v)", point, id, msgID, time.Since(began).Round(time.Millisecond))
	}

	depositCase("after-persist", "E2E-CRASH-PERSIST", 12345, false)
	depositCase("after-submit", "E2E-CRASH-SUBMIT", 23456, true)
	reversalCase("after-reverse-record", "E2E-CRASH-SUBMIT", 23456)
	deposits-- // reversed: no longer counted minted
	payoutCase("after-order", 0, 5432, false, 1)
	payoutCase("after-close-submit", 1, 95000, true, 2)

	// The supply moved by exactly what went through once.
	sup, err := wc.Supply(ctx, "HKD")
	if err != nil {
		t.Fatal(err)
	}
	if d := new(big.Int).Sub(sup.Minted.ToInt(), sup0.Minted.ToInt()); d.Cmp(big.NewInt(depTotal)) != 0 {
		t.Errorf("supply: minted grew by %s, want %d", d, depTotal)
	}
	if d := new(big.Int).Sub(sup.Burned.ToInt(), sup0.Burned.ToInt()); d.Cmp(big.NewInt(settledTotal+reversedTotal)) != 0 {
		t.Errorf("supply: burned grew by %s, want %d (settled %d, reversed %d)", d, settledTotal+reversedTotal, settledTotal, reversedTotal)
	}
	if sup.Escrow.ToInt().Sign() != 0 {
		t.Errorf("supply: escrow %s after every withdrawal closed", sup.Escrow.ToInt())
	}
	if got, want := e.ledger().Balances["SIM-OMNIBUS-0001"], cents(depTotal-settledTotal-reversedTotal); got != want {
		t.Errorf("simulator omnibus balance %s, want %s", got, want)
	}
	t.Logf("TestBridgeCrash done in %v", time.Since(began).Round(time.Millisecond))
}
