package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/internal/diskfault"
)

// A simulated node's disk is its in-memory file system (sn.fs, which a
// crash clones) seen through errorfs, which consults the node's disk
// faults before every operation: the state database (stateDir) and the
// Raft log (raftDir) each get their own view, so that a fault can hit one
// store and not the other, as a failing device under one of them would.
// Which files a fault hits is internal/diskfault's definition, the one
// the stores' own tests inject.
//
//   - a disk error fails the writes and syncs of the write-ahead log
//     (diskfault.WAL) with EIO (errorfs.ErrInjected). Pebble answers a
//     failed WAL write or sync with its "fatal commit error" in the
//     goroutine that committed; the node must turn it into a halt
//     (state: the FSM; Raft log: consensus.RaftStore's disk-failure hook).
//   - a metadata disk error fails the writes of the database's MANIFEST
//     and marker files (Pebble v2's CURRENT; diskfault.Fatal). Pebble
//     cannot go on from them: it calls its Logger's Fatalf, mostly in its background
//     flush (at Open too, which flushes the replayed write-ahead log in
//     the background and waits for it), where nothing can recover it and
//     the node's process ends (store.FatalError says why no halt can keep
//     it up). The simulator cannot end a process of its own test binary,
//     so it ends the node's "process" at the failing write instead: the
//     node is cut off the network at that instant, its disk as it is then
//     (writes not yet synced included: the machine is up, only the
//     process ended) is what its next instance finds, and the write
//     itself succeeds on the orphaned file system, which nothing reads
//     again, so that Pebble never sees the error and the dead instance
//     can be shut down. The invariants then stop it (or its start, when
//     the fault met it there, fails), its disk is replaced and a later
//     restart brings it back on the files it left.
//   - a slow disk makes each WAL sync take simulated time: the op sleeps
//     on the bubble's clock before it runs. This works because the WAL's
//     sync runs in Pebble's log flusher goroutine with no lock held
//     (record.LogWriter.flushLoop releases its mutex around flushPending),
//     and the committers wait for it on a sync.WaitGroup, which synctest
//     counts as durably blocked; every goroutine of the bubble then
//     blocks durably and the clock can move on. Sleeping anywhere a mutex
//     is held that another goroutine may wait for (a Pebble flush holding
//     DB.mu, the MANIFEST writer) would deadlock the bubble: a goroutine
//     waiting on a sync.Mutex is never durably blocked, so the clock would
//     never reach the sleeper's wake-up. The same holds for a committer
//     that waits for the slow sync while it holds a mutex of its own: the
//     node's locks held across a synced commit (store.DB's, which a
//     checkpoint holds across its WAL sync; consensus.RaftStore's write
//     lock) block their waiters on channels for this reason (seed 387;
//     snapshotOnSlowDisk). A bubble that deadlocks anyway fails the run
//     through the watchdog (watchdog.go).

// slowDisk is a slow-disk fault: until until, each WAL sync of the node
// takes by longer.
type slowDisk struct {
	by    atomic.Int64 // time.Duration
	until atomic.Int64 // UnixNano of the bubble's clock
	// syncs and stalled count the syncs delayed and the simulated time
	// they were held back (for Result); tableSyncs counts the sstable
	// syncs among them.
	syncs, tableSyncs, stalled atomic.Int64
}

func (d *slowDisk) set(by time.Duration, until time.Time) {
	d.by.Store(int64(by))
	d.until.Store(until.UnixNano())
}

func (d *slowDisk) clear() { d.until.Store(0) }

// latency is how long a sync takes now beyond its own time (0: not slow).
func (d *slowDisk) latency() time.Duration {
	if time.Now().UnixNano() >= d.until.Load() {
		return 0
	}
	return time.Duration(d.by.Load())
}

// instance is one run of a node's process, from its start to its stop or
// crash: the file system it started on and, once a metadata disk error
// ended it, its death.
type instance struct {
	fs    *vfs.MemFS
	net   *network
	death atomic.Pointer[death]
	// opening says that Pebble is opening the state database ([0]) or the
	// Raft log ([1]): from its lock on the directory to the OPTIONS file
	// it writes last (pebble.Open; a snapshot's install opens the state
	// database again). Open waits there for the flush of the write-ahead
	// log it replayed, which a failing sstable write makes Pebble retry
	// for ever: the store ends the process (store's background.go).
	opening [2]atomic.Bool
	// starting says the instance is starting (simNode.start), when a
	// disk stall holds nothing back; onStalledDisk that it started while
	// its node's disk stalled (stall.go).
	starting      atomic.Bool
	onStalledDisk bool
}

// death is how an instance's process ended on a fatal disk error: why,
// and its file system at that instant (what its next instance finds).
type death struct {
	reason string
	disk   *vfs.MemFS
}

// dbDir is the Pebble database of a store's directory (the Raft log's
// lives in raftDir/log).
func dbDir(dir string) string {
	if dir == raftDir {
		return raftDir + "/log"
	}
	return dir
}

