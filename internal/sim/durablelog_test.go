package sim

import (
	"strings"
	"testing"
)

// TestDurableLog: a restarted node's state may be past its Raft log (and
// snapshot) only by what a snapshot restore gave it. The first row is seed
// 47's n1 (with branch simrepro-hooks' OnWake hooks): it installed the
// leader's snapshot labelled 17 whose checkpoint held index 18, and crashed
// before its log reached 18; the rule before this one (applied <= raftLast)
// failed that correct run. The other failing rows are what the invariant
// is for: a Raft log that lost an entry it had synced and handed to the
// FSM, with or without a snapshot restore before.
func TestDurableLog(t *testing.T) {
	for _, c := range []struct {
		name                       string
		raftLast, applied, restore uint64
		ok                         bool
	}{
		{"seed 47: state from a snapshot past its label", 17, 18, 18, true},
		{"log at the state", 18, 18, 0, true},
		{"log past the state", 20, 18, 0, true},
		{"log past a restore", 25, 25, 18, true},
		{"empty log, nothing applied", 0, 0, 0, true},
		{"log lost an applied entry", 17, 18, 0, false},
		{"log lost entries applied after a restore", 17, 20, 18, false},
		{"restore below the state the log lost", 17, 18, 17, false},
	} {
		err := durableLog(1, c.raftLast, c.applied, c.restore)
		if (err == nil) != c.ok {
			t.Errorf("%s: durableLog(last %d, applied %d, restored %d) = %v, want ok %v", c.name, c.raftLast, c.applied, c.restore, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "invariant durable-log: n1") {
			t.Errorf("%s: error %q does not name the invariant and node", c.name, err)
		}
	}
}
