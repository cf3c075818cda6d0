package store_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/store"
)

// TestHistoryProof compares the proofs HistoryProof builds from the stored
// tree nodes with chain.MerkleProof over every block hash, for every
// (index, size) of a chain of 40 blocks, and checks each against the root
// the header of height size commits to.
func TestHistoryProof(t *testing.T) {
	c := chaintest.New(t)
	for i := 0; i < 39; i++ {
		c.Apply()
	}
	head := c.DB.Tip().Head.Number
	hashes := make([][]byte, head+1)
	headers := make([]*types.Header, head+1)
	for n := uint64(0); n <= head; n++ {
		b, err := c.DB.BlockByNumber(n)
		if err != nil {
			t.Fatal(err)
		}
		h := b.Hash()
		hashes[n], headers[n] = h[:], b.Header
	}
	for size := uint64(1); size <= head+1; size++ {
		for index := uint64(0); index < size; index++ {
			got, err := c.DB.HistoryProof(index, size)
			if err != nil {
				t.Fatalf("HistoryProof(%d, %d): %v", index, size, err)
			}
			want, err := chain.MerkleProof(hashes[:size], index)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("HistoryProof(%d, %d): %d hashes, want %d", index, size, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("HistoryProof(%d, %d): hash %d differs", index, size, i)
				}
			}
			if size <= head {
				if err := chain.VerifyMerkleProof(hashes[index], index, size, got, headers[size].MixDigest); err != nil {
					t.Fatalf("HistoryProof(%d, %d) against header %d: %v", index, size, size, err)
				}
			}
		}
	}
	for _, tt := range []struct{ index, size uint64 }{{0, 0}, {5, 5}, {0, head + 2}} {
		if _, err := c.DB.HistoryProof(tt.index, tt.size); err == nil {
			t.Errorf("HistoryProof(%d, %d) succeeded", tt.index, tt.size)
		}
	}
}

// checkProof checks the parts of p that the state vouches for: the paths
// lead to the roots, the head and certificate agree, and the validator
// changes are the ones up to the certified head's successor.
func checkProof(t *testing.T, c *chaintest.Chain, p *chain.TxProof, tx common.Hash, wantChanges int) {
	t.Helper()
	var header, head types.Header
	if err := rlp.DecodeBytes(p.Header, &header); err != nil {
		t.Fatal(err)
	}
	if err := rlp.DecodeBytes(p.Head, &head); err != nil {
		t.Fatal(err)
	}
	n, _, err := c.DB.TxLocation(tx)
	if err != nil {
		t.Fatal(err)
	}
	if header.Number.Uint64() != n {
		t.Fatalf("header %d, tx in block %d", header.Number, n)
	}
	var decoded types.Transaction
	if err := decoded.UnmarshalBinary(p.Tx); err != nil || decoded.Hash() != tx {
		t.Fatalf("tx %s (%v), want %s", decoded.Hash(), err, tx)
	}
	if err := chain.VerifyMerklePath(tx[:], p.PathLeft, p.TxPath, header.TxHash); err != nil {
		t.Fatalf("tx path: %v", err)
	}
	if err := chain.VerifyMerklePath(p.Receipt, p.PathLeft, p.ReceiptPath, header.ReceiptHash); err != nil {
		t.Fatalf("receipt path: %v", err)
	}
	T := head.Number.Uint64()
	if p.Certificate.Height != T || p.Certificate.Hash != head.Hash() {
		t.Fatalf("certificate of %d (%s), head %d (%s)", p.Certificate.Height, p.Certificate.Hash, T, head.Hash())
	}
	if n == T {
		if len(p.HistoryPath) != 0 || !bytes.Equal(p.Header, p.Head) {
			t.Fatal("head is the block itself, yet a history path or another header")
		}
	} else if err := chain.VerifyMerkleProof(header.Hash().Bytes(), n, T, p.HistoryPath, head.MixDigest); err != nil {
		t.Fatalf("history path: %v", err)
	}
	if err := chain.VerifyMerkleProof(p.GenesisHash.Bytes(), 0, T, p.GenesisPath, head.MixDigest); err != nil {
		t.Fatalf("genesis path: %v", err)
	}
	vals, err := c.DB.ValidatorsAt(T)
	if err != nil {
		t.Fatal(err)
	}
	if err := chain.VerifyCertificate(p.Certificate, c.Genesis.ChainID, vals); err != nil {
		t.Fatal(err)
	}
	if len(p.ValidatorChanges) != wantChanges {
		t.Fatalf("%d validator changes, want %d", len(p.ValidatorChanges), wantChanges)
	}
	for _, ch := range p.ValidatorChanges {
		if ch.Certificate.Height != ch.Height-1 || ch.Certificate.Next != chain.ValidatorSetHash(ch.Validators) {
			t.Fatalf("change at %d: certificate of %d naming %s", ch.Height, ch.Certificate.Height, ch.Certificate.Next)
		}
	}
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chain.DecodeTxProof(enc); err != nil {
		t.Fatal(err)
	}
}

// TestTxProof builds proofs before and after a validator change: a tx
// certified under the genesis set carries no change; the same tx, and one
// after the change, proven against a later head carry it. The newest block
// has no certificate yet (ErrNotCertified), and an unknown tx is
// ErrNotFound.
func TestTxProof(t *testing.T) {
	c := chaintest.New(t)
	first := c.Apply(c.Transfers(5)...)
	tx := first.Block.Txs[3].Hash()
	if _, err := c.DB.TxProof(tx); !errors.Is(err, store.ErrNotCertified) {
		t.Fatalf("newest block: %v, want ErrNotCertified", err)
	}
	c.Apply() // certifies block 1: the head is the block itself
	p, err := c.DB.TxProof(tx)
	if err != nil {
		t.Fatal(err)
	}
	checkProof(t, c, p, tx, 0)
	if p.Certificate.Height != first.Block.Number() {
		t.Fatalf("certified head %d, want %d", p.Certificate.Height, first.Block.Number())
	}

	s := c.Populate()
	for _, h := range []common.Hash{tx, s.Transfer, s.Payment, s.Failed, s.Approval, s.After} {
		p, err := c.DB.TxProof(h)
		if err != nil {
			t.Fatalf("tx %s: %v", h, err)
		}
		checkProof(t, c, p, h, 1)
		if p.ValidatorChanges[0].Height != s.ValidatorFrom || len(p.ValidatorChanges[0].Validators) != 4 {
			t.Fatalf("change at %d to %d validators, want %d and 4", p.ValidatorChanges[0].Height, len(p.ValidatorChanges[0].Validators), s.ValidatorFrom)
		}
	}

	last := c.Apply(c.Transfers(1)...)
	if _, err := c.DB.TxProof(last.Block.Txs[0].Hash()); !errors.Is(err, store.ErrNotCertified) {
		t.Fatalf("newest block: %v, want ErrNotCertified", err)
	}
	if _, err := c.DB.TxProof(common.Hash{1}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown tx: %v, want ErrNotFound", err)
	}
}
