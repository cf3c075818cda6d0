package crypto

import (
	"bytes"
	"math/big"
	"strings"
	"testing"

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
