package crypto

import (
	"bytes"
	"crypto/rand"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
)

func randomHash(t testing.TB) common.Hash {
	t.Helper()
	var h common.Hash
	if _, err := rand.Read(h[:]); err != nil {
		t.Fatal(err)
	}
	return h
}

func mustGenerate(t testing.TB) *PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignRecoverRoundTrip(t *testing.T) {
	k := mustGenerate(t)
	h := Keccak256([]byte("tally"))
	sig, err := k.Sign(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != 65 || sig[64] > 1 {
		t.Fatalf("signature shape: len %d, V %d", len(sig), sig[len(sig)-1])
	}
	again, err := k.Sign(h)
	if err != nil || !bytes.Equal(sig, again) {
		t.Fatalf("Sign is not deterministic (RFC 6979): %x vs %x (%v)", sig, again, err)
	}
	got, err := Recover(h, sig)
	if err != nil {
		t.Fatal(err)
	}
	if got != k.Address() {
		t.Fatalf("Recover = %s, want %s", got.Hex(), k.Address().Hex())
	}
	other := Keccak256([]byte("tally!"))
	if a, err := Recover(other, sig); err == nil && a == k.Address() {
		t.Fatal("signature recovered the signer for a different hash")
	}
}

func TestRecoverRejects(t *testing.T) {
	k := mustGenerate(t)
	h := randomHash(t)
	sig, err := k.Sign(h)
	if err != nil {
		t.Fatal(err)
	}
	// High-S twin: (R, n-S) with V flipped is valid ECDSA for the same key.
	s := new(big.Int).SetBytes(sig[32:64])
	highS := append([]byte(nil), sig...)
	new(big.Int).Sub(secpN, s).FillBytes(highS[32:64])
	highS[64] ^= 1
	if pub, err := ethcrypto.Ecrecover(h[:], highS); err != nil || !bytes.Equal(pub, k.PublicKeyBytes()) {
		t.Fatalf("test setup: high-S twin should recover the same key in plain ECDSA: %v", err)
	}

	withV := func(v byte) []byte { c := append([]byte(nil), sig...); c[64] = v; return c }
	withR := func(r *big.Int) []byte { c := append([]byte(nil), sig...); r.FillBytes(c[:32]); return c }
	withS := func(s *big.Int) []byte { c := append([]byte(nil), sig...); s.FillBytes(c[32:64]); return c }
	for _, tc := range []struct {
		name string
		sig  []byte
		want error
	}{
		{"high S", highS, ErrHighS},
		{"S = n-1", withS(new(big.Int).Sub(secpN, big.NewInt(1))), ErrHighS},
		{"S = n/2+1", withS(new(big.Int).Add(secpHalfN, big.NewInt(1))), ErrHighS},
		{"truncated", sig[:64], ErrInvalidSignature},
		{"empty", nil, ErrInvalidSignature},
		{"too long", append(append([]byte(nil), sig...), 0), ErrInvalidSignature},
		{"V=2", withV(2), ErrInvalidSignature},
		{"V=27", withV(27), ErrInvalidSignature},
		{"R=0", withR(new(big.Int)), ErrInvalidSignature},
		{"R=n", withR(secpN), ErrInvalidSignature},
		{"S=0", withS(new(big.Int)), ErrInvalidSignature},
		{"S=n", withS(secpN), ErrInvalidSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Recover(h, tc.sig)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Recover = %s, %v; want %v", a.Hex(), err, tc.want)
			}
		})
	}
}

func TestSignAlwaysLowS(t *testing.T) {
	k := mustGenerate(t)
	for i := 0; i < 200; i++ {
		h := randomHash(t)
		sig, err := k.Sign(h)
		if err != nil {
			t.Fatal(err)
		}
		if s := new(big.Int).SetBytes(sig[32:64]); !IsLowS(s) {
			t.Fatalf("hash %x: high S %x", h, s)
		}
		if a, err := Recover(h, sig); err != nil || a != k.Address() {
			t.Fatalf("hash %x: Recover = %s, %v", h, a.Hex(), err)
		}
	}
}

