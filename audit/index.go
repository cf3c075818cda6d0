package audit

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
)

// Bounds of the chain index's memory (issue 17: the audit of a chain of
// any length runs in bounded memory).
const (
	// RecentHashes is how many of the latest block hashes the audit keeps
	// in memory (the links and certificates of new blocks look back a
	// few heights); older ones are read from the scratch database.
	RecentHashes = 1 << 12
	// indexFlushEvery is how many index writes are batched before they go
	// to the scratch database; at most RecentHashes/2, so a hash that
	// leaves the recent window is always in the database.
	indexFlushEvery = RecentHashes / 2
	// indexMemTable and indexCache bound the scratch database's memory.
	indexMemTable = 4 << 20
	indexCache    = 8 << 20
)

// Keys of the chain index.
var (
	indexHashPrefix    = []byte{'h'} // + height → hash of the block
	indexCarrierPrefix = []byte{'c'} // + certified height → height of the block carrying its certificate
	indexEventPrefix   = []byte{'e'} // + event kind + id → height of the event
)

// eventKind names what a business event recorded in the index says of
// its id (a bank reference or a withdrawal id): the checks that a bank
// reference mints once, that a withdrawal is claimed, closed and returned
// at most once, and that a returned one settled, look back at every
// earlier event of the chain, so their records go to the scratch
// database with the hashes, and the audit's memory does not grow with
// the events either.
type eventKind byte

const (
	eventMinted   eventKind = 'm' // bank reference → height of its mint
	eventReversed eventKind = 'v' // bank reference → height its mint was reversed
	eventClaimed  eventKind = 'k' // withdrawal id → height claimed
	eventClosed   eventKind = 'x' // withdrawal id → height settled or refunded
	eventSettled  eventKind = 's' // withdrawal id → height settled
	eventReturned eventKind = 't' // withdrawal id → height returned
)

func eventKey(kind eventKind, id []byte) []byte {
	return append(append(append(make([]byte, 0, len(indexEventPrefix)+1+len(id)), indexEventPrefix...), byte(kind)), id...)
}

// withdrawalKey is a withdrawal id as an event's id.
func withdrawalKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// event returns the height recorded for (kind, id), if any.
func (x *chainIndex) event(kind eventKind, id []byte) (uint64, bool, error) {
	v, closer, err := x.db.Get(eventKey(kind, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("audit index: event %c %x: %w", kind, id, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("audit index: event %c %x: %d bytes", kind, id, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// setEvent records that (kind, id) happened at height n. It is written at
// once (no sync: the database is scratch), so the next event reads it.
func (x *chainIndex) setEvent(kind eventKind, id []byte, n uint64) error {
	if err := x.db.Set(eventKey(kind, id), binary.BigEndian.AppendUint64(nil, n), pebble.NoSync); err != nil {
		return fmt.Errorf("audit index: event %c %x: %w", kind, id, err)
	}
	return nil
}

// chainIndex is what the audit learns per block and needs again later —
// each checked block's hash (certificates and links name earlier blocks;
// the data dir's records are checked against all of them at the end) and,
// for each certified height, the checked block that carried its
// certificate — kept in a scratch Pebble database beside the replay's,
// with the latest RecentHashes hashes in memory. Its memory does not grow
// with the chain.
type chainIndex struct {
	db      *pebble.DB
	batch   *pebble.Batch
	pending int
	// first is the height of the first hash (block 0, or the checkpoint's
	// head); next the height the next hash is for.
	first, next uint64
	recent      [RecentHashes]common.Hash // recent[h%RecentHashes] for h in [max(first, next-RecentHashes), next)
}

// openChainIndex creates the index in dir (a new directory in the audit's
// scratch space), starting at block first with hash h.
func openChainIndex(dir string, first uint64, h common.Hash) (*chainIndex, error) {
	cache := pebble.NewCache(indexCache)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{Cache: cache, MemTableSize: indexMemTable, DisableWAL: true, Logger: quietIndexLogger{}})
	if err != nil {
		return nil, fmt.Errorf("audit index %s: %w", dir, err)
	}
	x := &chainIndex{db: db, batch: db.NewBatch(), first: first, next: first}
	if err := x.addHash(h); err != nil {
		db.Close()
		return nil, err
	}
	return x, nil
}

func heightKey(prefix []byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, len(prefix)+8), prefix...), n)
}

// addHash records h as the hash of block next.
func (x *chainIndex) addHash(h common.Hash) error {
	x.recent[x.next%RecentHashes] = h
	if err := x.set(heightKey(indexHashPrefix, x.next), h[:]); err != nil {
		return err
	}
	x.next++
	return nil
}

// setCarrier records that block carrier carries the certificate of block
// certified (a later carrier of the same height replaces it).
func (x *chainIndex) setCarrier(certified, carrier uint64) error {
	return x.set(heightKey(indexCarrierPrefix, certified), binary.BigEndian.AppendUint64(nil, carrier))
}

func (x *chainIndex) set(k, v []byte) error {
	if err := x.batch.Set(k, v, nil); err != nil {
		return fmt.Errorf("audit index: %w", err)
	}
	if x.pending++; x.pending >= indexFlushEvery {
		return x.flush()
	}
	return nil
}

// flush writes the batched entries to the database.
func (x *chainIndex) flush() error {
	if x.pending == 0 {
		return nil
	}
	if err := x.batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("audit index: %w", err)
	}
	x.batch.Close()
	x.batch, x.pending = x.db.NewBatch(), 0
	return nil
}

