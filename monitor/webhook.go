package monitor

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tally-ledger/tally/internal/outbox"
)

// Webhook events (webhook.events), each sent at most once per alert.
const (
	EventCreated      = "created"
	EventAcknowledged = "acknowledged"
	EventDismissed    = "dismissed"
	EventEscalated    = "escalated"
	EventFrozen       = "frozen"
)

// Events lists the webhook events.
var Events = []string{EventCreated, EventAcknowledged, EventDismissed, EventEscalated, EventFrozen}

func knownEvent(e string) bool { return slices.Contains(Events, e) }

// Webhook headers (docs/monitor.md, "Webhook"): package outbox's, which
// sends them. The signature is the bridge's (package signature, the
// scheme of Stripe's webhooks):
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t "." body)>".
const (
	HeaderSignature = outbox.HeaderSignature
	HeaderDelivery  = outbox.HeaderDelivery
	HeaderEvent     = outbox.HeaderEvent
)

// Notification is a webhook POST's body.
type Notification struct {
	// ID is the delivery id, the same in every retry of the delivery
	// (and in HeaderDelivery): a receiver that saw it already ignores it.
	ID string `json:"id"`
	// Event is "alert." + the event (alert.created, alert.escalated…).
	Event string `json:"event"`
	Alert *Alert `json:"alert"`
}

// DeliveryID is the delivery id of an alert's event.
func DeliveryID(alert uint64, event string) string {
	return "alert-" + strconv.FormatUint(alert, 10) + "-" + event
}

var (
	prefixOutbox = []byte("w/")
	keyOutboxSeq = []byte("m/wseq")
)

// enqueue adds the notification of alert a's event to the outbox in b,
// the batch that makes the event happen: a crash loses both or neither.
// Events not in webhook.events, or with no webhook.url, are not queued;
// beyond webhook.max-pending the delivery is dropped and counted.
func (m *Monitor) enqueue(b *pebble.Batch, a *Alert, event string) error {
	if m.outbox == nil || !slices.Contains(m.cfg.Webhook.Events, event) {
		return nil
	}
	id := DeliveryID(a.ID, event)
	body, err := json.Marshal(Notification{ID: id, Event: "alert." + event, Alert: a})
	if err != nil {
		return err
	}
	_, err = m.outbox.Enqueue(b, id, "alert."+event, body)
	return err
}

// recountPending recounts the outbox after a batch that queued
// deliveries failed to commit.
func (m *Monitor) recountPending() {
	if m.outbox != nil {
		m.outbox.Recount() //nolint:errcheck // best effort: the batch's deliveries are gone
	}
}

// pendingCount is how many deliveries wait.
func (m *Monitor) pendingCount() int64 {
	if m.outbox == nil {
		return 0
	}
	return m.outbox.Pending()
}
