package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ethereum/go-ethereum/common"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/internal/durable"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/store"
)

// Config configures an Engine.
type Config struct {
	// Dir holds the Raft log and stable store (Dir/log) and snapshots (Dir/snapshots).
	Dir string
	// LocalID is this node's Raft server id (and, for now, its address).
	LocalID raft.ServerID
	// Transport carries Raft RPCs.
	Transport raft.Transport
	// Bootstrap is the initial configuration, used only when Dir holds no
	// Raft state. Empty: the node waits for a leader to add it (an observer).
	Bootstrap []raft.Server
	// FreshRaft lets the node start with no Raft state although its state
	// database applied Raft entries (ErrRaftStateLost): it then starts
	// as a fresh member, without bootstrapping, and waits for the leader
	// to send it the log. The operator asserts that the votes the node
	// forgot can no longer count (docs/cluster.md).
	FreshRaft bool
	// AskPeers, when set, asks the peers (the other genesis validators,
	// one answer each, and for a node that is not one its configured
	// peers and the current voters earlier answers named), within the
	// context's deadline, whether the chain ran with this node in it:
	// called only when Dir holds no Raft state and the state is at
	// genesis (a first start, or a data directory lost with its nodekey
	// restored; DecideBootstrap), again while the answers are too few.
	// nil: nobody to ask.
	AskPeers func(context.Context) []PeerAnswer
	// PeerCheckTimeout bounds how long Start keeps asking while the
	// answers are too few to decide (raft.peer-check-timeout); 0: until
	// they are enough.
	PeerCheckTimeout time.Duration
	// Address maps a Raft server id to its validator address, to record
	// the validators whose Raft answered this node's (KnowsMember); nil
	// records only the proposers of applied blocks.
	Address func(raft.ServerID) (common.Address, error)
	// Key signs the blocks this node proposes.
	Key *crypto.PrivateKey
	// Builder tunes block production.
	Builder BuilderConfig
	// Raft timeouts; zero values take hashicorp/raft's defaults.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
	// SnapshotThreshold is how many entries after the last snapshot trigger a new one.
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks the threshold.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot.
	TrailingLogs uint64
	// SnapshotRetain is how many snapshots to keep.
	SnapshotRetain int
	// NoSync skips fsync in the Raft log (tests and benchmarks only).
	NoSync bool
	// FS is the file system of the Raft log and the snapshots (nil: the
	// operating system's). It must be the state database's: a snapshot is
	// a checkpoint of it, hard-linked into Dir/snapshots.
	FS vfs.FS
	// Stalls watches the Raft log's disk for an operation that hangs
	// (store.Stalls: the process ends; the zero value watches nothing).
	Stalls store.Stalls
	// Snapshots replaces the checkpoint store in Dir/snapshots (tests).
	Snapshots raft.SnapshotStore
	Logger    *slog.Logger
	// LogLevel is the level below which Raft's own logs are dropped.
	LogLevel slog.Level
	// OnApplied is called in the FSM goroutine after each applied block.
	OnApplied func(*store.Applied)
	// OnRestored is called in the FSM goroutine after a snapshot replaced
	// the state (after the mempool resynchronised).
	OnRestored func()
	// OnProposed is called after each block this node proposes.
	OnProposed func(*chain.Block)
}

// ErrRaftStateLost is the refusal of Start to run a node whose Raft
// directory is empty although its state database applied Raft entries:
// the stable store held the node's current term and the vote it cast in
// it, and a node that forgot them may vote a second time in a term it
// already voted in, electing two leaders in one term (Raft's election
// safety rests on that vote being durable).
var ErrRaftStateLost = errors.New("raft state lost")

// Engine runs hashicorp/raft with the FSM, the Pebble log store, the
// checkpoint snapshot store and, while this node leads, the block builder.
type Engine struct {
	cfg     Config
	Raft    *raft.Raft
	FSM     *FSM
	builder *Builder
	store   *RaftStore
	notify  chan bool
	// halts wakes the leadership loop when the FSM halts.
	halts chan struct{}
	log   *slog.Logger
	// leave wakes it when the Raft log's disk failed and this node must
	// leave Raft.
	leave chan struct{}
	// ready is set while this node leads and its applied state includes
	// every entry of earlier terms (after the Barrier).
	ready atomic.Bool
	// votes holds back the votes of a fresh member (freshvotes.go; nil:
	// none held back).
	votes *voteGate

	wg     sync.WaitGroup
	cancel context.CancelFunc

	// stopping is closed when the engine stops (Shutdown) or leaves Raft
	// (its log's disk failed): it bounds every wait on a raft future
	// (waitFuture), since raft leaves some futures unanswered when it
	// shuts down.
	stopping  chan struct{}
	closeOnce sync.Once
	// leftRaft is set once the engine shut Raft down (State).
	leftRaft atomic.Bool

	// stopOnce and stopped: Raft is shut down once, by a Raft log disk
	// failure or by Shutdown, which waits on the first shutdown's future
	// (hashicorp/raft's second Shutdown returns at once, without waiting
	// for its goroutines).
	stopOnce sync.Once
	stopped  raft.Future

	// known is which servers' Raft this node saw running (bootstrap.go).
	known *knownMembers
}

