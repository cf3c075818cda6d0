package sim

import (
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/store"
)

// FaultDiskStall: a node's disk stops answering its syncs for minutes
// (stall.go).
const FaultDiskStall Fault = "disk-stall"

// A stalled disk. A device can stop answering without failing: a failing
// SSD retrying a sector, a hung NFS server, an EBS volume whose I/O is
// suspended. An fsync (or a write) then does not return for minutes,
// and no error ever reaches the process. A node whose disk stalls keeps
// sending Raft heartbeats from goroutines that need no disk (hashicorp/
// raft's heartbeat and replication goroutines), so its followers never
// elect another leader, while its Raft log writes (raft's main goroutine,
// in StoreLogs) and its FSM's applies hang: a stalled leader stops the
// chain with a quorum connected. Pebble's own commits stall too once
// 8 MiB of memtables wait for flushes that cannot finish.
//
// The production answer is CockroachDB's: a disk operation that has not
// returned within storage.max_sync_duration (20 s) ends the process,
// and the leases move. The store does the same (store.max-sync-duration,
// store/stall.go, Pebble's vfs.WithDiskHealthChecks); the simulator
// turns that end into the death of the node's instance (die), as for the
// fatal disk errors of fs.go.
//
// The fault holds back the syncs of one node's state database, Raft log
// or both, from the moment it is injected until it ends (minutes of
// simulated time): the syncs of its write-ahead logs in Pebble's log
// flusher, of its MANIFESTs in the MANIFEST writer and of its sstables
// in a flush or compaction — the places where a goroutine may sleep on
// the bubble's clock without holding a mutex another goroutine waits for
// (fs.go, "slow disk"). The same device stalls every other sync too;
// those are left alone, as the bubble could not go on past them, and the
// ones held are what the node waits for: every commit of the stalled
// database waits for its log's sync. An operation held back returns once
// the stall ends or its instance is gone, and succeeds: on the orphaned
// file system of a dead instance nothing reads it again.
//
// The stall is the device's, not the process's: it outlasts the
// instance. The service manager starts the node again serviceRestart
// after the watch ended it (in the run and in settle, where the stall
// lasts 40 to 80 s more at most: settle), and an instance
// started while the stall lasts stalls too, on the same disk (its crash
// clones included; a data directory lost to a new disk ends it), until
// its own watch ends it again; the first start after the stall ended
// succeeds and the node catches up. What such a start syncs, and what
// of it the simulator holds:
//
//   - durable.MkdirAll of the data directory (node.New syncs every
//     ancestor at every start), of the Raft directory and of the
//     snapshot store (consensus.Start): on the unwatched file system, in
//     the node and in the simulator (node.go), so a real node whose disk
//     still stalls hangs there, without an ALARM and without ending,
//     until the disk answers (docs/architecture.md, "A stalled disk").
//     Not held: they run in the start's goroutine, the simulator's
//     scheduler, which would stop the whole simulated network.
//   - Pebble's Open of either database (its MANIFEST, the new
//     write-ahead log, the OPTIONS file, the directory syncs, the flush
//     of the log it replayed, which Open waits for): on the watched file
//     system, so a real node that got this far ends at Open. Not held
//     either: Open runs in the scheduler too, or the scheduler waits
//     for it (and a new database's first MANIFEST is written with
//     Pebble's DB.mu held).
//   - the pool journal (opened, not synced, at a start), nodekey and
//     admin.token (written at a first start only): unwatched; not held.
//
// So nothing is held while an instance starts (instance.starting); once
// it runs, its syncs are held as the first instance's were: the probes
// (store.Prober, every quarter of the bound), raft's appends and votes,
// the FSM's applies. Its watch then ends it within the bound, the
// probe's interval and a tick of Pebble's check (at most 27 s with the
// defaults) after its start, where a real node, once the MkdirAlls are
// watched too, would end within the bound and a tick.
type diskStall struct {
	// which says the stores that stall (1<<0: the state database, 1<<1:
	// the Raft log), until until (UnixNano of the bubble's clock; 0: no
	// stall), whichever instance of the node runs on the disk.
	which atomic.Int32
	until atomic.Int64
	// led says the node led when its disk stalled, at the height the
	// chain had then (stallHeight); held counts the syncs held back;
	// detected is set once the node's own watch ended its process.
	led      bool
	height   uint64
	held     atomic.Int64
	detected atomic.Bool
	// endedAt is when the watch last ended the node's process (UnixNano
	// of the bubble's clock; 0: not since its last start): its service
	// manager starts it again serviceRestart later.
	endedAt atomic.Int64
	// stalledStarts counts the instances started while the stall lasted
	// that the watch ended. back is the instance started after the watch
	// ended the node's process (nil: none since), until it outlives the
	// stall (recovered counts those, backStalled those of them started
	// while the disk still stalled) or ends.
	stalledStarts          atomic.Int64
	back                   atomic.Pointer[instance]
	recovered, backStalled int
}