// disk is the file system of instance inst as the store in dir sees it,
// with the node's disk faults injected.
func (sn *simNode) disk(inst *instance, dir string) vfs.FS {
	which := 0
	if dir == raftDir {
		which = 1
	}
	failing, metaFailing := &sn.diskErr, &sn.metaDiskErr[which]
	if dir == raftDir {
		failing = &sn.raftDiskErr
	}
	tableFailing, optionsFailing, opening := &sn.tableErr[which], &sn.optionsErr[which], &inst.opening[which]
	db := dbDir(dir)
	return errorfs.Wrap(inst.fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		sn.hold(inst, which, db, op) // a disk-stall fault (stall.go)
		switch {
		case op.Kind == errorfs.OpLock && op.Path == db+"/LOCK":
			opening.Store(true)
		case op.Kind == errorfs.OpRename && path.Dir(op.Path) == db && strings.HasPrefix(path.Base(op.Path), "temporary."):
			opening.Store(false) // the OPTIONS file moved into place: Open's last write
		}
		if isSync(op) {
			if path.Clean(op.Path) == path.Dir(dataDir) && sn.dirs.parentFailing.Load() {
				sn.dirs.parentFailed.Add(1)
				return &os.PathError{Op: "sync", Path: op.Path, Err: errDirSync}
			}
			if k, ok := syncedDir(inst.fs, op.Path); ok && sn.dirs.failing[k].Load() {
				if why := dirSyncFatal(opening.Load()); why != "" {
					sn.die(inst, fmt.Sprintf("its disk failed a sync of directory %s (%v): %s", op.Path, errorfs.ErrInjected, why))
					return nil
				}
				sn.dirs.failed.Add(1)
				return &os.PathError{Op: "sync", Path: op.Path, Err: errDirSync}
			}
			if manifest(db, op) {
				if d := sn.dirs.slowManifest.latency(); d > 0 && inManifestWriter() {
					sn.slowManifestSync(d)
				}
			}
		}
		if diskfault.Fatal(db, op) && metaFailing.Load() {
			sn.die(inst, fmt.Sprintf("its disk failed a metadata write of %s (%s %s: %v): Pebble cannot go on", db, diskfault.OpName(op.Kind), op.Path, errorfs.ErrInjected))
			return nil
		}
		if optionsFailing.Load() && diskfault.Metadata(db, op) && options(db, op) {
			sn.die(inst, fmt.Sprintf("its disk failed the OPTIONS write of %s at Open (%s %s: %v): Open fails, or Pebble panics in the compaction its failed Open left running", db, diskfault.OpName(op.Kind), op.Path, errorfs.ErrInjected))
			return nil
		}
		if diskfault.Table(db, op) {
			if tableFailing.Load() {
				if opening.Load() {
					sn.die(inst, fmt.Sprintf("its disk failed an sstable write of %s while Pebble opened it (%s %s: %v): Open waits for the flush, the store ends the process", db, diskfault.OpName(op.Kind), op.Path, errorfs.ErrInjected))
					return nil
				}
				return errorfs.ErrInjected
			}
			if isSync(op) {
				if d := sn.slow.latency(); d > 0 && inTableWriter() {
					time.Sleep(d)
					sn.slow.tableSyncs.Add(1)
					sn.slow.stalled.Add(int64(d))
				}
			}
			return nil
		}
		if diskfault.TableRead(db, op) && which == 0 && sn.readErr.Load() && !sn.observing.Load() {
			return errorfs.ErrInjected
		}
		if diskfault.TableRead(db, op) && which == 1 && sn.raftReadErr.Load() {
			return errorfs.ErrInjected
		}
		if !diskfault.WAL(db, op) {
			return nil
		}
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if d := sn.slow.latency(); d > 0 && inLogFlusher() {
				time.Sleep(d)
				sn.slow.syncs.Add(1)
				sn.slow.stalled.Add(int64(d))
			}
		}
		if failing.Load() {
			return errorfs.ErrInjected
		}
		return nil
	}))
}

// die ends instance inst's process (a metadata disk error, in whichever
// goroutine met it): the first death of a running instance takes its disk
// as it is and cuts it off the network at once, so that nothing it does
// afterwards (on a file system nothing reads again) reaches anyone.
func (sn *simNode) die(inst *instance, reason string) {
	if sn.inst.Load() != inst || inst.death.Load() != nil {
		return // an instance already stopped, crashed or dead
	}
	d := &death{reason: reason, disk: inst.fs.CrashClone(keepAll)}
	if inst.death.CompareAndSwap(nil, d) {
		inst.net.detach(sn.id)
	}
}

// keepAll clones a file system with every write it holds, synced or not
// (CrashClone draws from its RNG even then).
var keepAll = vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(0, 0))}

// died returns the death of the node's running instance, if it died.
func (sn *simNode) died() *death {
	if inst := sn.inst.Load(); inst != nil {
		return inst.death.Load()
	}
	return nil
}

// bury stops the dead instance, gives the node the disk it left and
// replaces the failing disk (the operator's part).
func (sn *simNode) bury(d *death, net *network) error {
	err := sn.stop(net)
	sn.fs = d.disk
	sn.repairDisk()
	return err
}

// Bounds of a slow-disk fault.
const (
	maxSyncLatency = 400 * time.Millisecond
	maxSlowFor     = 20 * time.Second
)

// slowDisk makes a random up node's syncs slow for a while: its
// write-ahead logs' (in Pebble's log flusher, inLogFlusher) and its
// sstables' (in a flush or compaction, inTableWriter).
func (s *Sim) slowDisk() {
	sn := s.randomUp()
	if sn == nil {
		return
	}
	by := time.Duration(1 + s.rng.Int64N(int64(maxSyncLatency)))
	d := time.Duration(1 + s.rng.Int64N(int64(maxSlowFor)))
	// The state database's memtable fills (4 MiB of writes, which a run
	// seldom makes): its flush syncs an sstable on the slow disk, while
	// the node applies blocks and takes snapshots.
	sn.fillMemtable()
	sn.slow.set(by, time.Now().Add(d))
	s.count(FaultSlowDisk)
	s.record("slow-disk n%d: syncs %s slower for %s", sn.id, by, d)
}

