package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"golang.org/x/crypto/scrypt"

	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
)

// FuzzParseExtendedKey: never panics, and anything accepted re-serializes to
// the exact input and survives Neuter.
func FuzzParseExtendedKey(f *testing.F) {
	var v bip32File
	loadVectors(f, "bip32_vectors.json", &v)
	for _, vec := range v.Vectors {
		for _, c := range vec.Chains {
			f.Add(c.Xprv)
			f.Add(c.Xpub)
		}
	}
	for _, inv := range v.Invalid {
		f.Add(inv.Key)
	}
	f.Add("")
	f.Add("tprv8ZgxMBicQKsPeDgjzdC36fs6bMjGApWDNLR9erAXMs5skhMv36j9MV5ecvfavji5khqjWaWSFhN3YcCUUdiKH6isR4Pwy3U5y5egddBr16m")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseExtendedKey(s)
		if err != nil {
			return
		}
		if k.String() != s {
			t.Fatalf("accepted %q but serializes as %q", s, k.String())
		}
		pub, err := k.Neuter()
		if err != nil {
			t.Fatalf("Neuter of accepted key: %v", err)
		}
		if _, err := ParseExtendedKey(pub.String()); err != nil {
			t.Fatalf("neutered key %s does not parse: %v", pub, err)
		}
		if k.IsPrivate() {
			if _, err := k.PrivateKey(); err != nil {
				t.Fatalf("PrivateKey of accepted xprv: %v", err)
			}
		}
		_, _ = k.Derive("m/0")
	})
}

// FuzzParseAddress: never panics; an accepted address is the same 20 bytes
// as its input and its EIP-55 form parses back to it.
func FuzzParseAddress(f *testing.F) {
	var v eip55File
	loadVectors(f, "eip55_vectors.json", &v)
	for _, a := range v.Vectors {
		f.Add(a.Address)
		f.Add(a.Lowercase)
	}
	f.Add("")
	f.Add("0x")
	f.Add("0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		cs := ChecksumAddress(a)
		if !strings.EqualFold(cs, s) {
			t.Fatalf("ParseAddress(%q) = %s", s, cs)
		}
		if b, err := ParseAddress(cs); err != nil || b != a {
			t.Fatalf("checksum form %s does not round trip: %v", cs, err)
		}
	})
}

// FuzzRecover: never panics; whatever Recover accepts is canonical (V in
// {0,1}, low S) and recovers the same address as go-ethereum.
func FuzzRecover(f *testing.F) {
	k, err := HexToPrivateKey("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	if err != nil {
		f.Fatal(err)
	}
	h := Keccak256([]byte("seed"))
	sig, err := k.Sign(h)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h[:], sig)
	f.Add(h[:], sig[:64])
	f.Add([]byte{}, []byte{})
	f.Add(h[:], bytes.Repeat([]byte{0xff}, 65))
	f.Add(h[:], append(bytes.Repeat([]byte{0}, 64), 1))
	f.Fuzz(func(t *testing.T, hash, sig []byte) {
		if len(hash) != 32 {
			hash = Keccak256(hash).Bytes()
		}
		addr, err := Recover(common.BytesToHash(hash), sig)
		if err != nil {
			return
		}
		if len(sig) != 65 || sig[64] > 1 || !IsLowS(new(big.Int).SetBytes(sig[32:64])) {
			t.Fatalf("accepted non-canonical signature %x", sig)
		}
		pub, err := ethcrypto.Ecrecover(hash, sig)
		if err != nil {
			t.Fatalf("we accepted %x but go-ethereum fails: %v", sig, err)
		}
		if want := common.BytesToAddress(ethcrypto.Keccak256(pub[1:])[12:]); want != addr {
			t.Fatalf("Recover = %s, go-ethereum = %s", addr.Hex(), want.Hex())
		}
	})
}

