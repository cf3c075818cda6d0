package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"

	"github.com/ethereum/go-ethereum/accounts/keystore"
)

// Scrypt parameters for EncryptKey, re-exported from go-ethereum's keystore.
const (
	// StandardScryptN and StandardScryptP cost about 256 MiB and 1 s per
	// encrypt or decrypt: use them for keys that hold value.
	StandardScryptN = keystore.StandardScryptN
	StandardScryptP = keystore.StandardScryptP
	// LightScryptN and LightScryptP cost about 4 MiB and 100 ms: for tests
	// and devnets only.
	LightScryptN = keystore.LightScryptN
	LightScryptP = keystore.LightScryptP
)

// Limits on KDF parameters read from a keystore file, so a hostile file can
// not make DecryptKey allocate or spin without bound. They are far above
// what any wallet writes (go-ethereum's standard is N=2^18, r=8, p=1, and
// PBKDF2 c=2^18).
const (
	maxScryptNR   = 1 << 23 // N*r: 128*N*r bytes = 1 GiB of memory
	maxScryptNRP  = 1 << 24 // N*r*p: total work
	maxPBKDF2Iter = 1 << 24
	minDKLen      = 32 // the MAC uses DK[16:32]
	maxDKLen      = 64
)

// EncryptKey seals k in a Web3 Secret Storage v3 JSON file (scrypt,
// AES-128-CTR, Keccak-256 MAC) readable by go-ethereum, MetaMask and other
// Ethereum wallets. Use StandardScryptN/P for real keys.
func EncryptKey(k *PrivateKey, password string, scryptN, scryptP int) ([]byte, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40 // UUID version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	ecdsaKey := k.ECDSA()
	//lint:ignore SA1019 go-ethereum's keystore takes an ecdsa.PrivateKey; wiping D is best effort.
	defer ecdsaKey.D.SetInt64(0)
	key := &keystore.Key{
		Id:         id,
		Address:    k.Address(),
		PrivateKey: ecdsaKey,
	}
	out, err := keystore.EncryptKey(key, password, scryptN, scryptP)
	if err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	return out, nil
}

// v3File is the subset of a v3 key file DecryptKey reads, with the KDF
// parameters typed so malformed files fail cleanly instead of panicking
// inside go-ethereum.
type v3File struct {
	Crypto  json.RawMessage `json:"crypto"`
	Version json.Number     `json:"version"`
}

type v3Crypto struct {
	Cipher       string `json:"cipher"`
	CipherText   string `json:"ciphertext"`
	CipherParams struct {
		IV string `json:"iv"`
	} `json:"cipherparams"`
	KDF       string `json:"kdf"`
	KDFParams struct {
		Salt  *string `json:"salt"`
		DKLen *uint64 `json:"dklen"`
		N     *uint64 `json:"n"`
		R     *uint64 `json:"r"`
		P     *uint64 `json:"p"`
		C     *uint64 `json:"c"`
		PRF   *string `json:"prf"`
	} `json:"kdfparams"`
	MAC string `json:"mac"`
}

// DecryptKey opens a Web3 Secret Storage v3 file with password. A wrong
// password (or a corrupt file) fails with ErrKeystoreMAC. Secrets shorter
// than 32 bytes, written by old go-ethereum versions that dropped leading
// zero bytes, are left-padded to 32 bytes as those versions intended.
//
// Decryption is go-ethereum's keystore.DecryptDataV3, the core of its
// DecryptKey, called directly so that short legacy secrets need no second
// KDF run; the file is validated first because go-ethereum panics on some
// malformed parameters.
func DecryptKey(keyJSON []byte, password string) (*PrivateKey, error) {
	cj, err := parseV3(keyJSON)
	if err != nil {
		return nil, fmt.Errorf("decrypt key: %w", err)
	}
	plain, err := keystore.DecryptDataV3(cj, password)
	if errors.Is(err, keystore.ErrDecrypt) {
		return nil, fmt.Errorf("decrypt key: %w (%w)", ErrKeystoreMAC, err)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt key: %w: %w", ErrInvalidKeystore, err)
	}
	defer zero(plain)
	if len(plain) == 0 || len(plain) > privateKeyLen {
		return nil, fmt.Errorf("decrypt key: %w: secret is %d bytes", ErrInvalidKey, len(plain))
	}
	var padded [privateKeyLen]byte
	copy(padded[privateKeyLen-len(plain):], plain)
	defer zero(padded[:])
	k, err := PrivateKeyFromBytes(padded[:])
	if err != nil {
		return nil, fmt.Errorf("decrypt key: %w", err)
	}
	return k, nil
}

