package monitor

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/internal/outbox"
)

// TestWebhookOutboxSurvivesRestart: notifications queued with the blocks
// that raised their alerts wait in the store while the receiver is down,
// survive the monitor's restart, and reach the receiver once each, with
// the delivery ids of their first attempts, oldest first; the backoff
// doubles up to its cap.
func TestWebhookOutboxSurvivesRestart(t *testing.T) {
	ch := chaintest.New(t)
	ch.Apply(ch.Tx(7, addr(8), cny(25000), nil)) // new payee
	ch.Apply(ch.Tx(2, addr(3), cny(30000), nil)) // new payee
	secret := []byte("webhook-secret-0123456789abcdef")
	h := &hook{t: t, secret: secret, failFirst: 1 << 30, events: map[string]*Notification{}, retried: map[string]int{}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	cfg := testConfig(t)
	cfg.Webhook.URL = srv.URL
	cfg.Webhook.RetryMin, cfg.Webhook.RetryMax = Duration(10*time.Millisecond), Duration(20*time.Millisecond)
	cfg.Webhook.SecretFile = filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(cfg.Webhook.SecretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	m := openOn(t, ch, cfg)
	catchUp(t, m)
	if _, err := m.outbox.DeliverRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := m.pendingCount(); n != 2 {
		t.Fatalf("%d deliveries pending with the receiver down, want 2", n)
	}
	m.Close()

	h.mu.Lock()
	h.failFirst = 0
	h.mu.Unlock()
	m = openOn(t, ch, cfg)
	if n := m.pendingCount(); n != 2 {
		t.Fatalf("%d deliveries pending after the restart, want 2", n)
	}
	time.Sleep(50 * time.Millisecond) // past their retry time
	if _, err := m.outbox.DeliverRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.outbox.DeliverRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{DeliveryID(1, EventCreated), DeliveryID(2, EventCreated)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Equal(h.ids, want) || m.pendingCount() != 0 {
		t.Fatalf("delivered %q (%d pending), want %q", h.ids, m.pendingCount(), want)
	}
	for _, id := range want {
		if h.retried[id] != 1 {
			t.Errorf("%s: %d failed attempts before, want 1", id, h.retried[id])
		}
	}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 11: 10 * time.Minute, 100: 10 * time.Minute} {
		if got := outbox.Backoff(n, time.Second, 10*time.Minute); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}
