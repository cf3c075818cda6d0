package consensus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// ErrHalted is returned by the FSM once it has met a broken invariant; the
// node stops serving and needs an operator.
var ErrHalted = errors.New("node halted")

// FSM applies committed Raft entries (one block each) to the state database.
// Every node runs the same FSM on the same entries, so skips are identical
// everywhere (DESIGN.md decision 5).
type FSM struct {
	db      *store.DB
	senders *chain.SenderCache
	log     *slog.Logger
	// OnApplied is called after a block is committed to the database, in
	// the FSM goroutine: keep it short.
	onApplied func(*store.Applied)
	// onSkipped is called with the raft index and reason of a skipped entry.
	onSkipped func(index uint64, err error)
	// onRestored is called after a snapshot replaced the state.
	onRestored func()
	// onHalt is called once the FSM halts (in the halting goroutine;
	// it must not block): the engine stops building and gives up leadership.
	onHalt func()
	halted atomic.Pointer[error]
	// own holds the executions of the blocks this node's builder
	// proposed (nil: none kept, every block is executed on apply).
	own *ownBlocks
}

// NewFSM returns an FSM over db. If db holds a halt record (the node
// halted before a restart), the FSM starts halted: it applies nothing until
// an operator clears the record (docs/cluster.md).
func NewFSM(db *store.DB, senders *chain.SenderCache, logger *slog.Logger, onApplied func(*store.Applied), onSkipped func(uint64, error)) *FSM {
	if onApplied == nil {
		onApplied = func(*store.Applied) {}
	}
	if onSkipped == nil {
		onSkipped = func(uint64, error) {}
	}
	f := &FSM{db: db, senders: senders, log: logger, onApplied: onApplied, onSkipped: onSkipped, onRestored: func() {}}
	// A disk failure the database meets outside Apply (its background
	// flushes and compactions failing for good, store/background.go)
	// halts the node as one inside does.
	db.OnDiskFailure(func(err error) { f.Halt(err) })
	rec, err := db.HaltRecord()
	switch {
	case err != nil:
		f.raise(fmt.Errorf("%w: read halt record: %v", ErrHalted, err), "", nil)
	case rec != nil:
		f.raise(fmt.Errorf("%w since %s at height %d (raft index %d): %s [halt record kept across restarts; see docs/cluster.md]", ErrHalted,
			time.UnixMilli(int64(rec.TimeMs)).UTC().Format(time.RFC3339), rec.Height, rec.Entry, rec.Reason), rec.Stack, nil)
	}
	return f
}

// Halted returns the error that halted the FSM, or nil.
func (f *FSM) Halted() error {
	if e := f.halted.Load(); e != nil {
		return *e
	}
	return nil
}

// Halt halts the FSM on a broken invariant found outside it (the builder
// computing a block that does not conserve supply, or panicking): the same
// alarm, the same record, as a halt inside Apply.
func (f *FSM) Halt(err error) error {
	var pe *PanicError
	if errors.As(err, &pe) {
		return f.halt(0, err, pe.Stack)
	}
	return f.halt(0, err, "")
}

// halt stops the FSM for good: it raises the alarm and stores a halt record
// so that the node comes back halted after a restart. entry is the Raft
// index being applied (0: none); stack is a panic's stack.
func (f *FSM) halt(entry uint64, cause error, stack string) error {
	err := fmt.Errorf("%w: %v", ErrHalted, cause)
	return f.raise(err, stack, func() {
		head, _ := f.db.Head()
		rec := store.HaltRecord{Height: head.Number, RaftIndex: head.RaftIndex, Entry: entry, Reason: cause.Error(),
			Stack: stack, TimeMs: uint64(time.Now().UnixMilli())}
		if rerr := recordHalt(f.db, rec); rerr != nil {
			f.log.Error("ALARM: could not store the halt record: the node may apply the same entry again after a restart", "err", rerr, "alarm", "node_halted")
		}
	})
}