// truncate forgets the hashes of blocks n and above (n > first); a
// hash added later for such a height replaces the stored one.
func (x *chainIndex) truncate(n uint64) {
	if n > x.first && n < x.next {
		x.next = n
	}
}

// count is how many hashes the index holds.
func (x *chainIndex) count() uint64 { return x.next - x.first }

// last is the hash of the last block added.
func (x *chainIndex) last() common.Hash { return x.recent[(x.next-1)%RecentHashes] }

// hashAt returns the hash of block h if the index holds it.
func (x *chainIndex) hashAt(h uint64) (common.Hash, bool, error) {
	switch {
	case h < x.first || h >= x.next:
		return common.Hash{}, false, nil
	case x.next-h <= RecentHashes:
		return x.recent[h%RecentHashes], true, nil
	}
	v, closer, err := x.db.Get(heightKey(indexHashPrefix, h))
	if err != nil {
		return common.Hash{}, false, fmt.Errorf("audit index: hash of block %d: %w", h, err)
	}
	defer closer.Close()
	if len(v) != common.HashLength {
		return common.Hash{}, false, fmt.Errorf("audit index: hash of block %d is %d bytes", h, len(v))
	}
	return common.BytesToHash(v), true, nil
}

// hashes calls fn with each hash from block from up to the last one, in
// increasing height.
func (x *chainIndex) hashes(from uint64, fn func(n uint64, h common.Hash)) error {
	if err := x.flush(); err != nil {
		return err
	}
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: heightKey(indexHashPrefix, from), UpperBound: heightKey(indexHashPrefix, x.next)})
	if err != nil {
		return fmt.Errorf("audit index: %w", err)
	}
	want := from
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		n := binary.BigEndian.Uint64(k[len(indexHashPrefix):])
		if n != want || len(v) != common.HashLength {
			it.Close()
			return fmt.Errorf("audit index: entry %x → %x where block %d's hash belongs", k, v, want)
		}
		fn(n, common.BytesToHash(v))
		want++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("audit index: %w", err)
	}
	if want != x.next && from < x.next {
		return fmt.Errorf("audit index: hashes end at block %d, the last is %d", want, x.next-1)
	}
	return nil
}

// carrierIter walks the certificate carriers in increasing certified
// height.
type carrierIter struct {
	it                 *pebble.Iterator
	certified, carrier uint64
	ok                 bool
	err                error
}

func (x *chainIndex) carriers() (*carrierIter, error) {
	if err := x.flush(); err != nil {
		return nil, err
	}
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: indexCarrierPrefix, UpperBound: []byte{indexCarrierPrefix[0] + 1}})
	if err != nil {
		return nil, fmt.Errorf("audit index: %w", err)
	}
	c := &carrierIter{it: it}
	c.read(it.First())
	return c, nil
}

func (c *carrierIter) read(valid bool) {
	c.ok = valid && c.err == nil
	if !c.ok {
		return
	}
	k, v := c.it.Key(), c.it.Value()
	if len(k) != len(indexCarrierPrefix)+8 || len(v) != 8 {
		c.ok, c.err = false, fmt.Errorf("audit index: malformed carrier entry %x → %x", k, v)
		return
	}
	c.certified, c.carrier = binary.BigEndian.Uint64(k[len(indexCarrierPrefix):]), binary.BigEndian.Uint64(v)
}

// next moves to the next entry; ok is false after the last.
func (c *carrierIter) next() { c.read(c.it.Next()) }

func (c *carrierIter) close() error {
	return errors.Join(c.err, c.it.Close())
}

func (x *chainIndex) close() error {
	x.batch.Close()
	return x.db.Close()
}

// quietIndexLogger drops Pebble's informational logs (a scratch database's
// flushes say nothing to an auditor) and keeps its errors.
type quietIndexLogger struct{}

func (quietIndexLogger) Infof(string, ...any) {}
func (quietIndexLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietIndexLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
