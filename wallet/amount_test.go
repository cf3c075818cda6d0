package wallet

import (
	"errors"
	"math/big"
	"strings"
	"testing"
)

func bigInt(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return v
}

func TestParseAmount(t *testing.T) {
	maxU256 := "115792089237316195423570985008687907853269984665640564039457584007913129639935"
	tests := []struct {
		in       string
		decimals uint8
		want     string // base units; "" means an error
	}{
		{"1.5", 18, "1500000000000000000"},
		{"1", 18, "1000000000000000000"},
		{"0", 18, "0"},
		{"0.0", 18, "0"},
		{"1000", 18, "1000000000000000000000"},
		{"0.000000000000000001", 18, "1"},
		{"2.5", 18, "2500000000000000000"},
		{"007.10", 18, "7100000000000000000"},
		{"1.000000000000000000", 18, "1000000000000000000"},
		{"12.34", 2, "1234"},
		{"12", 0, "12"},
		{maxU256, 0, maxU256},
		{"0.0000000000000000001", 18, ""}, // 19 decimals
		{"1.5", 0, ""},
		{"1.234", 2, ""},
		{"", 18, ""},
		{"-1", 18, ""},
		{"-0.5", 18, ""},
		{"+1", 18, ""},
		{"1.2.3", 18, ""},
		{"1.", 18, ""},
		{".5", 18, ""},
		{".", 18, ""},
		{"abc", 18, ""},
		{"1e18", 18, ""},
		{"0x10", 18, ""},
		{" 1", 18, ""},
		{"1 ", 18, ""},
		{"1,5", 18, ""},
		{"1_000", 18, ""},
		{"١", 18, ""}, // Arabic-Indic digit one
		{"Infinity", 18, ""},
		{"NaN", 18, ""},
		{maxU256 + "0", 0, ""}, // above 2^256-1
		{"115792089237316195423570985008.687907853269984665640564039457584007913129639936", 18, ""},
		{strings.Repeat("9", 400), 0, ""},
	}
	for _, tc := range tests {
		got, err := ParseAmount(tc.in, tc.decimals)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseAmount(%q, %d) = %v, want an error", tc.in, tc.decimals, got)
			} else if !errors.Is(err, ErrInvalidAmount) {
				t.Errorf("ParseAmount(%q, %d): error %v does not wrap ErrInvalidAmount", tc.in, tc.decimals, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAmount(%q, %d): %v", tc.in, tc.decimals, err)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("ParseAmount(%q, %d) = %v, want %s", tc.in, tc.decimals, got, tc.want)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	tests := []struct {
		in       *big.Int
		decimals uint8
		want     string
	}{
		{bigInt("1500000000000000000"), 18, "1.5"},
		{bigInt("1"), 18, "0.000000000000000001"},
		{bigInt("1000000000000000000000"), 18, "1000"},
		{bigInt("0"), 18, "0"},
		{nil, 18, "0"},
		{bigInt("1000000000000000000"), 18, "1"},
		{bigInt("123456789012345678901"), 18, "123.456789012345678901"},
		{bigInt("100000000000000000"), 18, "0.1"},
		{bigInt("1000000000000000000000000000000"), 18, "1000000000000"},
		{bigInt("-2500000000000000000"), 18, "-2.5"},
		{bigInt("1234"), 2, "12.34"},
		{bigInt("1200"), 2, "12"},
		{bigInt("5"), 2, "0.05"},
		{bigInt("42"), 0, "42"},
	}
	for _, tc := range tests {
		if got := FormatAmount(tc.in, tc.decimals); got != tc.want {
			t.Errorf("FormatAmount(%v, %d) = %q, want %q", tc.in, tc.decimals, got, tc.want)
		}
	}
}

func TestAmountRoundTrip(t *testing.T) {
	for _, s := range []string{"0", "1", "1.5", "0.000000000000000001", "1000", "123.456789012345678901", "999999999999.999999999999999999"} {
		v, err := ParseAmount(s, NativeDecimals)
		if err != nil {
			t.Fatal(err)
		}
		if got := FormatAmount(v, NativeDecimals); got != s {
			t.Errorf("round trip %q -> %v -> %q", s, v, got)
		}
	}
}
