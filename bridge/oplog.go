package bridge

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/internal/oplog"
)

// OpEntry is one operator action in the operator log (docs/bridge.md,
// "Operator tools"): who did what to which record (a deposit's bankRef, a
// withdrawal id), when and why; package oplog keeps the hash chain.
type OpEntry = oplog.Entry

// Operator actions.
const (
	OpReleaseDeposit = "release-deposit"
	OpReturnDeposit  = "return-deposit"
	OpRequeuePayout  = "requeue-payout"
	OpPayoutOutcome  = "payout-outcome"
	OpCancelPayout   = "cancel-withdrawal"
)

// ResultDone is the Result of an action that took effect.
const ResultDone = oplog.ResultDone

// Key layout of the operator log (besides store.go's):
//
//	o/<seq 8>    OpEntry
//	m/ohead      the last entry's seq (8 bytes) and hash (32 bytes)
var (
	prefixOpLog = []byte("o/")
	keyOpHead   = []byte("m/ohead")
)

// opLogDomain separates the log's hashes from every other hash.
const opLogDomain = "tally-bridge-oplog-v1"

// opLog is the operator log's place in the store.
var opLog = oplog.Log{Prefix: prefixOpLog, HeadKey: keyOpHead, Domain: opLogDomain, Name: "operator log"}

func opKey(seq uint64) []byte { return opLog.Key(seq) }

// appendOpLocked adds e to b as the next entry of the log. The caller
// holds s.mu and commits b: the entry is written in the same batch as the
// change it records, so neither exists without the other.
func (s *Store) appendOpLocked(b *pebble.Batch, e *OpEntry) error {
	return opLog.Append(s.db, b, e)
}

// AppendOp records an operator action that changes no record of the
// store by itself (a refused action).
func (s *Store) AppendOp(e *OpEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.appendOpLocked(b, e); err != nil {
		return err
	}
	if err := s.commit(b, nil); err != nil {
		return fmt.Errorf("operator log: %w", err)
	}
	return nil
}

// ModifyPayoutLogged is ModifyPayout for an operator's action: fn's change
// and the log entry e are one batch. When fn writes nothing, e is still
// logged (with the Result fn gave it), so a refused action is on record.
// With a nil e it is ModifyPayout.
func (s *Store) ModifyPayoutLogged(id uint64, e *OpEntry, fn func(p *Payout) (bool, error)) (*Payout, error) {
	if e == nil {
		return s.ModifyPayout(id, fn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.Payout(id)
	if err != nil {
		return nil, err
	}
	old := *p
	write, err := fn(p)
	if err != nil {
		return p, err
	}
	return p, s.commitLogged(e, func(b *pebble.Batch, counters map[string]int64) error {
		if !write {
			return nil
		}
		return putPayout(b, &old, p, counters)
	}, fmt.Sprintf("payout %d", id))
}

// AddPayoutLogged records a payout that was not recorded (an unroutable
// withdrawal an operator cancels) with the log entry, in one batch. It
// fails with ErrExists when the payout is recorded meanwhile.
func (s *Store) AddPayoutLogged(p *Payout, e *OpEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.get(payoutKey(p.ID))
	if err != nil {
		return err
	}
	if v != nil {
		return fmt.Errorf("payout of withdrawal %d: %w", p.ID, ErrExists)
	}
	return s.commitLogged(e, func(b *pebble.Batch, counters map[string]int64) error {
		return putPayout(b, nil, p, counters)
	}, fmt.Sprintf("payout %d", p.ID))
}

// ErrExists is returned (wrapped) for a record that should be new.
var ErrExists = errors.New("already recorded")

// ModifyDepositLogged reads deposit ref, lets fn change it and writes it
// back with the log entry e, in one batch under the store's lock; as
// ModifyPayoutLogged, a refused action (fn writes nothing) is logged too.
// A nil e logs nothing (the bridge's own follow-up of an action).
func (s *Store) ModifyDepositLogged(ref common.Hash, e *OpEntry, fn func(d *Deposit) (bool, error)) (*Deposit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.Deposit(ref)
	if err != nil {
		return nil, err
	}
	old := *d
	write, err := fn(d)
	if err != nil {
		return d, err
	}
	return d, s.commitLogged(e, func(b *pebble.Batch, counters map[string]int64) error {
		if !write {
			return nil
		}
		return putDeposit(b, &old, d, counters)
	}, "deposit "+ref.Hex())
}

// commitLogged writes put's changes and the log entry e in one synced
// batch (only put's with a nil e). The caller holds s.mu.
func (s *Store) commitLogged(e *OpEntry, put func(b *pebble.Batch, counters map[string]int64) error, what string) error {
	b := s.db.NewBatch()
	defer b.Close()
	counters := map[string]int64{}
	if err := put(b, counters); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if e != nil {
		if err := s.appendOpLocked(b, e); err != nil {
			return fmt.Errorf("%s: operator log: %w", what, err)
		}
	}
	if err := s.commit(b, counters); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// OpLog returns the log's entries from seq from on (at most limit; all
// with limit 0, as a verification needs), in order, and the head the
// store records. The log grows only by authenticated operator actions.
func (s *Store) OpLog(from uint64, limit int) ([]*OpEntry, OpHead, error) {
	s.mu.Lock()
	head, err := opLog.Head(s.db)
	s.mu.Unlock()
	if err != nil {
		return nil, head, err
	}
	out, err := opLog.Read(s.db, from, limit)
	return out, head, err
}

// OpHead is the operator log's last entry: publish it (a ticket, a
// second system) and a later rewrite of the whole log is detected too.
type OpHead = oplog.Head

// VerifyOpLog checks a whole log read from its first entry (oplog.Log.Verify).
func VerifyOpLog(entries []*OpEntry, head OpHead) error { return opLog.Verify(entries, head) }