// fillMemtable makes the node's state database flush, as its memtable
// filling up does (4 MiB of writes, which a run seldom makes): the
// write-ahead log rotates here, in the scheduler (store.DB.StartFlush),
// and the flush runs in Pebble's background. Not while the log fails: a
// rotation that is the first write to meet the failing disk ends the
// process inside Pebble (docs/architecture.md, "Disk failures"), which
// the simulator cannot end in its test binary. Nor while the disk is
// slow or stalled: the rotation syncs the old log holding Pebble's commit mutex, so
// a committer (the FSM) would wait on a sync.Mutex while the sync sleeps
// on the bubble's clock, which never moves then (seed 178 deadlocked).
func (sn *simNode) fillMemtable() {
	if sn.diskErr.Load() || sn.slow.latency() > 0 || sn.stall.active() {
		return
	}
	if err := sn.db.StartFlush(); err != nil {
		sn.log.Warn("flush", "err", err)
	}
}

// diskError makes a random up node's state database (FaultDiskError) or
// Raft log (FaultRaftDiskError) fail its writes until the node halts on
// it; the invariants then stop the node, and a restart brings it back on
// the repaired disk with its halt cleared.
func (s *Sim) diskError(f Fault) {
	sn := s.randomUp()
	if sn == nil {
		return
	}
	if f == FaultRaftDiskError {
		sn.raftDiskErr.Store(true)
	} else {
		sn.diskErr.Store(true)
	}
	s.count(f)
	s.record("%s n%d", f, sn.id)
}

// metaDiskError makes the metadata writes of a random up node's state
// database or Raft log fail until the disk is replaced. Half of the time
// the node runs on: it dies at its store's next flush (4 MiB memtables,
// which a run seldom fills: mostly in a snapshot's restore) or at its next
// start. Otherwise the node loses power at once and is started again on
// the failing disk, which must not start it (every start writes a
// MANIFEST and an OPTIONS file).
func (s *Sim) metaDiskError() error {
	sn := s.randomUp()
	if sn == nil {
		return nil
	}
	which := s.rng.IntN(2)
	sn.metaDiskErr[which].Store(true)
	s.count(FaultMetaDiskError)
	s.record("%s n%d %s", FaultMetaDiskError, sn.id, dbDir([]string{stateDir, raftDir}[which]))
	if s.rng.IntN(2) == 0 {
		return nil
	}
	return s.powerCycle(sn, s.rng)
}

// powerCycle cuts a node's power (rng draws the unsynced writes it
// loses) and starts it again at once, on the disk its fault left failing:
// the start must fail on that disk (restart).
func (s *Sim) powerCycle(sn *simNode, rng *rand.Rand) error {
	st := sn.engine.Raft.Stats()
	head, _ := sn.db.Head()
	s.record("crash n%d: raft last log %s commit %s, state head %d at raft index %d", sn.id, st["last_log_index"], st["commit_index"], head.Number, head.RaftIndex)
	s.powerCut(sn, rng)
	return s.restart(sn)
}

// diskFailing reports whether one of the node's stores has a failing
// disk that the node must halt on, or refuse to start on (the fatal
// metadata writes end its process instead: died).
func (sn *simNode) diskFailing() bool {
	return sn.diskErr.Load() || sn.raftDiskErr.Load() || sn.readErr.Load() || sn.raftReadErr.Load() ||
		sn.tableErr[0].Load() || sn.tableErr[1].Load() || sn.optionsErr[0].Load() || sn.optionsErr[1].Load() ||
		sn.dirs.parentFailing.Load() || sn.dirs.anyFailing()
}

// anyFailing reports whether the syncs of one of the directories fail.
func (d *dirFaults) anyFailing() bool {
	for i := range d.failing {
		if d.failing[i].Load() {
			return true
		}
	}
	return false
}

// repairDisk ends the node's disk errors: the operator replaced the disk
// (the files stay as they were, what was synced and what was written
// since).
func (sn *simNode) repairDisk() {
	sn.diskErr.Store(false)
	sn.raftDiskErr.Store(false)
	sn.readErr.Store(false)
	sn.raftReadErr.Store(false)
	for i := range 2 {
		sn.metaDiskErr[i].Store(false)
		sn.tableErr[i].Store(false)
		sn.optionsErr[i].Store(false)
	}
	for i := range numSyncDirs {
		sn.dirs.failing[i].Store(false)
	}
	sn.dirs.parentFailing.Store(false)
}

// isSync reports whether op makes a file's writes durable.
func isSync(op errorfs.Op) bool {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		return true
	}
	return false
}

// options reports whether op writes the OPTIONS file of the database in
// db, which Pebble writes at Open only, through a temporary file it
// renames into place.
func options(db string, op errorfs.Op) bool {
	base := path.Base(op.Path)
	return path.Dir(op.Path) == db && (strings.HasPrefix(base, "OPTIONS-") || strings.HasPrefix(base, "temporary."))
}

