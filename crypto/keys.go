package crypto

import (
	"crypto/ecdsa"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	decredecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
)

const (
	// privateKeyLen is the size of a serialized secp256k1 private key.
	privateKeyLen = 32
	// SignatureLength is the size of a recoverable signature: R || S || V.
	SignatureLength = 65
	// compactSigMagicOffset is what decred's SignCompact adds to the
	// recovery id (the Bitcoin "27" convention).
	compactSigMagicOffset = 27
)

var (
	secpN     = new(big.Int).Set(secp256k1.Params().N)
	secpHalfN = new(big.Int).Rsh(secpN, 1)
)

// PrivateKey is a secp256k1 private key. Its methods never expose the
// underlying scalar except through Bytes and ECDSA, which return copies.
type PrivateKey struct {
	key *secp256k1.PrivateKey
}

// GenerateKey returns a new random private key from crypto/rand.
func GenerateKey() (*PrivateKey, error) {
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return &PrivateKey{key: k}, nil
}

// PrivateKeyFromBytes parses a 32-byte big-endian scalar. It rejects any other
// length and any value outside [1, n-1] instead of reducing it mod n, so that
// distinct inputs never silently map to the same key.
func PrivateKeyFromBytes(b []byte) (*PrivateKey, error) {
	if len(b) != privateKeyLen {
		return nil, fmt.Errorf("%w: need %d bytes, got %d", ErrInvalidKey, privateKeyLen, len(b))
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(b); overflow {
		s.Zero()
		return nil, fmt.Errorf("%w: scalar >= curve order", ErrInvalidKey)
	}
	if s.IsZero() {
		return nil, fmt.Errorf("%w: scalar is zero", ErrInvalidKey)
	}
	return &PrivateKey{key: secp256k1.NewPrivateKey(&s)}, nil
}

// HexToPrivateKey parses a private key written as 64 hex digits, with or
// without a 0x prefix. The error never contains the input.
func HexToPrivateKey(s string) (*PrivateKey, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(s) != 2*privateKeyLen {
		return nil, fmt.Errorf("%w: need %d hex digits, got %d", ErrInvalidKey, 2*privateKeyLen, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not hex", ErrInvalidKey)
	}
	defer zero(b)
	return PrivateKeyFromBytes(b)
}

// Bytes returns the 32-byte big-endian scalar. The caller owns the slice and
// should zero it when done.
func (k *PrivateKey) Bytes() []byte {
	return k.key.Serialize()
}

// PublicKeyBytes returns the 65-byte uncompressed public key (0x04 || X || Y).
func (k *PrivateKey) PublicKeyBytes() []byte {
	return k.key.PubKey().SerializeUncompressed()
}

// Address returns the Ethereum address of the key: the last 20 bytes of
// Keccak-256 of the uncompressed public key without its 0x04 prefix.
func (k *PrivateKey) Address() common.Address {
	return pubkeyToAddress(k.PublicKeyBytes())
}

// ECDSA returns a copy of the key as a standard library *ecdsa.PrivateKey on
// go-ethereum's secp256k1 curve, as go-ethereum's keystore and p2p code expect.
func (k *PrivateKey) ECDSA() *ecdsa.PrivateKey {
	b := k.Bytes()
	defer zero(b)
	e, err := ethcrypto.ToECDSA(b)
	if err != nil {
		// Unreachable: k always holds a scalar in [1, n-1].
		panic(fmt.Sprintf("crypto: ToECDSA on a valid key: %v", err))
	}
	return e
}

// Sign signs a 32-byte hash and returns R || S || V with V in {0, 1}. The
// nonce is deterministic (RFC 6979) and S is always in the lower half of the
// curve order, so the result is the one canonical signature Recover accepts.
// The hash must be the digest of the message, never attacker-chosen raw data.
func (k *PrivateKey) Sign(hash common.Hash) ([]byte, error) {
	// decred lays the compact signature out as [27+recid | R | S].
	compact := decredecdsa.SignCompact(k.key, hash[:], false)
	if len(compact) != SignatureLength {
		return nil, fmt.Errorf("sign: %w: compact signature has %d bytes", ErrInvalidSignature, len(compact))
	}
	v := compact[0] - compactSigMagicOffset
	if v > 1 {
		// Recovery ids 2 and 3 (R >= n) occur with probability ~2^-127;
		// Ethereum cannot express them, so refuse rather than emit garbage.
		return nil, fmt.Errorf("sign: %w: unsupported recovery id %d", ErrInvalidSignature, v)
	}
	sig := make([]byte, SignatureLength)
	copy(sig[:64], compact[1:])
	sig[64] = v
	return sig, nil
}

// Recover returns the address whose key produced sig over hash. sig must be
// 65 bytes R || S || V with V in {0, 1}, 0 < R < n and 0 < S <= n/2; a high-S
// signature fails with ErrHighS, anything else malformed with
// ErrInvalidSignature. Recovery itself runs in libsecp256k1 via go-ethereum.
func Recover(hash common.Hash, sig []byte) (common.Address, error) {
	if err := checkSignature(sig); err != nil {
		return common.Address{}, fmt.Errorf("recover: %w", err)
	}
	pub, err := ethcrypto.Ecrecover(hash[:], sig)
	if err != nil {
		return common.Address{}, fmt.Errorf("recover: %w: %w", ErrInvalidSignature, err)
	}
	if len(pub) != 65 || pub[0] != 0x04 {
		return common.Address{}, fmt.Errorf("recover: %w: bad recovered key", ErrInvalidSignature)
	}
	return pubkeyToAddress(pub), nil
}

// checkSignature enforces the 65-byte R || S || V shape, V in {0,1}, R and S
// in [1, n-1] and the low-S rule, before any curve arithmetic runs.
func checkSignature(sig []byte) error {
	if len(sig) != SignatureLength {
		return fmt.Errorf("%w: need %d bytes, got %d", ErrInvalidSignature, SignatureLength, len(sig))
	}
	if v := sig[64]; v > 1 {
		return fmt.Errorf("%w: V must be 0 or 1, got %d", ErrInvalidSignature, v)
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:64])
	if r.Sign() == 0 || r.Cmp(secpN) >= 0 {
		return fmt.Errorf("%w: R out of range", ErrInvalidSignature)
	}
	if s.Sign() == 0 || s.Cmp(secpN) >= 0 {
		return fmt.Errorf("%w: S out of range", ErrInvalidSignature)
	}
	if !IsLowS(s) {
		return ErrHighS
	}
	return nil
}

// IsLowS reports whether s is in [1, n/2], the canonical half of the curve
// order that Sign produces and Recover requires (EIP-2).
func IsLowS(s *big.Int) bool {
	return s != nil && s.Sign() > 0 && s.Cmp(secpHalfN) <= 0
}

// Keccak256 returns the Keccak-256 (original Keccak, not NIST SHA3-256) hash of
// the concatenation of data, as Ethereum uses for addresses and signing.
func Keccak256(data ...[]byte) common.Hash {
	return ethcrypto.Keccak256Hash(data...)
}

// zero overwrites b, for secrets that are no longer needed.
func zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
