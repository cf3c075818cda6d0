package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/btcsuite/btcd/btcutil/base58"
	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// TestMnemonic is the well-known development mnemonic used by Hardhat, Anvil
// and Foundry; its index-0 account is 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266.
// Never hold real value on it.
const TestMnemonic = "test test test test test test test test test test test junk"

// HardenedKeyStart is the first hardened child index (2^31), written i' or iH.
const HardenedKeyStart = hdkeychain.HardenedKeyStart

const (
	// serializedExtKeyLen is version(4) depth(1) fingerprint(4) child(4)
	// chain code(32) key(33); Base58Check adds a 4-byte checksum.
	serializedExtKeyLen = 78
	extKeyChecksumLen   = 4
	// maxExtKeyStringLen bounds the input before the quadratic base58 decode;
	// real keys are 111 or 112 characters.
	maxExtKeyStringLen = 128
	// maxPathLen bounds derivation paths; BIP32 depth is at most 255.
	maxPathLen = 255
)

// Serialized version bytes of the four extended key kinds Tally accepts.
var (
	versionMainPriv = [4]byte{0x04, 0x88, 0xad, 0xe4} // xprv
	versionMainPub  = [4]byte{0x04, 0x88, 0xb2, 0x1e} // xpub
	versionTestPriv = [4]byte{0x04, 0x35, 0x83, 0x94} // tprv
	versionTestPub  = [4]byte{0x04, 0x35, 0x87, 0xcf} // tpub
)

// ExtendedKey is a BIP32 extended private or public key. It is immutable:
// Derive and Neuter return new keys.
type ExtendedKey struct {
	key *hdkeychain.ExtendedKey
}

// NewMasterKey returns the BIP32 master key (mainnet xprv) for a 16- to
// 64-byte seed, usually from MnemonicToSeed.
func NewMasterKey(seed []byte) (*ExtendedKey, error) {
	k, err := hdkeychain.NewMaster(seed, &chaincfg.MainNetParams)
	if err != nil {
		return nil, fmt.Errorf("new master key: %w", err)
	}
	return &ExtendedKey{key: k}, nil
}

// ParseExtendedKey parses a Base58Check xprv, xpub, tprv or tpub. Beyond what
// hdkeychain checks it enforces every rule of BIP32 test vector 5: the version
// must be known and match the key type (0x00 prefix for private, 0x02/0x03 for
// public), a public key must be on the curve, a private key in [1, n-1], and
// a depth-0 key must have a zero parent fingerprint and child index.
func ParseExtendedKey(s string) (*ExtendedKey, error) {
	if err := checkExtendedKey(s); err != nil {
		return nil, fmt.Errorf("parse extended key: %w: %s", ErrInvalidExtendedKey, err)
	}
	k, err := hdkeychain.NewKeyFromString(s)
	if err != nil {
		return nil, fmt.Errorf("parse extended key: %w: %w", ErrInvalidExtendedKey, err)
	}
	return &ExtendedKey{key: k}, nil
}

// checkExtendedKey decodes the 78-byte payload itself and applies the checks
// hdkeychain.NewKeyFromString lacks. The returned error explains the reason.
func checkExtendedKey(s string) error {
	if len(s) > maxExtKeyStringLen {
		return fmt.Errorf("too long (%d characters)", len(s))
	}
	decoded := base58.Decode(s)
	if len(decoded) != serializedExtKeyLen+extKeyChecksumLen {
		return fmt.Errorf("not Base58 or wrong length (%d bytes decoded, need %d)", len(decoded), serializedExtKeyLen+extKeyChecksumLen)
	}
	payload, sum := decoded[:serializedExtKeyLen], decoded[serializedExtKeyLen:]
	first := sha256.Sum256(payload)
	second := sha256.Sum256(first[:])
	if !bytes.Equal(second[:extKeyChecksumLen], sum) {
		return fmt.Errorf("bad Base58Check checksum")
	}

	var version [4]byte
	copy(version[:], payload[:4])
	depth := payload[4]
	parentFP := binary.BigEndian.Uint32(payload[5:9])
	childIndex := binary.BigEndian.Uint32(payload[9:13])
	keyData := payload[45:78]

	var wantPrivate bool
	switch version {
	case versionMainPriv, versionTestPriv:
		wantPrivate = true
	case versionMainPub, versionTestPub:
	default:
		return fmt.Errorf("unknown version %x", version)
	}

	switch {
	case wantPrivate && keyData[0] != 0x00:
		return fmt.Errorf("private version %x with key prefix %02x, need 00", version, keyData[0])
	case !wantPrivate && keyData[0] != 0x02 && keyData[0] != 0x03:
		return fmt.Errorf("public version %x with key prefix %02x, need 02 or 03", version, keyData[0])
	}

	if wantPrivate {
		var k secp256k1.ModNScalar
		overflow := k.SetByteSlice(keyData[1:])
		isZero := k.IsZero()
		k.Zero()
		if overflow || isZero {
			return fmt.Errorf("private key not in 1..n-1")
		}
	} else if _, err := secp256k1.ParsePubKey(keyData); err != nil {
		return fmt.Errorf("public key not on curve: %w", err)
	}

	if depth == 0 {
		if parentFP != 0 {
			return fmt.Errorf("depth 0 with non-zero parent fingerprint %08x", parentFP)
		}
		if childIndex != 0 {
			return fmt.Errorf("depth 0 with non-zero child index %d", childIndex)
		}
	}
	return nil
}

