package rpc

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/store"
)

// rawBackend serves a state DB read-only.
type rawBackend struct {
	db      *store.DB
	senders *chain.SenderCache
	heads   *HeadFeed
}

func (b *rawBackend) State() *store.DB                                   { return b.db }
func (b *rawBackend) Senders() *chain.SenderCache                        { return b.senders }
func (b *rawBackend) SubmitTx(context.Context, *types.Transaction) error { return nil }
func (b *rawBackend) PendingNonce(a common.Address) (uint64, error)      { return b.db.Nonce(a) }
func (b *rawBackend) PendingTx(common.Hash) (*types.Transaction, common.Address, bool) {
	return nil, common.Address{}, false
}
func (b *rawBackend) Syncing() (bool, uint64, uint64) { return false, 0, 0 }
func (b *rawBackend) Heads() *HeadFeed                { return b.heads }

func serveRaw(t *testing.T, db *store.DB, senders *chain.SenderCache) *gethrpc.Client {
	t.Helper()
	srv, err := NewServer(&rawBackend{db: db, senders: senders, heads: NewHeadFeed(4)}, DefaultLimits, "test")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	rc, err := gethrpc.Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close(); ts.Close(); srv.Stop() })
	return rc
}

// TestRawBlocksAndDigest asks a real server for raw blocks and the state
// digest: the encodings are the stored ones, the bounds hold, a missing
// block is null, and the digest is the state's.
func TestRawBlocksAndDigest(t *testing.T) {
	c := chaintest.New(t)
	c.Populate()
	head := c.DB.Tip().Head.Number
	rc := serveRaw(t, c.DB, c.Senders)

	var got []RawBlock
	if err := rc.Call(&got, "tally_getRawBlocks", hexutil.Uint64(0), hexutil.Uint64(MaxRawBlocks)); err != nil {
		t.Fatal(err)
	}
	if uint64(len(got)) != head+1 {
		t.Fatalf("%d blocks for head %d", len(got), head)
	}
	for i, r := range got {
		b, err := c.DB.BlockByNumber(uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := b.Encode()
		if uint64(r.Number) != uint64(i) || r.Block == nil || !bytes.Equal(*r.Block, enc) || r.Receipts == nil {
			t.Fatalf("block %d: %+v", i, r)
		}
		rs, err := chain.DecodeReceipts(*r.Receipts, b)
		if err != nil || len(rs) != len(b.Txs) {
			t.Fatalf("receipts of %d: %v", i, err)
		}
	}
	// From above the head: nothing. From the head: one block.
	for from, want := range map[uint64]int{head + 1: 0, head: 1, head - 2: 3} {
		if err := rc.Call(&got, "tally_getRawBlocks", hexutil.Uint64(from), hexutil.Uint64(10)); err != nil || len(got) != want {
			t.Fatalf("from %d: %d blocks (%v), want %d", from, len(got), err, want)
		}
	}
	for _, count := range []uint64{0, MaxRawBlocks + 1} {
		err := rc.Call(&got, "tally_getRawBlocks", hexutil.Uint64(0), hexutil.Uint64(count))
		if err == nil || !strings.Contains(err.Error(), "count must be") {
			t.Fatalf("count %d: %v", count, err)
		}
	}

	var d StateDigest
	if err := rc.Call(&d, "tally_stateDigest"); err != nil {
		t.Fatal(err)
	}
	want, err := c.DB.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	if uint64(d.Height) != head || d.Digest != want.Digest || uint64(d.Keys) != want.Keys || d.StateRoot != c.DB.Tip().Head.StateRoot || want.Keys == 0 {
		t.Fatalf("digest %+v, want %+v", d, want)
	}
	// A new block changes the digest (not a stale cache).
	c.Apply(c.Transfers(1)...)
	var d2 StateDigest
	if err := rc.Call(&d2, "tally_stateDigest"); err != nil {
		t.Fatal(err)
	}
	if uint64(d2.Height) != head+1 || d2.Digest == d.Digest {
		t.Fatalf("digest after a block: %+v (before %+v)", d2, d)
	}
}

// TestRawBlocksMissing serves a data dir with a block removed: the gap is
// a null entry, not an error or a silent skip.
func TestRawBlocksMissing(t *testing.T) {
	c := chaintest.New(t)
	c.Populate()
	c.Close()
	dir := chaintest.CopyDir(t, c.Dir)
	pdb, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pdb.Delete(append([]byte("B"), 0, 0, 0, 0, 0, 0, 0, 2), nil); err != nil {
		t.Fatal(err)
	}
	pdb.Close()
	db, err := store.Open(dir, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rc := serveRaw(t, db, c.Senders)
	var got []RawBlock
	if err := rc.Call(&got, "tally_getRawBlocks", hexutil.Uint64(1), hexutil.Uint64(3)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Block == nil || got[1].Block != nil || uint64(got[1].Number) != 2 || got[2].Block == nil {
		t.Fatalf("blocks around a gap: %+v", got)
	}
}