// serviceRestart is how long the service manager waits before it starts
// a node whose process ended (deploy/systemd/tallyd.service: RestartSec).
const serviceRestart = 5 * time.Second

// restartDue reports whether the service manager starts the node again
// now, its process having ended on a stalled disk (or not at all).
func (sn *simNode) restartDue() bool {
	at := sn.stall.endedAt.Load()
	return at == 0 || time.Now().UnixNano()-at >= int64(serviceRestart)
}

// Bounds of a disk-stall fault, and how often a held operation looks
// whether its instance is gone.
const (
	minStall  = time.Minute
	maxStall  = 5 * time.Minute
	stallPoll = 50 * time.Millisecond
)

// A stall lasts at most minSettleStall to maxSettleStall (drawn) into the
// settle phase, which ends the faults: long enough for the instance that
// stalled to end (within 22 s) and for its service manager to start it
// on the disk that still stalls, whose watch ends that start too (within
// 27 s more); the next start then comes after the stall ended, or runs
// when it ends (whichever the draw gives). The whole stall would make
// every run that draws one settle for up to five minutes of simulated
// time more, starting the node again and again on the same path (about
// two thirds more CPU for TestSim's 200 seeds).
const (
	minSettleStall = 40 * time.Second
	maxSettleStall = 80 * time.Second
)

// settle shortens the stall to at most d from now, at the start of the
// settle phase.
func (st *diskStall) settle(d time.Duration) {
	if end := time.Now().Add(d).UnixNano(); st.until.Load() > end {
		st.until.Store(end)
	}
}

// active reports whether the node's disk stalls now.
func (st *diskStall) active() bool {
	return time.Now().UnixNano() < st.until.Load()
}

// hold holds op back while the disk of instance inst stalls, if op is
// a sync of a stalled store (which: 0 the state database, 1 the Raft log;
// db its directory) in a place where the goroutine may sleep (above),
// and the instance is not starting.
func (sn *simNode) hold(inst *instance, which int, db string, op errorfs.Op) {
	st := &sn.stall
	if !isSync(op) || st.which.Load()&(1<<which) == 0 || !st.active() || inst.starting.Load() {
		return
	}
	switch {
	case diskfault.WAL(db, op) && inLogFlusher():
	case manifest(db, op) && inManifestWriter():
	case diskfault.Table(db, op) && inTableWriter():
	default:
		return
	}
	st.held.Add(1)
	for st.active() && sn.inst.Load() == inst && inst.death.Load() == nil {
		time.Sleep(stallPoll)
	}
}

// diskStall stalls the disk of an up node: the leader's half of the time
// (the case that stops the chain), otherwise a random node's; its state
// database, its Raft log or both. One stall at a time.
func (s *Sim) diskStall() {
	for _, sn := range s.nodes {
		if sn.stall.active() {
			return
		}
	}
	sn := s.randomUp()
	if sn == nil {
		return
	}
	if l := s.leader(); l != nil && s.rng.IntN(2) == 0 {
		sn = l
	}
	which := 1 + s.rng.IntN(3)
	d := minStall + time.Duration(s.rng.Int64N(int64(maxStall-minStall)))
	st := &sn.stall
	st.led, st.height = s.leader() == sn, s.inv.height
	st.detected.Store(false)
	st.endedAt.Store(0)
	st.which.Store(int32(which))
	st.until.Store(time.Now().Add(d).UnixNano())
	s.count(FaultDiskStall)
	s.record("%s n%d (leader %v) %s for %s", FaultDiskStall, sn.id, st.led, []string{"", "state", "raft log", "state and raft log"}[which], d)
}

