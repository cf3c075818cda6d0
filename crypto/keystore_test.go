package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/common"
)

type keystoreFile struct {
	Vectors []struct {
		Name         string          `json:"name"`
		Password     string          `json:"password"`
		Priv         string          `json:"priv"`
		Address      string          `json:"address"`
		AddressEIP55 string          `json:"address_eip55"`
		Keystore     json.RawMessage `json:"keystore"`
	} `json:"vectors"`
	Negative []struct {
		Name     string          `json:"name"`
		Password string          `json:"password"`
		Keystore json.RawMessage `json:"keystore"`
	} `json:"negative"`
}

func TestKeystoreVectors(t *testing.T) {
	var f keystoreFile
	loadVectors(t, "keystore_v3_vectors.json", &f)
	if len(f.Vectors) != 5 || len(f.Negative) != 1 {
		t.Fatalf("want 5 positive and 1 negative keystore vectors, got %d and %d", len(f.Vectors), len(f.Negative))
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			start := time.Now()
			k, err := DecryptKey(v.Keystore, v.Password)
			t.Logf("decrypt took %v", time.Since(start).Round(time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			// Legacy 30/31-byte secrets decrypt left-padded with zeros.
			want := mustHex(t, v.Priv)
			want = append(make([]byte, 32-len(want)), want...)
			if !bytes.Equal(k.Bytes(), want) {
				t.Errorf("priv = %x, want %x", k.Bytes(), want)
			}
			if got := k.Address(); got != common.HexToAddress(v.Address) {
				t.Errorf("address = %s, want %s", got.Hex(), v.Address)
			}
			if got := ChecksumAddress(k.Address()); got != v.AddressEIP55 {
				t.Errorf("EIP-55 address = %s, want %s", got, v.AddressEIP55)
			}
		})
	}
	for _, v := range f.Negative {
		t.Run("negative/"+v.Name, func(t *testing.T) {
			k, err := DecryptKey(v.Keystore, v.Password)
			if err == nil {
				t.Fatalf("defective vector decrypted to %x", k.Bytes())
			}
			if !errors.Is(err, ErrKeystoreMAC) || !errors.Is(err, keystore.ErrDecrypt) {
				t.Fatalf("err = %v, want a MAC error", err)
			}
		})
	}
}

func TestKeystoreRoundTrip(t *testing.T) {
	k := mustGenerate(t)
	blob, err := EncryptKey(k, "correct horse", LightScryptN, LightScryptP)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Address string `json:"address"`
		ID      string `json:"id"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(blob, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.Version != 3 || common.HexToAddress(hdr.Address) != k.Address() || len(hdr.ID) != 36 || hdr.ID[14] != '4' {
		t.Errorf("header = %+v", hdr)
	}
	got, err := DecryptKey(blob, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), k.Bytes()) {
		t.Fatal("round trip changed the key")
	}
	// go-ethereum reads what we write.
	gk, err := keystore.DecryptKey(blob, "correct horse")
	if err != nil || gk.Address != k.Address() {
		t.Fatalf("go-ethereum DecryptKey: %v", err)
	}
	if _, err := DecryptKey(blob, "wrong horse"); !errors.Is(err, ErrKeystoreMAC) {
		t.Fatalf("wrong password: err = %v, want ErrKeystoreMAC", err)
	}
	if _, err := DecryptKey(blob, ""); !errors.Is(err, ErrKeystoreMAC) {
		t.Fatalf("empty password: err = %v, want ErrKeystoreMAC", err)
	}
}

// TestKeystoreMalformed feeds files that make go-ethereum's own decoder panic
// or spin; each must fail cleanly with ErrInvalidKeystore.
func TestKeystoreMalformed(t *testing.T) {
	k := mustGenerate(t)
	blob, err := EncryptKey(k, "pw", 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(blob, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kdf := func(m map[string]any) map[string]any {
		return m["crypto"].(map[string]any)["kdfparams"].(map[string]any)
	}
	cryptoSec := func(m map[string]any) map[string]any { return m["crypto"].(map[string]any) }
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"not json", []byte("{")},
		{"empty object", []byte("{}")},
		{"null", []byte("null")},
		{"version 1", mutate(func(m map[string]any) { m["version"] = "1" })},
		{"version 4", mutate(func(m map[string]any) { m["version"] = 4 })},
		{"no salt", mutate(func(m map[string]any) { delete(kdf(m), "salt") })},
		{"salt not string", mutate(func(m map[string]any) { kdf(m)["salt"] = 7 })},
		{"salt not hex", mutate(func(m map[string]any) { kdf(m)["salt"] = "zz" })},
		{"no dklen", mutate(func(m map[string]any) { delete(kdf(m), "dklen") })},
		{"dklen 16", mutate(func(m map[string]any) { kdf(m)["dklen"] = 16 })},
		{"dklen string", mutate(func(m map[string]any) { kdf(m)["dklen"] = "32" })},
		{"dklen fraction", mutate(func(m map[string]any) { kdf(m)["dklen"] = 32.5 })},
		{"n not power of 2", mutate(func(m map[string]any) { kdf(m)["n"] = 3 })},
		{"n negative", mutate(func(m map[string]any) { kdf(m)["n"] = -2 })},
		{"n huge", mutate(func(m map[string]any) { kdf(m)["n"] = 1 << 40 })},
		{"r zero", mutate(func(m map[string]any) { kdf(m)["r"] = 0 })},
		{"p huge", mutate(func(m map[string]any) { kdf(m)["p"] = 1 << 30 })},
		{"no n", mutate(func(m map[string]any) { delete(kdf(m), "n") })},
		{"iv short", mutate(func(m map[string]any) { cryptoSec(m)["cipherparams"] = map[string]any{"iv": "00"} })},
		{"mac short", mutate(func(m map[string]any) { cryptoSec(m)["mac"] = "00" })},
		{"ciphertext not hex", mutate(func(m map[string]any) { cryptoSec(m)["ciphertext"] = "xyz" })},
		{"cipher cbc", mutate(func(m map[string]any) { cryptoSec(m)["cipher"] = "aes-128-cbc" })},
		{"kdf unknown", mutate(func(m map[string]any) { cryptoSec(m)["kdf"] = "argon2" })},
		{"pbkdf2 no prf", mutate(func(m map[string]any) { cryptoSec(m)["kdf"] = "pbkdf2"; kdf(m)["c"] = 2 })},
		{"pbkdf2 c huge", mutate(func(m map[string]any) {
			cryptoSec(m)["kdf"] = "pbkdf2"
			kdf(m)["c"] = 1 << 40
			kdf(m)["prf"] = "hmac-sha256"
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecryptKey(tc.in, "pw"); !errors.Is(err, ErrInvalidKeystore) {
				t.Errorf("err = %v, want ErrInvalidKeystore", err)
			}
		})
	}
	// Empty and over-long ciphertexts pass the format checks but fail the MAC.
	for _, ct := range []string{"", strings.Repeat("00", 33)} {
		in := mutate(func(m map[string]any) { cryptoSec(m)["ciphertext"] = ct })
		if _, err := DecryptKey(in, "pw"); err == nil {
			t.Errorf("ciphertext %q accepted", ct)
		}
	}
}
