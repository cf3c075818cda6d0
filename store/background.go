package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrDiskFailed wraps every error of a database whose disk failed a
// write Pebble cannot go on from (DB.DiskFailed; the Raft log's
// background jobs, WatchBackground).
var ErrDiskFailed = errors.New("database disk failed")

// Pebble's background jobs on a failing disk. What Pebble v2.1.7 does
// with a failed write in a flush (a memtable written out as an sstable)
// or a compaction (DB.flush, DB.compact, DB.handleCompactFailure):
//
//   - a failed flush (an sstable's create, write or sync, a directory
//     sync) is reported to EventListener.BackgroundError and tried again
//     at once, for ever, with no backoff ("TODO(peter): count consecutive
//     flush errors and backoff"): on a disk that stays broken, a busy
//     loop while the memtables and the write-ahead log grow;
//   - a failed compaction is reported there too and tried again when it
//     is picked again; its input tables outside L0 are left alone for
//     30 s (problem spans), those of L0 are not;
//   - a failed MANIFEST or marker write in either is not reported there:
//     Pebble calls Logger.Fatalf (FatalError);
//   - BackgroundError also hears of errors that are no failed job: a
//     disk-usage query that failed after a job, a table whose statistics
//     could not be read.
//
// Pebble recovers from a transient failure by itself: the retry writes
// the same memtable again, and nothing was lost (the write-ahead log
// still holds it). So one failure is no reason to halt, but a failure
// that lasts is: the store counts failed jobs of each kind in a row
// (FlushEnd and CompactionEnd with an error; a job of that kind that
// writes a table ends the run) and backs the retries off (bgBackoff,
// doubling up to bgMaxBackoff): a flush waits before it creates its
// first table (beforeTable: Pebble holds no lock while a job creates its
// output, DB.runCompaction, so the wait stops nothing else), and a
// compaction is not granted until its backoff has passed
// (compactionGate, Pebble's CompactionScheduler: a compaction can fail
// reading its inputs before it creates any table, and Pebble picks an L0
// compaction again as soon as one failed, so only its scheduling can
// space the retries). Once bgFailLimit jobs of a kind in a row have
// failed (about 3.5 s of retries) the store declares the disk failed:
// the database refuses checkpoints (they wait for a flush), its failure
// hook halts the node (OnDiskFailure), no compaction is granted any
// more, and every later table creation waits until the database is
// closed and then fails, so that Pebble's retries stop instead of
// spinning. A flush can fail without creating a table, on the sync of
// the database's directory, so that sync is gated too (dirSync). Flushes and compactions are counted apart: compactions that
// fail reading a table run beside flushes that succeed (they read no
// table), and must not be reset by them. The other errors are logged
// only.
//
// A failure met before Open returned cannot be stopped that way: Open
// waits for the flush of the write-ahead log it replayed, and Pebble
// retries it for ever. Then the goroutine creating the table panics with
// a *FatalError, which ends the process, as a failed MANIFEST write does
// there: the node does not start, and says why.
const (
	bgFailLimit  = 8
	bgBackoff    = 50 * time.Millisecond
	bgMaxBackoff = time.Second
)

// jobKind is a kind of background job the store counts failures of.
type jobKind int

const (
	flushJob jobKind = iota
	compactionJob
	jobKinds
)

func (k jobKind) String() string {
	if k == flushJob {
		return "flush"
	}
	return "compaction"
}

// background watches the background jobs of one Pebble instance (see
// above) and gates the creation of their tables and the start of its
// compactions.
type background struct {
	dir string
	log *slog.Logger
	// failed is called once, in a goroutine of its own, when the run of
	// failures is declared persistent.
	failed func(error)

	mu      sync.Mutex
	run     [jobKinds]int       // failed jobs of each kind in a row
	retryAt [jobKinds]time.Time // no job of the kind starts before (backoff)
	last    error               // the last failed job's error
	stopped bool                // the failure was declared: tables wait for release
	opened  bool                // Open returned
	release chan struct{}
	once    sync.Once
	// stop is closed when the failure is declared, cause set before.
	stop  chan struct{}
	cause error
	// dirFails counts the syncs of the database's directory that failed
	// in a row; dirRetryAt is when the next may start (dirSync).
	dirFails   int
	dirRetryAt time.Time
	// gate schedules the instance's compactions (compactions.go).
	gate *compactionGate
	// health stops the watch for a stalled disk (stall.go).
	health io.Closer
}

