package store

import (
	"errors"
	"math/big"
	"sync/atomic"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

// TestAppliedVisibleWithHead: a reader never sees a block, its hash or a
// transaction's location before the head says the block is applied. A
// wallet that got its receipt and then read "latest" saw the state before
// that block (tally op settleWithdrawal right after claimWithdrawal was
// receipted said "not claimed"): Pebble publishes a batch before its WAL
// fsync returns, so the block's keys were readable for the length of an
// fsync before the head moved. Synced writes, as a node makes them.
func TestAppliedVisibleWithHead(t *testing.T) {
	e := newEnvOpts(t, Options{})
	to := common.HexToAddress("0x00000000000000000000000000000000000000bb")
	const blocks = 150
	var (
		stop    atomic.Bool
		watched atomic.Pointer[common.Hash]
		bad     atomic.Value
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			h := watched.Load()
			if h == nil {
				continue
			}
			n, _, err := e.db.TxLocation(*h)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			head, _ := e.db.Head()
			if err == nil && n > head.Number {
				bad.Store("tx location at block " + itoa(n) + " while the head is " + itoa(head.Number))
				return
			}
			if _, err := e.db.BlockByNumber(head.Number + 1); err == nil {
				bad.Store("block above the head readable")
				return
			}
		}
	}()
	for i := range uint64(blocks) {
		tx := e.transfer(0, i, to, 1)
		hash := tx.Hash()
		watched.Store(&hash)
		if _, err := e.apply(e.build(tx).Block); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	<-done
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
}

func itoa(n uint64) string { return new(big.Int).SetUint64(n).String() }