// ksOracle is an independent reading of a Web3 Secret Storage v3 file
// (https://ethereum.org/developers/docs/data-structures-and-encoding/web3-secret-storage):
// derive the key, check keccak256(DK[16:32] || ciphertext) against the
// MAC, decrypt with AES-128-CTR. FuzzDecryptKey holds DecryptKey (which
// runs go-ethereum's keystore) to it.
type ksOracle struct {
	Version json.Number `json:"version"`
	Crypto  struct {
		Cipher       string `json:"cipher"`
		CipherText   string `json:"ciphertext"`
		CipherParams struct {
			IV string `json:"iv"`
		} `json:"cipherparams"`
		KDF       string `json:"kdf"`
		KDFParams struct {
			Salt  string  `json:"salt"`
			DKLen *uint64 `json:"dklen"`
			N     *uint64 `json:"n"`
			R     *uint64 `json:"r"`
			P     *uint64 `json:"p"`
			C     *uint64 `json:"c"`
		} `json:"kdfparams"`
		MAC string `json:"mac"`
	} `json:"crypto"`
}

// fuzzKDFWork bounds the KDF cost of a fuzzed file (scrypt N·r·p, PBKDF2
// iterations): DecryptKey's own limits allow a GiB of memory per call,
// which a fuzzer would reach at once. TestKeystoreMalformed tests those
// limits; the fuzzer explores everything else.
const fuzzKDFWork = 1 << 12

// cost reports whether the file's KDF is cheap enough to fuzz; ok is
// false when the parameters are absent or unreadable.
func (o *ksOracle) cost() (cheap, ok bool) {
	kp := o.Crypto.KDFParams
	switch o.Crypto.KDF {
	case "scrypt":
		if kp.N == nil || kp.R == nil || kp.P == nil {
			return false, false
		}
		n, r, p := *kp.N, *kp.R, *kp.P
		return n <= fuzzKDFWork && r <= fuzzKDFWork && p <= fuzzKDFWork && n*r*p <= fuzzKDFWork, true
	case "pbkdf2":
		if kp.C == nil {
			return false, false
		}
		return *kp.C <= fuzzKDFWork, true
	}
	return false, false
}

// open returns the secret the file holds under password, or an error if
// the MAC does not match or the file is not readable.
func (o *ksOracle) open(password string) ([]byte, error) {
	c := o.Crypto
	salt, err1 := hex.DecodeString(c.KDFParams.Salt)
	iv, err2 := hex.DecodeString(c.CipherParams.IV)
	ct, err3 := hex.DecodeString(c.CipherText)
	mac, err4 := hex.DecodeString(c.MAC)
	if err := errors.Join(err1, err2, err3, err4); err != nil || c.KDFParams.DKLen == nil || len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("oracle: unreadable file: %v", err)
	}
	dkLen := int(*c.KDFParams.DKLen)
	var dk []byte
	switch c.KDF {
	case "scrypt":
		dk, err1 = scrypt.Key([]byte(password), salt, int(*c.KDFParams.N), int(*c.KDFParams.R), int(*c.KDFParams.P), dkLen)
	case "pbkdf2":
		dk, err1 = pbkdf2.Key(sha256.New, password, salt, int(*c.KDFParams.C), dkLen)
	}
	if err1 != nil || len(dk) < 32 {
		return nil, fmt.Errorf("oracle: kdf: %v", err1)
	}
	if !bytes.Equal(Keccak256(dk[16:32], ct).Bytes(), mac) {
		return nil, errors.New("oracle: MAC mismatch")
	}
	block, err := aes.NewCipher(dk[:16])
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(ct))
	cipher.NewCTR(block, iv).XORKeyStream(plain, ct)
	return plain, nil
}

