package sim

import (
	"testing"
	"testing/synctest"
	"time"
)

// The checks that drive a simulated cluster step by step themselves
// (inside TestSim's bubble) share these.

// quietSim is a simulated cluster of seed with no fault and one step of
// the scheduler's own: the check drives it. Close it with closeSim.
func quietSim(t *testing.T, seed uint64) *Sim {
	t.Helper()
	s, err := newSim(Config{Seed: seed, Steps: 1, Faults: map[Fault]int{}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// closeSim closes s, failing the test if that fails.
func closeSim(t *testing.T, s *Sim) {
	t.Helper()
	if err := s.close(); err != nil {
		t.Error(err)
	}
}

// checkedStep is one step of a check that drives s: once the bubble is
// settled, the invariants hold (or the test fails), then next moves s on.
func checkedStep(t *testing.T, s *Sim, next func()) func() {
	return func() {
		synctest.Wait()
		if err := s.inv.check(false); err != nil {
			t.Fatal(err)
		}
		next()
	}
}

// untilLeaderAt takes steps until s has a leader and height blocks,
// failing the test after 10 s of simulated time.
func untilLeaderAt(t *testing.T, s *Sim, height uint64, step func()) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.leader() == nil || s.inv.height < height; step() {
		if time.Now().After(deadline) {
			t.Fatalf("no leader and %d blocks after 10 s (height %d)", height, s.inv.height)
		}
	}
}
