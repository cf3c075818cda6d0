package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestBIP39Vectors(t *testing.T) {
	var f struct {
		English [][4]string `json:"english"`
	}
	loadVectors(t, "bip39_vectors.json", &f)
	if len(f.English) != 24 {
		t.Fatalf("want 24 English BIP39 vectors, got %d", len(f.English))
	}
	for i, v := range f.English {
		entropyHex, mnemonic, seedHex, xprv := v[0], v[1], v[2], v[3]
		t.Run(fmt.Sprintf("%02d_%dbits", i, len(entropyHex)*4), func(t *testing.T) {
			m, err := entropyToMnemonic(mustHex(t, entropyHex))
			if err != nil {
				t.Fatal(err)
			}
			if m != mnemonic {
				t.Errorf("entropy→mnemonic = %q, want %q", m, mnemonic)
			}
			if err := ValidateMnemonic(mnemonic); err != nil {
				t.Errorf("ValidateMnemonic: %v", err)
			}
			e, err := MnemonicToEntropy(mnemonic)
			if err != nil || hex.EncodeToString(e) != entropyHex {
				t.Errorf("MnemonicToEntropy = %x, %v; want %s", e, err, entropyHex)
			}
			seed, err := MnemonicToSeed(mnemonic, "TREZOR")
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(seed); got != seedHex {
				t.Errorf("mnemonic→seed = %s, want %s", got, seedHex)
			}
			master, err := NewMasterKey(seed)
			if err != nil {
				t.Fatal(err)
			}
			if got := master.String(); got != xprv {
				t.Errorf("seed→master = %s, want %s", got, xprv)
			}
		})
	}
}

func TestMnemonicWhitespaceNormalized(t *testing.T) {
	s1, err := MnemonicToSeed(TestMnemonic, "")
	if err != nil {
		t.Fatal(err)
	}
	messy := "  " + strings.ReplaceAll(TestMnemonic, " ", " \t\n ") + "\n"
	s2, err := MnemonicToSeed(messy, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1, s2) {
		t.Fatal("extra whitespace changed the seed")
	}
}

func TestNewMnemonic(t *testing.T) {
	for _, bits := range []int{128, 160, 192, 224, 256} {
		m, err := NewMnemonic(bits)
		if err != nil {
			t.Fatalf("NewMnemonic(%d): %v", bits, err)
		}
		if words := len(strings.Fields(m)); words != bits/32*3 {
			t.Errorf("NewMnemonic(%d) has %d words", bits, words)
		}
		if err := ValidateMnemonic(m); err != nil {
			t.Errorf("NewMnemonic(%d) does not validate: %v", bits, err)
		}
		e, err := MnemonicToEntropy(m)
		if err != nil || len(e)*8 != bits {
			t.Errorf("entropy of NewMnemonic(%d): %d bytes, %v", bits, len(e), err)
		}
		if again, _ := entropyToMnemonic(e); again != m {
			t.Errorf("entropy round trip: %q vs %q", again, m)
		}
	}
	for _, bits := range []int{0, 96, 127, 136, 288, -128} {
		if _, err := NewMnemonic(bits); !errors.Is(err, ErrInvalidMnemonic) {
			t.Errorf("NewMnemonic(%d) err = %v, want ErrInvalidMnemonic", bits, err)
		}
	}
}

func TestInvalidMnemonics(t *testing.T) {
	words := strings.Fields(TestMnemonic)
	for _, tc := range []struct{ name, m string }{
		{"empty", ""},
		{"11 words", strings.Join(words[:11], " ")},
		{"13 words", TestMnemonic + " test"},
		{"bad checksum", strings.Join(append(words[:11:11], "test"), " ")},
		{"unknown word", strings.Join(append(words[:11:11], "junkk"), " ")},
		{"upper case", strings.ToUpper(TestMnemonic)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidateMnemonic(tc.m); !errors.Is(err, ErrInvalidMnemonic) {
				t.Errorf("ValidateMnemonic err = %v", err)
			}
			if _, err := MnemonicToSeed(tc.m, ""); !errors.Is(err, ErrInvalidMnemonic) {
				t.Errorf("MnemonicToSeed err = %v", err)
			}
			if _, err := MnemonicToEntropy(tc.m); !errors.Is(err, ErrInvalidMnemonic) {
				t.Errorf("MnemonicToEntropy err = %v", err)
			}
			if _, err := KeyFromMnemonic(tc.m, "", 0); !errors.Is(err, ErrInvalidMnemonic) {
				t.Errorf("KeyFromMnemonic err = %v", err)
			}
		})
	}
}