// raise publishes err as the halt reason and logs the alarm, once; persist
// (if any) runs only for the first halt.
func (f *FSM) raise(err error, stack string, persist func()) error {
	if !f.halted.CompareAndSwap(nil, &err) {
		return f.Halted()
	}
	if persist != nil {
		persist()
	}
	// The alarm: metrics (tally_node_halted) and tally_nodeInfo show it
	// too; every eth_* call answers "node halted" from now on.
	attrs := []any{"reason", err, "alarm", "node_halted"}
	if stack != "" {
		attrs = append(attrs, "stack", stack)
	}
	f.log.Error("ALARM: node halted: state can no longer be trusted; operator action needed", attrs...)
	if f.onHalt != nil {
		f.onHalt()
	}
	return err
}

// recordHalt stores rec; a panic (the database itself failing) is an error.
func recordHalt(db *store.DB, rec store.HaltRecord) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return db.RecordHalt(rec)
}

// Apply implements raft.FSM. It returns *store.Applied for an applied block,
// nil for an entry applied before (or not a command), and an error for a
// skipped block or a halt. A panic while applying (a broken invariant in
// execution, the database failing) halts the FSM with the panic value and
// stack instead of crashing the node: the entry would panic again on every
// restart.
func (f *FSM) Apply(l *raft.Log) (res any) {
	if err := f.Halted(); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			pe := &PanicError{What: fmt.Sprintf("applying raft index %d", l.Index), Value: r, Stack: string(debug.Stack())}
			res = f.halt(l.Index, pe, pe.Stack)
		}
	}()
	return f.apply(l)
}

func (f *FSM) apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if head, ok := f.db.Head(); ok && l.Index <= head.RaftIndex {
		return nil // applied before this restart or snapshot
	}
	b, err := chain.DecodeBlock(l.Data)
	if err != nil {
		f.own.drop()
		if rerr := f.db.RecordSkipped(l.Index); rerr != nil && !errors.Is(rerr, store.ErrAlreadyApplied) {
			return f.halt(l.Index, rerr, "")
		}
		f.onSkipped(l.Index, err)
		return fmt.Errorf("%w: raft index %d: %w", store.ErrBlockRejected, l.Index, state.DecodeViolation(err))
	}
	// A block this node built on the head is checked in full but not
	// executed again (ownBlocks); any other block is executed here.
	applied, err := f.db.ApplyBuilt(b, l.Index, f.senders, f.own.take(b.Hash()))
	switch {
	case err == nil:
		f.onApplied(applied)
		return applied
	case errors.Is(err, store.ErrAlreadyApplied):
		return nil
	case errors.Is(err, store.ErrBlockRejected):
		f.log.Warn("skipped block", "raft_index", l.Index, "err", err)
		f.onSkipped(l.Index, err)
		return err
	default:
		return f.halt(l.Index, fmt.Errorf("apply raft index %d: %w", l.Index, err), "")
	}
}

// Snapshot implements raft.FSM. The checkpoint itself is taken in Persist,
// concurrently with later applies; it may therefore hold entries after the
// snapshot's index (raft labels it with the index applied when it called
// Snapshot). That is harmless: those entries were applied, hence committed,
// every node holds the same committed entry at an index, and re-applying
// an index the state has recorded is a no-op. A follower that installs
// such a snapshot has a state past both its Raft log and the snapshot's
// index until raft hands it those entries again, across a crash too
// (TestSnapshotCarriesEntriesPastItsIndex; the cluster simulator's
// durable-log invariant allows exactly that much).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	// A halted node's state stops short of what Raft applied: a snapshot
	// would let Raft compact away the entries it still lacks.
	if err := f.Halted(); err != nil {
		return nil, err
	}
	return &fsmSnapshot{db: f.db, fsm: f}, nil
}