// TestAgreesWithGoEthereum cross-checks both directions against go-ethereum
// (libsecp256k1): its Ecrecover on our signatures, and byte-identical
// signatures, since both use RFC 6979 nonces and low-S normalization.
func TestAgreesWithGoEthereum(t *testing.T) {
	for i := 0; i < 50; i++ {
		k := mustGenerate(t)
		h := randomHash(t)
		sig, err := k.Sign(h)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ethcrypto.Ecrecover(h[:], sig)
		if err != nil {
			t.Fatal(err)
		}
		ethAddr := common.BytesToAddress(ethcrypto.Keccak256(pub[1:])[12:])
		got, err := Recover(h, sig)
		if err != nil || got != ethAddr {
			t.Fatalf("Recover = %s, %v; go-ethereum says %s", got.Hex(), err, ethAddr.Hex())
		}
		if ethAddr != ethcrypto.PubkeyToAddress(k.ECDSA().PublicKey) {
			t.Fatal("ECDSA() key has a different address")
		}
		if !bytes.Equal(pub, k.PublicKeyBytes()) {
			t.Fatal("PublicKeyBytes differs from recovered key")
		}
		ethSig, err := ethcrypto.Sign(h[:], k.ECDSA())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ethSig, sig) {
			t.Fatalf("signature differs from go-ethereum's:\n ours %x\n geth %x", sig, ethSig)
		}
	}
}

func TestIsLowS(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *big.Int
		want bool
	}{
		{"nil", nil, false},
		{"zero", big.NewInt(0), false},
		{"negative", big.NewInt(-1), false},
		{"one", big.NewInt(1), true},
		{"n/2", secpHalfN, true},
		{"n/2+1", new(big.Int).Add(secpHalfN, big.NewInt(1)), false},
		{"n", secpN, false},
	} {
		if got := IsLowS(tc.s); got != tc.want {
			t.Errorf("IsLowS(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPrivateKeyFromBytes(t *testing.T) {
	n := secpN.FillBytes(make([]byte, 32))
	nMinus1 := new(big.Int).Sub(secpN, big.NewInt(1)).FillBytes(make([]byte, 32))
	one := big.NewInt(1).FillBytes(make([]byte, 32))
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"zero", make([]byte, 32), false},
		{"n", n, false},
		{"all ff", bytes.Repeat([]byte{0xff}, 32), false},
		{"31 bytes", one[1:], false},
		{"33 bytes", append([]byte{0}, one...), false},
		{"nil", nil, false},
		{"one", one, true},
		{"n-1", nMinus1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := PrivateKeyFromBytes(tc.in)
			if !tc.ok {
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("err = %v, want ErrInvalidKey", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k.Bytes(), tc.in) {
				t.Fatalf("Bytes = %x, want %x", k.Bytes(), tc.in)
			}
		})
	}
}

func TestHexToPrivateKey(t *testing.T) {
	const h = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
	for _, in := range []string{h, "0x" + h, "0X" + h, strings.ToUpper(h)} {
		k, err := HexToPrivateKey(in)
		if err != nil {
			t.Fatalf("HexToPrivateKey(%q): %v", in, err)
		}
		if got := k.Bytes(); !bytes.Equal(got, mustHex(t, h)) {
			t.Fatalf("Bytes = %x", got)
		}
	}
	for _, in := range []string{"", "0x", h[:62], h + "00", "zz" + h[2:], "0x0x" + h[4:]} {
		if _, err := HexToPrivateKey(in); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("HexToPrivateKey(%q) err = %v, want ErrInvalidKey", in, err)
		} else if len(in) > 8 && strings.Contains(err.Error(), in) {
			t.Errorf("error leaks the key material: %v", err)
		}
	}
}

func TestBytesIsACopy(t *testing.T) {
	k := mustGenerate(t)
	b := k.Bytes()
	want := append([]byte(nil), b...)
	zero(b)
	if !bytes.Equal(k.Bytes(), want) {
		t.Fatal("zeroing Bytes() changed the key")
	}
	e := k.ECDSA()
	//lint:ignore SA1019 the test checks that mutating the copy cannot reach the key.
	e.D.SetInt64(1)
	if !bytes.Equal(k.Bytes(), want) {
		t.Fatal("modifying ECDSA() changed the key")
	}
}

func TestKeccak256(t *testing.T) {
	// Keccak-256 of the empty string (original Keccak padding, not SHA3-256).
	const empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
	if got := Keccak256().Hex(); got != "0x"+empty {
		t.Fatalf("Keccak256() = %s", got)
	}
	if Keccak256([]byte("ab"), []byte("c")) != Keccak256([]byte("abc")) {
		t.Fatal("Keccak256 does not hash the concatenation")
	}
}

func BenchmarkSign(b *testing.B) {
	k := mustGenerate(b)
	h := randomHash(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Sign(h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecover(b *testing.B) {
	k := mustGenerate(b)
	h := randomHash(b)
	sig, err := k.Sign(h)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Recover(h, sig); err != nil {
			b.Fatal(err)
		}
	}
}