// tableDiskError makes the sstable writes (create, write, sync:
// diskfault.Table) of a random up node's state database or Raft log fail
// until the disk is replaced, as a device failing its writes does while
// the write-ahead log, on another device or in the drive's cache, still
// takes them. A flush or compaction then fails; Pebble retries it, the
// store backs the retries off and declares the disk failed after 8 in a
// row, and the node halts (state: the FSM; Raft log: the Raft store's
// failure hook). A flush happens when a memtable fills: 4 MiB of writes,
// which a run seldom makes, so for the state database the fault fills it
// at once (a flush asked for, as Pebble does when its memtable is full;
// the Raft log meets its failing disk at its next flush, which Pebble
// runs at every Open). A failing sstable write met while Pebble opens the
// database (the flush of the replayed write-ahead log, which Open waits
// for and Pebble retries for ever) ends the process: the store panics
// with a *store.FatalError once the retries have failed 8 times, so the
// simulator ends it at the first one (die).
func (s *Sim) tableDiskError() {
	sn := s.randomUp()
	if sn == nil {
		return
	}
	which := s.rng.IntN(2)
	sn.tableErr[which].Store(true)
	s.count(FaultTableDiskError)
	s.record("%s n%d %s", FaultTableDiskError, sn.id, dbDir([]string{stateDir, raftDir}[which]))
	if which == 0 {
		sn.fillMemtable()
	}
}

// readError makes the sstable reads (diskfault.TableRead) of a random up
// node's state database fail with EIO until the disk is replaced: a read
// of the state that misses the block cache fails, and Pebble returns the
// error to the reader. Applying or building a block on a failed read
// halts the node (state.ErrStorage); an admission answers the client
// with the error; a compaction fails and is retried like a failed flush.
// The simulator's own checks read the node's database as an observer
// would, past the fault (Sim.observing). Half of the time the node also
// loses power and starts again on the failing disk. The Raft log's reads
// fail in a fault of their own (raftReadError).
func (s *Sim) readError() error {
	sn := s.randomUp()
	if sn == nil {
		return nil
	}
	sn.readErr.Store(true)
	s.count(FaultReadError)
	s.record("%s n%d", FaultReadError, sn.id)
	if s.rng.IntN(2) == 0 {
		return nil
	}
	// A warm block cache hides the fault from most reads; half of the
	// time the node loses power and starts again with a cold one, which
	// reads its head, rules and validators from the sstables: its start
	// must fail with the disk's error (or its first failed read halt it).
	s.powerCut(sn, s.crashRNG())
	return s.restart(sn)
}

// randomUp draws one of the nodes that are up, nil if none is (no draw
// then).
func (s *Sim) randomUp() *simNode {
	up := s.upNodes()
	if len(up) == 0 {
		return nil
	}
	return s.nodes[up[s.rng.IntN(len(up))]]
}

// powerCut cuts sn's power, its unsynced writes lost as rng draws them
// (crash), and tells the invariants.
func (s *Sim) powerCut(sn *simNode, rng *rand.Rand) {
	if err := sn.crash(s.net, rng, lossPercent); err != nil {
		s.record("crash n%d: shutdown: %v", sn.id, err)
	}
	s.inv.crashed(sn)
}

// raftReadError makes the sstable reads (diskfault.TableRead) of a random
// up node's Raft log fail with EIO until the disk is replaced. The Raft
// store fails on the first read that fails, before hashicorp/raft sees
// it (consensus.RaftStore.readFailed): the node halts and leaves Raft,
// and raft does not panic where it would (applying an entry it cannot
// read, Raft.processLogs, which would end the test binary); the
// invariants then stop the node and a restart brings it back on the
// repaired disk, its halt cleared. Half of the time the node loses power
// and starts again on the failing disk, which reads the log's first and
// last entries from the sstables (Pebble flushes the replayed write-ahead
// log at Open): its start fails with the disk's error. Otherwise the
// log's memtable is flushed, as a full one is (4 MiB, which a run seldom
// writes; not while the log's writes fail or its disk is slow or
// stalled, as in fillMemtable: seed 684 deadlocked on a rotation waiting
// for a stalled sync under Pebble's commit mutex, which the stall probe's
// write waited on), so that the entries it held are read from the disk: the
// leader's replication to a follower behind it, a follower's entries it
// learns committed, the leader's gauge of its oldest entry (every 10 s).
func (s *Sim) raftReadError() error {
	sn := s.randomUp()
	if sn == nil {
		return nil
	}
	sn.raftReadErr.Store(true)
	s.count(FaultRaftReadError)
	s.record("%s n%d", FaultRaftReadError, sn.id)
	if s.rng.IntN(2) == 0 {
		sn.flushRaftLog(sn.engine.StartRaftLogFlush)
		return nil
	}
	s.powerCut(sn, s.crashRNG())
	return s.restart(sn)
}

// flushRaftLog starts a flush of the node's Raft log memtable with flush
// (consensus.Engine.StartRaftLogFlush), unless its writes fail or its
// disk is slow or stalled: the flush rotates the write-ahead log in the
// scheduler, syncing the old one while it holds Pebble's commit mutex,
// and a goroutine that then writes (the store's stall probe, raft
// storing its term) waits on that sync.Mutex, not durably blocked, so the
// bubble's clock never reaches the end of a held sync (as in
// fillMemtable; seed 684: raftLogFlushOnStalledDisk).
func (sn *simNode) flushRaftLog(flush func() error) {
	if sn.raftDiskErr.Load() || sn.slow.latency() > 0 || sn.stall.active() {
		return
	}
	if err := flush(); err != nil {
		sn.log.Warn("flush raft log", "err", err)
	}
}

