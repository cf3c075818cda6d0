package bankcore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally/bankcore"
	"github.com/tally-ledger/tally/bridge"
	"github.com/tally-ledger/tally/bridge/iso20022"
)

var secret = []byte("sim-test-secret-0123456789abcdef")

// fakeBridge records what the simulator delivers, checking every HMAC
// with the bridge's own Verify.
type fakeBridge struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []received
	fail int // answer 503 to the next fail requests
}

type received struct {
	path string
	body []byte
}

func newFakeBridge(t *testing.T) *fakeBridge {
	fb := &fakeBridge{}
	fb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := bridge.Verify(secret, body, r.Header.Get(bridge.SignatureHeader), time.Now(), time.Minute); err != nil {
			t.Errorf("the bridge refuses the simulator's signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fb.mu.Lock()
		defer fb.mu.Unlock()
		if fb.fail > 0 {
			fb.fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fb.got = append(fb.got, received{r.URL.Path, body})
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(fb.srv.Close)
	return fb
}

func (fb *fakeBridge) received() []received {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return append([]received(nil), fb.got...)
}

func (fb *fakeBridge) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := fb.received(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge received %d messages, want %d", len(fb.received()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startSim(t *testing.T, fb *fakeBridge, edit func(*bankcore.Config)) *bankcore.Sim {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hmac.secret"), append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := bankcore.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.BridgeURL = fb.srv.URL
	cfg.SecretFile = filepath.Join(dir, "hmac.secret")
	cfg.Currency = "HKD"
	cfg.StatusDelay = bankcore.Duration(10 * time.Millisecond)
	cfg.RetryInterval = bankcore.Duration(20 * time.Millisecond)
	if edit != nil {
		edit(&cfg)
	}
	s, err := bankcore.New(cfg, bankcore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func entriesOf(t *testing.T, body []byte) []iso20022.Entry {
	t.Helper()
	n, err := iso20022.ParseCamt054(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the simulator's camt.054 does not parse: %v", err)
	}
	return n.Entries()
}

func TestDepositNotifications(t *testing.T) {
	fb := newFakeBridge(t)
	s := startSim(t, fb, nil)
	fb.mu.Lock()
	fb.fail = 2 // the bridge is down for two tries: the core retries
	fb.mu.Unlock()
	if _, err := s.Deposit([]byte(`{"account": "HK-001-1", "amount": "100.25", "reference": "DEP-1"}`)); err != nil {
		t.Fatal(err)
	}
	got := fb.wait(t, 1)
	es := entriesOf(t, got[0].body)
	if got[0].path != "/v1/notifications" || len(es) != 1 || es[0].Ref != "DEP-1" || es[0].Amount != "100.25" || !es[0].Credit ||
		es[0].Currency != "HKD" || es[0].Status != iso20022.EntryBooked {
		t.Fatalf("notification %s: %+v", got[0].path, es)
	}
	if tx, ok := es[0].Tx(); !ok || tx.Debtor.Account.ID() != "HK-001-1" {
		t.Fatalf("debtor account %+v", es[0].Details)
	}
	// The same reference again is refused: the books hold it once.
	if _, err := s.Deposit([]byte(`{"account": "HK-001-1", "amount": "1", "reference": "DEP-1"}`)); err == nil {
		t.Fatal("a second deposit under DEP-1 was booked")
	}
	for _, bad := range []string{`{"account": "A", "amount": "-1"}`, `{"account": "A", "amount": "1.000001"}`,
		`{"account": "A", "amount": "1", "currency": "EUR"}`, `{"acount": "A", "amount": "1"}`, `{}`} {
		if _, err := s.Deposit([]byte(bad)); err == nil {
			t.Fatalf("deposit %s was booked", bad)
		}
	}
	if l := s.Ledger(); l.Balances["SIM-OMNIBUS-0001"] != "100.25" || l.Balances["HK-001-1"] != "-100.25" {
		t.Fatalf("balances %v", l.Balances)
	}
}

func TestFaultsDuplicateAndReorder(t *testing.T) {
	fb := newFakeBridge(t)
	s := startSim(t, fb, nil)
	if _, err := s.SetFaults([]byte(`{"duplicate": 1, "reorder": true}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deposit([]byte(`{"deposits": [{"account": "A", "amount": "1", "reference": "R-1"},
		{"account": "B", "amount": "2", "reference": "R-2"}, {"account": "C", "amount": "3", "reference": "R-3"}]}`)); err != nil {
		t.Fatal(err)
	}
	got := fb.wait(t, 4)
	var refs []string
	for _, r := range got {
		refs = append(refs, entriesOf(t, r.body)[0].Ref)
	}
	// Reversed, and the first message sent twice.
	if want := []string{"R-3", "R-3", "R-2", "R-1"}; len(refs) != 4 || refs[0] != want[0] || refs[1] != want[1] || refs[2] != want[2] || refs[3] != want[3] {
		t.Fatalf("delivered %v, want %v", refs, want)
	}
	if !bytes.Equal(got[0].body, got[1].body) {
		t.Fatal("the duplicate is not the same message")
	}
	for _, bad := range []string{`{"duplicate": -1}`, `{"down": "soon"}`, `{"downMode": "off"}`, `{"reject": {"reason": "closed"}}`, `{"nope": 1}`} {
		if _, err := s.SetFaults([]byte(bad)); err == nil {
			t.Fatalf("faults %s accepted", bad)
		}
	}
}

// order writes a signed pain.001 for one payout, as the bridge does.
func order(t *testing.T, id, account, amount string) []byte {
	t.Helper()
	o := &iso20022.PaymentOrder{MsgID: id, Created: time.Now().UTC().Truncate(time.Second), InitiatingParty: "Tally omnibus",
		Payments: []iso20022.PaymentInfo{{ID: id, ExecutionDate: time.Now().UTC().Format(time.DateOnly),
			Debtor: iso20022.Party{Name: "Tally omnibus", Account: iso20022.Account{Other: "SIM-OMNIBUS-0001"}},
			Transfers: []iso20022.Transfer{{InstrID: id, EndToEndID: id, Amount: amount, Currency: "HKD",
				Creditor: iso20022.Party{Account: iso20022.Account{Other: account}}}}}}}
	var buf bytes.Buffer
	if err := iso20022.WritePain001(&buf, o); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func postOrder(t *testing.T, s *bankcore.Sim, body []byte, sig string) int {
	t.Helper()
	if sig == "" {
		sig = bridge.Sign(secret, body, time.Now())
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/payment-orders", bytes.NewReader(body))
	req.Header.Set(bridge.SignatureHeader, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

// statuses reads the pain.002s among got: per original MsgId, the
// statuses in arrival order ("ACTC", "RJCT/DU01", "ACCP", "ACSC", ...),
// each the transaction's when one is listed, else the group's.
func statuses(t *testing.T, got []received) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, r := range got {
		if r.path != "/v1/payment-status" {
			continue
		}
		rep, err := iso20022.ParsePain002(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("the simulator's pain.002 does not parse: %v", err)
		}
		st, rs := rep.GroupStatus, rep.GroupReasons
		if len(rep.Payments) > 0 && len(rep.Payments[0].Transactions) > 0 {
			st, rs = rep.Payments[0].Transactions[0].Status, rep.Payments[0].Transactions[0].Reasons
		}
		if len(rs) > 0 {
			st += "/" + rs[0].Code
		}
		out[rep.OriginalMsgID] = append(out[rep.OriginalMsgID], st)
	}
	return out
}

func TestPayoutsSettledRejectedDeduplicated(t *testing.T) {
	fb := newFakeBridge(t)
	s := startSim(t, fb, func(c *bankcore.Config) {
		c.Reject = bankcore.RejectRule{Accounts: []string{"CLOSED-1"}, Reason: "AC04 account closed"}
		c.StatusDelay = bankcore.Duration(100 * time.Millisecond)
	})
	if _, err := s.Deposit([]byte(`{"account": "A", "amount": "100", "reference": "FUND"}`)); err != nil {
		t.Fatal(err)
	}
	fb.wait(t, 1)
	ok, rj := order(t, "TALLY-1-HKD-W1", "HK-9", "40.00"), order(t, "TALLY-1-HKD-W2", "CLOSED-1", "5.00")
	if code := postOrder(t, s, ok, "t=1,v1="+string(bytes.Repeat([]byte("0"), 64))); code != http.StatusUnauthorized {
		t.Fatalf("badly signed order: %d, want 401", code)
	}
	if code := postOrder(t, s, ok, ""); code != http.StatusAccepted {
		t.Fatalf("order: %d, want 202", code)
	}
	// The re-sent MsgId is taken (202) and rejected by the duplicate
	// check, DU01 at group level; the first send is executed.
	if code := postOrder(t, s, ok, ""); code != http.StatusAccepted {
		t.Fatalf("resent order: %d, want 202 (then a DU01 report)", code)
	}
	if code := postOrder(t, s, rj, ""); code != http.StatusAccepted {
		t.Fatalf("order: %d, want 202", code)
	}
	got := fb.wait(t, 8)
	st := statuses(t, got)
	if w1, w2 := strings.Join(st["TALLY-1-HKD-W1"], " "), strings.Join(st["TALLY-1-HKD-W2"], " "); w1 != "ACTC RJCT/DU01 ACCP ACSC" || w2 != "ACTC ACCP RJCT/AC04" {
		t.Fatalf("reports for W1: %s; for W2: %s", w1, w2)
	}
	time.Sleep(150 * time.Millisecond)
	if n := len(fb.received()); n != 8 {
		t.Fatalf("%d messages, want 8: the resent order was executed twice", n)
	}
	if l := s.Ledger(); len(l.Orders) != 2 || l.Orders[0].Sends != 2 {
		t.Fatalf("orders %+v", l.Orders)
	}

	// The statement: opening 0, the deposit, the one payout, closing 60.
	data, err := s.Statement()
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := iso20022.ParseCamt053(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the simulator's camt.053 does not parse: %v", err)
	}
	a := stmt.Accounts[0]
	cl, _ := a.Balance(iso20022.BalanceClosingBooked)
	if len(a.Entries) != 2 || cl.Amount != "60.00" || !cl.Credit || a.Entries[1].Credit || a.Entries[1].Details[0].EndToEndID != "TALLY-1-HKD-W1" {
		t.Fatalf("statement: closing %+v, entries %+v", cl, a.Entries)
	}
}

// TestLostAckDelayedAndLostReports: the answer to an order is lost (the
// bridge sees no 2xx) though the bank took it; the re-send gets DU01;
// delayed reports arrive after later ones; lost reports never arrive.
func TestLostAckDelayedAndLostReports(t *testing.T) {
	fb := newFakeBridge(t)
	s := startSim(t, fb, func(c *bankcore.Config) { c.StatusDelay = bankcore.Duration(50 * time.Millisecond) })
	if _, err := s.Deposit([]byte(`{"account": "A", "amount": "100", "reference": "FUND"}`)); err != nil {
		t.Fatal(err)
	}
	fb.wait(t, 1)
	if _, err := s.SetFaults([]byte(`{"loseAcks": 1, "delayReports": "1s"}`)); err != nil {
		t.Fatal(err)
	}
	o := order(t, "TALLY-1-HKD-M3", "HK-9", "10.00")
	if code := postOrder(t, s, o, ""); code != -1 {
		t.Fatalf("order with a lost acknowledgement: %d, want no answer", code)
	}
	if _, err := s.SetFaults([]byte(`{"delayReports": "0s"}`)); err != nil {
		t.Fatal(err)
	}
	if code := postOrder(t, s, o, ""); code != http.StatusAccepted {
		t.Fatalf("re-send: %d", code)
	}
	got := fb.wait(t, 5)
	// ACTC was held back 1 s: the DU01, ACCP and ACSC overtake it.
	if st := strings.Join(statuses(t, got)["TALLY-1-HKD-M3"], " "); st != "RJCT/DU01 ACCP ACSC ACTC" {
		t.Fatalf("reports %s", st)
	}
	if l := s.Ledger(); len(l.Orders) != 1 || l.Orders[0].Status != "ACSC" || l.Balances["HK-9"] != "10.00" {
		t.Fatalf("ledger: orders %+v balances %v", l.Orders, l.Balances)
	}
	// Lost progress reports: only the final one arrives.
	if _, err := s.SetFaults([]byte(`{"loseReports": 2}`)); err != nil {
		t.Fatal(err)
	}
	if code := postOrder(t, s, order(t, "TALLY-1-HKD-M4", "HK-9", "1.00"), ""); code != http.StatusAccepted {
		t.Fatalf("order: %d", code)
	}
	got = fb.wait(t, 6)
	time.Sleep(100 * time.Millisecond)
	if st := strings.Join(statuses(t, fb.received())["TALLY-1-HKD-M4"], " "); st != "ACSC" || len(got) != 6 {
		t.Fatalf("reports %s (%d messages)", st, len(got))
	}
}

// TestReturnsReversalsBatches: a batch booking is one entry with a
// transaction per deposit; NtryRef restarts at 1 in every message; a
// deposit's reversal is a debit with RvslInd naming its reference; a
// payout's return is a credit with RtrInf naming its EndToEndId; amounts
// are written at the currency's precision and finer ones refused.
func TestReturnsReversalsBatches(t *testing.T) {
	fb := newFakeBridge(t)
	s := startSim(t, fb, func(c *bankcore.Config) { c.ProgressReports = false })
	if _, err := s.Deposit([]byte(`{"batchBooking": true, "deposits": [{"account": "A", "amount": "100", "reference": "B-1"},
		{"account": "B", "amount": "20.5", "reference": "B-2"}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deposit([]byte(`{"account": "A", "amount": "1.005"}`)); err == nil || !strings.Contains(err.Error(), "decimals") {
		t.Fatalf("an amount finer than HKD's cents: %v", err)
	}
	got := fb.wait(t, 1)
	es := entriesOf(t, got[0].body)
	if len(es) != 1 || es[0].EntryRef != "1" || es[0].Amount != "120.50" || len(es[0].Details) != 2 ||
		es[0].Details[0].AcctSvcrRef != "B-1" || es[0].Details[1].Amount != "20.50" || es[0].Details[1].Debtor.Account.ID() != "B" {
		t.Fatalf("batch entry %+v", es)
	}
	if _, err := s.Reverse([]byte(`{"reference": "B-2"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reverse([]byte(`{"reference": "B-2"}`)); err == nil {
		t.Fatal("a booking reversed twice")
	}
	got = fb.wait(t, 2)
	rv := entriesOf(t, got[1].body)
	if len(rv) != 1 || rv[0].Credit || !rv[0].Reversal || rv[0].EntryRef != "1" || rv[0].Details[0].AcctSvcrRef != "B-2" || rv[0].Amount != "20.50" {
		t.Fatalf("reversal %+v", rv)
	}
	if code := postOrder(t, s, order(t, "TALLY-1-HKD-M5", "HK-5", "30.00"), ""); code != http.StatusAccepted {
		t.Fatalf("order: %d", code)
	}
	fb.wait(t, 3)
	if _, err := s.Return([]byte(`{"endToEndId": "TALLY-1-HKD-M5", "reason": "AC04 account closed"}`)); err != nil {
		t.Fatal(err)
	}
	got = fb.wait(t, 4)
	rt := entriesOf(t, got[3].body)
	if len(rt) != 1 || !rt[0].Credit || rt[0].Details[0].EndToEndID != "TALLY-1-HKD-M5" || rt[0].Details[0].Return == nil ||
		rt[0].Details[0].Return.Reason != "AC04" || rt[0].BankTxCode.SubFamily != "RRTN" {
		t.Fatalf("return %+v", rt)
	}
	if _, err := s.Return([]byte(`{"endToEndId": "TALLY-1-HKD-M5"}`)); err == nil {
		t.Fatal("a payout returned twice")
	}
	// A return as a pacs.004, on the status path.
	if code := postOrder(t, s, order(t, "TALLY-1-HKD-M6", "HK-6", "1.00"), ""); code != http.StatusAccepted {
		t.Fatalf("order: %d", code)
	}
	fb.wait(t, 5)
	if _, err := s.Return([]byte(`{"endToEndId": "TALLY-1-HKD-M6", "form": "pacs004", "reason": "AC01 incorrect account number"}`)); err != nil {
		t.Fatal(err)
	}
	got = fb.wait(t, 6)
	pr, err := iso20022.ParsePacs004(bytes.NewReader(got[5].body))
	if err != nil || got[5].path != "/v1/payment-status" || len(pr.Returns) != 1 || pr.Returns[0].OriginalEndToEndID != "TALLY-1-HKD-M6" ||
		pr.Returns[0].Reason.Reason != "AC01" || pr.Returns[0].Amount != "1.00" {
		t.Fatalf("pacs.004 to %s: %+v, %v", got[5].path, pr, err)
	}
	if _, err := s.Return([]byte(`{"endToEndId": "TALLY-1-HKD-M6", "form": "fax"}`)); err == nil {
		t.Fatal("a return in an unknown form")
	}
	if l := s.Ledger(); l.Balances["SIM-OMNIBUS-0001"] != "100.00" {
		t.Fatalf("omnibus %s, want 120.50 − 20.50 − 30 + 30 − 1 + 1", l.Balances["SIM-OMNIBUS-0001"])
	}
	// Every message the simulator wrote validates as its reader reads it,
	// and the statement holds every booking.
	data, err := s.Statement()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := iso20022.ParseCamt053(bytes.NewReader(data)); err != nil || len(st.Accounts[0].Entries) != 7 {
		t.Fatalf("statement: %v", err)
	}
}

// TestRandomModeSeeded: the random mode's decisions follow its seed: the
// same seed and the same orders give the same outcomes; another seed
// others.
func TestRandomModeSeeded(t *testing.T) {
	run := func(seed uint64) string {
		fb := newFakeBridge(t)
		s := startSim(t, fb, func(c *bankcore.Config) {
			c.ProgressReports = false
			c.StatusDelay = 0
			c.OpeningBalance = "1000"
			c.Random = bankcore.RandomConfig{Seed: seed, Reject: 0.5}
		})
		var out []string
		for i := range 24 {
			id := fmt.Sprintf("TALLY-1-HKD-M%d", i)
			if code := postOrder(t, s, order(t, id, "HK-9", "1.00"), ""); code != http.StatusAccepted {
				t.Fatalf("order %s: %d", id, code)
			}
			fb.wait(t, i+1)
		}
		for _, o := range s.Ledger().Orders {
			out = append(out, o.Status)
		}
		return strings.Join(out, " ")
	}
	a, b, c := run(7), run(7), run(8)
	if a != b || a == c || !strings.Contains(a, "RJCT") || !strings.Contains(a, "ACSC") {
		t.Fatalf("seed 7: %s\nseed 7: %s\nseed 8: %s", a, b, c)
	}
}

func TestDown(t *testing.T) {
	fb := newFakeBridge(t)
	s := startSim(t, fb, nil)
	if _, err := s.SetFaults([]byte(`{"down": "300ms"}`)); err != nil {
		t.Fatal(err)
	}
	if code := postOrder(t, s, order(t, "TALLY-1-HKD-W9", "HK-9", "1.00"), ""); code != http.StatusServiceUnavailable {
		t.Fatalf("order while down: %d, want 503", code)
	}
	if _, err := s.Deposit([]byte(`{"account": "A", "amount": "1", "reference": "WHILE-DOWN"}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(fb.received()); n != 0 {
		t.Fatalf("a down core delivered %d messages", n)
	}
	fb.wait(t, 1) // delivered once it is up again

	if _, err := s.SetFaults([]byte(`{"down": "1m", "downMode": "close"}`)); err != nil {
		t.Fatal(err)
	}
	if code := postOrder(t, s, order(t, "TALLY-1-HKD-W9", "HK-9", "1.00"), ""); code != -1 {
		t.Fatalf("order while down (close): %d, want no answer", code)
	}
	if _, err := s.SetFaults([]byte(`{"down": "0s"}`)); err != nil {
		t.Fatal(err)
	}
	if code := postOrder(t, s, order(t, "TALLY-1-HKD-W9", "HK-9", "1.00"), ""); code != http.StatusAccepted {
		t.Fatalf("order once up: %d, want 202", code)
	}
}

func TestSignatureInterop(t *testing.T) {
	body := []byte("<Document/>")
	now := time.Now()
	if err := bridge.Verify(secret, body, bankcore.Sign(secret, body, now), now, time.Minute); err != nil {
		t.Fatalf("bridge.Verify of bankcore.Sign: %v", err)
	}
	if err := bankcore.Verify(secret, body, bridge.Sign(secret, body, now), now, time.Minute); err != nil {
		t.Fatalf("bankcore.Verify of bridge.Sign: %v", err)
	}
	if err := bankcore.Verify(secret, body, bridge.Sign(secret, body, now.Add(-time.Hour)), now, time.Minute); err == nil {
		t.Fatal("a stale signature verified")
	}
}

func TestConfigStrict(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ toml, want string }{
		{"bridge-url = \"http://x\"\nsecret-file = \"s\"\ncurrency = \"HKD\"\nstatus-dealy = \"1s\"", "unknown key status-dealy"},
		{"secret-file = \"s\"\ncurrency = \"HKD\"", "key bridge-url"},
		{"bridge-url = \"http://x\"\nsecret-file = \"s\"\ncurrency = \"hkd\"", "key currency"},
		{"bridge-url = \"http://x\"\nsecret-file = \"s\"\ncurrency = \"HKD\"\n[reject]\nreason = \"closed\"", "key reject.reason"},
	} {
		cfg := bankcore.DefaultConfig()
		err := bankcore.ParseConfig([]byte(c.toml), dir, &cfg)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
			t.Errorf("config %q: %v, want %q", c.toml, err, c.want)
		}
	}
}