// FuzzDecryptKey: DecryptKey never panics and fails only with a keystore
// sentinel; it yields a key only when an independent implementation of
// the format agrees the MAC matches, and then the same key; a file it
// opens does not open with any other password, nor with its MAC, IV or
// ciphertext changed.
func FuzzDecryptKey(f *testing.F) {
	var vf keystoreFile
	loadVectors(f, "keystore_v3_vectors.json", &vf)
	for _, v := range vf.Vectors {
		f.Add([]byte(v.Keystore), v.Password) // the slow KDFs are skipped by the cost bound
	}
	for _, v := range vf.Negative {
		f.Add([]byte(v.Keystore), v.Password)
	}
	k, err := HexToPrivateKey("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	if err != nil {
		f.Fatal(err)
	}
	light, err := EncryptKey(k, "pw", 2, 1) // what EncryptKey writes, cheap enough to fuzz
	if err != nil {
		f.Fatal(err)
	}
	f.Add(light, "pw")
	f.Add(light, "")
	f.Add([]byte(`{"version":3,"crypto":{"cipher":"aes-128-ctr","ciphertext":"","cipherparams":{"iv":"00000000000000000000000000000000"},"kdf":"pbkdf2","kdfparams":{"c":1,"dklen":32,"prf":"hmac-sha256","salt":""},"mac":"c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"}}`), "")
	f.Fuzz(func(t *testing.T, data []byte, password string) {
		var o ksOracle
		parsed := json.Unmarshal(data, &o) == nil
		if parsed {
			if cheap, ok := o.cost(); ok && !cheap {
				return
			}
		}
		key, err := DecryptKey(data, password)
		if err != nil {
			if !errors.Is(err, ErrKeystoreMAC) && !errors.Is(err, ErrInvalidKeystore) && !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error is not a keystore sentinel: %v", err)
			}
			return
		}
		if !parsed {
			t.Fatalf("decrypted a file that is not a v3 JSON object: %q", data)
		}
		plain, err := o.open(password)
		if err != nil {
			t.Fatalf("DecryptKey yielded a key the format does not: %v", err)
		}
		want := append(make([]byte, max(0, 32-len(plain))), plain...)
		if !bytes.Equal(key.Bytes(), want) {
			t.Fatalf("DecryptKey yielded %x, the file holds %x", key.Bytes(), want)
		}
		// Not password+"\x00": HMAC pads its key with zeros, so scrypt and
		// PBKDF2 cannot tell those two apart.
		if _, err := DecryptKey(data, password+"!"); !errors.Is(err, ErrKeystoreMAC) {
			t.Fatalf("another password: %v, want ErrKeystoreMAC", err)
		}
		checkTampered(t, data, password, key)
	})
}

// checkTampered changes one field of a file that opens to key: a changed
// MAC or ciphertext must fail the MAC check, a changed IV (which v3 does
// not authenticate) must not give the same key.
func checkTampered(t *testing.T, data []byte, password string, key *PrivateKey) {
	t.Helper()
	var file map[string]any
	if json.Unmarshal(data, &file) != nil {
		return
	}
	c, ok := file["crypto"].(map[string]any)
	if !ok {
		return
	}
	encode := func() []byte {
		b, err := json.Marshal(file)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Only files that mean the same re-encoded (no duplicate or case-variant
	// keys) are tampered with.
	if k, err := DecryptKey(encode(), password); err != nil || !bytes.Equal(k.Bytes(), key.Bytes()) {
		return
	}
	for _, field := range []string{"mac", "ciphertext", "cipherparams.iv"} {
		obj, name := c, field
		if field == "cipherparams.iv" {
			if obj, ok = c["cipherparams"].(map[string]any); !ok {
				continue
			}
			name = "iv"
		}
		orig, ok := obj[name].(string)
		if !ok || orig == "" {
			continue
		}
		last := orig[len(orig)-1]
		obj[name] = orig[:len(orig)-1] + map[bool]string{true: "1", false: "0"}[last == '0']
		tk, err := DecryptKey(encode(), password)
		obj[name] = orig
		switch {
		case field != "cipherparams.iv" && !errors.Is(err, ErrKeystoreMAC):
			t.Fatalf("%s changed: %v, want ErrKeystoreMAC", field, err)
		case err == nil && bytes.Equal(tk.Bytes(), key.Bytes()):
			t.Fatalf("%s changed: still opens to the same key", field)
		}
	}
}