// parseV3 validates a v3 file and returns its crypto section in go-ethereum's
// form, with integer KDF parameters.
func parseV3(keyJSON []byte) (keystore.CryptoJSON, error) {
	var none keystore.CryptoJSON
	var f v3File
	if err := json.Unmarshal(keyJSON, &f); err != nil {
		return none, fmt.Errorf("%w: %w", ErrInvalidKeystore, err)
	}
	if f.Version.String() != "3" {
		return none, fmt.Errorf("%w: version %q, only 3 is supported", ErrInvalidKeystore, truncate(f.Version.String()))
	}
	var c v3Crypto
	dec := json.NewDecoder(bytes.NewReader(f.Crypto))
	if err := dec.Decode(&c); err != nil {
		return none, fmt.Errorf("%w: crypto: %w", ErrInvalidKeystore, err)
	}
	if c.Cipher != "aes-128-ctr" {
		return none, fmt.Errorf("%w: cipher %q not supported", ErrInvalidKeystore, truncate(c.Cipher))
	}
	if iv, err := hex.DecodeString(c.CipherParams.IV); err != nil || len(iv) != 16 {
		return none, fmt.Errorf("%w: iv must be 16 hex bytes", ErrInvalidKeystore)
	}
	if mac, err := hex.DecodeString(c.MAC); err != nil || len(mac) != 32 {
		return none, fmt.Errorf("%w: mac must be 32 hex bytes", ErrInvalidKeystore)
	}
	if _, err := hex.DecodeString(c.CipherText); err != nil {
		return none, fmt.Errorf("%w: ciphertext is not hex", ErrInvalidKeystore)
	}
	kp := c.KDFParams
	if kp.Salt == nil {
		return none, fmt.Errorf("%w: missing salt", ErrInvalidKeystore)
	}
	if _, err := hex.DecodeString(*kp.Salt); err != nil {
		return none, fmt.Errorf("%w: salt is not hex", ErrInvalidKeystore)
	}
	if kp.DKLen == nil || *kp.DKLen < minDKLen || *kp.DKLen > maxDKLen {
		return none, fmt.Errorf("%w: dklen must be %d..%d", ErrInvalidKeystore, minDKLen, maxDKLen)
	}
	params := map[string]interface{}{
		"salt":  *kp.Salt,
		"dklen": int(*kp.DKLen),
	}
	switch c.KDF {
	case "scrypt":
		if kp.N == nil || kp.R == nil || kp.P == nil {
			return none, fmt.Errorf("%w: scrypt needs n, r and p", ErrInvalidKeystore)
		}
		n, r, p := *kp.N, *kp.R, *kp.P
		if n < 2 || n&(n-1) != 0 || r == 0 || p == 0 {
			return none, fmt.Errorf("%w: scrypt n must be a power of two > 1, r and p positive", ErrInvalidKeystore)
		}
		hi, nr := bits.Mul64(n, r)
		hi2, nrp := bits.Mul64(nr, p)
		if hi != 0 || hi2 != 0 || nr > maxScryptNR || nrp > maxScryptNRP {
			return none, fmt.Errorf("%w: scrypt parameters n=%d r=%d p=%d exceed limits", ErrInvalidKeystore, n, r, p)
		}
		params["n"], params["r"], params["p"] = int(n), int(r), int(p)
	case "pbkdf2":
		if kp.C == nil || *kp.C == 0 || *kp.C > maxPBKDF2Iter {
			return none, fmt.Errorf("%w: pbkdf2 c must be 1..%d", ErrInvalidKeystore, maxPBKDF2Iter)
		}
		if kp.PRF == nil || *kp.PRF != "hmac-sha256" {
			return none, fmt.Errorf("%w: pbkdf2 prf must be hmac-sha256", ErrInvalidKeystore)
		}
		params["c"], params["prf"] = int(*kp.C), *kp.PRF
	default:
		return none, fmt.Errorf("%w: kdf %q not supported", ErrInvalidKeystore, truncate(c.KDF))
	}
	cj := keystore.CryptoJSON{
		Cipher:     c.Cipher,
		CipherText: c.CipherText,
		KDF:        c.KDF,
		KDFParams:  params,
		MAC:        c.MAC,
	}
	cj.CipherParams.IV = c.CipherParams.IV
	return cj, nil
}
