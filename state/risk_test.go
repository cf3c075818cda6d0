package state

import (
	"math/big"
	"testing"
	"time"
)

// TestFormatTimeMs: the state's own date rendering (it imports no time
// package) agrees with the standard library's over four centuries of leap
// years, month ends and the epoch.
func TestFormatTimeMs(t *testing.T) {
	check := func(ms uint64) {
		t.Helper()
		want := time.UnixMilli(int64(ms)).UTC().Format("2006-01-02T15:04:05.000Z")
		if got := FormatTimeMs(ms); got != want {
			t.Fatalf("FormatTimeMs(%d) = %s, want %s", ms, got, want)
		}
	}
	for _, ms := range []uint64{0, 1, 86_399_999, 86_400_000, 951_782_400_000 /* 2000-02-29 */, 1767225600000, 4_102_444_800_000 /* 2100-01-01 */} {
		check(ms)
	}
	for ms := uint64(0); ms < 13_000_000_000_000; ms += 86_400_000*17 + 3_723_456 {
		check(ms)
	}
}

// TestVelocityBuckets: the counters keep at most the buckets of the two
// windows however long an account sends, and each window sums exactly
// the buckets decision 14 names.
func TestVelocityBuckets(t *testing.T) {
	var v Velocity
	t0 := uint64(1767225600000)
	for i := uint64(0); i < 3*24*60; i++ { // one transfer a minute for three days
		v.add(t0+i*60_000, 1, big.NewInt(1))
		if len(v.Minutes) > hourBuckets || len(v.Hours) > dayBuckets {
			t.Fatalf("after %d transfers: %d minute and %d hour buckets", i+1, len(v.Minutes), len(v.Hours))
		}
	}
	end := t0 + (3*24*60-1)*60_000 // the last transfer, at minute 59 of its hour
	// The hour: the bucket of minutes 55-59 and the 11 before it: 60 transfers.
	if w := v.Hour(end); w.Transfers != 60 || w.Amount.Int64() != 60 {
		t.Fatalf("hour window %+v, want 60", w)
	}
	// The day: the current hour and the 23 before it: 24 * 60 transfers.
	if w := v.Day(end); w.Transfers != 24*60 {
		t.Fatalf("day window %+v, want %d", w, 24*60)
	}
	// Five minutes on, the oldest 5-minute bucket has left the hour.
	if w := v.Hour(end + 5*60_000); w.Transfers != 55 {
		t.Fatalf("hour window 5 minutes later %+v, want 55", w)
	}
	// A window at the start of time is not below slot 0.
	var early Velocity
	early.add(1000, 2, big.NewInt(5))
	if w := early.Hour(1000); w.Transfers != 2 || w.Amount.Int64() != 5 {
		t.Fatalf("window at the epoch %+v", w)
	}
}