// Start opens the Raft stores, starts Raft (bootstrapping on first start)
// and the leadership loop.
func Start(cfg Config, db *store.DB, pool *mempool.Pool, senders *chain.SenderCache) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	fs := cfg.FS
	if fs == nil {
		fs = vfs.Default
	}
	// The Raft directory's ancestors are synced before the Raft store
	// watches the disk: watched here too, so that a start on a disk that
	// still stalls ends within the bound (store.Stalls) instead of
	// hanging unreported (TestStartOnStalledDiskEnds). The snapshot store
	// is made once the Raft store's probe watches the same disk.
	watched, unwatch := cfg.Stalls.Watch(fs, cfg.Dir, cfg.Logger)
	err := durable.MkdirAll(watched, cfg.Dir)
	unwatch.Close()
	if err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	e := &Engine{cfg: cfg, notify: make(chan bool, 16), halts: make(chan struct{}, 1), leave: make(chan struct{}, 1), log: cfg.Logger,
		stopping: make(chan struct{})}
	logStore, err := OpenRaftStore(fs.PathJoin(cfg.Dir, "log"), RaftStoreOptions{NoSync: cfg.NoSync, Logger: cfg.Logger, FS: cfg.FS, OnDiskFailure: e.raftLogFailed, Stalls: cfg.Stalls})
	if err != nil {
		return nil, err
	}
	e.store = logStore
	e.known = &knownMembers{known: map[common.Address]bool{}, ids: map[raft.ServerID]bool{}, store: logStore, address: cfg.Address, log: cfg.Logger, wake: make(chan struct{}, 1)}
	snaps := cfg.Snapshots
	if snaps == nil {
		retain := cfg.SnapshotRetain
		if retain <= 0 {
			retain = 2
		}
		if snaps, err = NewCheckpointStoreFS(fs, fs.PathJoin(cfg.Dir, "snapshots"), retain, cfg.Logger); err != nil {
			logStore.Close()
			return nil, err
		}
	}
	if h, ok := snaps.(interface{ OnDiskFailure(func(error)) }); ok {
		h.OnDiskFailure(e.snapshotsFailed)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = cfg.LocalID
	rc.NoSnapshotRestoreOnStart = true
	rc.NotifyCh = e.notify
	rc.Logger = NewRaftLogger(cfg.Logger, cfg.LogLevel)
	rc.NoLegacyTelemetry = true
	if cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	}
	if cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	}
	if cfg.CommitTimeout > 0 {
		rc.CommitTimeout = cfg.CommitTimeout
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}

	// The builder exists before Raft starts: Raft's FSM goroutine calls
	// it (Applied, Notify) from the first entry it applies, which can be
	// before NewRaft returns (a data race on the builder, and a nil
	// builder in the FSM, found with -race). It proposes through Raft
	// once the leadership loop runs it.
	builder := NewBuilder(cfg.Builder, db, pool, nil, cfg.Key, cfg.Logger, cfg.OnProposed)
	builder.stop = e.stopping
	e.builder = builder
	onApplied := func(a *store.Applied) {
		e.known.saw(a.Block.Header.Coinbase) // its proposer led: its Raft ran
		e.known.signed(a.Block.Certs, db.ChainID())
		pool.Applied(a.Block.Txs, a.Senders)
		if cfg.OnApplied != nil {
			cfg.OnApplied(a)
		}
		builder.Applied(a.Block.Number(), a.Block.Hash())
		builder.Notify()
	}
	e.FSM = NewFSM(db, senders, cfg.Logger, onApplied, func(uint64, error) { builder.Notify() })
	e.FSM.own = newOwnBlocks(cfg.Builder.MaxInflight) // before raft applies anything
	builder.onBroken = func(err error) { e.FSM.Halt(err) }
	builder.own = e.FSM.own
	e.FSM.onHalt = func() {
		select {
		case e.halts <- struct{}{}:
		default:
		}
	}
	restored, err := catchUpSnapshot(snaps, e.FSM, db, cfg.Logger)
	if err != nil {
		e.closeStores()
		return nil, fmt.Errorf("raft: state behind the newest snapshot: %w", err)
	}
	if restored {
		if err := pool.Resync(); err != nil {
			cfg.Logger.Error("resync mempool after snapshot", "err", err)
		}
		if cfg.OnRestored != nil {
			cfg.OnRestored()
		}
	}
	e.FSM.onRestored = func() {
		if err := pool.Resync(); err != nil {
			cfg.Logger.Error("resync mempool after snapshot", "err", err)
		}
		if cfg.OnRestored != nil {
			cfg.OnRestored()
		}
		builder.Notify()
	}

	existing, err := existingState(logStore, snaps)
	if err != nil {
		e.closeStores()
		return nil, fmt.Errorf("raft state: %w", err)
	}
	fresh := false
	head, _ := db.Head()
	if !existing && cfg.FreshRaft {
		fresh = true
	}
	if !existing && head.RaftIndex > 0 {
		if !cfg.FreshRaft {
			e.closeStores()
			return nil, fmt.Errorf("%w: %s holds no Raft log, term or vote, but the state database applied Raft entries up to index %d (height %d): "+
				"the Raft directory was lost or wiped. Starting would forget the votes this node cast and could let it vote twice in a term; "+
				"restore the directory, or start the node as a fresh member (tallyd --raft-fresh, docs/cluster.md)",
				ErrRaftStateLost, cfg.Dir, head.RaftIndex, head.Number)
		}
		cfg.Logger.Warn("raft: no Raft state although the state applied Raft entries: starting as a fresh member (--raft-fresh); waiting for the leader", "dir", cfg.Dir, "applied_raft_index", head.RaftIndex, "height", head.Number)
	} else if fresh {
		cfg.Logger.Warn("raft: no Raft state: starting as a fresh member (--raft-fresh); waiting for the leader", "dir", cfg.Dir)
	}
	unknown := false // it could not tell whether it ran: no vote until caught up
	if !existing && !fresh && head.RaftIndex == 0 {
		// A state at genesis: a first start, or the whole data directory
		// was lost (the peers can tell).
		v, err := checkBootstrap(cfg)
		if err != nil {
			e.closeStores()
			return nil, err
		}
		fresh = v == JoinFresh && len(cfg.Bootstrap) > 0
		unknown = v == JoinUnknown
	}
	switch {
	case fresh:
	case !existing && len(cfg.Bootstrap) == 0:
		cfg.Logger.Info("raft: no state and no bootstrap configuration: waiting for a leader to add this node")
	case !existing:
		if err := raft.BootstrapCluster(rc, logStore, logStore, snaps, cfg.Transport, raft.Configuration{Servers: cfg.Bootstrap}); err != nil {
			e.closeStores()
			return nil, fmt.Errorf("raft bootstrap: %w", err)
		}
	}
	// Only a node started fresh by its operator (--raft-fresh: its Raft
	// state was lost), or one whose peers could not tell (JoinUnknown),
	// may have acknowledged entries it no longer holds; one joining fresh
	// because its peers never saw it run never did.
	votes, err := newVoteGate(logStore, !existing && (cfg.FreshRaft || unknown), cfg.LocalID, cfg.Transport.LocalAddr(), cfg.Logger)
	if err != nil {
		e.closeStores()
		return nil, fmt.Errorf("raft: %w", err)
	}
	promoted := newPromotionVotes(cfg.LocalID, cfg.Transport.LocalAddr())
	trans := withCommitProof(cfg.Transport, transportRules{logs: logStore, answered: e.known.sawServer, heard: e.known.heard, votes: votes, promoted: promoted})
	r, err := newRaft(rc, e.FSM, logStore, snaps, trans)
	if err != nil {
		stopRelay(trans)
		e.closeStores()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	votes.started(r)
	promoted.started(r)
	e.votes = votes
	e.Raft = r
	builder.proposer = r
	// Record the leaders and candidates that send this node requests; a
	// leader taken before the observer was registered is observed no
	// more (raft observes a change of leader), so it is recorded here.
	r.RegisterObserver(e.known.observer(cfg.LocalID))
	if _, id := r.LeaderWithID(); id != "" && id != cfg.LocalID {
		e.known.sawServer(id)
	}

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.wg.Add(2)
	go e.leadership(ctx)
	go func() {
		defer e.wg.Done()
		e.known.record(ctx.Done())
	}()
	return e, nil
}

