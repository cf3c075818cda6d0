package state

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/crypto"
)

// Reader reads state keys. Get returns (nil, nil) for a missing key; the
// returned slice belongs to the caller. Implementations are safe for
// concurrent use.
type Reader interface {
	Get(key []byte) ([]byte, error)
}

// Overlay is a set of state writes on top of a Reader: reads see the writes
// first. One Overlay holds the writes of one block. Not safe for concurrent
// writes; reads are safe once writing is finished.
type Overlay struct {
	base   Reader
	writes map[string][]byte
	// reads caches what Get read from base while one goroutine executes a
	// block (a sender's nonce, balance and account are read once per
	// transaction); nil when off. See cacheReads.
	reads map[string][]byte
}

// NewOverlay returns an empty overlay over base.
func NewOverlay(base Reader) *Overlay {
	return &Overlay{base: base, writes: make(map[string][]byte)}
}

// Get reads key, from the overlay's writes first.
func (o *Overlay) Get(key []byte) ([]byte, error) {
	if v, ok := o.writes[string(key)]; ok {
		return v, nil
	}
	if o.reads == nil {
		return o.base.Get(key)
	}
	if v, ok := o.reads[string(key)]; ok {
		return v, nil
	}
	v, err := o.base.Get(key)
	if err == nil {
		o.reads[string(key)] = v
	}
	return v, err
}

// cacheReads turns the read cache on (true) or off and empties it. It is on
// only while one goroutine executes transactions on o: the cache makes
// reads write to o, so concurrent readers must find it off. The base must
// not change while it is on.
func (o *Overlay) cacheReads(on bool) {
	o.reads = nil
	if on {
		o.reads = make(map[string][]byte)
	}
}

// Set records a write; an empty value deletes the key.
func (o *Overlay) Set(key, value []byte) {
	if len(key) == 0 || key[0] != prefixState {
		panic(fmt.Sprintf("state: write outside the state prefix: %x", key)) // invariant: root covers all state
	}
	o.writes[string(key)] = value
}

// Len is the number of keys written.
func (o *Overlay) Len() int { return len(o.writes) }

// Base returns the reader under the overlay.
func (o *Overlay) Base() Reader { return o.base }

// sortedKeys returns the written keys in byte order, the order everything
// hashed or committed uses.
func (o *Overlay) sortedKeys() []string {
	keys := make([]string, 0, len(o.writes))
	for k := range o.writes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// SortedKeys returns the written keys in byte order; the caller owns the
// slice.
func (o *Overlay) SortedKeys() []string { return o.sortedKeys() }

// Written returns the value o writes at k (empty: a deletion) and whether
// it writes k at all. The caller must not modify the value.
func (o *Overlay) Written(k string) ([]byte, bool) {
	v, ok := o.writes[k]
	return v, ok
}

// Root returns keccak256(parent || for each write in key order: len(k) k
// len(v) v), or parent unchanged when nothing was written.
func (o *Overlay) Root(parent common.Hash) common.Hash {
	if len(o.writes) == 0 {
		return parent
	}
	buf := make([]byte, 0, 32+len(o.writes)*64)
	buf = append(buf, parent[:]...)
	for _, k := range o.sortedKeys() {
		v := o.writes[k]
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
	}
	return crypto.Keccak256(buf)
}

// Nonce returns the account's next nonce.
func (o *Overlay) Nonce(a common.Address) (uint64, error) {
	v, err := o.Get(nonceKey(a))
	if err != nil || len(v) == 0 {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("state: nonce of %s is %d bytes", a, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// SetNonce sets the account's next nonce.
func (o *Overlay) SetNonce(a common.Address, n uint64) {
	o.Set(nonceKey(a), binary.BigEndian.AppendUint64(nil, n))
}

// Balance returns the account's balance of asset (a new big.Int the caller owns).
func (o *Overlay) Balance(asset uint32, a common.Address) (*big.Int, error) {
	v, err := o.Get(balanceKey(asset, a))
	if err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(v), nil
}

// SetBalance sets the account's balance of asset; zero deletes the key.
func (o *Overlay) SetBalance(asset uint32, a common.Address, v *big.Int) {
	if v.Sign() < 0 {
		panic(fmt.Sprintf("state: negative balance for %s", a)) // invariant: balances never go below zero
	}
	o.Set(balanceKey(asset, a), v.Bytes())
}

// readNonce and readBalance read through any Reader.
func readNonce(r Reader, a common.Address) (uint64, error) { return (&Overlay{base: r}).Nonce(a) }

func readBalance(r Reader, asset uint32, a common.Address) (*big.Int, error) {
	return (&Overlay{base: r}).Balance(asset, a)
}
