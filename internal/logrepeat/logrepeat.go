package logrepeat

import (
	"regexp"
	"sync"
	"time"
)

const (
	// First is the interval after a kind's first line; each line logged
	// after it doubles the interval.
	First = 5 * time.Second
	// Max caps the interval: a peer down for a day is logged once per Max.
	Max = 5 * time.Minute
	// Forget is how long a kind stays quiet before it starts afresh.
	Forget = 2 * Max
	// MaxKeys bounds the kinds tracked (one per failure and peer); past it,
	// kinds quiet for Forget are dropped, and if none is, a new kind's
	// lines are all logged rather than tracked.
	MaxKeys = 1024
)

// Limiter decides, per kind of line, which repeats are logged. It is safe
// for concurrent use.
type Limiter struct {
	mu   sync.Mutex
	now  func() time.Time
	keys map[string]*entry
}

type entry struct {
	next, last time.Time
	every      time.Duration
	suppressed int
}

// New returns a Limiter reading the time from now (time.Now but in tests).
func New(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, keys: map[string]*entry{}}
}

// Allow reports whether a line of kind key is logged now and, when it is,
// how many lines of its kind were held back since the last one logged.
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e := l.keys[key]
	if e == nil || now.Sub(e.last) > Forget {
		if e == nil && len(l.keys) >= MaxKeys {
			for k, old := range l.keys {
				if now.Sub(old.last) > Forget {
					delete(l.keys, k)
				}
			}
			if len(l.keys) >= MaxKeys {
				return true, 0
			}
		}
		l.keys[key] = &entry{next: now.Add(First), last: now, every: First}
		return true, 0
	}
	e.last = now
	if now.Before(e.next) {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.suppressed = 0
	e.every = min(2*e.every, Max)
	e.next = now.Add(e.every)
	return true, n
}

// Reset forgets kind key (its failure is over: the peer answers again), so
// that the next failure is logged at once; it returns how many lines of
// the kind were held back since the last one logged.
func (l *Limiter) Reset(key string) (suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.keys[key]; e != nil {
		suppressed = e.suppressed
		delete(l.keys, key)
	}
	return suppressed
}

// Bound is the most lines of one kind a Limiter logs for failures
// repeating during d, however often they come: the first, then one at each
// step of the doubling interval that d reaches.
func Bound(d time.Duration) int {
	n := 1
	for at, every := First, First; at <= d; at, every = at+min(2*every, Max), min(2*every, Max) {
		n++
	}
	return n
}

// numbers (with a unit: 250ms, 1.5s) vary between repeats of one failure:
// a backoff, an elapsed time, a height, a port.
var numbers = regexp.MustCompile(`[0-9][0-9.]*[a-zµ]*`)

// Kind is the kind of a failure's text for Allow: the text without its
// numbers, so that one failure repeating is one kind and another failure
// (or the same one with another peer) is logged at once.
func Kind(text string) string {
	return numbers.ReplaceAllString(text, "")
}
