package bridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
)

// OpEntry is one operator action in the operator log (docs/bridge.md,
// "Operator tools"): who did what to which record, when and why. The log
// is append-only and hash-chained: Hash commits to every other field,
// Prev included, so an entry edited, deleted or reordered in the store
// breaks the chain and VerifyOpLog names where.
type OpEntry struct {
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
	// Operator is the identity the operator authenticated as (the name of
	// its token in operator.tokens-file).
	Operator string `json:"operator"`
	// Action is one of the Op* constants; Target the record it names (a
	// deposit's bankRef, a withdrawal id).
	Action string `json:"action"`
	Target string `json:"target"`
	// Detail is the action's argument (the wallet released to, the
	// outcome recorded); Reason the operator's reason, never empty.
	Detail string `json:"detail,omitempty"`
	Reason string `json:"reason"`
	// Result is what the bridge did: "done", or "refused: <why>" for an
	// action the records' rules refused (nothing else changed then).
	Result string      `json:"result"`
	Prev   common.Hash `json:"prev"`
	Hash   common.Hash `json:"hash"`
}

// Operator actions.
const (
	OpReleaseDeposit = "release-deposit"
	OpReturnDeposit  = "return-deposit"
	OpRequeuePayout  = "requeue-payout"
	OpPayoutOutcome  = "payout-outcome"
	OpCancelPayout   = "cancel-withdrawal"
)

// ResultDone is the Result of an action that took effect.
const ResultDone = "done"

// opLogDomain separates the log's hashes from every other hash.
const opLogDomain = "tally-bridge-oplog-v1"

// hash is the entry's hash: SHA-256 over the domain and the entry's JSON
// with Hash zeroed (encoding/json writes struct fields in a fixed order,
// so the bytes are a function of the fields).
func (e *OpEntry) hash() (common.Hash, error) {
	c := *e
	c.Hash = common.Hash{}
	data, err := json.Marshal(&c)
	if err != nil {
		return common.Hash{}, err
	}
	return sha256.Sum256(append([]byte(opLogDomain+"\x00"), data...)), nil
}

// Key layout of the operator log (besides store.go's):
//
//	o/<seq 8>    OpEntry
//	m/ohead      the last entry's seq (8 bytes) and hash (32 bytes)
var (
	prefixOpLog = []byte("o/")
	keyOpHead   = []byte("m/ohead")
)

func opKey(seq uint64) []byte { return cat(prefixOpLog, be8(seq)) }

// opHead reads the log's head: the last seq and hash (0 and zero when the
// log is empty).
func (s *Store) opHead() (uint64, common.Hash, error) {
	v, err := s.get(keyOpHead)
	if err != nil || v == nil {
		return 0, common.Hash{}, err
	}
	if len(v) != 40 {
		return 0, common.Hash{}, fmt.Errorf("operator log head: %d bytes, want 40", len(v))
	}
	return binary.BigEndian.Uint64(v[:8]), common.BytesToHash(v[8:]), nil
}

// appendOpLocked adds e to b as the next entry of the log, filling Seq,
// Prev and Hash. The caller holds s.mu and commits b: the entry is
// written in the same batch as the change it records, so neither exists
// without the other.
func (s *Store) appendOpLocked(b *pebble.Batch, e *OpEntry) error {
	seq, head, err := s.opHead()
	if err != nil {
		return err
	}
	e.Seq, e.Prev = seq+1, head
	if e.Hash, err = e.hash(); err != nil {
		return fmt.Errorf("operator log entry %d: %w", e.Seq, err)
	}
	if err := setJSON(b, opKey(e.Seq), e); err != nil {
		return err
	}
	return b.Set(keyOpHead, cat(be8(e.Seq), e.Hash[:]), nil)
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
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	s.mu.Lock()
	seq, hash, err := s.opHead()
	s.mu.Unlock()
	if err != nil {
		return nil, OpHead{}, err
	}
	head := OpHead{Seq: seq, Hash: hash}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: opKey(from), UpperBound: upperBound(prefixOpLog)})
	if err != nil {
		return nil, head, err
	}
	defer it.Close()
	var out []*OpEntry
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		var e OpEntry
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return nil, head, fmt.Errorf("operator log: entry at key %x: %w", it.Key(), err)
		}
		if k := it.Key(); len(k) != len(prefixOpLog)+8 || !bytes.Equal(k, opKey(e.Seq)) {
			// Stored under another seq than it says: moved or forged.
			e.Seq = ^uint64(0)
		}
		out = append(out, &e)
	}
	return out, head, it.Error()
}

// OpHead is the operator log's last entry: publish it (a ticket, a
// second system) and a later rewrite of the whole log is detected too.
type OpHead struct {
	Seq  uint64      `json:"seq"`
	Hash common.Hash `json:"hash"`
}

// VerifyOpLog checks a whole log read from its first entry: seqs 1, 2, …
// without gaps, each entry's hash, each Prev equal to the previous hash,
// and the last entry equal to head. It returns the first break, naming
// the entry.
func VerifyOpLog(entries []*OpEntry, head OpHead) error {
	var prev common.Hash
	for i, e := range entries {
		want := uint64(i) + 1
		if e.Seq != want {
			return fmt.Errorf("operator log broken at entry %d: found seq %d (an entry was deleted, inserted or moved)", want, e.Seq)
		}
		if e.Prev != prev {
			return fmt.Errorf("operator log broken at entry %d: prev %s, but entry %d hashes to %s (an entry was deleted or edited)", want, e.Prev, want-1, prev)
		}
		h, err := e.hash()
		if err != nil {
			return err
		}
		if h != e.Hash {
			return fmt.Errorf("operator log broken at entry %d: its fields hash to %s, not the recorded %s (the entry was edited)", want, h, e.Hash)
		}
		prev = h
	}
	if head.Seq != uint64(len(entries)) || head.Hash != prev {
		return fmt.Errorf("operator log broken at its end: the head records entry %d with hash %s, the log ends at entry %d with %s (entries were deleted or appended outside the bridge)",
			head.Seq, head.Hash, len(entries), prev)
	}
	return nil
}
