package bridge

import (
	"bytes"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/genesis"
	kv "github.com/tally-ledger/tally/internal/pebblekv"
)

// opCall makes an operator request to addr with token ("" for none) and
// returns the status and the raw answer.
func (e *testEnv) opCall(t *testing.T, addr, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, ok := body.(string)
		if !ok {
			data, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			raw = string(data)
		}
		rd = strings.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// opErrorIs checks an operator refusal: its code, the field it names and
// a piece of its message.
func opErrorIs(t *testing.T, what string, code int, raw []byte, wantCode int, field, msg string) {
	t.Helper()
	var oe OperatorError
	if err := json.Unmarshal(raw, &oe); err != nil || code != wantCode || oe.Field != field || !strings.Contains(oe.Msg, msg) {
		t.Errorf("%s: %d %s; want %d, field %q, message with %q", what, code, raw, wantCode, field, msg)
	}
}

// TestOperatorTools runs every operator action against a dev node and a
// fake core, through the authenticated HTTP endpoints: held deposits
// released and returned, payouts listed, re-queued and given a manual
// outcome under the bank's own rules, an unroutable withdrawal cancelled;
// every bad input refused naming its field; and the operator log holding
// each action with its operator and reason, its chain intact.
func TestOperatorTools(t *testing.T) {
	e := newTestEnv(t)
	b := e.open(t, e.config(t), nil)
	addr := b.OperatorAddr()

	// Authentication: /v1/status, /metrics and the operator endpoints.
	for _, path := range []string{PathStatus, "/metrics", PathOpDeposits, PathOpPayouts, PathOpLog} {
		if code, raw := e.opCall(t, addr, "GET", path, "", nil); code != http.StatusUnauthorized || !bytes.Contains(raw, []byte("operator token is required")) {
			t.Errorf("GET %s without a token: %d %s", path, code, raw)
		}
		if code, _ := e.opCall(t, addr, "GET", path, "not-a-token-not-a-token-not-a-token", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d", path, code)
		}
		if code, raw := e.opCall(t, addr, "GET", path, opToken, nil); code != http.StatusOK {
			t.Errorf("GET %s with a token: %d %s", path, code, raw)
		}
	}
	// The intake's HMAC is no operator credential.
	if code, _ := e.opCall(t, addr, "GET", PathStatus, string(e.secret), nil); code != http.StatusUnauthorized {
		t.Errorf("the intake secret as a token: %d", code)
	}

	// Two held deposits: their account is not linked.
	if code, resp := e.notify(t, b, "MSG-OP-1", credit("OP-HELD-1", "OP-NOBODY", "20.00"), credit("OP-HELD-2", "OP-NOBODY", "30.00")); code != http.StatusUnprocessableEntity {
		t.Fatalf("notification: %d %+v", code, resp)
	}
	held1, held2 := deposit(t, b, "OP-HELD-1"), deposit(t, b, "OP-HELD-2")
	code, raw := e.opCall(t, addr, "GET", PathOpDeposits+"?status=held", opToken, nil)
	var listed []*Deposit
	if err := json.Unmarshal(raw, &listed); err != nil || code != http.StatusOK || len(listed) != 2 || listed[0].Ref != "OP-HELD-1" || listed[1].Ref != "OP-HELD-2" {
		t.Fatalf("held deposits: %d %s", code, raw)
	}
	w := freshKey(t)
	ref1 := held1.BankRef.Hex()
	for _, c := range []struct {
		name       string
		path, body string
		code       int
		field, msg string
	}{
		{"release without reason", PathOpRelease, `{"bankRef":"` + ref1 + `","wallet":"` + w.Address().Hex() + `","reason":" "}`, 400, "reason", "required"},
		{"release, reason missing", PathOpRelease, `{"bankRef":"` + ref1 + `","wallet":"` + w.Address().Hex() + `"}`, 400, "reason", "required"},
		{"release, unknown field", PathOpRelease, `{"bankRef":"` + ref1 + `","wallet":"` + w.Address().Hex() + `","reason":"x","amount":"1"}`, 400, "amount", "unknown field"},
		{"release, bad wallet", PathOpRelease, `{"bankRef":"` + ref1 + `","wallet":"0x12","reason":"x"}`, 400, "wallet", "not a wallet address"},
		{"release, bad bankRef", PathOpRelease, `{"bankRef":"OP-HELD-1","wallet":"` + w.Address().Hex() + `","reason":"x"}`, 400, "bankRef", "not a bankRef"},
		{"release, unknown bankRef", PathOpRelease, `{"bankRef":"0x` + strings.Repeat("ab", 32) + `","wallet":"` + w.Address().Hex() + `","reason":"x"}`, 404, "bankRef", "no deposit"},
		{"release, not JSON", PathOpRelease, `bankRef=1`, 400, "", "not a JSON object"},
		{"return without reason", PathOpReturn, `{"bankRef":"` + ref1 + `","reason":""}`, 400, "reason", "required"},
		{"requeue, id missing", PathOpRequeue, `{"reason":"x"}`, 400, "id", "required"},
		{"requeue, id not a number", PathOpRequeue, `{"id":"seven","reason":"x"}`, 400, "id", "must be a uint64"},
		{"requeue, unknown id", PathOpRequeue, `{"id":99999,"reason":"x"}`, 404, "id", "no payout of withdrawal 99999"},
		{"outcome, bad outcome", PathOpOutcome, `{"id":1,"outcome":"paid","reason":"x"}`, 400, "outcome", `"paid": use "settled" or "rejected"`},
		{"outcome, unknown id", PathOpOutcome, `{"id":99999,"outcome":"settled","reason":"x"}`, 404, "id", "no payout"},
		{"cancel, no reason", PathOpCancel, `{"id":1,"reason":""}`, 400, "reason", "required"},
		{"cancel, no such withdrawal", PathOpCancel, `{"id":99999,"reason":"x"}`, 409, "id", "no withdrawal of HKD on chain"},
	} {
		code, raw := e.opCall(t, addr, "POST", c.path, opToken, c.body)
		opErrorIs(t, c.name, code, raw, c.code, c.field, c.msg)
	}
	for _, c := range []struct{ name, path, field string }{
		{"unknown deposit status", PathOpDeposits + "?status=stuck", "status"},
		{"unknown payout status", PathOpPayouts + "?status=stuck", "status"},
		{"bad age", PathOpPayouts + "?older-than=yesterday", "older-than"},
		{"bad limit", PathOpPayouts + "?limit=0", "limit"},
		{"unknown parameter", PathOpDeposits + "?state=held", "state"},
	} {
		code, raw := e.opCall(t, addr, "GET", c.path, opToken, nil)
		opErrorIs(t, c.name, code, raw, 400, c.field, "")
	}
	if d := deposit(t, b, "OP-HELD-1"); d.Status != DepositHeld {
		t.Fatalf("refused requests changed the deposit: %+v", d)
	}

	// Release: minted to the wallet the operator names, once.
	code, raw = e.opCall(t, addr, "POST", PathOpRelease, opToken, map[string]string{"bankRef": ref1, "wallet": w.Address().Hex(), "reason": "KYC done, ticket OPS-1"})
	if code != http.StatusOK {
		t.Fatalf("release: %d %s", code, raw)
	}
	d := waitDeposit(t, b, "OP-HELD-1", DepositMinted)
	if d.Wallet != w.Address() || e.balance(t, w.Address()).Cmp(hkd(t, "20.00")) != 0 {
		t.Fatalf("released deposit %+v, wallet balance %v", d, e.balance(t, w.Address()))
	}
	code, raw = e.opCall(t, addr, "POST", PathOpRelease, opToken2, map[string]string{"bankRef": ref1, "wallet": w.Address().Hex(), "reason": "again"})
	opErrorIs(t, "release twice", code, raw, 409, "bankRef", "is minted, not held")

	// Return: the core gets a return order to the payer; never minted.
	code, raw = e.opCall(t, addr, "POST", PathOpReturn, opToken2, map[string]string{"bankRef": held2.BankRef.Hex(), "reason": "payer unknown, ticket OPS-2"})
	if code != http.StatusOK {
		t.Fatalf("return: %d %s", code, raw)
	}
	d = deposit(t, b, "OP-HELD-2")
	rtn := payoutID(genesis.DevChainID, "HKD", 'R', d.Seq)
	orders := e.core.orders(rtn)
	if d.Status != DepositReturned || d.Return == nil || d.Return.EndToEndID != rtn || d.Return.Operator != "bob" || len(orders) != 1 ||
		orders[0].order.Account != "OP-NOBODY" || orders[0].order.Amount != "30.00" || orders[0].order.Remittance != "Tally return of deposit OP-HELD-2" {
		t.Fatalf("returned deposit %+v, orders %+v", d, orders)
	}
	code, raw = e.opCall(t, addr, "POST", PathOpRelease, opToken, map[string]string{"bankRef": held2.BankRef.Hex(), "wallet": w.Address().Hex(), "reason": "oops"})
	opErrorIs(t, "release a returned deposit", code, raw, 409, "bankRef", "is returned, not held")

	// A payout: listed by state and age, re-queued with the same ids, then
	// settled by hand; a later manual "rejected" is refused, nothing refunded.
	holder := devKey(t, 5)
	e.link(t, b, holder, "OP-PAY-5")
	id := e.withdraw(t, holder, "4.00", [32]byte{})
	e2e := PayoutEndToEndID(genesis.DevChainID, "HKD", id)
	waitPayout(t, b, id, PayoutOrdered)
	code, raw = e.opCall(t, addr, "GET", PathOpPayouts+"?status=ordered&older-than=0s", opToken, nil)
	var views []PayoutView
	if err := json.Unmarshal(raw, &views); err != nil || code != 200 || len(views) != 1 || views[0].ID != id {
		t.Fatalf("ordered payouts: %d %s", code, raw)
	}
	if code, raw = e.opCall(t, addr, "GET", PathOpPayouts+"?older-than=1h", opToken, nil); code != 200 || string(bytes.TrimSpace(raw)) != "[]" {
		t.Fatalf("payouts older than 1h: %d %s", code, raw)
	}
	code, raw = e.opCall(t, addr, "POST", PathOpRequeue, opToken, map[string]any{"id": id, "reason": "bank lost it, ticket OPS-3"})
	if code != http.StatusOK {
		t.Fatalf("requeue: %d %s", code, raw)
	}
	waitFor(t, "the re-sent order", func() bool { return len(e.core.orders(e2e)) == 2 })
	waitPayout(t, b, id, PayoutOrdered)
	if o := e.core.orders(e2e); !sameOrder(o[0], o[1]) {
		t.Fatalf("re-sent order differs: %s vs %s", o[0].body, o[1].body)
	}
	code, raw = e.opCall(t, addr, "POST", PathOpOutcome, opToken, map[string]any{"id": id, "outcome": "settled", "reason": "back office saw the debit"})
	if code != http.StatusOK {
		t.Fatalf("manual settled: %d %s", code, raw)
	}
	if p := waitPayout(t, b, id, PayoutClosed); p.Closed != "settled" {
		t.Fatalf("payout %+v", p)
	}
	code, raw = e.opCall(t, addr, "POST", PathOpOutcome, opToken2, map[string]any{"id": id, "outcome": "rejected", "reason": "mistake"})
	opErrorIs(t, "manual rejected after settled", code, raw, 409, "outcome", "already has outcome ACSC")
	code, raw = e.opCall(t, addr, "POST", PathOpRequeue, opToken, map[string]any{"id": id, "reason": "again"})
	opErrorIs(t, "requeue a closed payout", code, raw, 409, "id", "only a new or ordered payout")
	// A bank RJCT after a manual settled is a conflict too: one rule.
	if code, resp := e.reportStatus(t, b, "PS-OP-1", e2e, "RJCT", "AM04"); code != http.StatusUnprocessableEntity || resp.Entries[0].Verdict != VerdictConflict {
		t.Fatalf("RJCT after a manual settled: %d %+v", code, resp)
	}
	if st := e.withdrawalStatus(t, id); st != withdrawalSettled {
		t.Fatalf("withdrawal %d status %d, want settled", id, st)
	}

	// A withdrawal no account routes: cancelled back to the holder.
	stranger := devKey(t, 7)
	before := e.balance(t, stranger.Address())
	foreign := e.withdraw(t, stranger, "2.50", [32]byte{})
	code, raw = e.opCall(t, addr, "POST", PathOpCancel, opToken, map[string]any{"id": foreign, "reason": "no account at this bank, ticket OPS-4"})
	if code != http.StatusOK {
		t.Fatalf("cancel: %d %s", code, raw)
	}
	if p := waitPayout(t, b, foreign, PayoutClosed); p.Closed != "refunded" || e.withdrawalStatus(t, foreign) != withdrawalRefunded {
		t.Fatalf("cancelled payout %+v", p)
	}
	if after := e.balance(t, stranger.Address()); after.Cmp(before) != 0 {
		t.Fatalf("holder has %v after the cancel, had %v", after, before)
	}
	logs := e.logs(t, "WithdrawalRefunded", common.BigToHash(new(big.Int).SetUint64(foreign)))
	if vals, err := logsUnpack("WithdrawalRefunded", logs[0].Data); err != nil || !strings.Contains(vals[1].(string), "cancelled by operator alice: no account at this bank") {
		t.Fatalf("refund reason %v, %v", vals, err)
	}
	code, raw = e.opCall(t, addr, "POST", PathOpCancel, opToken, map[string]any{"id": foreign, "reason": "again"})
	opErrorIs(t, "cancel twice", code, raw, 409, "id", "closed after 0 orders")

	// The log: every action, with who, what and why, chain intact.
	code, raw = e.opCall(t, addr, "GET", PathOpLog, opToken, nil)
	var lv OpLogView
	if err := json.Unmarshal(raw, &lv); err != nil || code != 200 {
		t.Fatalf("log: %d %s", code, raw)
	}
	if err := VerifyOpLog(lv.Entries, lv.Head); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range lv.Entries {
		got = append(got, e.Operator+" "+e.Action+" "+strings.SplitN(e.Result, ":", 2)[0])
		if e.Reason == "" || e.At.IsZero() || e.Target == "" {
			t.Errorf("log entry without reason, time or target: %+v", e)
		}
	}
	want := []string{
		"alice cancel-withdrawal refused", "alice release-deposit done", "bob release-deposit refused", "bob return-deposit done", "alice release-deposit refused",
		"alice requeue-payout done", "alice payout-outcome done", "bob payout-outcome refused", "alice requeue-payout refused",
		"alice cancel-withdrawal done", "alice cancel-withdrawal refused",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("operator log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// operator.listen: the operator endpoints, /v1/status and /metrics
	// move off the intake listener.
	cfg := e.config(t)
	cfg.Operator.Listen = "127.0.0.1:0"
	b2 := e.open(t, cfg, nil)
	if b2.OperatorAddr() == b2.Addr() {
		t.Fatal("operator.listen did not open its own listener")
	}
	for _, path := range []string{PathStatus, "/metrics", PathOpLog} {
		if code, _ := e.opCall(t, b2.Addr(), "GET", path, opToken, nil); code != http.StatusNotFound {
			t.Errorf("GET %s on the intake listener: %d, want 404", path, code)
		}
		if code, _ := e.opCall(t, b2.OperatorAddr(), "GET", path, opToken, nil); code != http.StatusOK {
			t.Errorf("GET %s on the operator listener: %d", path, code)
		}
	}
	if code, _ := e.opCall(t, b2.OperatorAddr(), "GET", PathStatus, "", nil); code != http.StatusUnauthorized {
		t.Errorf("operator listener without a token: %d", code)
	}
}

// TestOpLogTamperDetected writes a log through the store, then edits,
// deletes and reorders entries through the Pebble API as someone with the
// disk would: each is detected, naming the entry.
func TestOpLogTamperDetected(t *testing.T) {
	open := func(t *testing.T) *Store {
		s, err := OpenStore(t.TempDir(), 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		for i, who := range []string{"alice", "bob", "alice", "carol"} {
			if err := s.AppendOp(&OpEntry{At: time.Unix(int64(1000+i), 0).UTC(), Operator: who, Action: OpRequeuePayout,
				Target: "7", Reason: "ticket", Result: ResultDone}); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	read := func(t *testing.T, s *Store) error {
		entries, head, err := s.OpLog(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		return VerifyOpLog(entries, head)
	}
	if err := read(t, open(t)); err != nil {
		t.Fatalf("untouched log: %v", err)
	}
	raw := func(t *testing.T, s *Store, seq uint64) map[string]any {
		v, err := s.get(opKey(seq))
		if err != nil || v == nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(v, &m)
		return m
	}
	put := func(t *testing.T, s *Store, seq uint64, m map[string]any) {
		data, _ := json.Marshal(m)
		if err := s.db.Set(opKey(seq), data, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, s *Store)
		want   string
	}{
		{"reason edited", func(t *testing.T, s *Store) {
			m := raw(t, s, 2)
			m["reason"] = "nothing to see"
			put(t, s, 2, m)
		}, "entry 2: its fields hash to"},
		{"operator edited, hash recomputed by hand", func(t *testing.T, s *Store) {
			var e OpEntry
			s.getJSON(opKey(2), &e)
			e.Operator = "mallory"
			e.Hash, _ = opLog.Sum(&e)
			data, _ := json.Marshal(&e)
			s.db.Set(opKey(2), data, pebble.Sync)
		}, "entry 3: prev"},
		{"middle entry deleted", func(t *testing.T, s *Store) { s.db.Delete(opKey(2), pebble.Sync) }, "entry 2: found seq 3"},
		{"last entry deleted", func(t *testing.T, s *Store) { s.db.Delete(opKey(4), pebble.Sync) }, "at its end"},
		{"entries swapped", func(t *testing.T, s *Store) {
			a, b := raw(t, s, 2), raw(t, s, 3)
			put(t, s, 2, b)
			put(t, s, 3, a)
		}, "entry 2: found seq"},
		{"head rewound", func(t *testing.T, s *Store) {
			s.db.Delete(opKey(4), pebble.Sync)
			var e OpEntry
			s.getJSON(opKey(3), &e)
			s.db.Set(keyOpHead, kv.Cat(kv.BE8(3), e.Hash[:]), pebble.Sync)
		}, "head records entry 4"},
	} {
		s := open(t)
		_, published, err := s.OpLog(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		c.tamper(t, s)
		err = read(t, s)
		if c.name == "head rewound" {
			// Consistent within the store: only the head published
			// before (tally bridge log prints it) shows the loss.
			if err != nil {
				t.Errorf("%s: the store alone shows %v", c.name, err)
			}
			entries, _, _ := s.OpLog(1, 0)
			err = VerifyOpLog(entries, published)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
}
