package store

import (
	"math/big"
	"runtime"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// decodedTestBlock is a block of n legacy transfers with its receipts,
// one log each in every other receipt (a token transfer's).
func decodedTestBlock(t *testing.T, n int) (blockRaw, receiptsRaw []byte) {
	t.Helper()
	key, err := genesis.DevKey(0)
	if err != nil {
		t.Fatal(err)
	}
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0xbe, 0xef}
	txs := make([]*types.Transaction, n)
	rs := make([]*types.Receipt, n)
	for i := range txs {
		tx, err := chain.SignTx(types.NewTx(&types.LegacyTx{Nonce: uint64(i), To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}), id, key)
		if err != nil {
			t.Fatal(err)
		}
		txs[i] = tx
		rs[i] = &types.Receipt{Status: 1, CumulativeGasUsed: uint64(i+1) * 21000}
		if i%2 == 0 {
			rs[i].Logs = []*types.Log{{Address: to, Topics: []common.Hash{{1}, {2}, {3}}, Data: make([]byte, 32)}}
		}
	}
	b := chain.NewBlock(&types.Header{Number: big.NewInt(7), GasLimit: 1 << 40, Difficulty: new(big.Int), BaseFee: new(big.Int)}, txs)
	if blockRaw, err = b.Encode(); err != nil {
		t.Fatal(err)
	}
	if receiptsRaw, err = chain.EncodeReceipts(rs); err != nil {
		t.Fatal(err)
	}
	return blockRaw, receiptsRaw
}

// heapAfter returns the live heap after a collection.
func heapAfter() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// The caches' estimates of what a decoded block and its receipts hold
// (blockHeapBytes, receiptsHeapBytes) are within a factor of 1.5 of the
// heap they take, measured over copies decoded from storage encodings,
// so that the byte bounds are bounds on memory.
func TestDecodedSizeEstimates(t *testing.T) {
	const txs, copies = 2000, 4
	blockRaw, receiptsRaw := decodedTestBlock(t, txs)
	blocks := make([]*chain.Block, copies)
	before := heapAfter()
	for i := range blocks {
		b, err := chain.DecodeBlock(blockRaw)
		if err != nil {
			t.Fatal(err)
		}
		blocks[i] = b.WithoutRaw()
		for _, tx := range blocks[i].Txs {
			tx.Hash() // cached in the transaction, as every reader does
		}
	}
	blockHeap := float64(heapAfter()-before) / copies
	receipts := make([][]*types.Receipt, copies)
	before = heapAfter()
	for i := range receipts {
		rs, err := chain.DecodeReceipts(receiptsRaw, blocks[i])
		if err != nil {
			t.Fatal(err)
		}
		receipts[i] = rs
	}
	receiptHeap := float64(heapAfter()-before) / copies
	runtime.KeepAlive(blocks)
	runtime.KeepAlive(receipts)
	for _, c := range []struct {
		what          string
		estimate, got float64
	}{
		{"block", float64(blockHeapBytes(blocks[0])), blockHeap},
		{"receipts", float64(receiptsHeapBytes(receipts[0])), receiptHeap},
	} {
		t.Logf("%s of %d transfers: estimate %.0f bytes, heap %.0f (%.0f a transaction)", c.what, txs, c.estimate, c.got, c.got/txs)
		if c.estimate < c.got/1.5 || c.estimate > c.got*1.5 {
			t.Errorf("%s of %d transfers: estimated %.0f bytes, takes %.0f", c.what, txs, c.estimate, c.got)
		}
	}
}

// The decoded caches hold at most their bound in estimated bytes, evict
// the least recently used first, and keep no value larger than the bound.
func TestByteLRUBound(t *testing.T) {
	c := newByteLRU(1000, func(v int64) int64 { return v })
	for n := range uint64(10) {
		c.Add(n, 150)
	}
	if c.Bytes() > 1000 || c.Bytes() != 900 {
		t.Fatalf("holds %d bytes, want 900 (six values of 150 within 1000)", c.Bytes())
	}
	if _, ok := c.Get(3); ok {
		t.Fatal("value 3 kept past the bound")
	}
	c.Get(4) // now the most recent
	c.Add(10, 400)
	if _, ok := c.Get(4); !ok {
		t.Fatal("the most recently read value was evicted")
	}
	if _, ok := c.Get(5); ok {
		t.Fatal("the least recently used value was kept")
	}
	// Holds 7, 8, 9, 4 and 10 (the 400): 1000 bytes. Replaced, 10's old
	// size no longer counts.
	c.Add(10, 100)
	if c.Bytes() != 4*150+100 {
		t.Fatalf("holds %d bytes after a replacement, want %d", c.Bytes(), 4*150+100)
	}
	c.Add(11, 1001)
	if _, ok := c.Get(11); ok || c.Bytes() > 1000 {
		t.Fatalf("a value over the whole bound was kept (%d bytes)", c.Bytes())
	}
	c.Purge()
	if c.Bytes() != 0 {
		t.Fatalf("%d bytes after Purge", c.Bytes())
	}
}
