package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/durable"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/store"
)

// Directories of a simulated node on its file system: its data
// directory (tallyd's --datadir) under the root, which holds the
// directory's entry, and the stores inside it as a node lays them out.
const (
	dataDir  = "/data"
	stateDir = dataDir + "/state"
	raftDir  = dataDir + "/raft"
)

// simNode is one simulated validator: the node's own state database,
// mempool, sender cache and consensus engine (FSM, builder, Raft over the
// simulated network), on an in-memory file system that a crash clones
// with its unsynced writes lost.
type simNode struct {
	id  int
	key *crypto.PrivateKey
	g   *genesis.Genesis
	cfg node.Config
	log *slog.Logger
	fs  *vfs.MemFS
	// diskErr makes every write and sync of the state database's WAL fail
	// (EIO) until the node halts on it (a disk-error fault); raftDiskErr
	// does the same to the Raft log's (a raft-disk-error fault).
	diskErr, raftDiskErr atomic.Bool
	// metaDiskErr makes the metadata writes of the state database ([0])
	// or the Raft log ([1]) fail (a meta-disk-error fault): the process
	// of the instance that meets it ends (fs.go).
	metaDiskErr [2]atomic.Bool
	// tableErr makes the sstable writes of the state database ([0]) or
	// the Raft log ([1]) fail (a table-disk-error fault), readErr the
	// state database's sstable reads (a read-error fault), optionsErr the
	// OPTIONS writes of either (an options-disk-error fault; fs.go).
	tableErr, optionsErr [2]atomic.Bool
	readErr              atomic.Bool
	// dirs holds the faults of directory and MANIFEST syncs (a
	// dir-sync-error, a slow-manifest-sync; fs.go).
	dirs dirFaults
	// raftReadErr makes the Raft log's sstable reads fail (a
	// raft-read-error fault).
	raftReadErr atomic.Bool
	// observing is the run's Sim.observing: set while the simulator's own
	// checks read the node's database, past its read faults.
	observing *atomic.Bool
	// inst is the running instance (nil while the node is down).
	inst atomic.Pointer[instance]
	// lostAt is when the node's Raft directory was wiped (a raft-dir-lost
	// fault; zero: it was not): its next start must be refused, and its
	// operator starts it as a fresh member (freshRaft) once it is safe.
	lostAt    time.Time
	freshRaft bool
	// endedGated: its last instance ended granting no vote (a fresh
	// member not caught up, consensus.voteGate). What it wrote to its
	// Raft directory may not have reached the disk (a stall ended it), and
	// its next start may be refused as a lost Raft directory again: its
	// operator starts it fresh again (Sim.restart).
	endedGated bool
	// slow makes the node's WAL syncs take simulated time (a slow-disk
	// fault; fs.go).
	slow slowDisk
	// stall holds its syncs back for minutes (a disk-stall fault;
	// stall.go).
	stall diskStall
	// clearHalt is set when the node halted on an injected disk error: its
	// next start clears the halt record first, as an operator does with
	// tallyd --clear-halt once the disk is replaced.
	clearHalt bool
	epoch     int
	up        bool
	// bootstrap is the Raft configuration a first start bootstraps (the
	// genesis validators; none for a standby node).
	bootstrap []raft.Server
	ids       *simIDs
	seed      uint64 // the run's, for relayJitter
	snaps     snapStats

	db      *store.DB
	pool    *mempool.Pool
	senders *chain.SenderCache
	engine  *consensus.Engine
	votes   *consensus.VoteRelay
	// members is the node's own membership reconciler (node.Membership)
	// over the simulated network; memStop ends its loop, memDone says so.
	members *node.Membership
	memStop chan struct{}
	memDone chan struct{}
	// journalDone says the pool journal's compaction (compactJournal),
	// which memStop ends too, returned.
	journalDone chan struct{}
	// journalRewrites counts the pool journal's rewrites, in every
	// instance.
	journalRewrites atomic.Int64
	// adm is the node's admission path (forward.go); fwdDone says its
	// leader follower ended.
	adm     *node.Admission
	fwdDone chan struct{}
	// submits counts the client calls under way in adm (admit.go).
	submits sync.WaitGroup
	ep      *endpoint
	// appliedAt is the Raft index each block was applied from, as the FSM
	// reported it (for failure reports).
	appliedMu sync.Mutex
	appliedAt map[uint64]uint64
	// checked is the highest height whose block this instance's state was
	// compared with the canonical chain.
	checked uint64
	// restoredTo is the Raft index of the state the node's last snapshot
	// restore put in place, across its instances (durableLog).
	restoredTo atomic.Uint64
}

