package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tally-ledger/tally/crypto/signature"
	kv "github.com/tally-ledger/tally/internal/pebblekv"
)

// The headers of every POST.
const (
	HeaderSignature = signature.Header
	HeaderDelivery  = "X-Tally-Delivery"
	HeaderEvent     = "X-Tally-Event"
)

// Why a delivery was dropped (Hooks.Dropped).
const (
	DroppedFull   = "outbox-full"
	DroppedMaxAge = "max-age"
)

// Config is where and how notifications are sent.
type Config struct {
	// URL receives the POSTs.
	URL string
	// Secret keys the HMAC-SHA256 signature.
	Secret []byte
	// Timeout bounds one POST.
	Timeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts.
	RetryMin, RetryMax time.Duration
	// MaxAge drops a delivery that has failed for this long.
	MaxAge time.Duration
	// MaxPending bounds the deliveries waiting.
	MaxPending int
}

// Hooks count what happens, for a service's metrics; any may be nil.
type Hooks struct {
	Delivered func()
	Failed    func()
	Dropped   func(why string)
}

// Outbox is one receiver's queue in a service's database, under its own
// key prefix.
type Outbox struct {
	db      *pebble.DB
	prefix  []byte
	seqKey  []byte
	cfg     Config
	hooks   Hooks
	log     *slog.Logger
	now     func() time.Time
	http    *http.Client
	pending atomic.Int64
}

// Options are New's optional parts.
type Options struct {
	Hooks  Hooks
	Logger *slog.Logger
	// Now defaults to time.Now (the schedule, the signature's t).
	Now  func() time.Time
	HTTP *http.Client
}

// New returns the outbox whose deliveries are the keys prefix+<seq 8> of
// db, and whose last sequence number is at seqKey (outside prefix). It
// counts what waits.
func New(db *pebble.DB, prefix, seqKey []byte, cfg Config, opts Options) (*Outbox, error) {
	if len(prefix) == 0 || bytes.HasPrefix(seqKey, prefix) {
		return nil, fmt.Errorf("outbox: prefix %q must be non-empty and not hold the sequence key %q", prefix, seqKey)
	}
	o := &Outbox{db: db, prefix: append([]byte{}, prefix...), seqKey: append([]byte{}, seqKey...), cfg: cfg, hooks: opts.Hooks, log: opts.Logger, now: opts.Now, http: opts.HTTP}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.http == nil {
		o.http = &http.Client{}
	}
	return o, o.Recount()
}

// Delivery is one notification waiting in the outbox.
type Delivery struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	Body      json.RawMessage `json:"body"`
	Created   time.Time       `json:"created"`
	Attempts  int             `json:"attempts"`
	NextAt    time.Time       `json:"nextAt"`
	LastError string          `json:"lastError,omitempty"`
}

// Pending is how many deliveries wait.
func (o *Outbox) Pending() int64 { return o.pending.Load() }

// Enqueue adds the delivery id of event, with body (the exact bytes
// POSTed), to b: the (indexed) batch that makes the event happen. Beyond
// MaxPending the delivery is dropped, logged and counted, and Enqueue
// returns false. A batch that then fails to commit must be followed by
// Recount.
func (o *Outbox) Enqueue(b *pebble.Batch, id, event string, body []byte) (bool, error) {
	if o.pending.Load() >= int64(o.cfg.MaxPending) {
		o.dropped(DroppedFull)
		o.log.Error("webhook outbox full: notification dropped", "id", id, "event", event, "max-pending", o.cfg.MaxPending)
		return false, nil
	}
	seq, err := o.lastSeq(b)
	if err != nil {
		return false, err
	}
	now := o.now().UTC()
	d := Delivery{Seq: seq + 1, ID: id, Event: event, Body: body, Created: now, NextAt: now}
	data, err := json.Marshal(&d)
	if err != nil {
		return false, err
	}
	if err := b.Set(o.key(d.Seq), data, nil); err != nil {
		return false, err
	}
	if err := b.Set(o.seqKey, kv.BE8(d.Seq), nil); err != nil {
		return false, err
	}
	o.pending.Add(1)
	return true, nil
}