// optionsDiskError makes the OPTIONS writes of a random up node's state
// database or Raft log fail, and the node loses power and starts again
// on that disk: Pebble writes its OPTIONS file at every Open (a temporary
// file renamed into place, after the flush of the replayed write-ahead
// log), and a failed write is an error of Open, so the node must not
// start. Pebble v2.1.7's failed Open does not always return, though: its
// cleanup closes the table cache under the compaction that the flush
// scheduled, which then panics (integer divide by zero in
// fileCacheKey.Shard: the process ends). The simulator therefore ends
// the node's process at the failing write, the outcome both share: the
// node is down on the disk as it was. The disk is then replaced and a
// later restart brings the node back.
func (s *Sim) optionsDiskError() error {
	sn := s.randomUp()
	if sn == nil {
		return nil
	}
	which := s.rng.IntN(2)
	sn.optionsErr[which].Store(true)
	s.count(FaultOptionsDiskError)
	s.record("%s n%d %s", FaultOptionsDiskError, sn.id, dbDir([]string{stateDir, raftDir}[which]))
	s.powerCut(sn, s.crashRNG())
	return s.restart(sn)
}

// inTableWriter reports whether the calling goroutine is one of Pebble's
// flushes or compactions writing its output (DB.flush1, DB.compact1),
// where a table's sync runs with no lock held that another goroutine may
// wait on: Pebble releases DB.mu around runCompaction, and whoever waits
// for the flush waits on a channel or on DB.mu.compact.cond, both durable
// for synctest.
func inTableWriter() bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "pebble/v2.(*DB).flush1") || strings.HasSuffix(f.Function, "pebble/v2.(*DB).compact1") {
			return true
		}
		if !more {
			return false
		}
	}
}

// freshWait is how long after a node's Raft directory was lost its
// operator waits before starting it as a fresh member: longer than any
// election the node may have voted in takes to end (a few election
// timeouts, messages delayed up to maxDelay), so that no candidate can
// still collect a second vote from it for a term it voted in.
const freshWait = 10 * time.Second

// raftDirLost wipes the Raft directory of a random up node that applied
// Raft entries, while its state survives (an operator wiped it, or the
// disk under it was replaced): the node loses power, and its start on the
// empty directory must be refused (consensus.ErrRaftStateLost), since it
// forgot the term and vote of its stable store. Its operator then starts
// it as a fresh member (tallyd --raft-fresh: restart, freshSafe); Raft
// sends it the log and the invariants check that it applies the same
// chain.
func (s *Sim) raftDirLost() error {
	up, ok := s.mayLoseOne()
	if !ok {
		return nil
	}
	var cands []*simNode
	for _, i := range up {
		if s.nodes[i].diskFailing() || s.nodes[i].metaDiskErr[0].Load() || s.nodes[i].metaDiskErr[1].Load() {
			continue // its start would meet its failing disk first (seed 111)
		}
		if head, _ := s.nodes[i].db.Head(); head.RaftIndex > 0 {
			cands = append(cands, s.nodes[i])
		}
	}
	if len(cands) == 0 {
		return nil
	}
	sn := cands[s.rng.IntN(len(cands))]
	s.count(FaultRaftDirLost)
	s.record("%s n%d: term %d", FaultRaftDirLost, sn.id, currentTerm(sn.engine.Raft))
	s.powerCut(sn, s.rng)
	if err := sn.fs.RemoveAll(raftDir); err != nil {
		return fmt.Errorf("wipe n%d's Raft directory: %w", sn.id, err)
	}
	err := sn.start(s.net)
	if err == nil {
		return fmt.Errorf("invariant raft-state-lost: n%d started on an empty Raft directory after applying Raft entries: it may vote twice in a term", sn.id)
	}
	if !errors.Is(err, consensus.ErrRaftStateLost) {
		return fmt.Errorf("n%d: start on a lost Raft directory: %w", sn.id, err)
	}
	s.refusedLostRaft(sn, "n%d refused to start: %v", err)
	return nil
}

// refusedLostRaft records the refusal err of sn's start on a lost Raft
// directory (consensus.ErrRaftStateLost, logged with format): its
// operator starts it as a fresh member once that is safe (freshSafe).
func (s *Sim) refusedLostRaft(sn *simNode, format string, err error) {
	s.res.RaftLostRefused++
	s.record(format, sn.id, err)
	sn.lostAt = time.Now()
}

// mayLoseOne returns the up nodes when one of them may lose its Raft
// or data directory now: one node at a time, and only while the other
// voters up can elect a leader without it (a cluster that lost most of its Raft
// state has lost its votes and log, which no operator can start again
// safely).
func (s *Sim) mayLoseOne() ([]int, bool) {
	voters := s.configuredVoters()
	for _, sn := range s.nodes {
		// A node that lost its directory is lost until it is back and
		// votes again: a fresh member does once it caught up
		// (consensus.voteGate). A node granting no vote is lost only if
		// a configuration has it as a voter: a standby node outside
		// every configuration (never added, or removed) that joined
		// granting none (consensus.JoinUnknown: it started cut off) is
		// sent no log and never catches up, and no quorum counts on its
		// vote (standbyOutsideConfigurationsLoses).
		if !sn.lostAt.IsZero() || (sn.up && !sn.engine.Voting() && voters[sn.id]) {
			return nil, false
		}
	}
	// The voters up but one are a majority of the voters: counted over
	// every up node's configuration (the union, so a voter any of them
	// still has counts), not over all nodes, so that a standby outside
	// every configuration, down or up, neither holds the fault back nor
	// stands in for a voter.
	up := s.upNodes()
	votersUp := 0
	for _, i := range up {
		if voters[i] {
			votersUp++
		}
	}
	return up, len(voters) > 0 && votersUp-1 > len(voters)/2
}

