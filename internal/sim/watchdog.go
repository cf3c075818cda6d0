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
// Only time the process could run counts: a tick that comes late (the
// whole process was frozen: stopped, or its machine suspended or
// overloaded so much that not even this goroutine ran) adds at most two
// tick intervals, since a bubble goroutine that got no CPU either cannot
// have deadlocked meanwhile. Seed 132 failed this way once: its main
// goroutine was runnable, preempted at a function's entry, in a Get on a
// state database of one memtable and one table, with every other
// goroutine durably blocked.
//
// A stall has three causes that one goroutine dump cannot tell apart: a
// deadlocked bubble (its goroutines wait and burn no CPU), a goroutine
// looping for ever (it burns all the CPU the process gets, its stack
// moves within the loop), and a process the machine starves (little
// CPU, the stack moves on). So the watchdog prints every goroutine's
// stack once at stall, then fails one tick (stall/10) later with the
// stacks again and the CPU time the process used since the last step
// ended.
func Watchdog(stall time.Duration, stop <-chan struct{}) {
	every := stall / 10
	m := stallMeter{every: every, prev: time.Now(), last: watch.steps.Load()}
	cpu := processCPU()
	tick := time.NewTicker(every)
	defer tick.Stop()
	dumped := false
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		stalled, progressed := m.observe(time.Now(), watch.steps.Load())
		if progressed {
			cpu, dumped = processCPU(), false
			continue
		}
		if stalled < stall {
			continue
		}
		if !dumped {
			buf := make([]byte, 16<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "sim: no scheduler step ended for %v of real time: every goroutine now; the watchdog fails the run in %v, with them again\n%s\n", stall, every, buf)
			dumped = true
			continue
		}
		msg := fmt.Sprintf("sim: no scheduler step ended for %v of real time (the process used %v of CPU meanwhile): the bubble is deadlocked (a goroutine not durably blocked, such as one waiting on a sync.Mutex, keeps its clock from moving; little CPU, stacks unchanged since the dump above), a goroutine loops (CPU near the process's share of the machine, its stack moving within a loop) or the machine starves the process (little CPU, stacks moving on)",
			stalled.Round(time.Millisecond), (processCPU() - cpu).Round(time.Millisecond))
		if s := watch.sim.Load(); s != nil {
			msg += "\n" + s.stallReport()
		}
		debug.SetTraceback("all")
		panic(msg)
	}
}

// stallMeter measures, from the watchdog's ticks (every apart), the real
// time since the scheduler last ended a step, counting at most two
// intervals for a late tick (the process was frozen).
type stallMeter struct {
	every   time.Duration
	prev    time.Time // the last tick
	last    int64     // the steps ended at the last tick
	stalled time.Duration
}

// observe takes a tick at now, when steps steps have ended: it returns
// the stall so far, or progressed when a step ended since the last tick.
func (m *stallMeter) observe(now time.Time, steps int64) (stalled time.Duration, progressed bool) {
	gap := min(now.Sub(m.prev), 2*m.every)
	m.prev = now
	if steps != m.last {
		m.last, m.stalled = steps, 0
		return 0, true
	}
	m.stalled += gap
	return m.stalled, false
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
