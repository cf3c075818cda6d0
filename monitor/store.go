package monitor

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"

	kv "github.com/tally-ledger/tally/internal/pebblekv"
)

// Store is the monitor's own Pebble database. Everything derived from a
// run of blocks — the alerts, the accounts' profiles, the payees seen, the
// webhook deliveries of the new alerts — is written in one synced batch
// with the cursor past those blocks, so a crash keeps all of it or none:
// the blocks are judged again from the old cursor and give the same
// alerts, never twice.
//
// Key layout:
//
//	m/format              StoreFormat
//	m/cursor              next height (8) ‖ hash of the block before it (32)
//	m/alertseq            the last alert id (8)
//	a/<id 8>              Alert
//	o/<account 20><rule>  the id of the account's unresolved alert of a rule
//	c/<seq 8>             id of a closed alert, in closing order (pruning)
//	m/closed              first and next seq of c/ (8+8)
//	p/<account 20>        Profile
//	y/<from 20><to 20>    the block time (ms) from first paid to
//	l/<seq 8>, m/lhead    the action log (actionlog.go)
//	w/<seq 8>, m/wseq     the webhook outbox (webhook.go)
//	f/<id 8>              an escalation's freeze to send (escalate.go)
type Store struct {
	db *pebble.DB
	// mu serialises writers: the follower's block batches and the review
	// actions both read an alert and write it back.
	mu sync.Mutex
}

// StoreFormat is the layout version of the store.
const StoreFormat = 1

var (
	keyFormat   = []byte("m/format")
	keyCursor   = []byte("m/cursor")
	keyAlertSeq = []byte("m/alertseq")
	keyClosed   = []byte("m/closed")
	prefixAlert = []byte("a/")
	prefixOpen  = []byte("o/")
	prefixClose = []byte("c/")
	prefixProf  = []byte("p/")
	prefixPayee = []byte("y/")
)

// ErrNotFound is returned (wrapped) for a record that does not exist.
var ErrNotFound = errors.New("not found")

