package merchant

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

// Store is the notifier's own Pebble database. The orders a run of
// blocks changes, their notifications and the cursor past those blocks
// are one synced batch, so a crash keeps all of it or none: the blocks
// are read again from the old cursor and give the same notifications with
// the same delivery ids, never a second one for an event already queued.
//
// Key layout:
//
//	m/format          StoreFormat
//	m/cursor          the next block to read (8)
//	m/orders          how many orders are registered (8)
//	o/<ref 32>        Order
//	d/<id 32>         the reference of the order a dispute is on
//	x/<second 8><ref> an order not yet past its expiry (expire.go)
//	w/<seq 8>, m/wseq the webhook outbox (package outbox)
type Store struct {
	db *pebble.DB
	// mu serialises writers: the follower's batches and registrations
	// both read orders and write them back.
	mu sync.Mutex
}

// StoreFormat is the layout version of the store (2: the x/ expiry
// index).
const StoreFormat = 2

var (
	keyFormat     = []byte("m/format")
	keyCursor     = []byte("m/cursor")
	keyOrders     = []byte("m/orders")
	keyOutboxSeq  = []byte("m/wseq")
	prefixOrder   = []byte("o/")
	prefixOutbox  = []byte("w/")
	prefixDispute = []byte("d/")
	prefixExpiry  = []byte("x/")
)

// ErrNotFound is returned (wrapped) for an order that is not registered.
var ErrNotFound = errors.New("not found")

// OpenStore opens (creating) the store in dir.
func OpenStore(dir string) (*Store, error) {
	db, err := kv.OpenService(dir, kv.Service{Store: "merchant store", Holder: "a running merchant notifier", Reader: "notifier"}, keyFormat, StoreFormat)
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Cursor is the next block to read, and whether one was ever recorded.
func (s *Store) Cursor() (uint64, bool, error) {
	v, err := kv.Get(s.db, keyCursor)
	if err != nil || v == nil {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("cursor: %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// Order reads the order of ref.
func (s *Store) Order(ref common.Hash) (*Order, error) {
	return readOrder(s.db, ref)
}

// Orders is how many orders are registered.
func (s *Store) Orders() (uint64, error) { return kv.GetUint(s.db, keyOrders) }

func readOrder(r pebble.Reader, ref common.Hash) (*Order, error) {
	data, err := kv.Get(r, orderKey(ref))
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, fmt.Errorf("order %s: %w", ref, ErrNotFound)
	}
	var o Order
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("order %s: %w", ref, err)
	}
	return &o, nil
}

func putOrder(b *pebble.Batch, o *Order) error {
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("encode order %s: %w", o.Reference, err)
	}
	return b.Set(orderKey(o.Reference), data, nil)
}

func orderKey(ref common.Hash) []byte { return append(append([]byte{}, prefixOrder...), ref[:]...) }
