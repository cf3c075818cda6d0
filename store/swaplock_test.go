package store

import (
	"runtime/debug"
	"testing"
	"testing/synctest"
	"time"
)

// TestSwapLockWaitsDurably: a goroutine waiting for DB.mu is durably
// blocked for a testing/synctest bubble, so the bubble's clock moves on
// while a shared holder sleeps on it (a checkpoint's WAL sync on the
// cluster simulator's slow disk), and the lock keeps sync.RWMutex's rules:
// the exclusive holder waits for the shared one, and a shared holder that
// comes after a waiting exclusive one goes after it. With a sync.RWMutex
// the bubble deadlocks (internal/sim seed 387); the watchdog, outside the
// bubble on the real clock, turns that into a failure.
func TestSwapLockWaitsDurably(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			debug.SetTraceback("all")
			panic("TestSwapLockWaitsDurably: the bubble deadlocked: a goroutine waiting for DB.mu is not durably blocked")
		}
	}()
	synctest.Test(t, func(t *testing.T) {
		l := newSwapLock()
		start := time.Now()
		var order []string
		l.RLock()
		go func() { // a checkpoint: holds the lock across a slow sync
			time.Sleep(time.Second)
			order = append(order, "reader 1 done")
			l.RUnlock()
		}()
		swapped := make(chan time.Duration)
		go func() { // ReplaceWith
			l.Lock()
			order = append(order, "swap")
			d := time.Since(start)
			time.Sleep(time.Millisecond)
			l.Unlock()
			swapped <- d
		}()
		synctest.Wait() // returns only if the swap waits durably
		read := make(chan time.Duration)
		go func() { // a reader after the waiting swap
			l.RLock()
			order = append(order, "reader 2")
			l.RUnlock()
			read <- time.Since(start)
		}()
		synctest.Wait()
		if d := <-swapped; d != time.Second {
			t.Errorf("the swap got the lock after %s, want 1s (when the checkpoint released it)", d)
		}
		if d := <-read; d != time.Second+time.Millisecond {
			t.Errorf("a later reader got the lock after %s, want 1.001s (after the swap)", d)
		}
		want := []string{"reader 1 done", "swap", "reader 2"}
		if len(order) != len(want) {
			t.Fatalf("order %q, want %q", order, want)
		}
		for i := range want {
			if order[i] != want[i] {
				t.Fatalf("order %q, want %q", order, want)
			}
		}
	})
}