// leadership runs the builder while this node leads. It listens on NotifyCh,
// which (unlike LeaderCh) never drops a transition.
func (e *Engine) leadership(ctx context.Context) {
	defer e.wg.Done()
	var (
		stop func()
		done chan struct{}
	)
	stopBuilder := func() {
		if stop != nil {
			stop()
			<-done
			stop = nil
		}
	}
	defer stopBuilder()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.halts:
			e.ready.Store(false)
			stopBuilder()
			e.stepDown()
		case <-e.leave:
			e.ready.Store(false)
			stopBuilder()
			e.log.Error("ALARM: the Raft log's disk failed: this node leaves Raft (it can no longer read or store its entries and votes); replace the disk, then restart with --clear-halt", "alarm", "node_halted")
			e.stopRaft()
		case leader := <-e.notify:
			e.ready.Store(false)
			stopBuilder()
			if !leader {
				e.log.Info("lost leadership")
				continue
			}
			e.log.Info("became leader", "term", e.Raft.Stats()["term"])
			if e.Halted() != nil {
				e.stepDown()
				continue
			}
			bctx, cancel := context.WithCancel(ctx)
			stop, done = cancel, make(chan struct{})
			go func(done chan struct{}) {
				defer close(done)
				// The applied head must include every entry of earlier
				// terms before this node builds on it. The wait ends
				// with leadership (stopBuilder) and with the engine.
				stop, release := stopWith(bctx)
				defer release()
				if !awaitBarrier(bctx, func() error { return waitFuture(e.Raft.Barrier(0), stop) }, e.IsLeader, barrierRetry, e.log) {
					return
				}
				e.ready.Store(true)
				defer e.ready.Store(false)
				e.builder.Run(bctx)
			}(done)
		}
	}
}

