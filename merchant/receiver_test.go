package merchant

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/crypto/signature"
	"github.com/tally-ledger/tally/internal/outbox"
)

// TestReceiverRefuses: the reference receiver refuses what a forger or
// a replay sends (no, a wrong or a stale signature: 401), a body that is
// not the notification its delivery header names (400), and handles a
// genuine delivery once, across a restart of the receiver.
func TestReceiverRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handled.jsonl")
	r, err := OpenReceiver(path, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(Notification{ID: "payment-0x01-1", Event: EventPaid, Order: &Order{Status: StatusPaid}, Payment: &Movement{Text: "1.00 HKD"}})
	post := func(r *Receiver, body []byte, sig, id string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		if sig != "" {
			req.Header.Set(outbox.HeaderSignature, sig)
		}
		req.Header.Set(outbox.HeaderDelivery, id)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	now := time.Now()
	for _, tc := range []struct {
		name     string
		body     []byte
		sig, id  string
		wantCode int
	}{
		{"no signature", body, "", "payment-0x01-1", 401},
		{"another secret", body, signature.Sign([]byte("another-secret-0123456"), body, now), "payment-0x01-1", 401},
		{"a replay an hour old", body, signature.Sign([]byte(secret), body, now.Add(-time.Hour)), "payment-0x01-1", 401},
		{"a body changed after signing", append(bytes.Clone(body[:len(body)-1]), ' ', '}'), signature.Sign([]byte(secret), body, now), "payment-0x01-1", 401},
		{"another delivery id", body, signature.Sign([]byte(secret), body, now), "payment-0x02-1", 400},
		{"not a notification", []byte(`{"id":"x"}`), signature.Sign([]byte(secret), []byte(`{"id":"x"}`), now), "x", 400},
		{"too large", bytes.Repeat([]byte(" "), maxNotification+1), "t=1,v1=00", "x", 400},
	} {
		if code, msg := post(r, tc.body, tc.sig, tc.id); code != tc.wantCode {
			t.Errorf("%s: %d %q, want %d", tc.name, code, msg, tc.wantCode)
		}
	}
	sig := signature.Sign([]byte(secret), body, now)
	if code, msg := post(r, body, sig, "payment-0x01-1"); code != 200 || strings.TrimSpace(msg) != "handled" {
		t.Fatalf("genuine: %d %q", code, msg)
	}
	r.Close()
	r, err = OpenReceiver(path, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if code, msg := post(r, body, sig, "payment-0x01-1"); code != 200 || strings.TrimSpace(msg) != "duplicate" {
		t.Fatalf("the same delivery after a restart: %d %q", code, msg)
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != 1 {
		t.Fatalf("%d lines handled, want 1:\n%s", n, data)
	}
}
