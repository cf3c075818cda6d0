// Package state owns the state transition and the node's Pebble database:
// account nonces and balances, the validator set, and, written atomically
// with them, the blocks, receipts, transaction index and per-account
// history.
//
// Flow of one block (DB.ApplyBlock, called only by the consensus FSM, one
// block at a time):
//
//	recover senders (parallel, cached) → CheckBlock (limits, link, header,
//	  time, proposer, seal, roots, certificates, transactions)
//	→ execute every tx on an Overlay
//	→ assert supply conservation on the block's writes (O(writes))
//	→ CheckExecution (state root, receipt root, gas used and bloom)
//	→ one Pebble batch, synced: state writes, block, receipts, indexes,
//	  the past state records, head and the Raft index of the entry.
//
// Past state (past.go): the batch also records the value each written key
// had before the block and deletes the records of the block that leaves
// the window (Options.HistoryBlocks), so StateAt reads the state after any
// of the last N blocks through the same Reader interface execution uses
// (eth_call at a block). The records are outside the state prefix: roots
// and hashes are the same whatever the window.
//
// CheckBlock and CheckExecution (validity.go) are the one definition of
// block validity: the FSM, the leader's builder (before it proposes) and
// the audit call them, and Build keeps the limits by construction (it
// fills a block by encoded bytes and gas as well as count).
//
// A block that fails a check is rejected (ErrBlockRejected, with the first
// *Violation naming the rule) and only the Raft index is recorded, so every node skips it identically and re-applying any
// index already recorded is a no-op (ErrAlreadyApplied). Any other error is
// a broken invariant (ErrConservation, ErrDiverged, ErrBehind) or a broken
// disk, and the caller must halt; it stores a HaltRecord so that the node
// comes back halted after a restart.
//
// The bank edge (bankedge.go, DESIGN.md decision 11): a withdrawal is
// claimed by one issuing bank with one payment order before any order
// leaves a bridge, and only that bank settles, refunds or returns it; a
// bank reverses only its own mints; each bank's outstanding issuance
// (Issuance) is counted and capped by governance; a withdrawal must be a
// whole number of its currency's minor units. Returns mint and reversals
// burn, so conservation stays exact.
//
// The state root is keccak256(parent root || sorted write set): cheap, and
// unchanged by a block that writes no state (DESIGN.md decision 10).
//
// Execution never reads the clock or iterates a map into anything hashed;
// Overlay is also what the leader's block builder executes on, layered over
// the blocks it has proposed but not yet applied.
package state