// configuredVoters returns the nodes that are voters of the latest Raft
// configuration of an up node, committed or not: the leader's voters and
// any that another node's configuration, ahead or behind it, still has.
func (s *Sim) configuredVoters() map[int]bool {
	out := map[int]bool{}
	for _, sn := range s.nodes {
		if !sn.up {
			continue
		}
		for _, v := range membersOf(sn) {
			out[v] = true
		}
	}
	return out
}

// freshSafe reports whether the operator of a node whose Raft directory
// was lost may start it as a fresh member: freshWait has passed. The
// others elect the leader that sends it the log: a fresh member grants
// no vote before it caught up (consensus.voteGate), and mayLoseOne takes
// a directory only while the others are a majority.
func (s *Sim) freshSafe(sn *simNode) bool {
	return time.Since(sn.lostAt) >= freshWait
}

// inLogFlusher reports whether the calling goroutine is Pebble's WAL
// flusher (record.LogWriter.flushLoop), where a sync runs with no lock
// held that another goroutine may wait on. A WAL is synced elsewhere too:
// closing a database syncs it in the closing goroutine, and a snapshot
// restore closes the state database under store.DB's lock, which readers
// (the vote relay) wait on; slowing that sync would deadlock the bubble.
func inLogFlusher() bool {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "record.(*LogWriter).flushLoop") {
			return true
		}
		if !more {
			return false
		}
	}
}

// Directory syncs. A file's name is durable once its directory is synced
// (fsync on the directory); the in-memory file system keeps the entries
// a successful sync saw (MemFS's synced children), and a crash keeps each
// entry made since with probability 100-lossPercent. errorfs fails an
// injected sync before it reaches the file system, so a failed directory
// sync leaves the new names unsynced: the next power cut may take them
// away, unless a later sync of the directory succeeded (which, the fault
// lasting until the disk is replaced, only the next disk's does). On
// Linux a failed fsync is not retried safely either: a later success
// says nothing of the writes the failed one lost (PostgreSQL's
// "fsyncgate"), which is why Pebble gives up on one.
//
// What Pebble v2.1.7 does when the sync of its directory fails:
//
//   - a flush or compaction syncs the directory once its tables are
//     written (objstorage provider's Sync, before the MANIFEST records
//     them): the job fails, Pebble retries it, and the store declares the
//     disk failed after 8 failures in a row (store's background.go): the
//     node halts. Met while Pebble opens the database (the flush of the
//     replayed write-ahead log, which Open waits for), the store ends
//     the process instead;
//   - a new write-ahead log (a memtable rotation, DB.rotateWAL) syncs the
//     directory in wal's standaloneManager.Create: Pebble panics with the
//     error, with DB.mu unlocked, and the process ends (the same end as a
//     failed rotation of a failing log: store's diskfail.go);
//   - moving a marker (a new MANIFEST at every Open and when one grows
//     too large, the format version at Open) syncs the directory in
//     atomicfs.Marker.Move, which panics: "fsync errors are
//     unrecoverable";
//   - Open syncs the directory after it renames the OPTIONS file into
//     place: Open fails, the node does not start.
//
// The snapshot store (consensus.CheckpointStore) syncs its directory at
// Open and each snapshot's directories as it finishes one (a Pebble
// checkpoint syncs the directories it creates, too): a failed sync (EIO,
// errDirSync) halts the node at a snapshot or an install
// (CheckpointStore.OnDiskFailure, the FSM's Persist), and fails the
// store's opening and with it the node's start.

// errDirSync is the error of a failed directory sync, as os.File.Sync
// wraps it: EIO, what fsync answers on a device error, and the injected
// error (errorfs.ErrInjected), by which the simulator tells its own
// faults (a halt it may clear, a start that may fail).
var errDirSync = fmt.Errorf("%w: %w", errorfs.ErrInjected, syscall.EIO)

// The directories whose syncs a dir-sync-error fault (the first
// numStoreDirs) or a store-parent-sync-error fault (the others) fails.
const (
	syncState     = iota // the state database's (stateDir)
	syncRaftLog          // the Raft log's (raftDir/log)
	syncSnapshots        // the snapshot store's, and every directory in it
	syncData             // the data directory (dataDir): state/, raft/, the pool journal
	syncRaft             // the Raft directory (raftDir): log/, snapshots/
	numSyncDirs

	numStoreDirs = syncData
)

// syncDirNames name the directories of a dir-sync-error or a
// store-parent-sync-error fault.
var syncDirNames = [numSyncDirs]string{stateDir, raftDir + "/log", raftDir + "/snapshots", dataDir, raftDir}