// barrierRetry is how long a new leader waits before it tries its
// Barrier again.
const barrierRetry = 50 * time.Millisecond

// awaitBarrier runs barrier until it succeeds (true), or until ctx ends
// or this node no longer leads (false). A barrier can fail while the node
// still leads: hashicorp/raft refuses it with
// ErrLeadershipTransferInProgress while a leadership transfer this node
// started in an earlier term has not finished timing out, and a node can
// be elected again in that window (two leadership transfers in a row).
// Giving up on the first failure then left a leader that never built a
// block and never lost its lead: the chain stopped (found by the cluster
// simulator, seed 22).
func awaitBarrier(ctx context.Context, barrier func() error, leads func() bool, retry time.Duration, log *slog.Logger) bool {
	for {
		err := barrier()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !leads() {
			log.Info("barrier after election failed: no longer leader", "err", err)
			return false
		}
		log.Warn("barrier after election failed: trying again", "err", err, "retry", retry)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(retry):
		}
	}
}

// stepDown hands leadership to another voter when this node is halted: a
// halted node builds nothing (its state is stale), and a cluster led by it
// would stall. It stays a voter, so a later election may pick it again;
// it then steps down again. A single node has no one to hand over to.
func (e *Engine) stepDown() {
	if !e.IsLeader() {
		return
	}
	e.log.Warn("halted: proposing nothing and handing leadership to another voter")
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		// A transfer raft had no time to start when it shut down (the
		// Raft log's disk failed) is never answered: Shutdown waited
		// for it forever.
		if err := waitFuture(e.Raft.LeadershipTransfer(), e.stopping); err != nil {
			e.log.Warn("halted leader could not hand over leadership", "err", err)
		}
	}()
}

// raftLogFailed is the Raft log's disk-failure hook (in the goroutine that
// wrote, often raft's own): the node halts as on a broken invariant (the
// alarm, a halt record in the state database that keeps it halted across
// restarts, "node halted" to clients) and the leadership loop takes it out
// of Raft, since a node that cannot store entries or votes must not take
// part. The Raft store refuses every write from now on, so nothing is
// acknowledged that is not on disk.
func (e *Engine) raftLogFailed(err error) {
	if e.FSM != nil {
		e.FSM.Halt(fmt.Errorf("raft log: %w", err))
	}
	select {
	case e.leave <- struct{}{}:
	default:
	}
}