// nodeConfig is the node configuration every simulated node runs: the
// node's defaults (node.DefaultConfig) with snapshots taken often enough
// to happen in a run (snapshotConfig).
func nodeConfig() node.Config {
	c := node.DefaultConfig()
	snapshotConfig(&c)
	// A start runs in the scheduler's goroutine, so the peers' answers
	// cannot change while a node waits for them: bound the wait
	// (datadir.go).
	c.Raft.PeerCheckTimeout = node.Duration(peerCheckTimeout)
	return c
}

// diedError is a start that did not happen: the new instance's process
// ended on its failing disk (a metadata disk error at Open).
type diedError struct{ d *death }

func (e *diedError) Error() string { return "its process ended: " + e.d.reason }

// start opens the node's stores on its file system and starts consensus.
func (sn *simNode) start(net *network) (err error) {
	sn.epoch++
	inst := &instance{fs: sn.fs, net: net, onStalledDisk: sn.stall.active()}
	inst.starting.Store(true)
	sn.inst.Store(inst)
	defer func() {
		inst.starting.Store(false)
		sn.started(inst, err)
	}()
	defer func() {
		d := inst.death.Load()
		if d == nil {
			if err != nil {
				sn.inst.Store(nil)
			}
			return
		}
		// The process ended during its start: the node stays down on
		// the disk it left, and its operator replaces the disk.
		if sn.up {
			if serr := sn.bury(d, net); serr != nil {
				sn.log.Warn("stop the dead instance", "err", serr)
			}
		} else {
			sn.inst.Store(nil)
			sn.fs = d.disk
			sn.repairDisk()
		}
		err = &diedError{d}
	}()
	// The node's data directory, its entry and its ancestors' synced, as
	// node.New makes it.
	if err := durable.MkdirAll(sn.disk(inst, stateDir), dataDir); err != nil {
		return fmt.Errorf("node %d: datadir: %w", sn.id, err)
	}
	db, err := store.Open(stateDir, store.Options{FS: sn.disk(inst, stateDir), Logger: sn.log, CacheSize: 1 << 20, Stalls: sn.stalls(inst)})
	if err != nil {
		return fmt.Errorf("node %d: %w", sn.id, err)
	}
	if sn.clearHalt {
		// Only a halt the injected disk error caused: any other is a bug
		// the run must report, not clear.
		if r, err := db.HaltRecord(); err != nil || (r != nil && !strings.Contains(r.Reason, errorfs.ErrInjected.Error())) {
			db.Close()
			if err == nil {
				err = fmt.Errorf("halted for another reason than its disk: %s", r.Reason)
			}
			return fmt.Errorf("node %d: clear halt: %w", sn.id, err)
		}
		if _, err := db.ClearHalt(); err != nil {
			db.Close()
			return fmt.Errorf("node %d: clear halt: %w", sn.id, err)
		}
		sn.clearHalt = false
	}
	if err := db.InitGenesis(sn.g); err != nil {
		db.Close()
		return fmt.Errorf("node %d: %w", sn.id, err)
	}
	sn.db = db
	sn.appliedMu.Lock()
	if sn.appliedAt == nil {
		sn.appliedAt = map[uint64]uint64{}
	}
	sn.appliedMu.Unlock()
	sn.senders = chain.NewSenderCache(chain.NewSigner(sn.g.ChainIDBig()), 1<<14)
	mc := sn.cfg.Mempool
	sn.pool = mempool.New(mempool.Config{MaxPerAccount: mc.MaxPerAccount, MaxTotal: mc.MaxTotal,
		GapGrace: time.Duration(mc.GapGrace), GapExpiry: time.Duration(mc.GapExpiry)}, db, sn.senders)
	// The pool journal's disk: dataDir holds no database of its own, so of
	// the node's faults only the failed syncs of its directories apply (a
	// rewrite's rename syncs dataDir).
	adm, err := node.OpenAdmission(node.AdmissionConfig{DB: db, Pool: sn.pool, Senders: sn.senders, FS: sn.disk(inst, dataDir), Journal: journalPath,
		JournalCompactMin: journalCompactMin,
		IsLeader:          func() bool { return sn.engine.IsLeader() }, IsValidator: func() bool {
			return db.IsValidator(sn.key.Address()) && sn.engine != nil && sn.engine.IsVoter(raft.ServerID(addr(sn.id)))
		},
		OnJournalFailure: func(err error) {
			if e := sn.engine; e != nil {
				e.FSM.Halt(err)
			}
		},
		Log: sn.log})
	if err != nil {
		db.Close()
		return fmt.Errorf("node %d: %w", sn.id, err)
	}
	sn.adm = adm
	sn.ep = net.attach(sn.id, sn.epoch)
	vc := sn.cfg.Votes
	sn.votes = consensus.NewVoteRelay(db, sn.key, consensus.VoteConfig{Window: vc.Window, MaxAhead: vc.MaxAhead},
		raft.ServerID(addr(sn.id)), sn.ep, time.Duration(vc.ResendInterval), sn.log)
	sn.ep.votes = sn.votes.Receive
	sn.members = node.NewMembership(node.MembershipConfig{Self: raft.ServerID(addr(sn.id)), DB: db,
		Net: simMembers{simIDs: sn.ids, net: net, self: sn.id}, CatchUpLag: sn.cfg.Builder.MaxVoterLag, Log: sn.log,
		HandedOver: adm.Reforward})
	if head, ok := db.Head(); ok {
		net.heights[sn.id].Store(head.Number)
	}
	rc, bc := sn.cfg.Raft, sn.cfg.Builder
	epoch := sn.epoch
	snaps, err := sn.openSnapshots(inst)
	if err != nil {
		net.detach(sn.id)
		db.Close()
		return err
	}
	sn.engine, err = consensus.Start(consensus.Config{
		Dir:       raftDir,
		FS:        sn.disk(inst, raftDir),
		Snapshots: snaps,
		Stalls:    sn.stalls(inst),
		LocalID:   raft.ServerID(addr(sn.id)),
		Transport: sn.ep,
		Bootstrap: sn.bootstrap,
		FreshRaft: sn.freshRaft,
		AskPeers:  sn.askPeers(net),
		Address:   sn.ids.Address,
		Key:       sn.key,
		Builder: consensus.BuilderConfig{
			MaxBlockTxs:   bc.MaxBlockTxs,
			MaxInflight:   bc.MaxInflightBlocks,
			BlockInterval: time.Duration(bc.BlockInterval),
			Heartbeat:     time.Duration(bc.Heartbeat),
			ApplyTimeout:  consensus.DefaultBuilderConfig.ApplyTimeout,
			Certificates:  sn.votes.Collector.Ready,
			Hold:          sn.members.Hold,
		},
		HeartbeatTimeout:   time.Duration(rc.HeartbeatTimeout),
		ElectionTimeout:    time.Duration(rc.ElectionTimeout),
		LeaderLeaseTimeout: time.Duration(rc.LeaderLeaseTimeout),
		CommitTimeout:      time.Duration(rc.CommitTimeout),
		SnapshotThreshold:  rc.SnapshotThreshold,
		SnapshotInterval:   time.Duration(rc.SnapshotInterval),
		TrailingLogs:       rc.TrailingLogs,
		PeerCheckTimeout:   time.Duration(rc.PeerCheckTimeout),
		Logger:             sn.log,
		LogLevel:           slog.LevelError,
		OnRestored: func() {
			head, _ := db.Head()
			sn.restoredTo.Store(head.RaftIndex)
			sn.votes.Restored()
			sn.snaps.restored(epoch)
		},
		OnApplied: func(a *store.Applied) {
			sn.votes.Applied(a)
			sn.members.Kick()
			net.heights[sn.id].Store(a.Block.Number())
			head, _ := db.Head()
			sn.appliedMu.Lock()
			sn.appliedAt[a.Block.Number()] = head.RaftIndex
			sn.appliedMu.Unlock()
		},
	}, db, sn.pool, sn.senders)
	if err != nil {
		net.detach(sn.id)
		adm.Close()
		db.Close()
		return fmt.Errorf("node %d: %w", sn.id, err)
	}
	sn.freshRaft, sn.lostAt = false, time.Time{}
	net.engines[sn.id].Store(sn.engine)
	engine, votes, jitter := sn.engine, sn.votes, relayJitter(sn.seed, sn.id, sn.epoch)
	go func() {
		time.Sleep(jitter)
		votes.Run(engine)
	}()
	sn.memStop, sn.memDone = make(chan struct{}), make(chan struct{})
	go func(e *consensus.Engine, stop, done chan struct{}) {
		defer close(done)
		sn.members.Run(e, stop)
	}(sn.engine, sn.memStop, sn.memDone)
	sn.startAdmission()
	sn.journalDone = make(chan struct{})
	go sn.compactJournal(sn.adm, sn.memStop, sn.journalDone, journalOffset+jitter)
	sn.up = true
	return nil
}

