package logrepeat

import (
	"fmt"
	"testing"
	"time"
)

// TestLimiter: a failure repeating at a fixed rate (hashicorp/raft's
// heartbeat to a down peer comes every 250 ms to 1 s; a dialer at its cap
// every 10 s) is logged at 0 s, 5 s, 15 s, 35 s, 75 s, ... with the count
// held back, never more than Bound allows, whatever the rate.
func TestLimiter(t *testing.T) {
	for _, c := range []struct {
		every, during time.Duration
		logged        []time.Duration // when lines were logged
	}{
		{time.Second, time.Minute, []time.Duration{0, 5 * time.Second, 15 * time.Second, 35 * time.Second}},
		{250 * time.Millisecond, 20 * time.Second, []time.Duration{0, 5 * time.Second, 15 * time.Second}},
		{10 * time.Second, 2 * time.Minute, []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second}},
		{7 * time.Minute, 30 * time.Minute, []time.Duration{0, 7 * time.Minute, 14 * time.Minute, 21 * time.Minute, 28 * time.Minute}},
	} {
		t.Run(fmt.Sprintf("every %v for %v", c.every, c.during), func(t *testing.T) {
			start := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
			now := start
			l := New(func() time.Time { return now })
			var logged []time.Duration
			total, shown := 0, 0
			for ; now.Sub(start) <= c.during; now = now.Add(c.every) {
				total++
				ok, n := l.Allow("failed to heartbeat to peer A")
				if !ok {
					continue
				}
				logged = append(logged, now.Sub(start))
				shown += 1 + n
				// Another peer's failures are their own kind.
				if ok, _ := l.Allow(fmt.Sprint("peer B ", total)); !ok {
					t.Fatal("a new kind was held back")
				}
			}
			if fmt.Sprint(logged) != fmt.Sprint(c.logged) {
				t.Fatalf("logged at %v, want %v", logged, c.logged)
			}
			if len(logged) > Bound(c.during) {
				t.Fatalf("%d lines in %v, Bound says at most %d", len(logged), c.during, Bound(c.during))
			}
			// Every failure is either logged or counted in a later line,
			// but those since the last line.
			if pending := l.Reset("failed to heartbeat to peer A"); shown+pending != total {
				t.Fatalf("%d shown + %d pending, %d happened", shown, pending, total)
			}
			if ok, n := l.Allow("failed to heartbeat to peer A"); !ok || n != 0 {
				t.Fatal("after Reset the next failure is not logged at once")
			}
		})
	}
}

// TestLimiterForgets: a kind quiet for Forget starts afresh; past MaxKeys
// kinds, quiet kinds are dropped, and if none is, lines are all logged.
func TestLimiterForgets(t *testing.T) {
	now := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	l := New(func() time.Time { return now })
	l.Allow("a")
	now = now.Add(time.Second)
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("a repeat within First was logged")
	}
	now = now.Add(Forget + time.Second)
	if ok, n := l.Allow("a"); !ok || n != 0 {
		t.Fatalf("after a quiet spell: %v, %d held", ok, n)
	}
	for i := range MaxKeys {
		l.Allow(fmt.Sprint(i))
	}
	if ok, _ := l.Allow("one too many"); !ok {
		t.Fatal("a kind past MaxKeys was held back")
	}
	if ok, _ := l.Allow("one too many"); !ok {
		t.Fatal("an untracked kind past MaxKeys was held back")
	}
	now = now.Add(Forget + time.Second)
	l.Allow("new")
	if len(l.keys) != 1 {
		t.Fatalf("%d kinds tracked after all went quiet, want 1", len(l.keys))
	}
}

func TestBound(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, 4 * time.Second: 1, 5 * time.Second: 2, 15 * time.Second: 3, time.Minute: 4, 10 * time.Minute: 7, time.Hour: 17} {
		if got := Bound(d); got != want {
			t.Errorf("Bound(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestKind(t *testing.T) {
	same := [][2]string{
		{"failed to heartbeat to: peer=16Uiu2HAmA backoff time=10ms", "failed to heartbeat to: peer=16Uiu2HAmA backoff time=2.56s"},
		{"follow: dial tcp 127.0.0.1:8545: connect: connection refused", "follow: dial tcp 127.0.0.1:8545: connect: connection refused"},
		{"failed to contact: server-id=X time=251.25ms", "failed to contact: server-id=X time=1m2.5s"},
	}
	for _, c := range same {
		if Kind(c[0]) != Kind(c[1]) {
			t.Errorf("%q and %q are different kinds", c[0], c[1])
		}
	}
	if Kind("failed to heartbeat to: peer=16Uiu2HAmA") == Kind("failed to heartbeat to: peer=16Uiu2HAmB") {
		t.Error("two peers' failures are one kind")
	}
	if Kind("follow: connection refused") == Kind("follow: block 7: parent hash mismatch") {
		t.Error("two failures are one kind")
	}
}
