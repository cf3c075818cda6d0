package merchant

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/tally-ledger/tally/crypto/signature"
	"github.com/tally-ledger/tally/internal/outbox"
)

// Receiver is a merchant's webhook endpoint done right, the reference
// for docs/merchants.md ("Handling a notification") and what the
// walkthrough and the tests run (`tally merchant receiver`):
//
//  1. verify the signature over the raw body, refusing a stale
//     timestamp (a replay): 401;
//  2. decode the body; its id must be the X-Tally-Delivery header: 400;
//  3. if the delivery id was handled already, answer 200 and do nothing
//     (a retry of a delivery whose answer was lost or late);
//  4. else handle it and record its id in the same durable write (here:
//     one line appended to the handled file and synced; in a shop, the
//     order update and the id in one database transaction), then 200.
//
// So each notification is handled exactly once although the notifier
// delivers at least once. Script lets a test make it fail: each entry
// is the outcome of one request, in order ("500": refuse before
// handling; "timeout": handle, then answer only after Hold, too late for
// the notifier, which sends it again).
type Receiver struct {
	Secret  []byte
	MaxSkew time.Duration
	Script  []string
	Hold    time.Duration
	// Log gets one line per request: the delivery id and its outcome.
	Log io.Writer

	mu      sync.Mutex
	handled *os.File
	seen    map[string]bool
}

// Handled is one line of the handled file.
type Handled struct {
	ID     string `json:"id"`
	Event  string `json:"event"`
	Order  string `json:"order"`
	Status string `json:"status"`
	Amount string `json:"amount"`
}

// OpenReceiver opens (creating) the handled file at path and learns the
// ids it holds.
func OpenReceiver(path string, secret []byte) (*Receiver, error) {
	r := &Receiver{Secret: secret, MaxSkew: 5 * time.Minute, Log: io.Discard, seen: map[string]bool{}}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var h Handled
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r.seen[h.ID] = true
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, err
	}
	r.handled = f
	return r, nil
}

// Close closes the handled file.
func (r *Receiver) Close() error { return r.handled.Close() }

// maxNotification bounds a notification's body.
const maxNotification = 1 << 20

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxNotification+1))
	if err != nil || len(body) > maxNotification {
		http.Error(w, "unreadable or too large body", http.StatusBadRequest)
		return
	}
	if err := signature.Verify(r.Secret, body, req.Header.Get(outbox.HeaderSignature), time.Now(), r.MaxSkew); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil || n.ID == "" || n.ID != req.Header.Get(outbox.HeaderDelivery) || n.Order == nil {
		http.Error(w, "the body is not a notification of the delivery id in "+outbox.HeaderDelivery, http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	outcome := ""
	if len(r.Script) > 0 {
		outcome, r.Script = r.Script[0], r.Script[1:]
	}
	if outcome == "500" {
		r.mu.Unlock()
		fmt.Fprintf(r.Log, "%s %s: 500 (scripted)\n", n.ID, n.Event)
		http.Error(w, "scripted failure", http.StatusInternalServerError)
		return
	}
	result, err := r.handle(&n)
	r.mu.Unlock()
	if err != nil {
		fmt.Fprintf(r.Log, "%s %s: 500 (%v)\n", n.ID, n.Event, err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if outcome == "timeout" {
		fmt.Fprintf(r.Log, "%s %s: %s, answering late (scripted)\n", n.ID, n.Event, result)
		select {
		case <-time.After(r.Hold):
		case <-req.Context().Done():
		}
		return
	}
	fmt.Fprintf(r.Log, "%s %s: %s\n", n.ID, n.Event, result)
	io.WriteString(w, result+"\n")
}

// handle does the notification's work once: a known id is a duplicate.
func (r *Receiver) handle(n *Notification) (string, error) {
	if r.seen[n.ID] {
		return "duplicate", nil
	}
	h := Handled{ID: n.ID, Event: n.Event, Order: n.Order.Order, Status: n.Order.Status}
	switch {
	case n.Payment != nil:
		h.Amount = n.Payment.Text
	case n.Refund != nil:
		h.Amount = n.Refund.Text
	case n.Dispute != nil:
		h.Amount = n.Dispute.Text
	}
	line, err := json.Marshal(&h)
	if err != nil {
		return "", err
	}
	if _, err := r.handled.Write(append(line, '\n')); err != nil {
		return "", errors.Join(errors.New("record the delivery"), err)
	}
	if err := r.handled.Sync(); err != nil {
		return "", errors.Join(errors.New("sync the handled file"), err)
	}
	r.seen[n.ID] = true
	return "handled", nil
}
