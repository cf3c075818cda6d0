package store

import (
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// grantInterval is how often the gate offers the compactions Pebble is
// waiting to run, as Pebble's own ConcurrencyLimitScheduler does (it
// cannot tell when a flush raised the allowed number).
const grantInterval = 100 * time.Millisecond

// compactionGate is the CompactionScheduler of a watched Pebble instance
// (background.go): Pebble's default scheduling (as many compactions at
// once as DB.GetAllowedWithoutPermission allows, offered again every
// grantInterval and whenever one ends), except that no compaction is
// granted while the backoff of failed compactions runs or once the
// disk's failure was declared (background.mayCompact). It is the one
// seam where a compaction can be held back without a lock of Pebble's
// held: TrySchedule is called under DB.mu, so it only answers, and the
// granting goroutine calls back into the DB holding no lock of its own.
// Register must be called once (Pebble does, at Open); a gate serves one
// instance.
type compactionGate struct {
	bg *background
	// db is set by Register, before any other call.
	db pebble.DBForCompaction

	mu           sync.Mutex
	running      int  // compactions granted and not yet Done
	lastAllowed  int  // DB.GetAllowedWithoutPermission when last read
	registered   bool // the granting goroutine was started
	unregistered bool // once true, nothing is granted
	poke         chan struct{}
	stop         chan struct{}
	stopOnce     sync.Once
	stopped      chan struct{} // closed when the granting goroutine ended
}

var _ pebble.CompactionScheduler = (*compactionGate)(nil)

func newCompactionGate(bg *background) *compactionGate {
	return &compactionGate{bg: bg, poke: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
}

// Register starts the goroutine that offers waiting compactions.
func (g *compactionGate) Register(_ int, db pebble.DBForCompaction) {
	g.mu.Lock()
	g.db, g.registered = db, true
	g.mu.Unlock()
	go g.granter()
}

// Unregister stops granting and waits until no call into the DB is left
// (Pebble's Close calls it without DB.mu held). It may be called more
// than once: the store calls it too (background.close), before Close and
// where Pebble would not, after an Open that failed once it registered.
func (g *compactionGate) Unregister() {
	g.mu.Lock()
	g.unregistered = true
	registered := g.registered
	g.mu.Unlock()
	g.stopOnce.Do(func() { close(g.stop) })
	if registered {
		<-g.stopped
	}
}

// TrySchedule answers Pebble's request to start a compaction now. It is
// called with DB.mu held: it takes only the background's and its own
// mutex (ordered after DB.mu, as background.ended is).
func (g *compactionGate) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	if ok, _ := g.bg.mayCompact(); !ok {
		return false, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastAllowed = g.db.GetAllowedWithoutPermission()
	if g.unregistered || g.lastAllowed <= g.running {
		return false, nil
	}
	g.running++
	return true, grant{g}
}

// UpdateGetAllowedWithoutPermission is Pebble's hint (after a flush) that
// more compactions may be allowed: if the number went up, the granter
// looks at once, as Pebble's own scheduler does.
func (g *compactionGate) UpdateGetAllowedWithoutPermission() {
	allowed := g.db.GetAllowedWithoutPermission()
	g.mu.Lock()
	more := allowed > g.lastAllowed
	g.lastAllowed = allowed
	g.mu.Unlock()
	if more {
		g.wake()
	}
}

func (g *compactionGate) wake() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

// granter offers waiting compactions every grantInterval, when woken,
// and when a backoff ends, until Unregister.
func (g *compactionGate) granter() {
	defer close(g.stopped)
	tick := time.NewTicker(grantInterval)
	defer tick.Stop()
	var backoff <-chan time.Time
	for {
		select {
		case <-tick.C:
		case <-g.poke:
		case <-backoff:
		case <-g.stop:
			return
		}
		backoff = nil
		if after := g.grant(); after > 0 {
			backoff = time.After(after)
		}
	}
}

// grant starts waiting compactions while more are allowed; held back by
// a backoff, it returns how long that lasts.
func (g *compactionGate) grant() (after time.Duration) {
	for {
		ok, after := g.bg.mayCompact()
		if !ok {
			return after
		}
		g.mu.Lock()
		g.lastAllowed = g.db.GetAllowedWithoutPermission()
		if g.unregistered || g.lastAllowed <= g.running {
			g.mu.Unlock()
			return 0
		}
		g.running++
		g.mu.Unlock()
		if waiting, _ := g.db.GetWaitingCompaction(); !waiting || !g.db.Schedule(grant{g}) {
			g.done()
			return 0
		}
	}
}

// done counts a granted compaction that ended (or was not taken).
func (g *compactionGate) done() {
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
}

// grant is the handle of one granted compaction.
type grant struct{ g *compactionGate }

func (grant) Started()                                          {}
func (grant) MeasureCPU(pebble.CompactionGoroutineKind)         {}
func (grant) CumulativeStats(pebble.CompactionGrantHandleStats) {}

// Done is called by Pebble, holding no lock, when the compaction ended:
// the granter offers the next one (if the backoff allows).
func (h grant) Done() {
	h.g.done()
	h.g.wake()
}
