package store_test

import (
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/store"
)

// TestReplayReproducesChain replays a populated chain on a scratch state:
// every header's state and receipts roots come out, the validator set
// follows governance, and the final state is exactly the stored one.
func TestReplayReproducesChain(t *testing.T) {
	c := chaintest.New(t)
	s := c.Populate()
	head := c.DB.Tip().Head.Number
	r, b0, err := store.NewReplay(filepath.Join(t.TempDir(), "replay"), c.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if stored, _ := c.DB.BlockByNumber(0); stored.Hash() != b0.Hash() {
		t.Fatal("genesis block differs")
	}
	signer := chain.NewSigner(c.ChainID)
	prev := b0.Header.Root
	for n := uint64(1); n <= head; n++ {
		b, err := c.DB.BlockByNumber(n)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := r.ValidatorsAt(n), must(c.DB.ValidatorsAt(n)); chain.ValidatorSetHash(got) != chain.ValidatorSetHash(want) {
			t.Fatalf("validators at %d: %v, want %v", n, got, want)
		}
		senders := make([]common.Address, len(b.Txs))
		for i, tx := range b.Txs {
			if senders[i], err = chain.Sender(signer, tx); err != nil {
				t.Fatal(err)
			}
		}
		res, err := r.Execute(b, senders, nil)
		if err != nil || res.Excluded != nil {
			t.Fatalf("block %d: %v %v", n, err, res.Excluded)
		}
		if root := res.Writes.Root(prev); root != b.Header.Root {
			t.Fatalf("block %d: state root %s, header %s", n, root, b.Header.Root)
		}
		if root, _ := chain.ReceiptRoot(res.Receipts); root != b.Header.ReceiptHash {
			t.Fatalf("block %d: receipts root", n)
		}
		if err := r.Commit(res.Result); err != nil {
			t.Fatal(err)
		}
		prev = b.Header.Root
	}
	if len(r.ValidatorsAt(s.ValidatorFrom)) != 4 || len(r.ValidatorsAt(s.ValidatorFrom-1)) != 3 {
		t.Fatal("replayed validator history")
	}
	got, err := r.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.DB.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	if got.Keys != want.Keys || got.Digest != want.Digest || want.Height != head || want.StateRoot != c.DB.Tip().Head.StateRoot {
		t.Fatalf("digest %+v, stored %+v", got, want)
	}
	if d, found, err := r.FirstDifference(c.DB); err != nil || found {
		t.Fatalf("difference %x: %v", d.Key, err)
	}
	table, err := r.DB().SupplyTable()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range table {
		if !a.Conserved() || a.Minted.Sign() == 0 {
			t.Fatalf("supply %+v", a)
		}
	}

	// One more block on the chain only: the first difference is found.
	c.Apply(c.Transfers(1)...)
	d, found, err := r.FirstDifference(c.DB)
	if err != nil || !found || len(d.Key) == 0 || d.Key[0] != 's' {
		t.Fatalf("difference after a block: %+v %v %v", d, found, err)
	}

	// A checkpoint's state replays from where it is.
	from, err := store.NewReplayFrom(filepath.Join(t.TempDir(), "from"), c.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	fd, _ := from.StateDigest()
	sd, _ := c.DB.StateDigest()
	if fd.Keys != sd.Keys || fd.Digest != sd.Digest || len(from.ValidatorsAt(head+1)) != 4 {
		t.Fatalf("replay from checkpoint: %+v, stored %+v", fd, sd)
	}
}

// TestReplayExcludes replays a block whose transaction cannot be included
// (a nonce already used): it is excluded with its reason, not an error.
func TestReplayExcludes(t *testing.T) {
	c := chaintest.New(t)
	tx := c.Tx(0, chaintest.Addr(1), chaintest.CNYUnits(1), nil)
	c.Apply(tx)
	r, _, err := store.NewReplay(filepath.Join(t.TempDir(), "replay"), c.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := c.DB.BlockByNumber(1)
	from := chaintest.Addr(0)
	res, err := r.Execute(b, []common.Address{from}, nil)
	if err != nil || res.Excluded != nil {
		t.Fatal(err)
	}
	if err := r.Commit(res.Result); err != nil {
		t.Fatal(err)
	}
	res, err = r.Execute(b, []common.Address{from}, nil) // again: nonce too low
	if err != nil || res.Excluded == nil || res.Excluded[0] == nil || res.Receipts[0] != nil {
		t.Fatalf("replayed twice: %v %+v", err, res)
	}
}

func TestRawBlocksBounds(t *testing.T) {
	c := chaintest.New(t)
	c.Populate()
	head := c.DB.Tip().Head.Number
	for _, tc := range []struct {
		from            uint64
		count, maxBytes int
		want            int
	}{
		{0, 1000, 1 << 30, int(head) + 1},
		{0, 3, 1 << 30, 3},
		{0, 1000, 1, 1}, // always at least one
		{head, 10, 1 << 30, 1},
		{head + 1, 10, 1 << 30, 0},
	} {
		raws, err := c.DB.RawBlocks(tc.from, tc.count, tc.maxBytes)
		if err != nil || len(raws) != tc.want {
			t.Fatalf("%+v: %d blocks, %v", tc, len(raws), err)
		}
		for i, r := range raws {
			if r.Number != tc.from+uint64(i) || r.Block == nil || r.Receipts == nil {
				t.Fatalf("%+v: block %d: %+v", tc, i, r)
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
