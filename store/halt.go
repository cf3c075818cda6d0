package store

import (
	"fmt"

	"github.com/ethereum/go-ethereum/rlp"
)

// HaltRecord is what a node stores when it halts on a broken invariant (a
// diverged chain, a panic while applying a block, supply not conserved), so
// that it comes back halted after a restart instead of applying, and
// perhaps crashing on, the same Raft entry again. It lives outside the state
// (the state root does not cover it) and only an operator removes it
// (ClearHalt; `tallyd --clear-halt`, docs/cluster.md).
type HaltRecord struct {
	// Height and RaftIndex are the applied head when the node halted.
	Height    uint64
	RaftIndex uint64
	// Entry is the Raft index of the entry being applied when it halted (0:
	// none, as for a failed snapshot restore).
	Entry uint64
	// Reason is the error, or the panic value.
	Reason string
	// Stack is the panicking goroutine's stack (empty for an error).
	Stack string
	// TimeMs is the wall-clock time of the halt, for the operator only.
	TimeMs uint64
}

// MaxHaltStack bounds the stack a HaltRecord keeps.
const MaxHaltStack = 16 << 10

// HaltRecord returns the stored halt record, or nil when the node has not
// halted.
func (d *DB) HaltRecord() (*HaltRecord, error) {
	v, err := d.get(keyHalt)
	if err != nil || v == nil {
		return nil, err
	}
	var r HaltRecord
	if err := rlp.DecodeBytes(v, &r); err != nil {
		return nil, fmt.Errorf("decode halt record: %w", err)
	}
	return &r, nil
}

// RecordHalt stores r (synced), replacing any earlier record.
func (d *DB) RecordHalt(r HaltRecord) error {
	if len(r.Stack) > MaxHaltStack {
		r.Stack = r.Stack[:MaxHaltStack]
	}
	v, err := rlp.EncodeToBytes(&r)
	if err != nil {
		return fmt.Errorf("encode halt record: %w", err)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.guard(func() error { return d.pdb.Set(keyHalt, v, d.writeOpts()) }); err != nil {
		return fmt.Errorf("record halt: %w", err)
	}
	return nil
}

// ClearHalt removes the halt record and returns it (nil when there was
// none). The operator does this once the cause is dealt with.
func (d *DB) ClearHalt() (*HaltRecord, error) {
	r, err := d.HaltRecord()
	if err != nil || r == nil {
		return r, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.guard(func() error { return d.pdb.Delete(keyHalt, d.writeOpts()) }); err != nil {
		return nil, fmt.Errorf("clear halt record: %w", err)
	}
	return r, nil
}
