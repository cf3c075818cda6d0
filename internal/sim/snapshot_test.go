package sim

import "testing"

// snapshotSeeds pins seeds whose runs take Raft snapshots and in which a
// node restarted after a crash is brought back by InstallSnapshot (the
// leader's log no longer reaching it), with the invariants checked after
// every step as in any run.
var snapshotSeeds = []struct {
	seed   uint64
	faults map[Fault]int
}{
	{116, map[Fault]int{FaultCrash: 5, FaultRestart: 5}},
}

// snapshotKinds runs each pinned seed and asserts that snapshots were
// taken and installed into a restarted node.
func snapshotKinds(t *testing.T) {
	for _, ss := range snapshotSeeds {
		res := runOne(t, Config{Seed: ss.seed, Steps: *stepsFlag, Faults: ss.faults})
		if res.Snapshots == 0 || res.Rejoins == 0 {
			t.Errorf("seed %d (faults %v): %d snapshots taken, %d installed into a restarted node; want both", ss.seed, ss.faults, res.Snapshots, res.Rejoins)
		}
	}
}
