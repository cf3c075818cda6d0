package outbox

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tally-ledger/tally/crypto/signature"
)

// receiver is a webhook receiver that verifies signatures and answers
// each delivery with the next status of its script (then 200).
type receiver struct {
	t      *testing.T
	secret []byte
	now    func() time.Time
	mu     sync.Mutex
	script []int
	got    []string // delivery ids, in arrival order
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := signature.Verify(r.secret, body, req.Header.Get(HeaderSignature), r.now(), 5*time.Minute); err != nil {
		r.t.Errorf("bad signature: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req.Header.Get(HeaderDelivery)+" "+req.Header.Get(HeaderEvent)+" "+string(body))
	code := http.StatusOK
	if len(r.script) > 0 {
		code, r.script = r.script[0], r.script[1:]
	}
	w.WriteHeader(code)
}

func open(t *testing.T, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// clock is a settable time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestOutbox: deliveries queued in a batch are sent oldest first with
// their ids and signatures, retried with backoff after a 500 until a
// 2xx, survive a reopen of the database, and a delivery failing for
// max-age or one beyond max-pending is dropped and counted.
func TestOutbox(t *testing.T) {
	fs := vfs.NewMem()
	db := open(t, fs)
	secret := []byte("0123456789abcdef0123")
	clk := &clock{t: time.Now()}
	r := &receiver{t: t, secret: secret, now: clk.now, script: []int{500, 500}}
	srv := httptest.NewServer(r)
	defer srv.Close()
	var dropped []string
	var delivered, failed int
	cfg := Config{URL: srv.URL, Secret: secret, Timeout: 5 * time.Second, RetryMin: time.Second, RetryMax: 4 * time.Second, MaxAge: time.Hour, MaxPending: 3}
	opts := Options{Now: clk.now, Hooks: Hooks{Delivered: func() { delivered++ }, Failed: func() { failed++ }, Dropped: func(w string) { dropped = append(dropped, w) }}}
	o, err := New(db, []byte("w/"), []byte("m/wseq"), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewIndexedBatch()
	for _, id := range []string{"a", "b"} {
		if ok, err := o.Enqueue(b, id, "ev."+id, []byte(`{"id":"`+id+`"}`)); err != nil || !ok {
			t.Fatalf("enqueue %s: %v %v", id, ok, err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// Both fail once (500, 500): retried after 1 s.
	next, err := o.DeliverRound(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.t.Add(time.Second); !next.Equal(want) || o.Pending() != 2 || failed != 2 {
		t.Fatalf("after two 500s: next %v (want %v), pending %d, failed %d", next, want, o.Pending(), failed)
	}
	// Not due yet: nothing is sent.
	if _, err := o.DeliverRound(context.Background()); err != nil || len(r.got) != 2 {
		t.Fatalf("a round before the retry time sent %d (err %v)", len(r.got)-2, err)
	}
	// A restart keeps them.
	db.Close()
	db = open(t, fs)
	defer db.Close()
	if o, err = New(db, []byte("w/"), []byte("m/wseq"), cfg, opts); err != nil || o.Pending() != 2 {
		t.Fatalf("reopened: pending %d, err %v", o.Pending(), err)
	}
	clk.t = clk.t.Add(time.Second)
	if _, err := o.DeliverRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{`a ev.a {"id":"a"}`, `b ev.b {"id":"b"}`, `a ev.a {"id":"a"}`, `b ev.b {"id":"b"}`}
	if !slices.Equal(r.got, want) || o.Pending() != 0 || delivered != 2 {
		t.Fatalf("sent %q, pending %d, delivered %d; want %q", r.got, o.Pending(), delivered, want)
	}

	// Beyond max-pending: dropped, and the sequence goes on.
	b = db.NewIndexedBatch()
	for _, id := range []string{"c", "d", "e", "f"} {
		ok, err := o.Enqueue(b, id, "ev", []byte(`{}`))
		if err != nil || ok != (id != "f") {
			t.Fatalf("enqueue %s: queued %v, err %v", id, ok, err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dropped, []string{DroppedFull}) {
		t.Fatalf("dropped %q, want [outbox-full]", dropped)
	}
	list, err := o.List(10)
	if err != nil || len(list) != 3 || list[0].Seq != 3 || list[0].ID != "c" {
		t.Fatalf("outbox after the drop: %+v, %v", list, err)
	}
	// A receiver down for max-age: dropped.
	r.mu.Lock()
	r.script = []int{503, 503, 503}
	r.mu.Unlock()
	clk.t = clk.t.Add(2 * time.Hour)
	if _, err := o.DeliverRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	if o.Pending() != 0 || !slices.Equal(dropped, []string{DroppedFull, DroppedMaxAge, DroppedMaxAge, DroppedMaxAge}) {
		t.Fatalf("after max-age: pending %d, dropped %q", o.Pending(), dropped)
	}
}

// TestOutboxTimeout: a receiver that does not answer within the timeout
// is a failed attempt, retried.
func TestOutboxTimeout(t *testing.T) {
	db := open(t, vfs.NewMem())
	defer db.Close()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	o, err := New(db, []byte("w/"), []byte("m/wseq"), Config{URL: srv.URL, Secret: []byte("s"), Timeout: 50 * time.Millisecond, RetryMin: time.Second, RetryMax: time.Second, MaxAge: time.Hour, MaxPending: 10}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewIndexedBatch()
	if _, err := o.Enqueue(b, "x", "ev", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := o.DeliverRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	list, err := o.List(1)
	if err != nil || len(list) != 1 || list[0].Attempts != 1 || list[0].LastError == "" {
		t.Fatalf("after a timeout: %+v, %v", list, err)
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 11: 10 * time.Minute, 100: 10 * time.Minute} {
		if got := Backoff(n, time.Second, 10*time.Minute); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestNewRefusesOverlappingKeys(t *testing.T) {
	db := open(t, vfs.NewMem())
	defer db.Close()
	if _, err := New(db, []byte("w/"), []byte("w/seq"), Config{}, Options{}); err == nil {
		t.Fatal("a sequence key under the prefix was accepted")
	}
}

// quiet keeps Pebble's informational lines out of the test log.
type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
