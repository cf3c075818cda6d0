package bankcore_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

func TestPayoutsSettledRejectedDeduplicated(t *testing.T) {
	fb := newFakeBridge(t)
	s := startSim(t, fb, func(c *bankcore.Config) {
		c.Reject = bankcore.RejectRule{Accounts: []string{"CLOSED-1"}, Reason: "AC04 account closed"}
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
	if code := postOrder(t, s, ok, ""); code != http.StatusOK {
		t.Fatalf("resent order: %d, want 200 (duplicate)", code)
	}
	if code := postOrder(t, s, rj, ""); code != http.StatusAccepted {
		t.Fatalf("order: %d, want 202", code)
	}
	got := fb.wait(t, 3)
	status := map[string]string{}
	reason := map[string]string{}
	for _, r := range got[1:] {
		if r.path != "/v1/payment-status" {
			t.Fatalf("status report to %s", r.path)
		}
		rep, err := iso20022.ParsePain002(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("the simulator's pain.002 does not parse: %v", err)
		}
		st, rs, _ := rep.StatusOf(rep.OriginalMsgID)
		status[rep.OriginalMsgID] = st
		if len(rs) > 0 {
			reason[rep.OriginalMsgID] = rs[0].Code
		}
	}
	if status["TALLY-1-HKD-W1"] != "ACSC" || status["TALLY-1-HKD-W2"] != "RJCT" || reason["TALLY-1-HKD-W2"] != "AC04" {
		t.Fatalf("statuses %v, reasons %v", status, reason)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(fb.received()); n != 3 {
		t.Fatalf("%d messages, want 3: the resent order was paid twice", n)
	}

	// The statement: opening 0, the deposit, the one payout, closing 60.
	data, err := s.Statement()
	if err != nil {
		t.Fatal(err)
	}
	st, err := iso20022.ParseCamt053(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the simulator's camt.053 does not parse: %v", err)
	}
	a := st.Accounts[0]
	cl, _ := a.Balance(iso20022.BalanceClosingBooked)
	if len(a.Entries) != 2 || cl.Amount != "60.00" || !cl.Credit || a.Entries[1].Credit || a.Entries[1].Details[0].EndToEndID != "TALLY-1-HKD-W1" {
		t.Fatalf("statement: closing %+v, entries %+v", cl, a.Entries)
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
