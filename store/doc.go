// Package store is the node's Pebble database: the state the transition
// (package state) reads and writes, and, written atomically with it, the
// blocks, receipts, transaction index, per-account history, log index,
// commit certificates, the history tree and the past-state records.
//
// Flow of one block (DB.ApplyBlock, called only by the consensus FSM, one
// block at a time):
//
//	state.Transition on the head (senders recovered in parallel, cached)
//	→ one Pebble batch, synced: state writes, block, receipts with the
//	  failure reasons of status-0 transactions (reasons.go), indexes, the
//	  past-state records, head and the Raft index of the entry.
//
// The block is stored as the bytes of its Raft entry (chain.Block.Raw: the
// decoder takes the canonical encoding only), not encoded again. The
// leader's FSM applies a block it built with DB.ApplyBuilt, which takes the
// execution computed at build time (state.TransitionReusing) when it is
// that block's on the head, and executes the block otherwise.
//
// A block the transition rejects is skipped: only its Raft index is
// recorded (ErrBlockRejected wraps the first *state.Violation), so every
// node skips it identically, and re-applying any index already recorded is
// a no-op (ErrAlreadyApplied). A halting error from the transition
// (state.ErrConservation, ErrDiverged, ErrBehind) or a failed disk commits
// nothing; the caller halts and stores a HaltRecord so that the node comes
// back halted after a restart.
//
// A disk error Pebble cannot go on from (a failed commit, a failed MANIFEST
// write or sync) reaches Pebble's Logger's Fatalf; PebbleLogger makes it
// a *FatalError panic, an error where it happened in the caller's
// goroutine (Open refuses to start, a failed commit halts the node) and
// the end of the process, naming the database, where it happened in
// Pebble's background flush (fatal.go says why no halt can keep the
// process up then). After a failed commit the database refuses every
// write without calling Pebble, since a later one that rotated the
// write-ahead log would end the process (diskfail.go). Flushes that
// fail their sstable writes and compactions that fail (writing their
// output or reading their inputs), which Pebble retries at once and for
// ever, are backed off and, once the failure lasts, stopped and reported
// (OnDiskFailure: the node halts; background.go; the store schedules
// Pebble's compactions itself, compactions.go). Either
// way DiskFailed says so, with an error wrapping ErrDiskFailed.
//
// A disk that stalls (a write or sync that does not return) fails
// nothing and would hold the node for as long as the device does: with
// Options.Stalls the database's files are watched (Pebble's
// vfs.WithDiskHealthChecks), and an operation hung past the bound
// (store.max-sync-duration) ends the process, as no halt can get out of
// it; a synced no-op write every quarter of the bound (Prober) keeps an
// idle database watched too (stall.go).
//
// Readers go by the head: Pebble makes a batch visible before its WAL sync
// returns, so blocks, transaction locations and history are served only up
// to the head, which moves after the sync (read.go).
//
// Past state (past.go): the batch also records the value each written key
// had before the block and deletes the records of the block that leaves
// the window (Options.HistoryBlocks), so StateAt reads the state after any
// of the last N blocks through the same state.Reader interface execution
// uses (eth_call at a block). The records are outside the state prefix:
// roots and hashes are the same whatever the window.
//
// Replay (replay.go) is the audit's scratch database: it re-executes
// stored blocks (state.Reexecute) from the genesis or a checkpoint.
package store
