package store

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A stalled disk. A device can stop answering without failing: a dying
// SSD retrying a sector, a hung NFS server, a cloud volume whose I/O is
// suspended. A write or an fsync then does not return for minutes and no
// error ever comes, so none of the disk-failure paths (diskfail.go,
// background.go) sees anything. A node whose disk stalls goes on sending
// Raft heartbeats from goroutines that need no disk, so its followers
// never elect another leader, while its Raft log writes and its FSM's
// applies hang: a stalled leader stops the chain with a quorum
// connected. Pebble's commits stall as well, once 8 MiB of memtables
// wait for flushes that cannot finish.
//
// Nothing inside the process can get out of it: Pebble's Close waits for
// the operation that hangs (a halt would too, as its record is a write
// to the same disk). So the store ends the process, as CockroachDB does
// (storage.max_sync_duration, 20 s by default: "disk stall detected"):
// the connections close, the others elect a leader, and the service
// manager starts the node again (deploy/systemd: Restart=on-failure),
// which comes back once the disk answers. Pebble watches the operations
// for this (vfs.WithDiskHealthChecks, which CockroachDB uses): every
// write, sync, create, rename and remove of the databases' files, and
// the syncs of their directories, is timed, and a goroutine ticking
// every 2 s reports one that has not returned within the bound; the
// store then logs an ALARM naming the file, the operation and how long
// it has hung, and ends the process (Stalls.OnStall, or exit status
// ExitDiskStalled). The bound is store.max-sync-duration: long enough
// that a disk that is merely slow under load (a sync of seconds) never
// reaches it, short enough that a stalled leader is replaced before
// clients give up.

// DefaultMaxSyncDuration is store.max-sync-duration's default:
// CockroachDB's storage.max_sync_duration.
const DefaultMaxSyncDuration = 20 * time.Second

// MinMaxSyncDuration is the least bound a watch takes: Pebble looks at
// the operations under way every 2 s, and a healthy disk under load
// takes a second over a sync now and then.
const MinMaxSyncDuration = time.Second

// ExitDiskStalled is the exit status of a process the store ended on a
// stalled disk (a restart may help: not 2, which the systemd unit
// keeps from restarting).
const ExitDiskStalled = 3

// stallLogWait bounds the wait for the ALARM to be written before the
// process ends: the log may sit on the stalled disk too.
const stallLogWait = time.Second

// StallError is a disk operation of a database that did not return
// within the bound.
type StallError struct {
	Dir      string        // the database
	Path     string        // the file or directory operated on
	Op       string        // Pebble's name of the operation: sync, write, create, …
	Duration time.Duration // how long it had hung when seen
	Max      time.Duration // the bound (store.max-sync-duration)
}

func (e *StallError) Error() string {
	return fmt.Sprintf("disk stalled: %s of %s has not returned for %.1fs (store.max-sync-duration %s)",
		e.Op, e.Path, e.Duration.Seconds(), e.Max)
}

// Stalls configures the watch of a database's disk for stalls.
type Stalls struct {
	// MaxSyncDuration is how long a write or sync may hang before the
	// disk is taken as stalled (0: not watched).
	MaxSyncDuration time.Duration
	// OnStall, if set, is called once, after the ALARM is logged, in
	// the watching goroutine, instead of ending the process (the cluster
	// simulator ends its node's instance; tests record it). It must not
	// block, nor do I/O on the stalled disk.
	OnStall func(*StallError)
}

// Watch wraps fs with the same watch as a database's, for the node's
// disk operations outside its databases; the closer stops it (with no
// bound it returns fs as it is). A start syncs the ancestors of its data
// directory, Raft directory and snapshot store (durable.MkdirAll) before
// either database opens its watched file system: on a disk that still
// stalls, a start that does them on fs as it is hangs there, without an
// ALARM and without ending, for as long as the disk stalls, where through
// Watch it ends within the bound like any other stalled operation
// (TestWatchedMkdirAllOnStalledDisk). dir names what is watched in the
// ALARM (StallError.Dir).
func (s Stalls) Watch(fs vfs.FS, dir string, log *slog.Logger) (vfs.FS, io.Closer) {
	return s.watch(fs, dir, log)
}

