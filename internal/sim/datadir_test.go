package sim

import "testing"

// dataDirLostPaths (run in TestSim's bubble): the datadir-lost fault
// reaches the paths of the member check that seed 123 (faultSeeds) does
// not: a genesis validator
// cut off from every other node (partitions) waits for answers that do
// not come and gives up (consensus.ErrPeersSilent) instead of
// bootstrapping, and a validator added by governance is refused
// (consensus.ErrDataDirLost) instead of joining with an empty log, or,
// cut off from every running node so that no voter set is told, joins
// granting no vote until it caught up (consensus.JoinUnknown: the
// invariants then check that it applies the same chain). Any other
// start that came up fails the run (invariant datadir-lost). Runs do not
// all replay exactly (docs/architecture.md), so each path has two seeds
// and one of them must show it.
func dataDirLostPaths(t *testing.T) {
	for _, path := range []struct {
		name   string
		seeds  []uint64
		faults map[Fault]int
		shown  func(*Result) bool
	}{
		{"alone: waits, never bootstraps", []uint64{104, 111},
			map[Fault]int{FaultDataDirLost: 1, FaultRestart: 1, FaultPartition: 3, FaultHeal: 1},
			func(r *Result) bool { return r.DataDirLostAlone > 0 && r.FreshStarts > 0 }},
		{"added by governance: refused", []uint64{104, 123},
			map[Fault]int{FaultAddValidator: 3, FaultDataDirLost: 1, FaultRestart: 1},
			func(r *Result) bool { return r.DataDirLostAdded > 0 && r.FreshStarts > 0 }},
		{"added by governance, cut off: joins, no vote until caught up", []uint64{10, 60, 97},
			map[Fault]int{FaultAddValidator: 3, FaultDataDirLost: 1, FaultRestart: 1, FaultPartition: 3, FaultHeal: 1},
			func(r *Result) bool { return r.DataDirLostGated > 0 }},
	} {
		var shown bool
		for _, seed := range path.seeds {
			res := runOne(t, Config{Seed: seed, Steps: 2000, Faults: path.faults})
			t.Logf("%s, seed %d: %s", path.name, seed, res)
			shown = shown || path.shown(res)
		}
		if !shown {
			t.Errorf("%s: no seed of %v showed it", path.name, path.seeds)
		}
	}
}