func newBackground(dir string, log *slog.Logger, failed func(error)) *background {
	return &background{dir: dir, log: log, failed: failed, release: make(chan struct{}), stop: make(chan struct{})}
}

// watch sets po's EventListener, FS (fs wrapped) and CompactionScheduler
// to watch the background jobs of the instance in dir, and its disk for
// stalls (stall.go). The stall watch times the operations on fs itself:
// a table's creation waiting out its backoff in tableFS is no stall.
func watch(po *pebble.Options, fs vfs.FS, dir string, log *slog.Logger, failed func(error), stalls Stalls) *background {
	b := newBackground(dir, log, failed)
	po.EventListener = b.listener()
	fs, b.health = stalls.watch(fs, dir, log)
	po.FS = tableFS{FS: fs, dir: dir, bg: b}
	b.gate = newCompactionGate(b)
	po.Experimental.CompactionScheduler = b.gate
	return b
}

// listener is the EventListener of the watched instance.
func (b *background) listener() *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			b.log.Error("pebble background error", "component", "pebble", "dir", b.dir, "err", err.Error())
		},
		FlushEnd: func(info pebble.FlushInfo) {
			// An empty flush ("pebble: empty table") is no failure.
			if info.Err != nil && len(info.Output) == 0 && strings.Contains(info.Err.Error(), "empty table") {
				info.Err = nil
			}
			b.ended(flushJob, info.Err, len(info.Output) > 0)
		},
		CompactionEnd: func(info pebble.CompactionInfo) {
			if errors.Is(info.Err, pebble.ErrCancelledCompaction) {
				return
			}
			b.ended(compactionJob, info.Err, len(info.Output.Tables) > 0)
		},
	}
}

// ended counts a job of kind that ended with err (nil: done); wrote says
// it wrote a table. Pebble calls it with its DB.mu held: the failure hook
// runs in a goroutine of its own.
func (b *background) ended(kind jobKind, err error, wrote bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.release:
		// The database is closing: a job cut short by it (beforeTable)
		// or failing during it says nothing more of the disk, and a
		// failure declared now would halt a node that is stopping.
		return
	default:
	}
	if err == nil {
		if wrote && b.run[kind] > 0 && !b.stopped {
			b.log.Info("pebble background job succeeded again", "component", "pebble", "dir", b.dir, "job", kind.String(), "failed_before", b.run[kind])
			b.run[kind] = 0
			b.retryAt[kind] = time.Time{}
		}
		return
	}
	b.run[kind]++
	b.retryAt[kind] = time.Now().Add(min(bgBackoff<<min(b.run[kind]-1, 10), bgMaxBackoff))
	b.last = fmt.Errorf("%s: %w", kind, err)
	if b.run[kind] < bgFailLimit || b.stopped {
		return
	}
	b.stopped = true
	cause := fmt.Errorf("%w: %d background jobs in a row failed in %s (%ss; Pebble retries them for ever): last %w", ErrDiskFailed, b.run[kind], b.dir, kind, b.last)
	b.cause = cause
	close(b.stop)
	b.log.Error("ALARM: database failed: its disk fails every flush or every compaction; the node halts (restart it once the disk is repaired)",
		"component", "pebble", "dir", b.dir, "err", cause, "alarm", "node_halted")
	if b.failed != nil {
		go b.failed(cause)
	}
}

// beforeTable runs before a job creates a table file (the first write of
// each try): it waits out the backoff of a run of failed flushes, and
// once the failure was declared it waits for Close and fails.
func (b *background) beforeTable(name string) error {
	b.mu.Lock()
	run, stopped, opened, last := b.run, b.stopped, b.opened, b.last
	wait := time.Until(b.retryAt[flushJob])
	b.mu.Unlock()
	if stopped {
		if !opened {
			panic(&FatalError{Dir: b.dir, Msg: fmt.Sprintf("creating %s after %d failed background jobs in a row, before Open returned: %v", name, max(run[flushJob], run[compactionJob]), last), cause: last})
		}
		<-b.release
		return fmt.Errorf("%w: %s not created: the database is closing", ErrDiskFailed, name)
	}
	if wait > 0 {
		select {
		case <-time.After(wait):
		case <-b.release:
		}
	}
	return nil
}

