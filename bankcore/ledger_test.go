package bankcore

import (
	"math/big"
	"testing"
)

// TestParseAmount: an amount written with more decimals than the ledger
// keeps but trailing zeros (an 18-decimal asset's "97.310000000000000000")
// is its value, not a panic; significant digits finer than the ledger's
// scale are an error.
func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // in 10^-scale units; -1: an error
	}{
		{"97.31", 9731000},
		{"97.310000000000000000", 9731000},
		{"0.00001", 1},
		{"0.000010000", 1},
		{"12", 1200000},
		{"0.000001", -1},
		{"1.0000000000000000001", -1},
		{"-1", -1},
	} {
		got, err := parseAmount(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("parseAmount(%q) = %s, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.Cmp(big.NewInt(tc.want)) != 0 {
			t.Errorf("parseAmount(%q) = %v, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
