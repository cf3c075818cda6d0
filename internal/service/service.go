package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tally-ledger/tally/internal/logrepeat"
)

// Workers serves a service's API and runs its workers. The zero value is
// not usable: set Log and Repeats (Failed may be nil).
type Workers struct {
	Log *slog.Logger
	// Repeats holds back a failure logged again and again (a node down).
	Repeats *logrepeat.Limiter
	// Failed counts a failed round of a worker (a metric).
	Failed func(worker string)

	ln       net.Listener
	srv      *http.Server
	httpDone chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// lastErr is the last failed round's error, for a status page.
	lastErr atomic.Pointer[string]
}

// Serve listens on listen (the config's key listen) and serves h in the
// background; api names it in the log ("order API").
func (w *Workers) Serve(listen, api string, h http.Handler) error {
	var err error
	if w.ln, err = net.Listen("tcp", listen); err != nil {
		return fmt.Errorf("key listen: %w", err)
	}
	w.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	w.httpDone = make(chan struct{})
	go func() {
		defer close(w.httpDone)
		if err := w.srv.Serve(w.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.Log.Error(api+" stopped", "err", err)
		}
	}()
	return nil
}

// Addr is the API's address, once served.
func (w *Workers) Addr() string {
	if w.ln == nil {
		return ""
	}
	return w.ln.Addr().String()
}

// LastError is the last failed round's "<worker>: <error>" ("" if none).
func (w *Workers) LastError() string {
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// Loop starts a worker that runs round every interval (at once again when
// it reports more work, or when kicked) until Stop.
func (w *Workers) Loop(name string, interval time.Duration, kicked chan struct{}, round func(context.Context) (bool, error)) {
	if w.ctx == nil {
		w.ctx, w.cancel = context.WithCancel(context.Background())
	}
	ctx := w.ctx
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		failing := "" // the kind of the last round's failure
		for {
			more, err := round(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				if w.Failed != nil {
					w.Failed(name)
				}
				msg := fmt.Sprintf("%s: %v", name, err)
				w.lastErr.Store(&msg)
				// A node down fails every round the same way: that is
				// logged once per doubling interval (logrepeat).
				failing = name + ": " + logrepeat.Kind(err.Error())
				if ok, suppressed := w.Repeats.Allow(failing); ok {
					w.Log.Warn("round failed", "worker", name, "repeats_suppressed", suppressed, "err", err)
				}
				more = false
			} else if failing != "" {
				w.Repeats.Reset(failing) // the next failure is logged at once
				failing = ""
			}
			if more {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-kicked:
			case <-time.After(interval):
			}
		}
	}()
}

// Stop shuts the API down (waiting up to 5 s for its requests), then
// stops the workers and waits for their rounds.
func (w *Workers) Stop() error {
	var err error
	if w.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = w.srv.Shutdown(ctx)
		cancel()
		<-w.httpDone
	}
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
	return err
}

// Resolve calls learn until it succeeds, retrying after 500 ms, doubling
// to 10 s, while no node answers (logged once per doubling interval),
// until ctx ends.
func (w *Workers) Resolve(ctx context.Context, learn func(context.Context) error) error {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := learn(ctx)
		if err == nil {
			return nil
		}
		if ok, suppressed := w.Repeats.Allow("resolve"); ok {
			w.Log.Warn("no node answers; retrying (repeats logged once per doubling interval)", "attempt", attempt, "retry_in", delay, "repeats_suppressed", suppressed, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("learn the chain from nodes.endpoints: %w (last: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// Service is what Run runs: a service New opened.
type Service interface {
	Start(context.Context) error
	Close() error
}

// Run starts s and runs it until ctx ends, then closes it: the whole of
// a service's command once New opened it. A start that ctx cut short is
// not an error; name is the service's in the log ("monitor").
func Run(ctx context.Context, log *slog.Logger, name string, s Service) error {
	if err := s.Start(ctx); err != nil {
		s.Close()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	<-ctx.Done()
	log.Info(name + " stopping")
	return s.Close()
}

// Kick wakes a worker without waiting for its tick.
func Kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