// dirFaults are a node's faults of directory and MANIFEST syncs.
type dirFaults struct {
	// failing fails the syncs of a directory (syncState, syncRaftLog,
	// syncSnapshots) until the disk is replaced; failed counts the syncs
	// failed.
	failing [numSyncDirs]atomic.Bool
	failed  atomic.Int64
	// parentFailing fails the syncs of the data directory's parent (a
	// datadir-sync-error fault) until the disk is replaced; parentFailed
	// counts them.
	parentFailing atomic.Bool
	parentFailed  atomic.Int64
	// slowManifest makes each MANIFEST sync of the node's databases take
	// longer for a while (its syncs and stalled count them).
	slowManifest slowDisk
}

// syncedDir reports which directory of a dir-sync-error fault p is
// (false: a file, or another directory).
func syncedDir(fs vfs.FS, p string) (int, bool) {
	p = path.Clean(p)
	for k, d := range syncDirNames {
		if p == d {
			return k, true
		}
	}
	if strings.HasPrefix(p, syncDirNames[syncSnapshots]+"/") {
		if fi, err := fs.Stat(p); err == nil && fi.IsDir() {
			return syncSnapshots, true
		}
	}
	return 0, false
}

// dirSyncFatal says why a failed directory sync, met in the calling
// goroutine, ends the node's process ("": it is an error Pebble or the
// snapshot store returns). opening says Pebble is opening the database.
func dirSyncFatal(opening bool) string {
	switch {
	case diskfault.OnStack("atomicfs.(*Marker).Move"):
		return "Pebble panics moving its marker (atomicfs.Marker.Move: fsync errors are unrecoverable)"
	case diskfault.OnStack("pebble/v2.(*DB).rotateWAL"):
		return "Pebble panics creating a new write-ahead log (DB.rotateWAL), with DB.mu unlocked: the process ends"
	case diskfault.OnStack("pebble/v2.Open"):
		// A new write-ahead log, or the directory synced after the
		// OPTIONS file: Open fails and the node does not start. (Pebble
		// v2.1.7's failed Open leaves its compaction scheduler's
		// goroutine running, which the process that exits on the error
		// does not mind; the simulator's test binary would.)
		return "Pebble's Open fails: the node does not start"
	case opening && inTableWriter():
		return "Open waits for the flush of the write-ahead log it replayed, which fails for ever: the store ends the process"
	}
	return ""
}

// manifest reports whether op is on a MANIFEST of the database in db.
func manifest(db string, op errorfs.Op) bool {
	return path.Dir(op.Path) == db && strings.HasPrefix(path.Base(op.Path), "MANIFEST-")
}

// inManifestWriter reports whether the calling goroutine writes a version
// edit to the MANIFEST (versionSet.UpdateVersionLocked: a flush, a
// compaction, Open's own edits). It holds the MANIFEST's log lock
// (versionSet.writing) there, and not DB.mu, which it releases around the
// write: whoever waits for the log lock (another flush or compaction, a
// checkpoint, Metrics) waits on a sync.Cond, which synctest counts as
// durably blocked, so a sleep there lets the bubble's clock move on. The
// first MANIFEST of a new database is written with DB.mu held (Open's
// versionSet.create) and is not slowed.
func inManifestWriter() bool { return diskfault.OnStack("pebble/v2.(*versionSet).UpdateVersionLocked") }

// slowManifestSync holds a MANIFEST sync back by d.
func (sn *simNode) slowManifestSync(d time.Duration) {
	m := &sn.dirs.slowManifest
	manifestSleeping.Add(1)
	time.Sleep(d)
	manifestSleeping.Add(-1)
	manifestSleptUntil.Store(time.Now().UnixNano())
	m.syncs.Add(1)
	m.stalled.Add(int64(d))
}

// manifestSleeping counts the MANIFEST syncs being held back now, in
// every node of the run; manifestSleptUntil is when the last one ended
// (UnixNano of the bubble's clock). The runs of a test binary run one at
// a time.
var (
	manifestSleeping   atomic.Int64
	manifestSleptUntil atomic.Int64
)

// dirSyncError makes the syncs of one directory of a random up node fail
// (EIO) until its disk is replaced: the state database's, the Raft log's
// or the snapshot store's (syncDirNames).
//
//   - The state database's: half of the time its memtable is flushed
//     first (the write-ahead log rotates before the fault), and the
//     flush's directory sync fails until the node halts on it; otherwise
//     the node loses power and starts again on the failing disk, which
//     must not start it (every Open moves its MANIFEST marker and syncs
//     the directory).
//   - The Raft log's: the same start, half of the time; otherwise the
//     node meets the fault at its Raft log's next flush or rotation, or
//     its next start.
//   - The snapshot store's: the node halts at its next snapshot, or
//     install of its leader's; its next start fails.
func (s *Sim) dirSyncError() error {
	k := s.rng.IntN(numStoreDirs)
	sn := s.soundUpNode()
	if sn == nil {
		return nil
	}
	s.count(FaultDirSyncError)
	s.record("%s n%d %s", FaultDirSyncError, sn.id, syncDirNames[k])
	restart := k != syncSnapshots && s.rng.IntN(2) == 0
	if k == syncState && !restart {
		sn.fillMemtable()
	}
	sn.dirs.failing[k].Store(true)
	if !restart {
		return nil
	}
	return s.powerCycle(sn, s.crashRNG())
}

// Bounds of a slow-manifest-sync fault: a MANIFEST sync on a disk that
// stalls (a device retrying a sector, a saturated volume) takes seconds.
const (
	maxManifestLatency = 2 * time.Second
	maxManifestSlowFor = 30 * time.Second
)