// watch wraps fs, the file system of the database in dir, with Pebble's
// disk-health checks; the closer stops them once the database is closed.
// With no bound it returns fs as it is.
func (s Stalls) watch(fs vfs.FS, dir string, log *slog.Logger) (vfs.FS, io.Closer) {
	if s.MaxSyncDuration <= 0 {
		return fs, nopCloser{}
	}
	var seen atomic.Bool
	health, stop := vfs.WithDiskHealthChecks(fs, s.MaxSyncDuration, nil, func(info vfs.DiskSlowInfo) {
		// Reported at every tick while the operation hangs, and for
		// every file it holds up: the first report ends the process.
		if !seen.CompareAndSwap(false, true) {
			return
		}
		s.stalled(&StallError{Dir: dir, Path: info.Path, Op: info.OpType.String(), Duration: info.Duration, Max: s.MaxSyncDuration}, log)
	})
	w := &watchedFS{FS: health, stop: stop, open: map[*watchedFile]struct{}{}}
	return w, w
}

// stalled logs the ALARM and ends the process (OnStall instead, if set).
func (s Stalls) stalled(err *StallError, log *slog.Logger) {
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		log.Error("ALARM: disk stalled: an operation on the database's disk has not returned; the process ends so that another node leads (the service manager restarts it; check the device if it happens again)",
			"component", "pebble", "dir", err.Dir, "file", filepath.Base(err.Path), "op", err.Op,
			"duration", err.Duration.Round(time.Millisecond).String(), "max_sync_duration", err.Max.String(), "alarm", "disk_stalled")
	}()
	select {
	case <-logged:
	case <-time.After(stallLogWait):
	}
	if s.OnStall != nil {
		s.OnStall(err)
		return
	}
	fmt.Fprintf(os.Stderr, "tally: %v: the process ends\n", err)
	os.Exit(ExitDiskStalled)
}

// watchedFS is the watched file system of a database. Pebble's check
// keeps a goroutine per file it creates, until the file is closed; a
// file Pebble leaves open (an Open that failed, a Close cut short by an
// error) would keep its goroutine for good, which a process that exits
// then does not mind and the cluster simulator's bubble, which must see
// every goroutine end, does. So the watch keeps the files created
// through it and closes those still open when it is stopped, after the
// database's Close.
type watchedFS struct {
	vfs.FS
	stop io.Closer
	mu   sync.Mutex
	open map[*watchedFile]struct{}
}

func (w *watchedFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return w.keep(w.FS.Create(name, category))
}

func (w *watchedFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return w.keep(w.FS.ReuseForWrite(oldname, newname, category))
}

func (w *watchedFS) keep(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	wf := &watchedFile{File: f, fs: w}
	w.mu.Lock()
	w.open[wf] = struct{}{}
	w.mu.Unlock()
	return wf, nil
}

// Close closes the files left open and stops the watch.
func (w *watchedFS) Close() error {
	w.mu.Lock()
	left := make([]*watchedFile, 0, len(w.open))
	for f := range w.open {
		left = append(left, f)
	}
	w.mu.Unlock()
	for _, f := range left {
		f.Close()
	}
	return w.stop.Close()
}

// watchedFile is a file created through a watchedFS, closed once.
type watchedFile struct {
	vfs.File
	fs   *watchedFS
	once sync.Once
	err  error
}

func (f *watchedFile) Close() error {
	f.once.Do(func() {
		f.err = f.File.Close()
		f.fs.mu.Lock()
		delete(f.fs.open, f)
		f.fs.mu.Unlock()
	})
	return f.err
}

// Prober makes a synced no-op write to a watched database at intervals
// (StartProbe). Pebble's check sees a stall through an operation under
// way: with nothing of the node writing (a leader whose builder hangs on
// a read of the stalled disk before it proposes), none would be. So each
// database writes a record to its write-ahead log only (Pebble's
// LogData, what its own Checkpoint syncs the log with) and syncs it,
// every quarter of the bound, as CockroachDB's liveness heartbeat writes
// one to each store.
type Prober struct{ stop, done chan struct{} }

// StartProbe calls write every quarter of MaxSyncDuration until Stop;
// with no bound it starts nothing (nil).
func (s Stalls) StartProbe(write func()) *Prober {
	if s.MaxSyncDuration <= 0 {
		return nil
	}
	p := &Prober{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(s.MaxSyncDuration / 4)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			select {
			case <-p.stop:
				return
			default:
				write()
			}
		}
	}()
	return p
}

// Stop ends the probe and waits for a write under way (nil: none).
func (p *Prober) Stop() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
