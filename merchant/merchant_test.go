package merchant

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/rpc/rpctest"
	"github.com/tally-ledger/tally/wallet"
)

const (
	payer    = 0 // dev account paying
	shopKey  = 1 // the merchant's account
	hkdAsset = 1 // HKD: 2 decimals
	token    = "0123456789abcdef0123456789abcdef"
	secret   = "webhook-secret-0123456789"
)

// syncBuffer is a log the receiver writes from its handler.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t       *testing.T
	ch      *chaintest.Chain
	cfg     Config
	n       *Notifier
	recv    *Receiver
	recvLog *syncBuffer
	handled string
	api     string
	// down makes the receiver's server answer 503 before the receiver
	// sees a request.
	down atomic.Bool
}

// newEnv is a chain served over JSON-RPC, a receiver that fails as
// script says, and a notifier's config for them.
func newEnv(t *testing.T, script ...string) *env {
	t.Helper()
	return newEnvOn(t, chaintest.New(t), script...)
}

func newEnvOn(t *testing.T, ch *chaintest.Chain, script ...string) *env {
	t.Helper()
	e := &env{t: t, ch: ch, recvLog: &syncBuffer{}}
	node := rpctest.Serve(t, rpctest.NewBackend(e.ch.DB, e.ch.Senders), rpc.DefaultLimits)
	dir := t.TempDir()
	e.handled = filepath.Join(dir, "handled.jsonl")
	r, err := OpenReceiver(e.handled, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	r.Script, r.Hold, r.Log = script, 2*time.Second, e.recvLog
	e.recv = r
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if e.down.Load() {
			http.Error(w, "receiver down", http.StatusServiceUnavailable)
			return
		}
		r.ServeHTTP(w, req)
	}))
	t.Cleanup(hook.Close)
	for name, body := range map[string]string{"tokens": "shop " + token + "\n", "hook.secret": secret + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.cfg = DefaultConfig()
	e.cfg.dir = dir
	e.cfg.Listen = "127.0.0.1:0"
	e.cfg.Nodes.Endpoints = []string{node.URL}
	e.cfg.Follow.PollInterval = Duration(20 * time.Millisecond)
	e.cfg.API.TokensFile = "tokens"
	e.cfg.Orders.Payees = []string{chaintest.Addr(shopKey).Hex()}
	e.cfg.Webhook = WebhookConfig{URL: hook.URL, SecretFile: "hook.secret", Timeout: Duration(300 * time.Millisecond),
		RetryMin: Duration(20 * time.Millisecond), RetryMax: Duration(100 * time.Millisecond), MaxAge: Duration(time.Hour), MaxPending: 100}
	e.cfg.Log.Level = "warn"
	return e
}

func (e *env) start() {
	e.t.Helper()
	n, err := New(e.cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		n.Close()
		e.t.Fatal(err)
	}
	e.n, e.api = n, "http://"+n.Addr()
	e.t.Cleanup(func() { n.Close() })
}

