package wallet

import (
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/tally-ledger/tally/genesis"
)

// NativeDecimals and NativeSymbol describe the dev chain's native asset: 1 CNY
// is 10^18 base units (18 decimals, because MetaMask shows a native currency
// only with 18).
const (
	NativeDecimals = 18
	NativeSymbol   = "CNY"
)

// ErrInvalidAmount is wrapped by every ParseAmount error.
var ErrInvalidAmount = errors.New("invalid amount")

// maxAmountLen bounds the text ParseAmount reads: 2^256 has 78 digits, plus
// a point and up to 255 decimals.
const maxAmountLen = 340

// maxUint256 is the largest value a transaction's value field may carry.
var maxUint256 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))

// ParseAmount parses a non-negative decimal amount such as "1.5" into base
// units: "1.5" with 18 decimals is 1500000000000000000. The grammar is
// digits, optionally followed by a point and more digits; signs, exponents,
// spaces and digit separators are refused, as is a fractional part longer
// than decimals (it would silently round) and a value above 2^256-1 (it
// would not fit a transaction). Parsing is exact: no floating point.
func ParseAmount(s string, decimals uint8) (*big.Int, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidAmount)
	}
	if len(s) > maxAmountLen {
		return nil, fmt.Errorf("%w: %d characters is too long", ErrInvalidAmount, len(s))
	}
	if s[0] == '-' {
		return nil, fmt.Errorf("%w: %q is negative", ErrInvalidAmount, s)
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if !allDigits(whole) || (hasPoint && !allDigits(frac)) {
		return nil, fmt.Errorf("%w: %q is not a decimal number (digits, optionally a point and more digits)", ErrInvalidAmount, s)
	}
	if len(frac) > int(decimals) {
		return nil, fmt.Errorf("%w: %q has %d decimal places, at most %d allowed", ErrInvalidAmount, s, len(frac), decimals)
	}
	digits := whole + frac + strings.Repeat("0", int(decimals)-len(frac))
	v, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrInvalidAmount, s) // unreachable: digits only
	}
	if v.Cmp(maxUint256) > 0 {
		return nil, fmt.Errorf("%w: %q is above 2^256-1 base units", ErrInvalidAmount, s)
	}
	return v, nil
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatAmount renders base units as a decimal amount with the shortest exact
// form: no trailing zeros and no point for whole amounts ("1.5", "1000",
// "0.000000000000000001"). A nil v is "0"; a negative one gets a "-".
func FormatAmount(v *big.Int, decimals uint8) string {
	return genesis.FormatUnits(v, decimals, 0)
}
