package crypto

import (
	"encoding/hex"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/ethereum/go-ethereum/common"
)

// addressHexLen is the number of hex digits in an address.
const addressHexLen = 2 * common.AddressLength

// PubkeyBytesToAddress returns the address of a public key given as 65 bytes
// uncompressed (0x04 || X || Y) or 33 bytes compressed (0x02/0x03 || X). The
// point must be on secp256k1, so garbage bytes never yield an address.
func PubkeyBytesToAddress(pub []byte) (common.Address, error) {
	switch {
	case len(pub) == 65 && pub[0] == 0x04:
	case len(pub) == 33 && (pub[0] == 0x02 || pub[0] == 0x03):
	default:
		return common.Address{}, fmt.Errorf("%w: public key must be 65 bytes uncompressed or 33 bytes compressed", ErrInvalidAddress)
	}
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		return common.Address{}, fmt.Errorf("%w: %w", ErrInvalidAddress, err)
	}
	return pubkeyToAddress(pk.SerializeUncompressed()), nil
}

// pubkeyToAddress hashes a 65-byte uncompressed key already known to be valid.
func pubkeyToAddress(uncompressed []byte) common.Address {
	return common.BytesToAddress(Keccak256(uncompressed[1:]).Bytes()[12:])
}

// ChecksumAddress returns the EIP-55 mixed-case form "0x...", the only form
// Tally prints, so a typo in a copied address is caught by ParseAddress.
func ChecksumAddress(a common.Address) string {
	return a.Hex()
}

// ParseAddress parses "0x" followed by exactly 40 hex digits. All-lowercase
// and all-uppercase digits carry no checksum and are accepted; mixed case must
// be the exact EIP-55 form, else the error wraps ErrBadChecksum. Unlike
// go-ethereum's common.HexToAddress it never truncates or pads.
func ParseAddress(s string) (common.Address, error) {
	if len(s) != 2+addressHexLen || s[0] != '0' || s[1] != 'x' {
		return common.Address{}, fmt.Errorf("parse address %q: %w: need 0x and %d hex digits", truncate(s), ErrInvalidAddress, addressHexLen)
	}
	digits := s[2:]
	var hasLower, hasUpper bool
	for i := 0; i < len(digits); i++ {
		switch c := digits[i]; {
		case c >= 'a' && c <= 'f':
			hasLower = true
		case c >= 'A' && c <= 'F':
			hasUpper = true
		}
	}
	var a common.Address
	if _, err := hex.Decode(a[:], []byte(digits)); err != nil {
		return common.Address{}, fmt.Errorf("parse address %q: %w: not hex", truncate(s), ErrInvalidAddress)
	}
	if hasLower && hasUpper && ChecksumAddress(a) != s {
		return common.Address{}, fmt.Errorf("parse address %s: %w", s, ErrBadChecksum)
	}
	return a, nil
}

// truncate keeps error messages about untrusted input short.
func truncate(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return s[:maxLen] + "..."
	}
	return s
}