// call makes an API request and decodes the answer into out.
func (e *env) call(method, path, tok string, body []byte, out any) int {
	e.t.Helper()
	req, err := http.NewRequest(method, e.api+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

func (e *env) request(order, amount string) []byte {
	e.t.Helper()
	return e.requestUntil(order, amount, time.Now().Add(time.Hour))
}

func (e *env) requestUntil(order, amount string, expires time.Time) []byte {
	e.t.Helper()
	hkd := wallet.Asset{ID: hkdAsset, Symbol: "HKD", Decimals: 2, MinorUnits: 2, Address: chain.AssetAddress(hkdAsset)}
	v, err := wallet.ParseAmount(amount, 2)
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := wallet.NewPaymentRequest(e.ch.ChainID.Uint64(), hkd, chaintest.Addr(shopKey), v, order, expires)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	return b
}

func (e *env) register(order, amount string) {
	e.t.Helper()
	var o Order
	if code := e.call("POST", PathOrders, token, e.request(order, amount), &o); code != http.StatusOK || o.Status != StatusAwaiting {
		e.t.Fatalf("register %s: %d %+v", order, code, o)
	}
}

func (e *env) pay(order string, cents int64) uint64 {
	ref, _ := wallet.ParseReference(order)
	a := e.ch.Apply(e.ch.Asset(payer, hkdAsset, "transferWithReference", chaintest.Addr(shopKey), big.NewInt(cents), ref))
	return a.Block.Number()
}

func (e *env) refund(order string, cents int64) {
	ref, _ := wallet.ParseReference(order)
	e.ch.Apply(e.ch.Asset(shopKey, hkdAsset, "refund", ref, chaintest.Addr(payer), big.NewInt(cents)))
}

// handled waits until the receiver has handled want (delivery events in
// order), and returns what it handled.
func (e *env) waitHandled(want int) []Handled {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, err := os.ReadFile(e.handled)
		if err != nil {
			e.t.Fatal(err)
		}
		var hs []Handled
		for _, l := range splitLines(data) {
			var h Handled
			if err := json.Unmarshal(l, &h); err != nil {
				e.t.Fatal(err)
			}
			hs = append(hs, h)
		}
		if len(hs) >= want || time.Now().After(deadline) {
			if len(hs) != want {
				e.t.Fatalf("handled %d notifications, want %d: %+v\nreceiver log:\n%s", len(hs), want, hs, e.recvLog.String())
			}
			return hs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) order(id string) *Order {
	e.t.Helper()
	var o Order
	if code := e.call("GET", PathOrder+id, token, nil, &o); code != http.StatusOK {
		e.t.Fatalf("GET order %s: %d", id, code)
	}
	return &o
}

// TestNotifier: orders registered over the API are matched to payments
// and refunds on chain by reference, payee and asset; each event is
// delivered to a receiver that fails (a 500, then a timeout after it
// handled the delivery) and recovers, and handled exactly once in chain
// order; payments under an unknown reference or in another asset are
// not the order's; the order's status is what it was paid and refunded.
func TestNotifier(t *testing.T) {
	e := newEnv(t, "500", "timeout")
	e.start()
	e.register("ORDER-1", "12.34")
	e.register("ORDER-2", "10.00")

	e.pay("ORDER-1", 500)                       // partly paid
	e.pay("ORDER-9", 100)                       // no such order
	ref1, _ := wallet.ParseReference("ORDER-1") // in CNY: not the order's asset
	e.ch.Apply(e.ch.Asset(payer, 0, "transferWithReference", chaintest.Addr(shopKey), big.NewInt(1), ref1))
	e.pay("ORDER-1", 734)     // paid
	e.pay("ORDER-2", 2000)    // overpaid
	e.refund("ORDER-2", 1000) // the excess back
	hs := e.waitHandled(4)
	got := make([]string, len(hs))
	for i, h := range hs {
		got[i] = h.Order + " " + h.Event + " " + h.Status + " " + h.Amount
	}
	want := []string{
		"ORDER-1 order.partially_paid partially_paid 5.00 HKD",
		"ORDER-1 order.paid paid 7.34 HKD",
		"ORDER-2 order.overpaid overpaid 20.00 HKD",
		"ORDER-2 order.refunded paid 10.00 HKD",
	}
	// A delivery that failed is retried after the ones behind it went
	// out: receivers see chain order only while nothing fails.
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("handled\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The scripted failures happened: a 500 before handling, and the
	// late answer's retry recognised as a duplicate.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(e.recvLog.String(), ": duplicate") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	log := e.recvLog.String()
	if !strings.Contains(log, ": 500 (scripted)") || !strings.Contains(log, "answering late") || !strings.Contains(log, ": duplicate") {
		t.Fatalf("receiver log lacks the failures and the duplicate:\n%s", log)
	}
	o := e.order("ORDER-1")
	if o.Status != StatusPaid || o.Paid != "1234" || len(o.Payments) != 2 || o.NetText != "12.34 HKD" {
		t.Fatalf("ORDER-1: %+v", o)
	}
	o = e.order("ORDER-2")
	if o.Status != StatusPaid || o.Paid != "2000" || o.Refunded != "1000" || len(o.Refunds) != 1 {
		t.Fatalf("ORDER-2: %+v", o)
	}
	// The rest: refunded (a refund beyond what was paid fails on chain:
	// nothing to notify).
	e.refund("ORDER-2", 1001)
	e.refund("ORDER-2", 1000)
	if hs := e.waitHandled(5); hs[4].Status != StatusRefunded || hs[4].Event != EventRefunded {
		t.Fatalf("last: %+v", hs[4])
	}

	// A restart neither repeats nor loses anything.
	e.n.Close()
	e.start()
	e.pay("ORDER-1", 1)
	if hs := e.waitHandled(6); hs[5].Event != EventOverpaid || hs[5].Order != "ORDER-1" {
		t.Fatalf("after the restart: %+v", hs[5])
	}
	// The outbox deletes a delivery after the receiver's 2xx, so right
	// after the receiver recorded the last one it may still be pending.
	e.waitStatus(func(st StatusView) bool { return st.Orders == 2 && st.Pending == 0 })
}

// waitStatus polls GET /v1/status until ok holds (or fails after 20 s).
func (e *env) waitStatus(ok func(StatusView) bool) StatusView {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st StatusView
		code := e.call("GET", PathStatus, token, nil, &st)
		if code == http.StatusOK && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("status: %d %+v", code, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOrderAPIRefuses: a request without a valid token, a body that is
// not a payment request, a request whose fields disagree with the chain
// or with each other, another order under a registered reference, and an
// unknown order are refused with their status and the field named; the
// same registration again is answered with the order.
func TestOrderAPIRefuses(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.register("ORDER-1", "12.34")
	good := e.request("ORDER-1", "12.34")
	var again Order
	if code := e.call("POST", PathOrders, token, good, &again); code != http.StatusOK || again.Order != "ORDER-1" {
		t.Fatalf("the same registration again: %d %+v", code, again)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(e.request("ORDER-3", "1.00"), &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	for _, tc := range []struct {
		name, tok string
		body      []byte
		code      int
		want      string
	}{
		{"no token", "", good, 401, ""},
		{"a wrong token", strings.Repeat("x", 32), good, 401, ""},
		{"not JSON", token, []byte("hello"), 400, "body"},
		{"an unknown field", token, []byte(`{"order":"A","tip":1}`), 400, "tip"},
		{"another chain", token, edit(func(m map[string]any) { m["chainId"] = 1 }), 400, "chainId"},
		{"an unknown asset", token, edit(func(m map[string]any) { m["asset"] = "EUR" }), 400, "asset"},
		{"another payee", token, edit(func(m map[string]any) { m["payee"] = chaintest.Addr(7).Hex() }), 400, "payee"},
		{"a bad amount", token, edit(func(m map[string]any) { m["amount"] = "1.001" }), 400, "amount"},
		{"amounts that disagree", token, edit(func(m map[string]any) { m["amountBase"] = "99" }), 400, "amountBase"},
		{"a forged URI", token, edit(func(m map[string]any) { m["uri"] = strings.Replace(m["uri"].(string), "1e2", "0.01e2", 1) }), 400, "uri"},
		{"no expiry", token, edit(func(m map[string]any) { delete(m, "expires") }), 400, "expires"},
		{"other terms", token, e.request("ORDER-1", "99.00"), 409, "other terms"},
	} {
		var ae APIError
		code := e.call("POST", PathOrders, tc.tok, tc.body, &ae)
		if code != tc.code || !strings.Contains(ae.Msg, tc.want) {
			t.Errorf("%s: %d %q, want %d naming %q", tc.name, code, ae.Msg, tc.code, tc.want)
		}
	}
	var ae APIError
	if code := e.call("GET", PathOrder+"ORDER-404", token, nil, &ae); code != 404 {
		t.Fatalf("unknown order: %d %q", code, ae.Msg)
	}
	if code := e.call("GET", PathOrder+strings.Repeat("x", 40), token, nil, &ae); code != 400 || !strings.Contains(ae.Msg, "reference") {
		t.Fatalf("a bad reference: %d %q", code, ae.Msg)
	}
	if n, _ := e.n.store.Orders(); n != 1 {
		t.Fatalf("%d orders after the refusals, want 1", n)
	}
}

// TestConfigRefuses: bad keys are refused naming them.
func TestConfigRefuses(t *testing.T) {
	base := "[nodes]\nendpoints = [\"http://127.0.0.1:8545\"]\n[orders]\npayees = [\"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"]\n"
	cfg := DefaultConfig()
	if err := ParseConfig([]byte(base), t.TempDir(), &cfg); err != nil {
		t.Fatalf("a minimal config: %v", err)
	}
	for _, tc := range []struct{ text, want string }{
		{base + "colour = 1\n", "colour"},
		{"[orders]\npayees = [\"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"]\n", "nodes.endpoints"},
		{"[nodes]\nendpoints = [\"http://127.0.0.1:8545\"]\n", "orders.payees"},
		{strings.Replace(base, "0x7099", "0xZZ99", 1), "orders.payees[0]"},
		{base + "[follow]\nbatch = 0\n", "follow.batch"},
		{base + "[webhook]\nurl = \"http://127.0.0.1:9/\"\n", "webhook.secret-file"},
		{base + "[webhook]\nretry-min = \"1m\"\nretry-max = \"1s\"\n", "webhook.retry-max"},
		{strings.Replace(base, "[orders]\n", "[orders]\nmax = 0\n", 1), "orders.max"},
	} {
		cfg := DefaultConfig()
		if err := ParseConfig([]byte(tc.text), t.TempDir(), &cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error naming %s", tc.text, err, tc.want)
		}
	}
}

// TestStatusRule: the order status table of order.go.
func TestStatusRule(t *testing.T) {
	for _, tc := range []struct {
		paid, refunded, want string
	}{
		{"0", "0", StatusAwaiting}, {"500", "0", StatusPartiallyPaid}, {"1000", "0", StatusPaid}, {"1500", "0", StatusOverpaid},
		{"1500", "500", StatusPaid}, {"1000", "400", StatusPartiallyRefunded}, {"1000", "1000", StatusRefunded},
	} {
		o := &Order{PaymentRequest: wallet.PaymentRequest{AmountBase: "1000"}, Paid: tc.paid, Refunded: tc.refunded}
		if got := o.status(); got != tc.want {
			t.Errorf("paid %s refunded %s: %s, want %s", tc.paid, tc.refunded, got, tc.want)
		}
	}
	o := &Order{PaymentRequest: wallet.PaymentRequest{Expires: time.Unix(100, 0)}, Status: StatusAwaiting}
	if o.View(time.Unix(99, 0)).Status != StatusAwaiting || o.View(time.Unix(100, 0)).Status != StatusExpired {
		t.Fatal("expiry")
	}
	_ = common.Address{}
}

// TestRegisterLooksBack: a payment made before its order was registered,
// in a block the follower read already, is the order's once it is
// registered (orders.lookback), notified once; with orders.lookback 0 it
// is not.
func TestRegisterLooksBack(t *testing.T) {
	for _, lookback := range []int{DefaultLookback, 0} {
		e := newEnv(t)
		e.cfg.Orders.Lookback = lookback
		e.start()
		h := e.pay("EARLY-1", 1234)
		e.waitStatus(func(st StatusView) bool { return st.Next > h }) // the follower passed the payment's block
		var o Order
		if code := e.call("POST", PathOrders, token, e.request("EARLY-1", "12.34"), &o); code != http.StatusOK {
			t.Fatalf("register: %d", code)
		}
		if lookback == 0 {
			if o.Status != StatusAwaiting {
				t.Fatalf("lookback 0: %+v", o)
			}
			continue
		}
		if o.Status != StatusPaid || len(o.Payments) != 1 || o.Payments[0].Block != h {
			t.Fatalf("registered after its payment: %+v", o)
		}
		if hs := e.waitHandled(1); hs[0].Event != EventPaid || hs[0].Order != "EARLY-1" {
			t.Fatalf("handled %+v", hs)
		}
	}
}

// TestDisputes: a dispute opened on an order's payment is notified as
// order.disputed and recorded on the order; the merchant's refund closes
// it (order.refunded, then order.dispute_closed, refunded); a bank's
// upholding of another closes it with the forced transfer counted as
// refunded; a dismissal closes a third. Disputes on other merchants'
// payments are not the notifier's.
func TestDisputes(t *testing.T) {
	g := chaintest.Genesis(t)
	for i := range g.Assets {
		g.Assets[i].DisputeWindowSeconds = 86_400
	}
	e := newEnvOn(t, chaintest.NewOn(t, g))
	e.start()
	for _, o := range []string{"D-1", "D-2", "D-3"} {
		e.register(o, "10.00")
		e.pay(o, 1000)
	}
	e.waitHandled(3)
	open := func(order string) {
		ref, _ := wallet.ParseReference(order)
		a := e.ch.Apply(e.ch.Call(payer, chain.DisputesAddress, &chain.DisputesABI, "openDispute", chain.AssetAddress(hkdAsset), chaintest.Addr(shopKey), ref, big.NewInt(1000), uint8(1), [32]byte{}))
		if chaintest.Status(a)[0] != 1 {
			t.Fatalf("openDispute %s failed", order)
		}
	}
	for _, o := range []string{"D-1", "D-2", "D-3"} {
		open(o)
	}
	hs := e.waitHandled(6)
	for _, h := range hs[3:] {
		if h.Event != EventDisputed || h.Amount != "10.00 HKD" {
			t.Fatalf("opened: %+v", hs[3:])
		}
	}
	call := func(from uint32, method string, args ...any) {
		t.Helper()
		if a := e.ch.Apply(e.ch.Call(from, chain.DisputesAddress, &chain.DisputesABI, method, args...)); chaintest.Status(a)[0] != 1 {
			t.Fatalf("%s failed", method)
		}
	}
	e.refund("D-1", 1000) // closes dispute 1
	call(shopKey, "contestDispute", big.NewInt(2), "delivered, signed for")
	call(shopKey, "contestDispute", big.NewInt(3), "delivered, signed for")
	call(genesis.DevBankBIndex, "upholdDispute", big.NewInt(2), big.NewInt(1000), "the signature is not the payer's")
	call(genesis.DevBankBIndex, "dismissDispute", big.NewInt(3), "the payer signed for it")
	hs = e.waitHandled(10)
	var got []string
	for _, h := range hs[6:] {
		got = append(got, h.Order+" "+h.Event+" "+h.Status)
	}
	want := []string{"D-1 order.refunded refunded", "D-1 order.dispute_closed refunded", "D-2 order.dispute_closed refunded", "D-3 order.dispute_closed paid"}
	if !slices.Equal(got, want) {
		t.Fatalf("closes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for id, want := range map[string]string{"D-1": "refunded", "D-2": "upheld", "D-3": "dismissed"} {
		o := e.order(id)
		if len(o.Disputes) != 1 || o.Disputes[0].Status != want || o.Disputes[0].Reason == "" {
			t.Errorf("%s: disputes %+v, want one %s", id, o.Disputes, want)
		}
	}
	if o := e.order("D-2"); o.Refunded != "1000" || o.Status != StatusRefunded {
		t.Errorf("D-2 after the bank upheld it: %+v", o)
	}
}
