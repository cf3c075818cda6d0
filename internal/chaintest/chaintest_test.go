package chaintest

import (
	"testing"

	"github.com/tally-ledger/tally/chain"
)

func TestPopulate(t *testing.T) {
	c := New(t)
	s := c.Populate()
	head := c.DB.Tip().Head.Number
	if err := c.DB.CheckConservation(); err != nil {
		t.Fatal(err)
	}
	for h := uint64(1); h < head; h++ {
		cert, err := c.DB.Certificate(h)
		if err != nil {
			t.Fatalf("block %d: %v", h, err)
		}
		vals, err := c.DB.ValidatorsAt(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := chain.VerifyCertificate(cert.Certificate, c.Genesis.ChainID, vals); err != nil {
			t.Fatal(err)
		}
	}
	if vals, _ := c.DB.ValidatorsAt(s.ValidatorFrom); len(vals) != 4 {
		t.Fatalf("validators at %d: %v", s.ValidatorFrom, vals)
	}
	if vals, _ := c.DB.ValidatorsAt(s.ValidatorFrom - 1); len(vals) != 3 {
		t.Fatalf("validators at %d: %v", s.ValidatorFrom-1, vals)
	}
	n, _, err := c.DB.TxLocation(s.After)
	if err != nil || n <= s.ValidatorFrom {
		t.Fatalf("last transfer at %d (%v), validator change at %d", n, err, s.ValidatorFrom)
	}
	proposers := map[string]bool{}
	for h := s.ValidatorFrom; h <= head; h++ {
		b, _ := c.DB.BlockByNumber(h)
		proposers[b.Header.Coinbase.Hex()] = true
	}
	if !proposers[Addr(AddedValidator).Hex()] {
		t.Fatalf("the added validator proposed none of blocks %d..%d", s.ValidatorFrom, head)
	}
}
