package consensus

import (
	"bytes"
	"testing"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/store"
)

// TestFSMStoresEntryBytes: the block stored for an applied Raft entry is
// the entry's own bytes (the FSM does not encode the block again), and
// the stored block decodes to the applied one.
func TestFSMStoresEntryBytes(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	for i := 0; i < 3; i++ {
		data := e.block(val, 5)
		a, ok := e.apply(data).(*store.Applied)
		if !ok {
			t.Fatalf("block %d not applied", i+1)
		}
		if !bytes.Equal(a.Block.Raw(), data) {
			t.Fatalf("block %d: the applied block does not hold the entry's bytes", a.Block.Number())
		}
		raw, err := e.db.RawBlocks(a.Block.Number(), 1, 1)
		if err != nil || len(raw) != 1 {
			t.Fatalf("raw block %d: %v", a.Block.Number(), err)
		}
		if !bytes.Equal(raw[0].Block, data) {
			t.Fatalf("block %d: stored %d bytes that are not the entry (%d bytes)", a.Block.Number(), len(raw[0].Block), len(data))
		}
		got, err := e.db.BlockByNumber(a.Block.Number())
		if err != nil || got.Hash() != a.Block.Hash() {
			t.Fatalf("stored block %d: %v, %v", a.Block.Number(), got, err)
		}
	}
}