// newRaft runs raft.NewRaft on logs in a goroutine of its own: a failed
// read of the log where NewRaft would panic on it (its scan for
// configuration entries) ends that goroutine once the node halted
// (RaftStore.readFailed), and the store's failure is the error returned
// here.
func newRaft(rc *raft.Config, fsm raft.FSM, logs *RaftStore, snaps raft.SnapshotStore, trans raft.Transport) (*raft.Raft, error) {
	var (
		r   *raft.Raft
		err error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, err = raft.NewRaft(rc, fsm, logs, logs, snaps, trans)
	}()
	<-done
	if r == nil && err == nil { // the goroutine ended in a failed read
		if p := logs.failed.Load(); p != nil {
			return nil, *p
		}
		return nil, errors.New("raft.NewRaft ended without an answer")
	}
	if err != nil {
		return nil, logs.failure(err)
	}
	return r, nil
}

// existingState is raft.HasExistingState, with the store's own failure
// in place of raft's error when a read of the store failed (see
// RaftStore.failure).
func existingState(logs *RaftStore, snaps raft.SnapshotStore) (bool, error) {
	existing, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return false, logs.failure(err)
	}
	return existing, nil
}

// snapshotsFailed is the snapshot store's disk-failure hook
// (CheckpointStore.OnDiskFailure): the node halts, as on a failing state
// database.
func (e *Engine) snapshotsFailed(err error) {
	if e.FSM != nil {
		e.FSM.Halt(fmt.Errorf("snapshot store: %w", err))
	}
}

// stopRaft shuts Raft down (once) and returns the shutdown's future.
// Every wait on a raft future ends first (ErrRaftShutdown unless raft
// answered), as raft may never answer it.
func (e *Engine) stopRaft() raft.Future {
	e.stopOnce.Do(func() {
		e.leftRaft.Store(true)
		e.stopWaits()
		e.stopped = e.Raft.Shutdown()
	})
	return e.stopped
}

// stopWaits ends every wait on a raft future (closes stopping), once.
func (e *Engine) stopWaits() { e.closeOnce.Do(func() { close(e.stopping) }) }

// Await returns f's answer, or raft.ErrRaftShutdown once the engine stops
// or leaves Raft without raft having answered: hashicorp/raft leaves the
// futures of entries it had committed but not applied, and requests it had
// queued but not read, unanswered when it shuts down. Callers outside the
// engine (membership changes, leadership transfers) wait on raft futures
// through it so that none of them waits forever.
func (e *Engine) Await(f raft.Future) error { return waitFuture(f, e.stopping) }

// State is Raft's state, raft.Shutdown once the engine stopped Raft.
// Raft's own State can say otherwise after its Shutdown: a leader whose
// log write failed sets Follower after Shutdown set Shutdown (raft's
// dispatchLogs steps down after StoreLogs, and the Raft log's disk-failure
// hook that makes the engine leave Raft runs inside StoreLogs).
func (e *Engine) State() raft.RaftState {
	if e.leftRaft.Load() {
		return raft.Shutdown
	}
	return e.Raft.State()
}

// IsLeader reports whether this node is the Raft leader.
func (e *Engine) IsLeader() bool { return e.State() == raft.Leader }

// LeaderReady reports whether this node leads and has applied every entry
// of earlier terms, so its state is the latest committed one.
func (e *Engine) LeaderReady() bool { return e.ready.Load() && e.IsLeader() }

// StartRaftLogFlush asks the Raft log's store for a flush of its
// memtable (RaftStore.StartFlush), as a memtable filling up does.
func (e *Engine) StartRaftLogFlush() error { return e.store.StartFlush() }

// Voting reports whether this node grants votes: false for a fresh
// member (--raft-fresh) that does not hold the log yet (voteGate), which
// a quorum cannot count on until it caught up.
func (e *Engine) Voting() bool { return e.votes.voting() }

// Halted returns the error that halted the FSM, or nil.
func (e *Engine) Halted() error { return e.FSM.Halted() }

// Shutdown stops the builder and Raft and closes the Raft stores. It
// ends the waits on raft futures first: a goroutine of the engine still
// waiting on one (a barrier, a leadership transfer, a proposal) returns
// at once instead of depending on raft to answer before or during its
// shutdown, which raft does not promise. When Shutdown returns, every
// goroutine the engine started has returned.
func (e *Engine) Shutdown() error {
	e.cancel()
	e.stopWaits()
	e.wg.Wait()
	e.builder.awaits.Wait()
	err := e.stopRaft().Error()
	if cerr := e.closeStores(); err == nil {
		err = cerr
	}
	return err
}

func (e *Engine) closeStores() error {
	return e.store.Close()
}