// stalls is the stall watch of instance inst's stores: the node's
// (store.max-sync-duration), whose end of the process is the end of the
// instance (die).
func (sn *simNode) stalls(inst *instance) store.Stalls {
	st := sn.cfg.Stalls()
	st.OnStall = func(err *store.StallError) {
		if sn.inst.Load() == inst && inst.death.Load() == nil {
			// Only the disk-stall fault holds an operation for the bound.
			sn.stall.back.CompareAndSwap(inst, nil)
			sn.stall.detected.Store(true)
			sn.stall.endedAt.Store(time.Now().UnixNano())
			if inst.onStalledDisk {
				sn.stall.stalledStarts.Add(1)
			}
		}
		sn.die(inst, err.Error()+": the store ends the process")
	}
	return st
}

// serviceRestartDue reports whether the service manager starts the node
// now: the watch ended its process serviceRestart ago or more, and
// nothing else keeps it down (a lost Raft directory waits for its
// operator).
func (sn *simNode) serviceRestartDue() bool {
	return !sn.up && sn.stall.endedAt.Load() != 0 && sn.restartDue() && sn.lostAt.IsZero()
}

// started notes how the start of instance inst ended (err nil: it
// runs): one that runs after the watch ended the node's process is the
// node coming back, once it outlives the stall (recovery).
func (sn *simNode) started(inst *instance, err error) {
	st := &sn.stall
	if err != nil {
		return
	}
	if st.endedAt.Load() != 0 {
		st.back.Store(inst)
	}
	st.endedAt.Store(0)
}

// recovery counts the node's instance that came back after the watch
// ended its process (back) once it runs past the stall: the disk answers
// and the watch did not end it. One stopped or crashed meanwhile is no
// longer looked at.
func (sn *simNode) recovery() {
	st := &sn.stall
	inst := st.back.Load()
	if inst == nil {
		return
	}
	switch {
	case sn.inst.Load() != inst || inst.death.Load() != nil:
		st.back.Store(nil)
	case !st.active():
		st.back.Store(nil)
		st.recovered++
		if inst.onStalledDisk {
			st.backStalled++
		}
	}
}

// serviceRestarts starts again the nodes whose process the watch ended
// serviceRestart ago, as their service manager does (Restart=on-failure,
// RestartSec), on the disk they left, stalled or not.
func (s *Sim) serviceRestarts() error {
	for _, sn := range s.nodes {
		sn.recovery()
		if sn.serviceRestartDue() {
			if err := s.restart(sn); err != nil {
				return err
			}
		}
	}
	return nil
}

// stallEnd is when the stall of a node's disk ends (zero: none stalls).
func (s *Sim) stallEnd() time.Time {
	for _, sn := range s.nodes {
		if sn.stall.active() {
			return time.Unix(0, sn.stall.until.Load())
		}
	}
	return time.Time{}
}

// stallResult counts the stalls whose node's watch ended its process
// (store.max-sync-duration), and among them those of a leader whose lead
// moved: a block after the height its disk stalled at was built by
// another node (its proposer, the block's coinbase); the starts on a
// disk still stalled that the watch ended; and the nodes that came back
// after the watch ended their process (recovery), among them those
// started while the disk still stalled. Called at the end of a run,
// every node up with the whole chain.
func (s *Sim) stallResult() (detected, moved, stalledStarts, recovered, backStalled int) {
	for _, sn := range s.nodes {
		st := &sn.stall
		sn.recovery()
		stalledStarts += int(st.stalledStarts.Load())
		recovered += st.recovered
		backStalled += st.backStalled
		if !st.detected.Load() {
			continue
		}
		detected++
		if !st.led {
			continue
		}
		for h := st.height + 1; h <= s.inv.height; h++ {
			if b, err := sn.db.BlockByNumber(h); err == nil && b.Header.Coinbase != sn.key.Address() {
				moved++
				break
			}
		}
	}
	return detected, moved, stalledStarts, recovered, backStalled
}
