package consensus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
)

// ErrHalted is returned by the FSM once it has met a broken invariant; the
// node stops serving and needs an operator.
var ErrHalted = errors.New("node halted")

// FSM applies committed Raft entries (one block each) to the state database.
// Every node runs the same FSM on the same entries, so skips are identical
// everywhere (DESIGN.md decision 5).
type FSM struct {
	db      *state.DB
	senders *chain.SenderCache
	log     *slog.Logger
	// OnApplied is called after a block is committed to the database, in
	// the FSM goroutine: keep it short.
	onApplied func(*state.Applied)
	// onSkipped is called with the raft index and reason of a skipped entry.
	onSkipped func(index uint64, err error)
	// onRestored is called after a snapshot replaced the state.
	onRestored func()
	halted     atomic.Pointer[error]
}

// NewFSM returns an FSM over db.
func NewFSM(db *state.DB, senders *chain.SenderCache, logger *slog.Logger, onApplied func(*state.Applied), onSkipped func(uint64, error)) *FSM {
	if onApplied == nil {
		onApplied = func(*state.Applied) {}
	}
	if onSkipped == nil {
		onSkipped = func(uint64, error) {}
	}
	return &FSM{db: db, senders: senders, log: logger, onApplied: onApplied, onSkipped: onSkipped, onRestored: func() {}}
}

// Halted returns the error that halted the FSM, or nil.
func (f *FSM) Halted() error {
	if e := f.halted.Load(); e != nil {
		return *e
	}
	return nil
}

func (f *FSM) halt(err error) error {
	err = fmt.Errorf("%w: %v", ErrHalted, err)
	if f.halted.CompareAndSwap(nil, &err) {
		// The alarm: metrics (tally_node_halted) and tally_nodeInfo show
		// it too; every eth_* call answers "node halted" from now on.
		f.log.Error("ALARM: node halted: state can no longer be trusted; operator action needed", "reason", err, "alarm", "node_halted")
	}
	return err
}

// Apply implements raft.FSM. It returns *state.Applied for an applied block,
// nil for an entry applied before (or not a command), and an error for a
// skipped block or a halt.
func (f *FSM) Apply(l *raft.Log) any {
	if err := f.Halted(); err != nil {
		return err
	}
	if l.Type != raft.LogCommand {
		return nil
	}
	if head, ok := f.db.Head(); ok && l.Index <= head.RaftIndex {
		return nil // applied before this restart or snapshot
	}
	b, err := chain.DecodeBlock(l.Data)
	if err != nil {
		if rerr := f.db.RecordSkipped(l.Index); rerr != nil && !errors.Is(rerr, state.ErrAlreadyApplied) {
			return f.halt(rerr)
		}
		f.onSkipped(l.Index, err)
		return fmt.Errorf("%w: raft index %d: %v", state.ErrBlockRejected, l.Index, err)
	}
	applied, err := f.db.ApplyBlock(b, l.Index, f.senders)
	switch {
	case err == nil:
		f.onApplied(applied)
		return applied
	case errors.Is(err, state.ErrAlreadyApplied):
		return nil
	case errors.Is(err, state.ErrBlockRejected):
		f.log.Warn("skipped block", "raft_index", l.Index, "err", err)
		f.onSkipped(l.Index, err)
		return err
	default:
		return f.halt(fmt.Errorf("apply raft index %d: %w", l.Index, err))
	}
}

// Snapshot implements raft.FSM. The checkpoint itself is taken in Persist,
// concurrently with later applies; it may therefore hold entries after the
// snapshot's index, which is harmless because re-applying an index the state
// has recorded is a no-op.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{db: f.db}, nil
}

// Restore implements raft.FSM: rc is a tar stream of a Pebble checkpoint
// (a snapshot installed from the leader). It is extracted beside the state
// database and swapped in; onRestored then lets the node resynchronise what
// it derived from the old state (the mempool). Raft calls Restore only with
// no Apply running.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	dir := f.db.Dir() + ".restore"
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if err := ExtractTar(rc, dir); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if err := f.db.ReplaceWith(dir); err != nil {
		// The database may be half swapped: nothing can be trusted.
		return f.halt(err)
	}
	head, _ := f.db.Head()
	f.log.Info("restored state from snapshot", "height", head.Number, "hash", head.Hash, "raft_index", head.RaftIndex)
	f.onRestored()
	return nil
}

type fsmSnapshot struct{ db *state.DB }

// Persist writes a Pebble checkpoint into the sink: directly into its data
// directory for the CheckpointStore, as a tar stream otherwise.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if cs, ok := sink.(*CheckpointSink); ok {
		if err := s.db.Checkpoint(cs.DataDir()); err != nil {
			sink.Cancel()
			return err
		}
		return sink.Close()
	}
	tmp, err := os.MkdirTemp("", "tally-snapshot-")
	if err != nil {
		sink.Cancel()
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "data")
	if err := s.db.Checkpoint(dir); err != nil {
		sink.Cancel()
		return err
	}
	if _, err := WriteTar(sink, dir); err != nil {
		sink.Cancel()
		return fmt.Errorf("stream checkpoint: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
