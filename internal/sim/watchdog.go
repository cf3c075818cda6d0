package sim

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
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
//
// A stall has three causes that one goroutine dump cannot tell apart: a
// deadlocked bubble (its goroutines wait and burn no CPU), a goroutine
// looping for ever (it burns all the CPU the process gets, its stack
// moves within the loop), and a process the machine starves (a loaded
// CI host: little CPU, the stack moves on). So the watchdog prints every
// goroutine's stack once at stall, then fails one tick (stall/10) later
// with the stacks again and the CPU time the process used since the
// last step ended.
func Watchdog(stall time.Duration, stop <-chan struct{}) {
	last, since, cpu := watch.steps.Load(), time.Now(), processCPU()
	tick := time.NewTicker(stall / 10)
	defer tick.Stop()
	dumped := false
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if n := watch.steps.Load(); n != last {
			last, since, cpu, dumped = n, time.Now(), processCPU(), false
			continue
		}
		if time.Since(since) < stall {
			continue
		}
		if !dumped {
			buf := make([]byte, 16<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "sim: no scheduler step ended for %v of real time: every goroutine now; the watchdog fails the run in %v, with them again\n%s\n", stall, stall/10, buf)
			dumped = true
			continue
		}
		msg := fmt.Sprintf("sim: no scheduler step ended for %v of real time (the process used %v of CPU meanwhile): the bubble is deadlocked (a goroutine not durably blocked, such as one waiting on a sync.Mutex, keeps its clock from moving; little CPU, stacks unchanged since the dump above), a goroutine loops (CPU near the process's share of the machine, its stack moving within a loop) or the machine starves the process (little CPU, stacks moving on)",
			time.Since(since).Round(time.Millisecond), (processCPU() - cpu).Round(time.Millisecond))
		if s := watch.sim.Load(); s != nil {
			msg += "\n" + s.stallReport()
		}
		debug.SetTraceback("all")
		panic(msg)
	}
}

// processCPU is the CPU time (user and system) the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stallReport names the run and its last events (each with its step),
// for the watchdog.
func (s *Sim) stallReport() string {
	s.recentMu.Lock()
	defer s.recentMu.Unlock()
	return fmt.Sprintf("seed %d\nlast events:\n  %s\nreplay: %s", s.cfg.Seed, strings.Join(s.recent, "\n  "), s.replay())
}