// OpenStore opens (creating) the store in dir.
func OpenStore(dir string) (*Store, error) {
	db, err := kv.OpenService(dir, kv.Service{Store: "monitor store", Holder: "a running monitor", Reader: "monitor"}, keyFormat, StoreFormat)
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Cursor is where the follower is: Next is the first block not yet
// judged, Prev the hash of block Next-1 (the next block's parent must be
// it). Set is false for a fresh store.
type Cursor struct {
	Next uint64
	Prev common.Hash
	Set  bool
}

// Cursor reads the follower's cursor.
func (s *Store) Cursor() (Cursor, error) {
	v, err := s.get(keyCursor)
	if err != nil || v == nil {
		return Cursor{}, err
	}
	if len(v) != 40 {
		return Cursor{}, fmt.Errorf("cursor: %d bytes, want 40", len(v))
	}
	return Cursor{Next: binary.BigEndian.Uint64(v[:8]), Prev: common.BytesToHash(v[8:]), Set: true}, nil
}

func putCursor(b *pebble.Batch, c Cursor) error {
	return b.Set(keyCursor, kv.Cat(kv.BE8(c.Next), c.Prev[:]), nil)
}

// Alert reads alert id.
func (s *Store) Alert(id uint64) (*Alert, error) {
	return readAlert(s.db, id)
}

func readAlert(r pebble.Reader, id uint64) (*Alert, error) {
	var a Alert
	ok, err := kv.GetJSON(r, alertKey(id), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("alert %d: %w", id, ErrNotFound)
	}
	return &a, nil
}

// AlertFilter selects alerts for a list.
type AlertFilter struct {
	// Status is one status, or "" for every alert; "unresolved" lists the
	// open and acknowledged ones.
	Status  string
	Rule    string
	Account *common.Address
	// After lists alerts with a higher id (paging); Limit bounds the page.
	After uint64
	Limit int
}

// Alerts lists alerts by id, oldest first.
func (s *Store) Alerts(f AlertFilter) ([]*Alert, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: alertKey(f.After + 1), UpperBound: kv.UpperBound(prefixAlert)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*Alert
	for it.First(); it.Valid() && len(out) < f.Limit; it.Next() {
		var a Alert
		if err := json.Unmarshal(it.Value(), &a); err != nil {
			return nil, fmt.Errorf("alert %x: %w", it.Key(), err)
		}
		if f.Rule != "" && a.Rule != f.Rule || f.Account != nil && a.Account != *f.Account {
			continue
		}
		if f.Status == "unresolved" && !a.Unresolved() || f.Status != "" && f.Status != "unresolved" && string(a.Status) != f.Status {
			continue
		}
		out = append(out, &a)
	}
	return out, it.Error()
}

// Unresolved returns every open or acknowledged alert (for the metrics'
// counts and queue age). Their number is bounded by accounts x rules: an
// unresolved alert absorbs its rule's later firings for its account.
func (s *Store) Unresolved() ([]*Alert, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefixOpen, UpperBound: kv.UpperBound(prefixOpen)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*Alert
	for it.First(); it.Valid(); it.Next() {
		if len(it.Value()) != 8 {
			return nil, fmt.Errorf("open index %x: %d bytes", it.Key(), len(it.Value()))
		}
		a, err := s.Alert(binary.BigEndian.Uint64(it.Value()))
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, it.Error()
}

// putAlert writes a, keeping the unresolved index and the closed list in
// step with its status (old is its previous state, nil for a new alert).
func putAlert(b *pebble.Batch, old, a *Alert) error {
	if err := kv.SetJSON(b, alertKey(a.ID), a); err != nil {
		return err
	}
	ok := openKey(a.Account, a.Rule)
	switch {
	case a.Unresolved():
		return b.Set(ok, kv.BE8(a.ID), nil)
	case old == nil || old.Unresolved():
		if err := b.Delete(ok, nil); err != nil {
			return err
		}
		return appendClosed(b, a.ID)
	}
	return nil
}

// appendClosed records that alert id closed, for pruning.
func appendClosed(b *pebble.Batch, id uint64) error {
	first, next, err := closedRange(b)
	if err != nil {
		return err
	}
	if err := b.Set(kv.Cat(prefixClose, kv.BE8(next)), kv.BE8(id), nil); err != nil {
		return err
	}
	return b.Set(keyClosed, kv.Cat(kv.BE8(first), kv.BE8(next+1)), nil)
}

func closedRange(r pebble.Reader) (first, next uint64, err error) {
	v, err := kv.Get(r, keyClosed)
	if err != nil || v == nil {
		return 0, 0, err
	}
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("closed range: %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:]), nil
}

// pruneClosed deletes the oldest closed alerts beyond keep (queue.max-closed).
func pruneClosed(b *pebble.Batch, keep int) error {
	first, next, err := closedRange(b)
	if err != nil {
		return err
	}
	for ; next-first > uint64(keep); first++ {
		ck := kv.Cat(prefixClose, kv.BE8(first))
		v, err := kv.Get(b, ck)
		if err != nil {
			return err
		}
		if len(v) == 8 {
			if err := b.Delete(alertKey(binary.BigEndian.Uint64(v)), nil); err != nil {
				return err
			}
		}
		if err := b.Delete(ck, nil); err != nil {
			return err
		}
	}
	return b.Set(keyClosed, kv.Cat(kv.BE8(first), kv.BE8(next)), nil)
}

func alertKey(id uint64) []byte { return kv.Cat(prefixAlert, kv.BE8(id)) }
func openKey(a common.Address, rule string) []byte {
	return kv.Cat(prefixOpen, a[:], []byte(rule))
}
func profileKey(a common.Address) []byte { return kv.Cat(prefixProf, a[:]) }
func payeeKey(from, to common.Address) []byte {
	return kv.Cat(prefixPayee, from[:], to[:])
}

// ---- helpers ----

func (s *Store) get(k []byte) ([]byte, error) { return kv.Get(s.db, k) }