// slowManifest makes a random up node's MANIFEST syncs slow for a while,
// and flushes its state database so that one is written at once (a flush
// records its table in the MANIFEST: DB.flush1, UpdateVersionLocked).
// Pebble holds the MANIFEST's log lock across the write: the node's
// snapshots (a checkpoint takes the log lock) and its other flushes and
// compactions wait for it; its commits do not, unless the memtables
// waiting for a flush reach Pebble's stop-writes threshold (4 MiB
// memtables, which a run seldom fills).
func (s *Sim) slowManifest() {
	sn := s.randomUp()
	if sn == nil {
		return
	}
	by := time.Duration(1 + s.rng.Int64N(int64(maxManifestLatency)))
	d := time.Duration(1 + s.rng.Int64N(int64(maxManifestSlowFor)))
	sn.fillMemtable()
	sn.dirs.slowManifest.set(by, time.Now().Add(d))
	s.count(FaultSlowManifest)
	s.record("%s n%d: MANIFEST syncs %s slower for %s", FaultSlowManifest, sn.id, by, d)
}

// manifestWatch measures the canonical chain's progress around slow
// MANIFEST syncs: the blocks that appeared while one was held back (or
// since the block before, if one was), and the longest wait for such a
// block.
type manifestWatch struct {
	height uint64
	at     time.Time
}

// watchManifest runs after each step's checks.
func (s *Sim) watchManifest() {
	h, at := s.inv.height, s.inv.progressAt
	if h <= s.mw.height {
		return
	}
	if manifestSleeping.Load() > 0 || manifestSleptUntil.Load() > s.mw.at.UnixNano() {
		s.res.ManifestBlocks += int(h - s.mw.height)
		s.res.ManifestMaxGap = max(s.res.ManifestMaxGap, at.Sub(s.mw.at))
	}
	s.mw = manifestWatch{height: h, at: at}
}

// The data directory's entry. A node's data directory is made before its
// first start by its service manager (deploy/systemd/tallyd.service:
// StateDirectory=, which systemd makes with a plain mkdir and does not
// sync) or by the node itself; either way its entry in its parent is
// durable only once that parent is synced, and a power cut before then
// may take the whole directory away with everything synced inside it (an
// unsynced directory entry may vanish on Linux; crashClone). Pebble syncs
// the parent of the directory it opens (the data directory, holding the
// state database's entry), never the data directory's parent: the node
// does, at every start (node.New's durable.MkdirAll, which the simulated
// start calls too), and so do the snapshot store's opening and every
// install (durable.MkdirAllPerm syncs every ancestor of the directory it
// makes).

// provisionedDisk is a node's disk as its service manager hands it over
// before the node's first start: the data directory made and nothing
// synced.
func provisionedDisk() *vfs.MemFS {
	fs := vfs.NewCrashableMem()
	if err := fs.MkdirAll(dataDir, 0o700); err != nil {
		panic(err) // an in-memory file system: a failure is a bug of the simulator
	}
	return fs
}

// soundUpNode draws an up node whose disk fails nothing yet (nil: none).
// One failing disk at a time: a node already failing meets that fault
// first.
func (s *Sim) soundUpNode() *simNode {
	var up []int
	for _, i := range s.upNodes() {
		if !s.nodes[i].diskFailing() {
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return s.nodes[up[s.rng.IntN(len(up))]]
}

// storeParentSyncError makes the syncs of a random up node's data
// directory or its Raft directory fail (EIO) until its disk is replaced:
// the directories that hold the stores' own directories, and the data
// directory the pool journal too. A node syncs them at its start (every
// ancestor of the Raft and snapshot directories, and Pebble the directory
// that holds the database it opens), at every snapshot it takes or
// installs (the ancestors of the snapshot's directory) and at a rewrite
// of its pool journal. Half of the time the node loses power and starts
// again on the failing disk, which must not start it; otherwise it runs
// on and meets the fault at its next snapshot (which halts it) or start.
func (s *Sim) storeParentSyncError() error {
	sn := s.soundUpNode()
	if sn == nil {
		return nil
	}
	k := syncData + s.rng.IntN(numSyncDirs-syncData)
	s.count(FaultStoreParentSyncError)
	s.record("%s n%d %s", FaultStoreParentSyncError, sn.id, syncDirNames[k])
	sn.dirs.failing[k].Store(true)
	if s.rng.IntN(2) == 0 {
		return nil
	}
	return s.powerCycle(sn, s.crashRNG())
}

// dataDirSyncError makes the syncs of a random up node's data directory's
// parent fail (EIO) until its disk is replaced, as a failing device does
// (the syncs of the directories inside the data directory go on). Half
// of the time the node loses power and starts again on the failing disk:
// its start must fail, since it cannot make its data directory's entry
// durable (a start that ran on would lose the whole directory at the next
// power cut, were the entry never synced), and it comes back once the
// disk is replaced. Otherwise it runs on and meets the fault at its next
// snapshot install (a failed install halts it) or its next start.
func (s *Sim) dataDirSyncError() error {
	sn := s.soundUpNode()
	if sn == nil {
		return nil
	}
	s.count(FaultDataDirSyncError)
	s.record("%s n%d %s", FaultDataDirSyncError, sn.id, path.Dir(dataDir))
	sn.dirs.parentFailing.Store(true)
	if s.rng.IntN(2) == 0 {
		return nil
	}
	return s.powerCycle(sn, s.crashRNG())
}