func (o *Outbox) lastSeq(r pebble.Reader) (uint64, error) {
	n, err := kv.GetUint(r, o.seqKey)
	if err != nil {
		return 0, fmt.Errorf("outbox sequence: %w", err)
	}
	return n, nil
}

// Recount counts the deliveries waiting (New does; after a failed batch
// that had queued some, so does the caller).
func (o *Outbox) Recount() error {
	it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: o.prefix, UpperBound: kv.UpperBound(o.prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	n := int64(0)
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	o.pending.Store(n)
	return it.Error()
}

// List returns up to limit waiting deliveries, oldest first (for a
// service's status page and tests).
func (o *Outbox) List(limit int) ([]Delivery, error) {
	it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: o.prefix, UpperBound: kv.UpperBound(o.prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Delivery
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		var d Delivery
		if err := json.Unmarshal(it.Value(), &d); err != nil {
			return nil, fmt.Errorf("outbox %x: %w", it.Key(), err)
		}
		out = append(out, d)
	}
	return out, it.Error()
}

// DeliverRound POSTs every due delivery once, oldest first. A 2xx answer
// deletes it; any other outcome schedules the next attempt after
// Backoff(attempts); a delivery failing for MaxAge is dropped and counted.
// It returns when the next delivery is due (zero when none waits).
func (o *Outbox) DeliverRound(ctx context.Context) (time.Time, error) {
	var due []Delivery
	var next time.Time
	it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: o.prefix, UpperBound: kv.UpperBound(o.prefix)})
	if err != nil {
		return next, err
	}
	now := o.now()
	for it.First(); it.Valid(); it.Next() {
		var d Delivery
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
		err := o.post(ctx, &d)
		k := o.key(d.Seq)
		switch {
		case err == nil:
			call(o.hooks.Delivered)
			if err := o.db.Delete(k, pebble.Sync); err != nil {
				return next, err
			}
			o.pending.Add(-1)
			continue
		case ctx.Err() != nil:
			return next, ctx.Err()
		}
		call(o.hooks.Failed)
		d.Attempts++
		d.LastError = err.Error()
		now := o.now()
		if now.Sub(d.Created) >= o.cfg.MaxAge {
			o.dropped(DroppedMaxAge)
			o.log.Error("webhook delivery dropped after max-age", "id", d.ID, "attempts", d.Attempts, "err", err)
			if err := o.db.Delete(k, pebble.Sync); err != nil {
				return next, err
			}
			o.pending.Add(-1)
			continue
		}
		d.NextAt = now.Add(Backoff(d.Attempts, o.cfg.RetryMin, o.cfg.RetryMax))
		o.log.Warn("webhook delivery failed", "id", d.ID, "attempt", d.Attempts, "retry-at", d.NextAt, "err", err)
		data, err := json.Marshal(&d)
		if err != nil {
			return next, err
		}
		if err := o.db.Set(k, data, pebble.Sync); err != nil {
			return next, err
		}
		if next.IsZero() || d.NextAt.Before(next) {
			next = d.NextAt
		}
	}
	return next, nil
}

// Backoff is the wait before attempt n+1: lo x 2^(n-1), at most hi.
func Backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// maxAnswer bounds what is read of a receiver's answer.
const maxAnswer = 4 << 10

func (o *Outbox) post(ctx context.Context, d *Delivery) error {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.cfg.URL, bytes.NewReader(d.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderSignature, signature.Sign(o.cfg.Secret, d.Body, o.now()))
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderEvent, d.Event)
	resp, err := o.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

func (o *Outbox) dropped(why string) {
	if o.hooks.Dropped != nil {
		o.hooks.Dropped(why)
	}
}

func (o *Outbox) key(seq uint64) []byte { return kv.Cat(o.prefix, kv.BE8(seq)) }

func call(f func()) {
	if f != nil {
		f()
	}
}