// The simulated pool journal is rewritten past journalCompactMin (a few
// dozen transactions; a node's 1 MiB is never reached by a run), checked
// every journalCheck as the node does, journalOffset (plus the node's
// relay jitter) off the builder's one-second heartbeat.
const (
	journalCompactMin = 4 << 10
	journalCheck      = time.Second
	journalOffset     = time.Second / 2
)

// compactJournal rewrites adm's pool journal once it has grown enough, as
// node.Node does, until stop; it closes done when it returns.
func (sn *simNode) compactJournal(adm *node.Admission, stop, done chan struct{}, offset time.Duration) {
	defer close(done)
	select {
	case <-stop:
		return
	case <-time.After(offset):
	}
	t := time.NewTicker(journalCheck)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if adm.CompactJournal() {
			sn.journalRewrites.Add(1)
		}
	}
}

// stop shuts the instance down in order (a clean stop, or the rest of a
// crash once its file system was cloned and its endpoint closed).
func (sn *simNode) stop(net *network) error {
	if !sn.up {
		return nil
	}
	sn.up = false
	sn.endedGated = !sn.engine.Voting()
	sn.inst.Store(nil)
	net.detach(sn.id)
	sn.votes.Close()
	// The reconciler may wait on a configuration change that the
	// shutdown fails: stop it, shut Raft down, then wait for it.
	close(sn.memStop)
	err := sn.engine.Shutdown()
	<-sn.memDone
	<-sn.fwdDone
	<-sn.journalDone
	// Client calls in the node's admission code end once forwarding and
	// replication stop; the journal and the database close after them,
	// as a node's HTTP requests end before its stores close.
	sn.adm.StopNetwork()
	sn.submits.Wait()
	if cerr := sn.adm.Close(); err == nil {
		err = cerr
	}
	if cerr := sn.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// crash stops the instance as a power cut would: the file system the next
// instance finds is a clone of this one taken now, where each write not
// yet synced is lost with probability lossPercent (pebble's CrashClone).
// The old instance is cut off the network first and then shut down on its
// own, now orphaned, file system.
func (sn *simNode) crash(net *network, rng *rand.Rand, lossPercent int) error {
	if !sn.up {
		return nil
	}
	sn.inst.Store(nil)
	net.detach(sn.id)
	clone := sn.fs.CrashClone(vfs.CrashCloneCfg{}) // only what was synced
	var cerr error
	if lossPercent > 0 {
		if c, err := crashClone(sn.fs, rng, 100-lossPercent); err != nil {
			cerr = err
		} else {
			clone = c
		}
	}
	err := sn.stop(net)
	sn.fs = clone
	return errors.Join(cerr, err)
}

// raftIndexOf is the Raft index block h was applied from on this node (0:
// not seen, e.g. applied by an earlier instance).
func (sn *simNode) raftIndexOf(h uint64) uint64 {
	sn.appliedMu.Lock()
	defer sn.appliedMu.Unlock()
	return sn.appliedAt[h]
}
