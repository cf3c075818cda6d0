package sim

import (
	"testing"
	"time"
)

// TestStallMeter pins what the watchdog counts as a stall: the real time
// of its ticks since the last step ended, a step resetting it, and a late
// tick (the process frozen: stopped, suspended or starved) adding at most
// two intervals, so that a frozen process does not fail as deadlocked.
func TestStallMeter(t *testing.T) {
	const every = 30 * time.Second
	start := time.Unix(0, 0)
	tests := []struct {
		name  string
		ticks []time.Duration // each tick's time after the previous one
		steps []int64         // the steps ended at each tick
		want  time.Duration
		moved bool // whether the last tick saw a step end
	}{
		{"ticks on time, no step", []time.Duration{every, every, every}, []int64{5, 5, 5}, 3 * every, false},
		{"a step resets", []time.Duration{every, every, every}, []int64{5, 5, 6}, 0, true},
		{"stalled again after a step", []time.Duration{every, every, every}, []int64{6, 5, 5}, every, false},
		{"a frozen process's late tick counts two intervals", []time.Duration{every, 10 * time.Minute}, []int64{5, 5}, 3 * every, false},
		{"a short tick counts as it is", []time.Duration{every, time.Second}, []int64{5, 5}, every + time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := stallMeter{every: every, prev: start, last: 5}
			now := start
			var got time.Duration
			var moved bool
			for i, d := range tt.ticks {
				now = now.Add(d)
				got, moved = m.observe(now, tt.steps[i])
			}
			if got != tt.want || moved != tt.moved {
				t.Fatalf("stall %v, progressed %v; want %v, %v", got, moved, tt.want, tt.moved)
			}
		})
	}
}
