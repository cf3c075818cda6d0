package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-ledger/tally/internal/logrepeat"
)

func newWorkers() (*Workers, *atomic.Int64) {
	var failed atomic.Int64
	return &Workers{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Repeats: logrepeat.New(time.Now),
		Failed: func(string) { failed.Add(1) }}, &failed
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLoop: a worker runs its rounds again at once while they report more
// work, waits for its interval or a kick otherwise, counts and records a
// failed round, and stops with Stop, which waits for the round running.
func TestLoop(t *testing.T) {
	w, failed := newWorkers()
	var rounds atomic.Int64
	kick := make(chan struct{}, 1)
	fail := make(chan error, 1)
	w.Loop("follower", time.Hour, kick, func(ctx context.Context) (bool, error) {
		n := rounds.Add(1)
		select {
		case err := <-fail:
			return false, err
		default:
		}
		return n < 3, nil // three rounds at once, then wait
	})
	waitFor(t, "three rounds", func() bool { return rounds.Load() == 3 })
	time.Sleep(20 * time.Millisecond)
	if n := rounds.Load(); n != 3 {
		t.Fatalf("%d rounds before a kick (interval 1h), want 3", n)
	}
	fail <- errors.New("node down")
	Kick(kick)
	waitFor(t, "the failed round counted", func() bool { return failed.Load() == 1 })
	if got := w.LastError(); got != "follower: node down" {
		t.Fatalf("LastError %q", got)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	n := rounds.Load()
	Kick(kick)
	time.Sleep(20 * time.Millisecond)
	if rounds.Load() != n {
		t.Fatal("a round ran after Stop")
	}
}

// TestResolve: learn is retried until it succeeds; a ctx that ends first
// gives the error naming nodes.endpoints and the last failure.
func TestResolve(t *testing.T) {
	w, _ := newWorkers()
	calls := 0
	if err := w.Resolve(context.Background(), func(context.Context) error {
		if calls++; calls < 2 {
			return errors.New("connection refused")
		}
		return nil
	}); err != nil || calls != 2 {
		t.Fatalf("Resolve: %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := w.Resolve(ctx, func(context.Context) error { return errors.New("connection refused") })
	if err == nil || !strings.Contains(err.Error(), "learn the chain from nodes.endpoints") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Resolve with no node: %v", err)
	}
}

type fakeService struct {
	start  func(context.Context) error
	closed int
}

func (f *fakeService) Start(ctx context.Context) error { return f.start(ctx) }
func (f *fakeService) Close() error                    { f.closed++; return nil }

// TestRun: a failed start is closed and returned; one cut short by ctx is
// not an error; a started service runs until ctx ends, then is closed.
func TestRun(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	boom := &fakeService{start: func(context.Context) error { return errors.New("key listen: in use") }}
	if err := Run(context.Background(), log, "svc", boom); err == nil || boom.closed != 1 {
		t.Fatalf("a failed start: %v, closed %d", err, boom.closed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cut := &fakeService{start: func(ctx context.Context) error { return ctx.Err() }}
	if err := Run(ctx, log, "svc", cut); err != nil || cut.closed != 1 {
		t.Fatalf("a start cut short: %v, closed %d", err, cut.closed)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ok := &fakeService{start: func(context.Context) error { return nil }}
	if err := Run(ctx, log, "svc", ok); err != nil || ok.closed != 1 {
		t.Fatalf("a run: %v, closed %d", err, ok.closed)
	}
}

// TestServe: the API answers at Addr; a taken address names the key.
func TestServe(t *testing.T) {
	w, _ := newWorkers()
	if err := w.Serve("127.0.0.1:0", "test API", http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { io.WriteString(rw, "ok") })); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + w.Addr())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	w2, _ := newWorkers()
	if err := w2.Serve(w.Addr(), "test API", http.NotFoundHandler()); err == nil || !strings.HasPrefix(err.Error(), "key listen:") {
		t.Fatalf("a taken address: %v", err)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
}