// Restore implements raft.FSM: rc is a tar stream of a Pebble checkpoint
// (a snapshot installed from the leader). It is extracted beside the state
// database and swapped in; onRestored then lets the node resynchronise what
// it derived from the old state (the mempool). Raft calls Restore only with
// no Apply running.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.own.drop() // built on a state the snapshot replaces
	if err := f.Halted(); err != nil {
		return err // a halted node takes no state from anyone until an operator acts
	}
	fs, dir := f.db.FS(), f.db.Dir()+".restore"
	if err := fs.RemoveAll(dir); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if err := ExtractTarFS(rc, fs, dir); err != nil {
		fs.RemoveAll(dir)
		return fmt.Errorf("restore snapshot: %w", err)
	}
	// A snapshot no further than the state would take the state back:
	// clients would see the height go down until the blocks after it are
	// applied again. Raft sends one when the leader lost track of a
	// follower's log (answers reordered) and the entries it needs are
	// compacted away. The state already holds what the snapshot holds
	// (committed entries of one log): keep it. Found by the cluster
	// simulator (seed 157).
	head, _ := f.db.Head()
	snapHead, err := checkpointHead(f.db, dir)
	if err != nil {
		fs.RemoveAll(dir)
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if snapHead.RaftIndex <= head.RaftIndex {
		f.log.Info("snapshot is not ahead of the state: state kept", "height", head.Number, "raft_index", head.RaftIndex,
			"snapshot_height", snapHead.Number, "snapshot_raft_index", snapHead.RaftIndex)
		return fs.RemoveAll(dir)
	}
	if err := f.db.ReplaceWith(dir); err != nil {
		// The database may be half swapped: nothing can be trusted.
		return f.halt(0, err, "")
	}
	head, _ = f.db.Head()
	f.log.Info("restored state from snapshot", "height", head.Number, "hash", head.Hash, "raft_index", head.RaftIndex)
	f.onRestored()
	return nil
}

type fsmSnapshot struct {
	db  *store.DB
	fsm *FSM
}

// Persist writes a Pebble checkpoint into the sink: directly into its data
// directory for the CheckpointStore, as a tar stream otherwise.
//
// The checkpoint first syncs the state database's WAL; on a failing disk
// Pebble panics ("fatal commit error") in the goroutine that asked, here
// raft's snapshot goroutine, which nothing recovers: the process would
// end. Persist recovers it and halts the FSM, as Apply does for the same
// panic, and the snapshot is not taken. Found by the cluster simulator's
// disk-error fault once its nodes took snapshots.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) (err error) {
	defer func() {
		if r := recover(); r != nil {
			sink.Cancel()
			pe := &PanicError{What: "persisting a snapshot", Value: r, Stack: string(debug.Stack())}
			err = s.fsm.halt(0, pe, pe.Stack)
		}
	}()
	if cs, ok := sink.(*CheckpointSink); ok {
		if err := s.db.Checkpoint(cs.DataDir()); err != nil {
			sink.Cancel()
			return s.diskHalt(err)
		}
		return s.diskHalt(sink.Close())
	}
	// Beside the database, on its file system: the checkpoint hard-links
	// its files. Raft takes one snapshot at a time.
	fs, tmp := s.db.FS(), s.db.Dir()+".persist"
	if err := fs.RemoveAll(tmp); err != nil {
		sink.Cancel()
		return err
	}
	defer fs.RemoveAll(tmp)
	dir := fs.PathJoin(tmp, "data")
	if err := s.db.Checkpoint(dir); err != nil {
		sink.Cancel()
		return s.diskHalt(err)
	}
	if _, err := WriteTarFS(sink, fs, dir); err != nil {
		sink.Cancel()
		return fmt.Errorf("stream checkpoint: %w", err)
	}
	return sink.Close()
}

// diskHalt halts the FSM when err, a checkpoint's, is the state
// database's disk failing (store.ErrDiskFailed) or the disk under the
// snapshot failing an I/O (EIO: a failed fsync of the checkpoint's
// directories, which Pebble's Checkpoint syncs as it creates them, or of
// the snapshot's files; CheckpointStore.OnDiskFailure says why that
// halts), and returns err (nil for nil).
func (s *fsmSnapshot) diskHalt(err error) error {
	if errors.Is(err, store.ErrDiskFailed) || errors.Is(err, syscall.EIO) {
		return s.fsm.halt(0, err, "")
	}
	return err
}

func (s *fsmSnapshot) Release() {}
