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
// The fault holds back the syncs of one instance's state database, Raft
// log or both, from the moment it is injected until it ends (minutes of
// simulated time) or the instance is gone (stopped, crashed or dead):
// the syncs of its write-ahead logs in Pebble's log flusher, of its
// MANIFESTs in the MANIFEST writer and of its sstables in a flush or
// compaction — the places where a goroutine may sleep on the bubble's
// clock without holding a mutex another goroutine waits for (fs.go,
// "slow disk"). The same device stalls every other sync too; those are
// left alone, as the bubble could not go on past them, and the ones held
// are what the node waits for: every commit of the stalled database
// waits for its log's sync. The next instance finds the disk answering
// (the stall was a hung request, not a dead device; a start on a device
// that fails is the other disk faults'). An operation held back returns
// once the stall ends or its instance is gone, and succeeds: on the
// orphaned file system of a dead instance nothing reads it again.
type diskStall struct {
	// inst is the instance whose disk stalls (nil: none), which the
	// stores it stalls (1<<0: the state database, 1<<1: the Raft log),
	// until when (UnixNano of the bubble's clock).
	inst  atomic.Pointer[instance]
	which atomic.Int32
	until atomic.Int64
	// led says the node led when its disk stalled, at the height the
	// chain had then (stallHeight); held counts the syncs held back;
	// detected is set once the node's own watch ended its process.
	led      bool
	height   uint64
	held     atomic.Int64
	detected atomic.Bool
	// endedAt is when the watch ended the process (UnixNano of the
	// bubble's clock; 0: it did not): its service manager starts it again
	// serviceRestart later.
	endedAt atomic.Int64
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

// active reports whether instance inst's disk stalls now.
func (st *diskStall) active(inst *instance) bool {
	return inst != nil && st.inst.Load() == inst && time.Now().UnixNano() < st.until.Load()
}

// hold holds op back while the disk of instance inst stalls, if op is
// a sync of a stalled store (which: 0 the state database, 1 the Raft log;
// db its directory) in a place where the goroutine may sleep (above).
func (sn *simNode) hold(inst *instance, which int, db string, op errorfs.Op) {
	st := &sn.stall
	if !isSync(op) || st.which.Load()&(1<<which) == 0 || !st.active(inst) {
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
	for st.active(inst) && sn.inst.Load() == inst && inst.death.Load() == nil {
		time.Sleep(stallPoll)
	}
}

// diskStall stalls the disk of an up node: the leader's half of the time
// (the case that stops the chain), otherwise a random node's; its state
// database, its Raft log or both. One stall at a time.
func (s *Sim) diskStall() {
	for _, sn := range s.nodes {
		if sn.stall.active(sn.inst.Load()) {
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
	st.inst.Store(sn.inst.Load())
	s.count(FaultDiskStall)
	s.record("%s n%d (leader %v) %s for %s", FaultDiskStall, sn.id, st.led, []string{"", "state", "raft log", "state and raft log"}[which], d)
}

// stalls is the stall watch of instance inst's stores: the node's
// (store.max-sync-duration), whose end of the process is the end of the
// instance (die).
func (sn *simNode) stalls(inst *instance) store.Stalls {
	st := sn.cfg.Stalls()
	st.OnStall = func(err *store.StallError) {
		if sn.stall.inst.Load() == inst {
			sn.stall.detected.Store(true)
			sn.stall.endedAt.Store(time.Now().UnixNano())
		}
		sn.die(inst, err.Error()+": the store ends the process")
	}
	return st
}

// stallResult counts the stalls whose node's watch ended its process
// (store.max-sync-duration), and among them those of a leader whose lead
// moved: a block after the height its disk stalled at was built by
// another node (its proposer, the block's coinbase). Called at the end
// of a run, every node up with the whole chain.
func (s *Sim) stallResult() (detected, moved int) {
	for _, sn := range s.nodes {
		st := &sn.stall
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
	return detected, moved
}
