package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/bridge/iso20022"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// TestBridgeOnDevNode drives the bridge against a real tallyd: deposits
// minted exactly once through duplicates and simulated crashes, bad input
// held or refused with nothing minted, withdrawals paid out with stable
// ids through a bank core that is down for a while, settled or refunded
// exactly once, and failover between node endpoints. The subtests share
// the node and run in order; each has its own bridge, wallets and
// references.
func TestBridgeOnDevNode(t *testing.T) {
	e := newTestEnv(t)
	t.Run("DepositMintedExactlyOnce", e.testDepositMintedOnce)
	t.Run("BadInputHeldNothingMinted", e.testBadInput)
	t.Run("RefusedRequests", e.testRefusedRequests)
	t.Run("CrashAfterPersist", e.testCrashAfterPersist)
	t.Run("CrashAfterSubmit", e.testCrashAfterSubmit)
	t.Run("WithdrawalPaidOutAndSettled", e.testWithdrawalSettled)
	t.Run("RejectedPayoutRefunded", e.testRejectedPayout)
	t.Run("CrashAfterOrderAndClose", e.testPayoutCrashes)
	t.Run("NodeFailover", e.testNodeFailover)
	t.Run("ISO20022Messages", e.testISO20022)
}

// testDepositMintedOnce: a linked wallet's deposit is minted once; the
// same notification again is acknowledged as a duplicate and mints nothing.
func (e *testEnv) testDepositMintedOnce(t *testing.T) {
	b := e.open(t, e.config(t), nil)
	w := freshKey(t) // tier 0: may receive up to 1,000 HKD
	e.link(t, b, w, "HK-001-0001")
	minted0, _ := e.supply(t)

	entry := credit("DEP-ONCE-1", "HK-001-0001", "100.25")
	code, resp := e.notify(t, b, "MSG-ONCE-1", entry)
	if code != http.StatusOK || len(resp.Entries) != 1 || resp.Entries[0].Verdict != VerdictAccepted {
		t.Fatalf("notification: %d %+v", code, resp)
	}
	d := waitDeposit(t, b, "DEP-ONCE-1", DepositMinted)
	if d.Wallet != w.Address() || d.Units.Cmp(hkd(t, "100.25")) != 0 || d.Tx == nil {
		t.Fatalf("minted deposit %+v", d)
	}
	if got := e.balance(t, w.Address()); got.Cmp(hkd(t, "100.25")) != 0 {
		t.Fatalf("wallet holds %v base units, want 10025", got)
	}

	// The bank resends the same notification (its ack was lost).
	code, resp = e.notify(t, b, "MSG-ONCE-1", entry)
	if code != http.StatusOK || resp.Entries[0].Verdict != VerdictDuplicate || resp.Entries[0].Status != string(DepositMinted) {
		t.Fatalf("resent notification: %d %+v", code, resp)
	}
	// The same reference with another amount is a conflict, refused.
	code, resp = e.notify(t, b, "MSG-ONCE-2", credit("DEP-ONCE-1", "HK-001-0001", "999.00"))
	if code != http.StatusUnprocessableEntity || resp.Entries[0].Verdict != VerdictConflict {
		t.Fatalf("conflicting entry: %d %+v", code, resp)
	}
	time.Sleep(100 * time.Millisecond) // give a wrong second mint every chance
	if n := len(e.logs(t, "Minted", d.BankRef)); n != 1 {
		t.Fatalf("%d Minted logs for the bankRef, want 1", n)
	}
	minted1, _ := e.supply(t)
	if delta := new(big.Int).Sub(minted1, minted0); delta.Cmp(hkd(t, "100.25")) != 0 {
		t.Fatalf("supply minted moved by %v, want 10025", delta)
	}
	if got := e.balance(t, w.Address()); got.Cmp(hkd(t, "100.25")) != 0 {
		t.Fatalf("wallet holds %v after the duplicate, want 10025", got)
	}
	st, err := b.Status()
	if err != nil || st.Deposits[DepositMinted] != 1 || st.Links != 1 || st.Refusals != 1 {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// testBadInput: every entry that cannot be minted is held with its reason
// and recorded; the good entry next to them is minted; nothing else is.
func (e *testEnv) testBadInput(t *testing.T) {
	b := e.open(t, e.config(t), nil)
	good, frozen, small := freshKey(t), freshKey(t), freshKey(t)
	e.link(t, b, good, "BAD-GOOD")
	e.link(t, b, frozen, "BAD-FROZEN")
	e.link(t, b, small, "BAD-SMALL")
	freeze, err := wallet.ComplianceOp("freeze", frozen.Address(), "bridge test")
	if err != nil {
		t.Fatal(err)
	}
	e.send(t, devKey(t, genesis.DevComplianceIndex), freeze)
	minted0, _ := e.supply(t)

	cny := credit("BAD-CNY", "BAD-GOOD", "5.00")
	cny.Currency = "CNY"
	entries := []jsonEntry{
		credit("BAD-UNLINKED", "NOBODY-1", "5.00"),
		credit("BAD-NEG", "BAD-GOOD", "-5.00"),
		credit("BAD-PRECISE", "BAD-GOOD", "5.001"),
		cny,
		credit("BAD-ZERO", "BAD-GOOD", "0.00"),
		credit("BAD-NAN", "BAD-GOOD", "5,00"),
		credit("BAD-OK", "BAD-GOOD", "7.50"),
		credit("BAD-FROZEN-1", "BAD-FROZEN", "5.00"),
		credit("BAD-OVERMAX", "BAD-SMALL", "1000.01"), // tier 0 holds at most 1,000 HKD
	}
	code, resp := e.notify(t, b, "MSG-BAD-1", entries...)
	if code != http.StatusUnprocessableEntity || resp.Error == "" {
		t.Fatalf("notification with bad entries: %d %+v", code, resp)
	}
	wantHeld := map[string]string{
		"BAD-UNLINKED": "not linked", "BAD-NEG": "negative", "BAD-PRECISE": "decimal places",
		"BAD-CNY": "not this bridge's asset", "BAD-ZERO": "zero", "BAD-NAN": "not a decimal number",
	}
	for _, v := range resp.Entries {
		want, held := wantHeld[v.Ref]
		switch {
		case held && (v.Verdict != VerdictHeld || !strings.Contains(v.Reason, want)):
			t.Errorf("entry %s: %+v, want held with %q", v.Ref, v, want)
		case !held && v.Verdict != VerdictAccepted:
			t.Errorf("entry %s: %+v, want accepted (the chain decides)", v.Ref, v)
		}
	}
	waitDeposit(t, b, "BAD-OK", DepositMinted)
	if d := waitDeposit(t, b, "BAD-FROZEN-1", DepositHeld); !strings.Contains(d.Reason, "is frozen") {
		t.Errorf("frozen wallet's deposit held with %q", d.Reason)
	}
	if d := waitDeposit(t, b, "BAD-OVERMAX", DepositHeld); !strings.Contains(d.Reason, "over the maximum") {
		t.Errorf("over-maximum deposit held with %q", d.Reason)
	}
	for ref := range wantHeld {
		if d := deposit(t, b, ref); d.Status != DepositHeld {
			t.Errorf("deposit %s is %s", ref, d.Status)
		}
	}
	// The bank resends the notification: the same answer, nothing new.
	code, again := e.notify(t, b, "MSG-BAD-1", entries...)
	if code != http.StatusUnprocessableEntity || len(again.Entries) != len(entries) {
		t.Fatalf("resent notification with bad entries: %d %+v", code, again)
	}
	for _, v := range again.Entries {
		if v.Verdict != VerdictDuplicate {
			t.Errorf("resent entry %s: %+v, want duplicate", v.Ref, v)
		}
	}
	minted1, _ := e.supply(t)
	if delta := new(big.Int).Sub(minted1, minted0); delta.Cmp(hkd(t, "7.50")) != 0 {
		t.Fatalf("supply minted moved by %v, want only the good entry's 750", delta)
	}
	if e.balance(t, frozen.Address()).Sign() != 0 || e.balance(t, small.Address()).Sign() != 0 {
		t.Fatal("a held deposit reached its wallet")
	}
	rs, _ := b.Store().Refusals(100)
	kinds := map[string]int{}
	for _, r := range rs {
		kinds[r.Kind]++
	}
	if kinds[RefusedUnknownAccount] != 1 || kinds[RefusedBadAmount] != 4 || kinds[RefusedUnknownCurrency] != 1 {
		t.Fatalf("recorded refusals by kind %v", kinds)
	}
}

// testRefusedRequests: a bad signature, a stale timestamp, malformed
// bodies, an oversized body, too many entries and a bad link are refused
// with 4xx and a JSON message, recorded, and change nothing.
func (e *testEnv) testRefusedRequests(t *testing.T) {
	cfg := e.config(t)
	cfg.Limits.MaxBodyBytes = 1024
	cfg.Limits.MaxEntries = 2
	b := e.open(t, cfg, nil)
	w := freshKey(t)
	e.link(t, b, w, "REF-1")
	body, _ := json.Marshal(jsonNotification{MsgID: "MSG-REF-1", Entries: []jsonEntry{credit("REF-DEP-1", "REF-1", "1.00")}})
	wrong := Sign([]byte("not the secret, not the secret!!"), body, time.Now())
	stale := Sign(e.secret, body, time.Now().Add(-10*time.Minute))
	big := []byte(`{"msgId":"` + strings.Repeat("x", 2000) + `"}`)
	many, _ := json.Marshal(jsonNotification{MsgID: "MSG-REF-2", Entries: []jsonEntry{
		credit("R1", "REF-1", "1"), credit("R2", "REF-1", "1"), credit("R3", "REF-1", "1")}})
	badLink, _ := json.Marshal(LinkRequest{Account: "REF-2", Wallet: w.Address().Hex(), Signature: "0x" + strings.Repeat("11", 65)})
	for _, c := range []struct {
		name, path string
		body       []byte
		header     string
		code       int
		kind, msg  string
	}{
		{"wrong secret", PathNotifications, body, wrong, 401, RefusedBadSignature, "does not verify"},
		{"no signature", PathNotifications, body, "t=1", 401, RefusedBadSignature, "needs t="},
		{"stale timestamp", PathNotifications, body, stale, 401, RefusedStaleTimestamp, "replay window"},
		{"malformed JSON", PathNotifications, []byte(`{"msgId":`), "", 400, RefusedMalformed, "JSON notification"},
		{"malformed XML", PathNotifications, []byte(`<Document><unclosed>`), "", 400, RefusedMalformed, ""},
		{"no entries", PathNotifications, []byte(`{"msgId":"M","entries":[]}`), "", 400, RefusedMalformed, "no entries"},
		{"entry without ref", PathNotifications, []byte(`{"msgId":"M","entries":[{"ref":"","account":"REF-1","amount":"1","currency":"HKD","credit":true}]}`), "", 400, RefusedMalformed, "ref is missing"},
		{"too many entries", PathNotifications, many, "", 400, RefusedMalformed, "limits.max-entries"},
		{"too large", PathNotifications, big, "", 413, RefusedTooLarge, "limits.max-body-bytes"},
		{"bad link signature", PathLinks, badLink, "", 400, RefusedBadLink, "signature"},
		{"link signed by another wallet", PathLinks, e.signedLink(t, b, freshKey(t), "REF-3", w.Address()), "", 400, RefusedBadLink, "not by wallet"},
		{"status report for no payout", PathPaymentStatus, []byte(`{"msgId":"PS","statuses":[{"endToEndId":"TALLY-1337-HKD-W999999","status":"ACSC"}]}`), "", 422, RefusedUnknownPayout, ""},
	} {
		before := b.Store().Counts().Refusals
		code, resp := e.post(t, b, c.path, c.body, c.header)
		msg := resp.Error
		if len(resp.Entries) > 0 {
			msg = resp.Entries[0].Reason
		}
		if code != c.code || msg == "" || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %+v, want %d with a message containing %q", c.name, code, resp, c.code, c.msg)
			continue
		}
		rs, _ := b.Store().Refusals(1)
		if b.Store().Counts().Refusals != before+1 || len(rs) != 1 || rs[0].Kind != c.kind {
			t.Errorf("%s: refusal not recorded as %s: %+v", c.name, c.kind, rs)
		}
	}
	if c := b.Store().Counts(); c.Deposits[DepositAccepted]+c.Deposits[DepositMinted]+c.Deposits[DepositHeld] != 0 || c.Links != 1 {
		t.Fatalf("refused requests changed the store: %+v", c)
	}
	// /v1/status shows them.
	_, raw := e.opCall(t, b.OperatorAddr(), "GET", PathStatus, opToken, nil)
	var st Status
	if err := json.Unmarshal(raw, &st); err != nil || st.Refusals < 12 || len(st.RecentRefusals) == 0 || st.Asset != "HKD" {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// signedLink is a link request for wallet signed by signer.
func (e *testEnv) signedLink(t *testing.T, b *Bridge, signer *crypto.PrivateKey, account string, wallet common.Address) []byte {
	msg := LinkMessage(b.Bank(), account, wallet)
	sig, _ := signer.Sign(common.BytesToHash(accountsTextHash(msg)))
	body, _ := json.Marshal(LinkRequest{Account: account, Wallet: wallet.Hex(), Signature: fmt.Sprintf("0x%x", sig)})
	return body
}

// testCrashAfterPersist: the bridge acknowledges deposits and dies before
// its outbox signs anything; the next run mints each once.
func (e *testEnv) testCrashAfterPersist(t *testing.T) {
	cfg := e.config(t)
	w := freshKey(t)
	b := e.open(t, cfg, func(b *Bridge) { b.hooks.workers = map[string]bool{} }) // intake only
	e.link(t, b, w, "CRASH-P")
	if code, resp := e.notify(t, b, "MSG-CP-1", credit("CP-1", "CRASH-P", "10.00"), credit("CP-2", "CRASH-P", "20.00")); code != http.StatusOK {
		t.Fatalf("notification: %d %+v", code, resp)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if e.balance(t, w.Address()).Sign() != 0 {
		t.Fatal("minted before any outbox ran")
	}
	b = e.open(t, cfg, nil)
	waitDeposit(t, b, "CP-1", DepositMinted)
	waitDeposit(t, b, "CP-2", DepositMinted)
	if got := e.balance(t, w.Address()); got.Cmp(hkd(t, "30.00")) != 0 {
		t.Fatalf("wallet holds %v, want 3000", got)
	}
}

// testCrashAfterSubmit: the bridge dies after recording a signed mint
// (before sending it, then after sending it, before its receipt); each
// restart finishes the deposit without minting it twice.
func (e *testEnv) testCrashAfterSubmit(t *testing.T) {
	for i, point := range []string{crashAfterMintRecorded, crashAfterMintSent} {
		t.Run(point, func(t *testing.T) {
			cfg := e.config(t)
			w := freshKey(t)
			account, ref := fmt.Sprintf("CRASH-S-%d", i), fmt.Sprintf("CS-%d", i)
			minted0, _ := e.supply(t)
			b := e.open(t, cfg, func(b *Bridge) { b.hooks.crash = func(p string) bool { return p == point } })
			e.link(t, b, w, account)
			if code, resp := e.notify(t, b, "MSG-"+ref, credit(ref, account, "42.00")); code != http.StatusOK {
				t.Fatalf("notification: %d %+v", code, resp)
			}
			d := waitDeposit(t, b, ref, DepositSubmitted)
			if d.Tx == nil {
				t.Fatal("submitted deposit without its transaction")
			}
			if point == crashAfterMintSent {
				// Let the sent transaction apply while the bridge is "dead".
				if _, err := e.client.WaitReceipt(e.ctx, d.Tx.Hash); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b = e.open(t, cfg, nil)
			d = waitDeposit(t, b, ref, DepositMinted)
			time.Sleep(100 * time.Millisecond)
			if n := len(e.logs(t, "Minted", d.BankRef)); n != 1 {
				t.Fatalf("%d Minted logs, want 1", n)
			}
			minted1, _ := e.supply(t)
			if delta := new(big.Int).Sub(minted1, minted0); delta.Cmp(hkd(t, "42.00")) != 0 {
				t.Fatalf("supply minted moved by %v, want 4200", delta)
			}
			if got := e.balance(t, w.Address()); got.Cmp(hkd(t, "42.00")) != 0 {
				t.Fatalf("wallet holds %v, want 4200", got)
			}
		})
	}
}

// testWithdrawalSettled: a linked dev account withdraws; the bridge orders
// the payout from a core that is down at first, with one MsgId across the
// retries; the core's ACSC settles the withdrawal on chain exactly once.
func (e *testEnv) testWithdrawalSettled(t *testing.T) {
	b := e.open(t, e.config(t), nil)
	holder := devKey(t, 5)
	e.link(t, b, holder, "HK-PAY-5")
	_, burned0 := e.supply(t)
	e.core.down(2, 2) // two dropped connections, then two 503s
	id := e.withdraw(t, holder, "12.34", [32]byte{})
	msgID := PayoutEndToEndID(genesis.DevChainID, "HKD", id)

	p := waitPayout(t, b, id, PayoutOrdered)
	if p.EndToEndID != msgID || p.Account != "HK-PAY-5" || p.Amount.Cmp(hkd(t, "12.34")) != 0 || p.Orders != 5 {
		t.Fatalf("ordered payout %+v", p)
	}
	orders := e.core.orders(msgID)
	if len(orders) != 5 {
		t.Fatalf("core received %d orders for %s, want 5 (4 failed, 1 accepted)", len(orders), msgID)
	}
	for _, o := range orders {
		ids := PayoutIDs(b.Bank(), genesis.DevChainID, "HKD", id)
		if o.order.MsgID != ids.MsgID || o.idempotencyKey != ids.MsgID || o.order.EndToEndID != msgID || o.order.UETR != ids.UETR ||
			o.order.Amount != "12.34" || o.order.Account != "HK-PAY-5" || !sameOrder(o, orders[0]) {
			t.Fatalf("order resent with other content: %s vs %s", o.body, orders[0].body)
		}
	}

	code, resp := e.reportStatus(t, b, "PS-SET-1", msgID, "ACSC", "")
	if code != http.StatusOK || resp.Entries[0].Verdict != VerdictSettling {
		t.Fatalf("ACSC: %d %+v", code, resp)
	}
	p = waitPayout(t, b, id, PayoutClosed)
	if p.Closed != "settled" || e.withdrawalStatus(t, id) != withdrawalSettled {
		t.Fatalf("payout %+v, chain status %d", p, e.withdrawalStatus(t, id))
	}
	// The bank repeats itself, then contradicts itself: nothing moves.
	if code, resp := e.reportStatus(t, b, "PS-SET-2", msgID, "ACSC", ""); code != http.StatusOK || resp.Entries[0].Verdict != VerdictDuplicate {
		t.Fatalf("repeated ACSC: %d %+v", code, resp)
	}
	if code, resp := e.reportStatus(t, b, "PS-SET-3", msgID, "RJCT", "AC04"); code != http.StatusUnprocessableEntity || resp.Entries[0].Verdict != VerdictConflict {
		t.Fatalf("RJCT after ACSC: %d %+v", code, resp)
	}
	time.Sleep(100 * time.Millisecond)
	idHash := common.BigToHash(new(big.Int).SetUint64(id))
	if n, r := len(e.logs(t, "WithdrawalSettled", idHash)), len(e.logs(t, "WithdrawalRefunded", idHash)); n != 1 || r != 0 {
		t.Fatalf("%d WithdrawalSettled and %d WithdrawalRefunded logs, want 1 and 0", n, r)
	}
	_, burned1 := e.supply(t)
	if delta := new(big.Int).Sub(burned1, burned0); delta.Cmp(hkd(t, "12.34")) != 0 {
		t.Fatalf("burned moved by %v, want 1234", delta)
	}
}

// testRejectedPayout: the core rejects a payout (pain.002 RJCT); the
// withdrawal is refunded with the bank's reason and the holder gets the
// money back. An unlinked holder's withdrawal is not this bank's to pay.
func (e *testEnv) testRejectedPayout(t *testing.T) {
	b := e.open(t, e.config(t), nil)
	holder, stranger := devKey(t, 6), devKey(t, 7)
	e.link(t, b, holder, "HK-PAY-6")
	before := e.balance(t, holder.Address())
	foreign := e.withdraw(t, stranger, "1.00", [32]byte{})
	id := e.withdraw(t, holder, "50.00", [32]byte{})
	msgID := PayoutEndToEndID(genesis.DevChainID, "HKD", id)
	waitPayout(t, b, id, PayoutOrdered)
	if _, err := b.Store().Payout(foreign); err == nil {
		t.Fatal("a payout was recorded for an unlinked holder")
	}

	code, resp := e.reportStatus(t, b, "PS-RJ-1", msgID, "RJCT", "AC04 account closed")
	if code != http.StatusOK || resp.Entries[0].Verdict != VerdictRefunding {
		t.Fatalf("RJCT: %d %+v", code, resp)
	}
	p := waitPayout(t, b, id, PayoutClosed)
	if p.Closed != "refunded" || e.withdrawalStatus(t, id) != withdrawalRefunded {
		t.Fatalf("payout %+v, chain status %d", p, e.withdrawalStatus(t, id))
	}
	logs := e.logs(t, "WithdrawalRefunded", common.BigToHash(new(big.Int).SetUint64(id)))
	if len(logs) != 1 {
		t.Fatalf("%d WithdrawalRefunded logs, want 1", len(logs))
	}
	vals, err := logsUnpack("WithdrawalRefunded", logs[0].Data)
	if err != nil || !strings.Contains(vals[1].(string), "AC04 account closed") {
		t.Fatalf("refund reason %v, %v", vals, err)
	}
	if after := e.balance(t, holder.Address()); after.Cmp(before) != 0 {
		t.Fatalf("holder has %v after the refund, had %v", after, before)
	}
}

// testPayoutCrashes: the bridge dies after the core accepted an order but
// before recording it (the order is resent with the same MsgId), and after
// sending settleWithdrawal before its receipt (it is not sent twice).
func (e *testEnv) testPayoutCrashes(t *testing.T) {
	cfg := e.config(t)
	holder := devKey(t, 8)
	b := e.open(t, cfg, func(b *Bridge) { b.hooks.crash = func(p string) bool { return p == crashAfterOrderSent } })
	e.link(t, b, holder, "HK-PAY-8")
	id := e.withdraw(t, holder, "3.00", [32]byte{})
	msgID := PayoutEndToEndID(genesis.DevChainID, "HKD", id)
	waitFor(t, "the order to reach the core", func() bool { return len(e.core.orders(msgID)) == 1 })
	time.Sleep(50 * time.Millisecond) // the crashed sender must not record it
	if p, err := b.Store().Payout(id); err != nil || p.Status != PayoutNew {
		t.Fatalf("payout after the crash point: %+v, %v", p, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = e.open(t, cfg, func(b *Bridge) { b.hooks.crash = func(p string) bool { return p == crashAfterCloseSent } })
	waitPayout(t, b, id, PayoutOrdered)
	if orders := e.core.orders(msgID); len(orders) != 2 || !sameOrder(orders[0], orders[1]) {
		t.Fatalf("after the restart the core has %d orders for %s, want the same one twice", len(orders), msgID)
	}
	if code, resp := e.reportStatus(t, b, "PS-CR-1", msgID, "ACSC", ""); code != http.StatusOK {
		t.Fatalf("ACSC: %d %+v", code, resp)
	}
	var p *Payout
	waitFor(t, "settleWithdrawal to be sent", func() bool {
		p, _ = b.Store().Payout(id)
		return p.Tx != nil
	})
	if _, err := e.client.WaitReceipt(e.ctx, p.Tx.Hash); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = e.open(t, cfg, nil)
	p = waitPayout(t, b, id, PayoutClosed)
	idHash := common.BigToHash(new(big.Int).SetUint64(id))
	if p.Closed != "settled" || len(e.logs(t, "WithdrawalSettled", idHash)) != 1 {
		t.Fatalf("payout %+v", p)
	}
	if n := p.Tx.Nonce; n == 0 {
		t.Fatalf("close transaction without a nonce: %+v", p.Tx)
	}
}

// testNodeFailover: the first endpoints refuse connections or answer 502;
// the bridge fails over to the live node and mints.
func (e *testEnv) testNodeFailover(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer bad.Close()
	cfg := e.config(t)
	cfg.Nodes.Endpoints = []string{"http://127.0.0.1:1", bad.URL, e.node.URL}
	b := e.open(t, cfg, nil)
	w := freshKey(t)
	e.link(t, b, w, "FAILOVER-1")
	if code, resp := e.notify(t, b, "MSG-FO-1", credit("FO-1", "FAILOVER-1", "1.23")); code != http.StatusOK {
		t.Fatalf("notification: %d %+v", code, resp)
	}
	waitDeposit(t, b, "FO-1", DepositMinted)
	_, text := e.opCall(t, b.OperatorAddr(), "GET", "/metrics", opToken, nil)
	if !strings.Contains(string(text), "tally_bridge_node_failovers_total 2") {
		t.Fatalf("metrics do not show the two failovers:\n%s", grep(string(text), "tally_bridge"))
	}
	if !strings.Contains(string(text), `tally_bridge_deposits{status="minted"} 1`) {
		t.Fatalf("metrics do not show the minted deposit:\n%s", grep(string(text), "tally_bridge"))
	}
}

func grep(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// testISO20022: the same flows in the banks' own messages. A camt.054
// credit mints (its pending entry is ignored, its entry from an unlinked
// debtor account is held, an older camt.054 version is refused); a payout
// is ordered as a pain.001 with the stable ids; a pain.002 RJCT refunds
// it with the bank's reason; a camt.054 debit entry settles another.
func (e *testEnv) testISO20022(t *testing.T) {
	cfg := e.config(t)
	cfg.BankCore.Format = FormatPain001
	cfg.BankCore.DebtorAccount = "HK55OMNIBUS0001"
	b := e.open(t, cfg, nil)
	w, holder := freshKey(t), devKey(t, 9)
	e.link(t, b, w, "XML-ACCT-1")
	e.link(t, b, holder, "XML-PAY-9")

	omnibus := iso20022.Account{Other: "HK55OMNIBUS0001"}
	from := func(account, e2e string) []iso20022.TxDetail {
		return []iso20022.TxDetail{{EndToEndID: e2e, Debtor: iso20022.Party{Account: iso20022.Account{Other: account}}}}
	}
	camt := func(msgID string, entries ...iso20022.Entry) []byte {
		var buf bytes.Buffer
		n := &iso20022.Notification{MsgID: msgID, Created: time.Now().UTC(),
			Accounts: []iso20022.AccountNotification{{ID: msgID + "-1", Account: omnibus, Entries: entries}}}
		if err := iso20022.WriteCamt054(&buf, n); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	body := camt("CAMT-XML-1",
		iso20022.Entry{Ref: "XML-DEP-1", Amount: "55.55", Currency: "HKD", Credit: true, Status: iso20022.EntryBooked, Details: from("XML-ACCT-1", "E2E-1")},
		iso20022.Entry{Ref: "XML-DEP-2", Amount: "1.00", Currency: "HKD", Credit: true, Status: iso20022.EntryPending, Details: from("XML-ACCT-1", "E2E-2")},
		iso20022.Entry{EntryRef: "XML-DEP-3", Amount: "2.00", Currency: "HKD", Credit: true, Status: iso20022.EntryBooked, Details: from("XML-NOBODY", "E2E-3")},
	)
	code, resp := e.post(t, b, PathNotifications, body, "")
	if code != http.StatusUnprocessableEntity || len(resp.Entries) != 3 ||
		resp.Entries[0].Verdict != VerdictAccepted || resp.Entries[1].Verdict != VerdictIgnored ||
		resp.Entries[2].Verdict != VerdictHeld || resp.Entries[2].Ref != "E2E-3" {
		t.Fatalf("camt.054: %d %+v", code, resp)
	}
	// Without an AcctSvcrRef of the transaction, its EndToEndId is the
	// deposit's reference (DepositRef).
	if d := waitDeposit(t, b, "E2E-1", DepositMinted); d.EntryRef != "XML-DEP-1" || d.Key.Account != "HK55OMNIBUS0001" {
		t.Fatalf("deposit %+v", d)
	}
	if got := e.balance(t, w.Address()); got.Cmp(hkd(t, "55.55")) != 0 {
		t.Fatalf("wallet holds %v, want 5555", got)
	}
	old := bytes.ReplaceAll(body, []byte("camt.054.001.08"), []byte("camt.054.001.02"))
	if code, resp := e.post(t, b, PathNotifications, old, ""); code != http.StatusBadRequest || !strings.Contains(resp.Error, "camt.054.001.02") {
		t.Fatalf("camt.054.001.02: %d %+v", code, resp)
	}

	// A payout ordered as a pain.001, rejected by a pain.002.
	id := e.withdraw(t, holder, "20.00", [32]byte{})
	msgID := PayoutEndToEndID(genesis.DevChainID, "HKD", id)
	waitPayout(t, b, id, PayoutOrdered)
	orders := e.core.orders(msgID)
	if len(orders) != 1 || orders[0].contentType != "application/xml" {
		t.Fatalf("orders for %s: %+v", msgID, orders)
	}
	po, err := iso20022.ParsePain001(bytes.NewReader(orders[0].body))
	if err != nil {
		t.Fatalf("the bridge's pain.001 does not parse: %v\n%s", err, orders[0].body)
	}
	tr := po.Transfers()
	ids := PayoutIDs(b.Bank(), genesis.DevChainID, "HKD", id)
	if po.MsgID != ids.MsgID || po.Payments[0].ID != ids.PmtInfID || len(tr) != 1 || tr[0].InstrID != ids.InstrID || tr[0].UETR != ids.UETR ||
		tr[0].EndToEndID != msgID || tr[0].Amount != "20.00" || tr[0].Currency != "HKD" ||
		tr[0].Creditor.Account.ID() != "XML-PAY-9" || po.Payments[0].Debtor.Account.IBAN != "HK55OMNIBUS0001" {
		t.Fatalf("pain.001 %+v, transfers %+v", po, tr)
	}
	var rep bytes.Buffer
	if err := iso20022.WritePain002(&rep, &iso20022.StatusReport{MsgID: "PSR-XML-1", Created: time.Now().UTC(),
		OriginalMsgID: ids.MsgID, OriginalMsgName: iso20022.Pain001Version,
		Payments: []iso20022.PaymentStatus{{OriginalPmtInfID: ids.PmtInfID, Transactions: []iso20022.TransactionStatus{{
			OriginalEndToEndID: msgID, Status: iso20022.StatusRejected,
			Reasons: []iso20022.StatusReason{{Code: "AC04", AdditionalInfo: []string{"account closed"}}}}}}},
	}); err != nil {
		t.Fatal(err)
	}
	if code, resp := e.post(t, b, PathPaymentStatus, rep.Bytes(), ""); code != http.StatusOK || resp.Entries[0].Verdict != VerdictRefunding {
		t.Fatalf("pain.002: %d %+v", code, resp)
	}
	if p := waitPayout(t, b, id, PayoutClosed); p.Closed != "refunded" || p.Reason != "AC04 account closed" {
		t.Fatalf("refunded payout %+v", p)
	}

	// Another payout settled by the camt.054 debit entry that books it.
	id2 := e.withdraw(t, holder, "5.00", [32]byte{})
	msgID2 := PayoutEndToEndID(genesis.DevChainID, "HKD", id2)
	waitPayout(t, b, id2, PayoutOrdered)
	debit := camt("CAMT-XML-2", iso20022.Entry{Ref: "XML-DBT-1", Amount: "5.00", Currency: "HKD", Credit: false,
		Status: iso20022.EntryBooked, Details: []iso20022.TxDetail{{EndToEndID: msgID2}}})
	if code, resp := e.post(t, b, PathNotifications, debit, ""); code != http.StatusOK || resp.Entries[0].Verdict != VerdictSettling {
		t.Fatalf("camt.054 debit: %d %+v", code, resp)
	}
	if p := waitPayout(t, b, id2, PayoutClosed); p.Closed != "settled" || e.withdrawalStatus(t, id2) != withdrawalSettled {
		t.Fatalf("settled payout %+v", p)
	}
}