// Derive walks path from k and returns the key at its end. The path starts
// with "m", which names k itself (so "m" alone returns k), followed by
// "/"-separated indexes below 2^31, each optionally marked hardened with ',
// h or H: "m/44'/60'/0'/0/0". Hardened steps need a private key. It uses
// hdkeychain's standard Derive (never DeriveNonStandard), which keeps the
// leading zeros of BIP32 test vectors 3 and 4.
func (k *ExtendedKey) Derive(path string) (*ExtendedKey, error) {
	indexes, err := parsePath(path)
	if err != nil {
		return nil, fmt.Errorf("derive %s: %w", truncate(path), err)
	}
	cur := k.key
	for i, idx := range indexes {
		next, err := cur.Derive(idx)
		if err != nil {
			return nil, fmt.Errorf("derive %s: step %d: %w", path, i+1, err)
		}
		cur = next
	}
	return &ExtendedKey{key: cur}, nil
}

// parsePath turns "m/0'/1" into child indexes, hardened ones offset by 2^31.
func parsePath(path string) ([]uint32, error) {
	if path == "m" {
		return nil, nil
	}
	rest, ok := strings.CutPrefix(path, "m/")
	if !ok {
		return nil, fmt.Errorf("%w: must be \"m\" or start with \"m/\"", ErrInvalidPath)
	}
	parts := strings.Split(rest, "/")
	if len(parts) > maxPathLen {
		return nil, fmt.Errorf("%w: %d levels, at most %d", ErrInvalidPath, len(parts), maxPathLen)
	}
	indexes := make([]uint32, len(parts))
	for i, p := range parts {
		hardened := false
		if n := len(p); n > 0 && (p[n-1] == '\'' || p[n-1] == 'h' || p[n-1] == 'H') {
			hardened = true
			p = p[:n-1]
		}
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return nil, fmt.Errorf("%w: level %d is not a number", ErrInvalidPath, i+1)
		}
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil || v >= HardenedKeyStart {
			return nil, fmt.Errorf("%w: level %d index must be below 2^31", ErrInvalidPath, i+1)
		}
		if hardened {
			v += HardenedKeyStart
		}
		indexes[i] = uint32(v)
	}
	return indexes, nil
}

// String returns the Base58Check serialization (xprv/xpub or tprv/tpub).
// For a private key this is a secret.
func (k *ExtendedKey) String() string {
	return k.key.String()
}

// Neuter returns the public counterpart (xpub), which can derive the
// non-hardened children's public keys and addresses but never sign.
// Neutering a public key returns it unchanged.
func (k *ExtendedKey) Neuter() (*ExtendedKey, error) {
	n, err := k.key.Neuter()
	if err != nil {
		return nil, fmt.Errorf("neuter: %w", err)
	}
	return &ExtendedKey{key: n}, nil
}

// IsPrivate reports whether k holds a private key (xprv) rather than only a
// public key (xpub).
func (k *ExtendedKey) IsPrivate() bool {
	return k.key.IsPrivate()
}

// PrivateKey returns the signing key held by a private extended key.
func (k *ExtendedKey) PrivateKey() (*PrivateKey, error) {
	ec, err := k.key.ECPrivKey()
	if err != nil {
		return nil, fmt.Errorf("extended private key: %w", err)
	}
	b := ec.Serialize()
	defer zero(b)
	return PrivateKeyFromBytes(b)
}

// EthereumPath returns the BIP44 path of Ethereum account index, the one
// MetaMask, Ledger Live and Hardhat use: "m/44'/60'/0'/0/<index>".
// index must be below 2^31 for Derive to accept the path.
func EthereumPath(index uint32) string {
	return "m/44'/60'/0'/0/" + strconv.FormatUint(uint64(index), 10)
}

// KeyFromMnemonic derives the key at EthereumPath(index) from a BIP39
// mnemonic and optional passphrase, giving the same accounts as MetaMask.
func KeyFromMnemonic(mnemonic, passphrase string, index uint32) (*PrivateKey, error) {
	seed, err := MnemonicToSeed(mnemonic, passphrase)
	if err != nil {
		return nil, fmt.Errorf("key from mnemonic: %w", err)
	}
	defer zero(seed)
	master, err := NewMasterKey(seed)
	if err != nil {
		return nil, fmt.Errorf("key from mnemonic: %w", err)
	}
	child, err := master.Derive(EthereumPath(index))
	if err != nil {
		return nil, fmt.Errorf("key from mnemonic: %w", err)
	}
	return child.PrivateKey()
}
