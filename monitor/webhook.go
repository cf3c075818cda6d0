package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tally-ledger/tally/bridge/signature"
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

// Webhook headers (docs/monitor.md, "Webhook"). The signature is the
// bridge's (package signature, the scheme of Stripe's webhooks):
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t "." body)>".
const (
	HeaderSignature = signature.Header
	HeaderDelivery  = "X-Tally-Delivery"
	HeaderEvent     = "X-Tally-Event"
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

// delivery is one notification in the outbox.
type delivery struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	Body      json.RawMessage `json:"body"`
	Created   time.Time       `json:"created"`
	Attempts  int             `json:"attempts"`
	NextAt    time.Time       `json:"nextAt"`
	LastError string          `json:"lastError,omitempty"`
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
	if m.cfg.Webhook.URL == "" || !slices.Contains(m.cfg.Webhook.Events, event) {
		return nil
	}
	if m.pending.Load() >= int64(m.cfg.Webhook.MaxPending) {
		m.metrics.webhookDropped.WithLabelValues("outbox-full").Inc()
		m.log.Error("webhook outbox full: notification dropped", "alert", a.ID, "event", event, "max-pending", m.cfg.Webhook.MaxPending)
		return nil
	}
	id := DeliveryID(a.ID, event)
	body, err := json.Marshal(Notification{ID: id, Event: "alert." + event, Alert: a})
	if err != nil {
		return err
	}
	seq, err := getUint(b, keyOutboxSeq)
	if err != nil {
		return err
	}
	now := m.now().UTC()
	d := delivery{Seq: seq + 1, ID: id, Event: "alert." + event, Body: body, Created: now, NextAt: now}
	if err := setJSON(b, cat(prefixOutbox, be8(d.Seq)), &d); err != nil {
		return err
	}
	if err := b.Set(keyOutboxSeq, be8(d.Seq), nil); err != nil {
		return err
	}
	m.pending.Add(1) // undone by countPending if the batch fails
	return nil
}

// countPending counts the outbox (at start, and after a failed batch).
func (m *Monitor) countPending() error {
	it, err := m.store.db.NewIter(&pebble.IterOptions{LowerBound: prefixOutbox, UpperBound: upper(prefixOutbox)})
	if err != nil {
		return err
	}
	defer it.Close()
	n := int64(0)
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	m.pending.Store(n)
	return it.Error()
}

// deliverRound POSTs every due delivery of the outbox once, oldest first.
// A 2xx answer deletes it; any other outcome schedules the next attempt
// after webhook.retry-min x 2^(attempts-1), at most webhook.retry-max; a
// delivery failing for longer than webhook.max-age is dropped and counted.
// It returns when the next delivery is due (zero when none waits).
func (m *Monitor) deliverRound(ctx context.Context) (time.Time, error) {
	var due []delivery
	var next time.Time
	it, err := m.store.db.NewIter(&pebble.IterOptions{LowerBound: prefixOutbox, UpperBound: upper(prefixOutbox)})
	if err != nil {
		return next, err
	}
	now := m.now()
	for it.First(); it.Valid(); it.Next() {
		var d delivery
		if err := json.Unmarshal(it.Value(), &d); err != nil {
			it.Close()
			return next, fmt.Errorf("outbox %x: %w", it.Key(), err)
		}
		if !d.NextAt.After(now) {
			due = append(due, d)
		} else if next.IsZero() || d.NextAt.Before(next) {
			next = d.NextAt
		}
	}
	if err := it.Close(); err != nil {
		return next, err
	}
	for _, d := range due {
		if ctx.Err() != nil {
			return next, ctx.Err()
		}
		err := m.post(ctx, &d)
		k := cat(prefixOutbox, be8(d.Seq))
		switch {
		case err == nil:
			m.metrics.webhooks.WithLabelValues("delivered").Inc()
			if err := m.store.db.Delete(k, pebble.Sync); err != nil {
				return next, err
			}
			m.pending.Add(-1)
			continue
		case ctx.Err() != nil:
			return next, ctx.Err()
		}
		m.metrics.webhooks.WithLabelValues("failed").Inc()
		d.Attempts++
		d.LastError = err.Error()
		now := m.now()
		if now.Sub(d.Created) >= m.cfg.Webhook.MaxAge.D() {
			m.metrics.webhookDropped.WithLabelValues("max-age").Inc()
			m.log.Error("webhook delivery dropped after webhook.max-age", "id", d.ID, "attempts", d.Attempts, "err", err)
			if err := m.store.db.Delete(k, pebble.Sync); err != nil {
				return next, err
			}
			m.pending.Add(-1)
			continue
		}
		d.NextAt = now.Add(backoff(d.Attempts, m.cfg.Webhook.RetryMin.D(), m.cfg.Webhook.RetryMax.D()))
		m.log.Warn("webhook delivery failed", "id", d.ID, "attempt", d.Attempts, "retry-at", d.NextAt, "err", err)
		data, err := json.Marshal(&d)
		if err != nil {
			return next, err
		}
		if err := m.store.db.Set(k, data, pebble.Sync); err != nil {
			return next, err
		}
		if next.IsZero() || d.NextAt.Before(next) {
			next = d.NextAt
		}
	}
	return next, nil
}

// backoff is the wait before attempt n+1: lo x 2^(n-1), at most hi.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// maxWebhookAnswer bounds what is read of a receiver's answer.
const maxWebhookAnswer = 4 << 10

func (m *Monitor) post(ctx context.Context, d *delivery) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Webhook.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.cfg.Webhook.URL, bytes.NewReader(d.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderSignature, signature.Sign(m.webhookSecret, d.Body, m.now()))
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderEvent, d.Event)
	resp, err := m.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxWebhookAnswer))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