// dirSync syncs the database's directory through sync. After a sync of
// it that failed, the next waits out a backoff first (bgBackoff, doubling
// up to bgMaxBackoff); once the failure was declared, a sync that fails
// returns only when the database is closing.
//
// A flush that writes no table still syncs the directory when an object
// was made or removed since its last good sync (objstorageprovider's
// vfsSync): on a directory whose syncs fail, such a flush fails without
// passing beforeTable, and Pebble tries it again at once, for ever, also
// after the node halted on it (the cluster simulator's seed 747 at
// e92e4d7: its flush goroutines spun until the watchdog stopped the
// run). Every sync still reaches the disk, and one that succeeds returns
// at once: a write-ahead log's rotation, which syncs the directory too,
// goes on on a disk that works again, and on one that still fails, on
// which Pebble panics, waits for Close.
func (b *background) dirSync(sync func() error) error {
	b.mu.Lock()
	fails, opened := b.dirFails, b.opened
	wait := time.Until(b.dirRetryAt)
	b.mu.Unlock()
	if opened && fails > 0 && wait > 0 {
		select {
		case <-time.After(wait):
		case <-b.release:
		}
	}
	err := sync()
	b.mu.Lock()
	if err == nil {
		b.dirFails, b.dirRetryAt = 0, time.Time{}
		b.mu.Unlock()
		return nil
	}
	b.dirFails++
	b.dirRetryAt = time.Now().Add(min(bgBackoff<<min(b.dirFails-1, 10), bgMaxBackoff))
	stopped := b.stopped && b.opened
	b.mu.Unlock()
	if stopped {
		<-b.release
	}
	return err
}

// mayCompact reports whether a compaction may start now: no failure was
// declared and the backoff of failed compactions has passed. If not, and
// one is to come, after says when to ask again.
func (b *background) mayCompact() (ok bool, after time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return false, 0
	}
	wait := time.Until(b.retryAt[compactionJob])
	return wait <= 0, wait
}

// open records that Open returned.
func (b *background) open() {
	b.mu.Lock()
	b.opened = true
	b.mu.Unlock()
}

// close releases the jobs waiting in beforeTable and stops granting
// compactions; call it before the instance's Close, which waits for
// them, and after an Open that failed.
func (b *background) close() {
	b.once.Do(func() { close(b.release) })
	if b.gate != nil {
		b.gate.Unregister()
	}
}

// closed stops the stall watch: call it after the instance's Close (whose
// own operations it watches), and after an Open that failed.
func (b *background) closed() {
	if b.health != nil {
		b.health.Close()
	}
}

// tableFS is the file system of a watched instance: the creation of a
// table or blob file in its directory goes through beforeTable first.
type tableFS struct {
	vfs.FS
	dir string
	bg  *background
}

func (fs tableFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if path.Dir(name) == path.Clean(fs.dir) && (strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob")) {
		if err := fs.bg.beforeTable(name); err != nil {
			return nil, err
		}
	}
	return fs.FS.Create(name, category)
}

// OpenDir opens a directory; the database's own syncs through
// background.dirSync.
func (fs tableFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	if err != nil || path.Clean(name) != path.Clean(fs.dir) {
		return f, err
	}
	return gatedDir{File: f, bg: fs.bg}, nil
}

// gatedDir is the database's directory opened through tableFS.
type gatedDir struct {
	vfs.File
	bg *background
}

func (d gatedDir) Sync() error { return d.bg.dirSync(d.File.Sync) }

// Background is the watch of the background jobs of a Pebble database
// other than DB (the Raft log's), and of its disk for stalls (stall.go),
// as DB keeps of its own (see above).
type Background struct{ b *background }

// WatchBackground sets po's EventListener, FS (po.FS, or the operating
// system's) and CompactionScheduler to watch the background jobs of the
// database in dir, and its disk for stalls (stalls): failed is called, in a goroutine of its own, once
// they have failed for good, and their retries stop until Release. Call
// Opened once Open returned (a failure before ends the process, as
// above).
func WatchBackground(po *pebble.Options, dir string, log *slog.Logger, failed func(error), stalls Stalls) *Background {
	fs := po.FS
	if fs == nil {
		fs = vfs.Default
	}
	return &Background{b: watch(po, fs, dir, log, failed, stalls)}
}

// Opened records that Open returned.
func (w *Background) Opened() { w.b.open() }

// Release lets the jobs waiting for Close go (they fail) and stops
// granting compactions: call it before the database's Close, which
// waits for them, and after an Open that failed.
func (w *Background) Release() { w.b.close() }

// Closed stops the stall watch: call it after the database's Close, and
// after an Open that failed (after Release).
func (w *Background) Closed() { w.b.closed() }
