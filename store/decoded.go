package store

import (
	"sync"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/tally-ledger/tally/chain"
)

// Default bounds of the decoded-block and decoded-receipt caches
// (Options.BlockCacheBytes, Options.ReceiptCacheBytes; config
// state.block-cache-bytes and state.receipt-cache-bytes). A block of
// 5,000 transfers takes about 2.5 MB decoded and its receipts about as
// much, so each default holds a dozen such blocks, or hundreds of small
// ones: wallets ask for the receipts of the blocks just applied.
const (
	DefaultBlockCacheBytes   = 32 << 20
	DefaultReceiptCacheBytes = 32 << 20
)

// Estimated heap bytes of decoded values beyond their encoded bytes,
// measured with runtime.MemStats (TestDecodedSizeEstimates): a
// types.Transaction with its inner transaction and big integers, a
// types.Receipt with its bloom and derived fields, a types.Log, and a
// header with its big integers.
const (
	txHeapBytes      = 400
	receiptHeapBytes = 512
	logHeapBytes     = 224
	headerHeapBytes  = 1024
)

// blockHeapBytes estimates the heap a decoded block holds.
func blockHeapBytes(b *chain.Block) int64 {
	n := int64(headerHeapBytes)
	for _, tx := range b.Txs {
		n += txHeapBytes + int64(tx.Size())
	}
	for _, c := range b.Certs {
		n += 128 + 96*int64(len(c.Sigs))
	}
	return n
}

// receiptsHeapBytes estimates the heap decoded receipts hold.
func receiptsHeapBytes(rs []*types.Receipt) int64 {
	n := int64(64)
	for _, r := range rs {
		n += receiptHeapBytes
		for _, l := range r.Logs {
			n += logHeapBytes + 32*int64(len(l.Topics)) + int64(len(l.Data))
		}
	}
	return n
}

// byteLRU is a least-recently-used cache of decoded values by block
// number, bounded by the estimated heap bytes of what it holds rather
// than by a count: one block of 5,000 transfers weighs as much as
// hundreds of small ones. A value larger than the whole bound is not
// kept.
type byteLRU[V any] struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[uint64, sizedValue[V]]
	bytes int64
	max   int64
	size  func(V) int64
}

type sizedValue[V any] struct {
	v    V
	size int64
}

func newByteLRU[V any](max int64, size func(V) int64) *byteLRU[V] {
	c := &byteLRU[V]{max: max, size: size}
	// The count is bounded by the bytes (each value weighs more than
	// one); simplelru wants a count, so it gets one it never reaches.
	c.lru, _ = simplelru.NewLRU[uint64, sizedValue[V]](int(max/64)+1, func(_ uint64, s sizedValue[V]) { c.bytes -= s.size })
	return c
}

// Get returns the value of n and marks it recently used.
func (c *byteLRU[V]) Get(n uint64) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.lru.Get(n)
	return s.v, ok
}

// Add keeps v as n's value, evicting the least recently used values
// until the cache is within its bound.
func (c *byteLRU[V]) Add(n uint64, v V) {
	size := c.size(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(n)
	if size > c.max {
		return
	}
	c.lru.Add(n, sizedValue[V]{v: v, size: size})
	c.bytes += size
	for c.bytes > c.max {
		if _, _, ok := c.lru.RemoveOldest(); !ok {
			break
		}
	}
}

// Purge empties the cache.
func (c *byteLRU[V]) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
}

// Bytes returns the estimated heap bytes the cache holds.
func (c *byteLRU[V]) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
