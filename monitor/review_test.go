package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/crypto/signature"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// hook is a wallet provider's webhook receiver, as one should be written:
// it checks each POST's signature and skips a delivery id it has seen.
// It answers 500 to the first failFirst POSTs (a receiver that is down).
type hook struct {
	t         *testing.T
	secret    []byte
	mu        sync.Mutex
	failFirst int
	posts     int
	ids       []string // delivery ids, in arrival order, each once
	events    map[string]*Notification
	retried   map[string]int
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := signature.Verify(h.secret, body, r.Header.Get(HeaderSignature), time.Now(), 5*time.Minute); err != nil {
		h.t.Errorf("webhook signature: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.posts++
	id := r.Header.Get(HeaderDelivery)
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil || n.ID != id || n.Event != r.Header.Get(HeaderEvent) {
		h.t.Errorf("webhook body %s (err %v) does not match its headers %v", body, err, r.Header)
	}
	if h.posts <= h.failFirst {
		h.retried[id]++
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	if _, seen := h.events[id]; !seen {
		h.ids = append(h.ids, id)
		h.events[id] = &n
	}
}

func (h *hook) seen(id string) *Notification {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.events[id]
}

// api calls the review API as an operator.
func api(t *testing.T, m *Monitor, token, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+m.Addr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	return resp.StatusCode
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReviewOnDevNode: on a real node, alerts are listed, acknowledged,
// dismissed with a reason and escalated through the authenticated API;
// the escalation freezes the account on chain with the reason
// monitor:<id>:<rule>; the action log records every action, refused
// ones too, in an intact hash chain; the webhook receiver gets each
// event once, signed, after retries with the same delivery id.
func TestReviewOnDevNode(t *testing.T) {
	node := wallettest.StartDevNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := wallet.Dial(ctx, node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	const alice, bob = "alice-token-0123456789abcdef0123456789", "bob-token-0123456789abcdef0123456789ab"
	secret := []byte("webhook-secret-0123456789abcdef")
	files := map[string][]byte{"operators": []byte("alice " + alice + "\nbob " + bob + "\n"), "hook.secret": append(secret, '\n')}
	for f, data := range files {
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := &hook{t: t, secret: secret, failFirst: 2, events: map[string]*Notification{}, retried: map[string]int{}}
	srv := httptest.NewServer(h)
	defer srv.Close()

	cfg := testConfig(t)
	cfg.Nodes.Endpoints = []string{node.URL}
	cfg.Follow.PollInterval = Duration(20 * time.Millisecond)
	cfg.Operator.TokensFile = filepath.Join(dir, "operators")
	cfg.Webhook.URL = srv.URL
	cfg.Webhook.SecretFile = filepath.Join(dir, "hook.secret")
	cfg.Webhook.Events = Events
	cfg.Webhook.RetryMin, cfg.Webhook.RetryMax = Duration(20*time.Millisecond), Duration(50*time.Millisecond)
	compliance, err := genesis.DevKey(genesis.DevComplianceIndex)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg, Options{Key: compliance})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// Two new-payee alerts: accounts 2 and 7 each pay someone new 25000 CNY.
	for _, p := range [][2]uint32{{2, 3}, {7, 8}} {
		k, _ := genesis.DevKey(p[0])
		to, _ := genesis.DevAddress(p[1])
		tx, err := c.Transfer(ctx, k, to, cny(25000))
		if err != nil {
			t.Fatal(err)
		}
		if r, err := c.WaitReceipt(ctx, tx.Hash()); err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("payment: %v %v", r, err)
		}
	}
	var as []*Alert
	waitFor(t, "two alerts", 30*time.Second, func() bool {
		as = nil
		return api(t, m, alice, "GET", PathAlerts+"?status=open", nil, &as) == 200 && len(as) == 2
	})
	first, second := as[0], as[1]
	if first.Rule != RuleNewPayee || first.Account != chainAddr(2) || second.Account != chainAddr(7) {
		t.Fatalf("alerts %+v %+v", first, second)
	}

	// Authentication and bad input change nothing.
	for _, c := range []struct {
		token, method, path string
		body                any
		code                int
	}{
		{"", "GET", PathAlerts, nil, 401},
		{"not-a-token-0123456789abcdef0123456789", "GET", PathAlerts, nil, 401},
		{"", "GET", PathMetrics, nil, 401},
		{alice, "GET", PathAlerts + "?status=closed", nil, 400},
		{alice, "GET", PathAlerts + "?limit=0", nil, 400},
		{alice, "GET", PathAlert + "x", nil, 400},
		{alice, "GET", PathAlert + "99", nil, 404},
		{alice, "POST", PathAlert + "1/escalate", map[string]any{"reason": "x", "extra": 1}, 400},
		{alice, "POST", PathAlert + "1/freeze", nil, 409},
		{"", "POST", PathAlert + "1/escalate", ReviewRequest{Reason: "x"}, 401},
	} {
		if got := api(t, m, c.token, c.method, c.path, c.body, nil); got != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, got, c.code)
		}
	}

	// Review: ack, a refused escalation (no reason), the escalation.
	var a Alert
	if code := api(t, m, alice, "POST", PathAlert+"1/acknowledge", nil, &a); code != 200 || a.Status != StatusAcknowledged || a.By != "alice" {
		t.Fatalf("acknowledge: %d %+v", code, a)
	}
	if code := api(t, m, bob, "POST", PathAlert+"1/escalate", ReviewRequest{}, nil); code != 409 {
		t.Fatalf("escalate without a reason: %d, want 409", code)
	}
	if code := api(t, m, bob, "POST", PathAlert+"1/escalate", ReviewRequest{Reason: "confirmed with the payer's bank"}, &a); code != 200 || a.Status != StatusEscalated {
		t.Fatalf("escalate: %d %+v", code, a)
	}
	if code := api(t, m, alice, "POST", PathAlert+"2/dismiss", ReviewRequest{Reason: "known supplier"}, &a); code != 200 || a.Status != StatusDismissed {
		t.Fatalf("dismiss: %d %+v", code, a)
	}
	if code := api(t, m, alice, "POST", PathAlert+"2/escalate", ReviewRequest{Reason: "changed my mind"}, nil); code != 409 {
		t.Fatalf("escalating a dismissed alert: %d, want 409", code)
	}

	// The freeze, on chain.
	waitFor(t, "the freeze", 30*time.Second, func() bool {
		return api(t, m, alice, "GET", PathAlert+"1", nil, &a) == 200 && a.Freeze != nil && a.Freeze.State == FreezeDone
	})
	acct, err := c.Account(ctx, chainAddr(2))
	if err != nil || !acct.Frozen {
		t.Fatalf("account %s after the escalation: %+v, %v; want frozen", chainAddr(2), acct, err)
	}
	r, err := c.Receipt(ctx, a.Freeze.Tx)
	if err != nil || r.Status != types.ReceiptStatusSuccessful || len(r.Logs) != 1 {
		t.Fatalf("freeze receipt %+v, %v", r, err)
	}
	vals, err := chainFrozenReason(r.Logs[0])
	if err != nil || vals != "monitor:1:new-payee" {
		t.Fatalf("the Frozen event's reason is %q (%v), want monitor:1:new-payee", vals, err)
	}

	// The action log.
	var lg ActionLog
	if code := api(t, m, bob, "GET", PathActions, nil, &lg); code != 200 {
		t.Fatal(code)
	}
	if err := VerifyActions(lg.Entries, lg.Head); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range lg.Entries {
		got = append(got, e.Operator+" "+e.Action+" "+e.Target+" "+strings.SplitN(e.Result, ":", 2)[0])
	}
	want := []string{"alice acknowledge 1 done", "bob escalate 1 refused", "bob escalate 1 done", "alice dismiss 2 done", "alice escalate 2 refused", "monitor freeze 1 done"}
	if !slices.Equal(got, want) {
		t.Fatalf("action log %q, want %q", got, want)
	}

	// The webhook: every event once, after two failed POSTs retried with
	// the same delivery ids.
	ids := []string{DeliveryID(1, EventCreated), DeliveryID(2, EventCreated), DeliveryID(1, EventAcknowledged), DeliveryID(1, EventEscalated),
		DeliveryID(2, EventDismissed), DeliveryID(1, EventFrozen)}
	waitFor(t, "the webhook deliveries", 30*time.Second, func() bool {
		for _, id := range ids {
			if h.seen(id) == nil {
				return false
			}
		}
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ids) != len(ids) {
		t.Errorf("deliveries %q, want %q", h.ids, ids)
	}
	if n := h.events[DeliveryID(1, EventFrozen)]; n.Alert.Freeze == nil || n.Alert.Freeze.Reason != "monitor:1:new-payee" || n.Event != "alert.frozen" {
		t.Errorf("frozen notification %+v", n)
	}
	retried := 0
	for _, n := range h.retried {
		retried += n
	}
	if retried != 2 {
		t.Errorf("%d failed POSTs retried, want 2", retried)
	}
}
