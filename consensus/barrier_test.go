package consensus

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestAwaitBarrierRetriesWhileLeading: a new leader whose Barrier fails
// while it still leads (hashicorp/raft's ErrLeadershipTransferInProgress,
// when it is elected again before a transfer it started has timed out)
// tries again until the barrier passes, so that it builds; it gives up
// only once it no longer leads or is stopped. Giving up at the first
// failure left a leader that never built (the cluster simulator, seed 22).
func TestAwaitBarrierRetriesWhileLeading(t *testing.T) {
	tests := []struct {
		name     string
		failures int  // barriers that fail before one passes
		leads    bool // whether the node keeps leading
		cancel   bool // whether the context ends first
		want     bool
		calls    int
	}{
		{"passes at once", 0, true, false, true, 1},
		{"transfer in progress, then passes", 3, true, false, true, 4},
		{"fails after losing the lead", 3, false, false, false, 1},
		{"stopped while retrying", 100, true, true, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			calls := 0
			barrier := func() error {
				calls++
				if calls <= tc.failures {
					return raft.ErrLeadershipTransferInProgress
				}
				return nil
			}
			got := awaitBarrier(ctx, barrier, func() bool { return tc.leads }, time.Millisecond, testLogger(t))
			if got != tc.want || calls != tc.calls {
				t.Errorf("awaitBarrier = %v after %d barriers, want %v after %d", got, calls, tc.want, tc.calls)
			}
		})
	}
}
