package sim

import (
	"fmt"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
)

// A run whose bubble can no longer move does not fail, it hangs: when a
// goroutine waits on a sync.Mutex (not durably blocked, for synctest)
// whose holder sleeps on the bubble's clock, synctest.Wait never returns
// and the clock never reaches the sleeper's wake-up (seed 387 did, on
// store.DB's lock; fs.go). The watchdog, started outside the bubble on
// the real clock, turns that into a failure that names the seed, its last
// events and every goroutine's stack.

// watch is what the watchdog reads: the run under way and how many steps
// the scheduler ended so far (in every run of the process).
var watch struct {
	steps atomic.Int64
	sim   atomic.Pointer[Sim]
}

// watchStep tells the watchdog that s ended a step.
func watchStep(s *Sim) {
	watch.sim.Store(s)
	watch.steps.Add(1)
}

// Watchdog fails the process when no scheduler step ends for stall of
// real time, until stop is closed. It must run outside the synctest
// bubble (its clock is the machine's).
func Watchdog(stall time.Duration, stop <-chan struct{}) {
	last, since := watch.steps.Load(), time.Now()
	tick := time.NewTicker(stall / 10)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if n := watch.steps.Load(); n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) < stall {
			continue
		}
		msg := "sim: no scheduler step ended for " + stall.String() + " of real time: the bubble is deadlocked (a goroutine not durably blocked, such as one waiting on a sync.Mutex, keeps its clock from moving)"
		if s := watch.sim.Load(); s != nil {
			msg += "\n" + s.stallReport()
		}
		debug.SetTraceback("all")
		panic(msg)
	}
}

// stallReport names the run and its last events (each with its step),
// for the watchdog.
func (s *Sim) stallReport() string {
	s.recentMu.Lock()
	defer s.recentMu.Unlock()
	return fmt.Sprintf("seed %d\nlast events:\n  %s\nreplay: %s", s.cfg.Seed, strings.Join(s.recent, "\n  "), s.replay())
}
