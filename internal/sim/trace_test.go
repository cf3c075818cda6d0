package sim

import "testing"

// TestRunTimes: a snapshot's name in an event is written without its
// clock time, so that two runs of one seed started at different clock
// times (one bubble for every run) write one trace.
func TestRunTimes(t *testing.T) {
	s := &Sim{}
	for _, tc := range []struct{ in, want string }{
		{"n1 halted: sync /data/raft/snapshots/2-23-946685066552.tmp: EIO", "n1 halted: sync /data/raft/snapshots/2-23-T.tmp: EIO"},
		{"n1 halted: sync /data/raft/snapshots/2-23-946687609032.tmp: EIO", "n1 halted: sync /data/raft/snapshots/2-23-T.tmp: EIO"},
		{"deliver append n2->n1 true", "deliver append n2->n1 true"},
		{"snapshots/x-1-2", "snapshots/x-1-2"},
	} {
		if got := s.runTimes(tc.in); got != tc.want {
			t.Errorf("runTimes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
