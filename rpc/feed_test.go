package rpc

import (
	"errors"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
)

func TestHeadFeedBounds(t *testing.T) {
	f := NewHeadFeed(2)
	a, unsubA, err := f.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	slow, _, err := f.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Subscribe(); !errors.Is(err, ErrTooManySubscriptions) {
		t.Fatalf("third subscriber: %v", err)
	}
	b := chain.NewBlock(chain.NewHeader(common.Hash{}, 1, 1, common.Address{}), nil)
	for i := 0; i < headBuffer; i++ {
		f.Publish(b)
		<-a // a keeps up
	}
	if f.Len() != 2 {
		t.Fatalf("%d subscribers after %d blocks, want 2", f.Len(), headBuffer)
	}
	f.Publish(b) // slow has headBuffer queued: dropped
	if f.Len() != 1 {
		t.Fatalf("slow subscriber not dropped: %d", f.Len())
	}
	n := 0
	for range slow {
		n++
	}
	if n != headBuffer {
		t.Fatalf("slow subscriber drained %d, want %d before close", n, headBuffer)
	}
	unsubA()
	unsubA() // idempotent
	if _, ok := <-a; ok && f.Len() != 0 {
		t.Fatal("unsubscribed channel still fed")
	}
}
