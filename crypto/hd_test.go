package crypto

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

type bip32File struct {
	Vectors []struct {
		Vector int    `json:"vector"`
		Seed   string `json:"seed"`
		Chains []struct {
			Path string `json:"path"`
			Xpub string `json:"xpub"`
			Xprv string `json:"xprv"`
		} `json:"chains"`
	} `json:"vectors"`
	Invalid []struct {
		Key    string `json:"key"`
		Reason string `json:"reason"`
	} `json:"invalid"`
}

func TestBIP32Vectors(t *testing.T) {
	var f bip32File
	loadVectors(t, "bip32_vectors.json", &f)
	chains := 0
	for _, v := range f.Vectors {
		master, err := NewMasterKey(mustHex(t, v.Seed))
		if err != nil {
			t.Fatalf("vector %d: %v", v.Vector, err)
		}
		for _, c := range v.Chains {
			chains++
			t.Run(fmt.Sprintf("vector%d/%s", v.Vector, c.Path), func(t *testing.T) {
				k, err := master.Derive(c.Path)
				if err != nil {
					t.Fatal(err)
				}
				if !k.IsPrivate() {
					t.Fatal("derived key is not private")
				}
				if got := k.String(); got != c.Xprv {
					t.Errorf("xprv = %s\nwant   %s", got, c.Xprv)
				}
				pub, err := k.Neuter()
				if err != nil {
					t.Fatal(err)
				}
				if pub.IsPrivate() {
					t.Fatal("neutered key is private")
				}
				if got := pub.String(); got != c.Xpub {
					t.Errorf("xpub = %s\nwant   %s", got, c.Xpub)
				}
				if _, err := pub.PrivateKey(); err == nil {
					t.Error("PrivateKey on xpub succeeded")
				}
				for _, s := range []string{c.Xprv, c.Xpub} {
					p, err := ParseExtendedKey(s)
					if err != nil {
						t.Fatalf("ParseExtendedKey(%s): %v", s, err)
					}
					if p.String() != s {
						t.Errorf("re-serialized %s as %s", s, p.String())
					}
					if p.IsPrivate() != strings.HasPrefix(s, "xprv") {
						t.Errorf("IsPrivate wrong for %s", s)
					}
				}
			})
		}
	}
	if chains != 17 {
		t.Errorf("want 17 BIP32 chains, ran %d", chains)
	}
}

// TestBIP32PublicDerivation checks that deriving a non-hardened child from
// the parent xpub gives the neutered child xprv.
func TestBIP32PublicDerivation(t *testing.T) {
	var f bip32File
	loadVectors(t, "bip32_vectors.json", &f)
	for _, v := range f.Vectors {
		for i := 1; i < len(v.Chains); i++ {
			parent, child := v.Chains[i-1], v.Chains[i]
			last := child.Path[strings.LastIndex(child.Path, "/")+1:]
			if strings.HasSuffix(last, "H") {
				continue
			}
			t.Run(fmt.Sprintf("vector%d/%s", v.Vector, child.Path), func(t *testing.T) {
				p, err := ParseExtendedKey(parent.Xpub)
				if err != nil {
					t.Fatal(err)
				}
				c, err := p.Derive("m/" + last)
				if err != nil {
					t.Fatal(err)
				}
				if c.String() != child.Xpub {
					t.Errorf("public derivation = %s, want %s", c.String(), child.Xpub)
				}
				if _, err := p.Derive("m/" + last + "H"); err == nil {
					t.Error("hardened derivation from an xpub succeeded")
				}
			})
		}
	}
}

func TestBIP32InvalidKeys(t *testing.T) {
	var f bip32File
	loadVectors(t, "bip32_vectors.json", &f)
	if len(f.Invalid) != 16 {
		t.Fatalf("want 16 invalid keys, got %d", len(f.Invalid))
	}
	for i, v := range f.Invalid {
		t.Run(fmt.Sprintf("%02d_%s", i, v.Reason), func(t *testing.T) {
			k, err := ParseExtendedKey(v.Key)
			if err == nil {
				t.Fatalf("accepted %s as %s", v.Key, k)
			}
			if !errors.Is(err, ErrInvalidExtendedKey) {
				t.Errorf("err = %v, want ErrInvalidExtendedKey", err)
			}
			if cause := invalidKeyCause(t, v.Reason); !strings.Contains(err.Error(), cause) {
				t.Errorf("rejected for the wrong reason: %v (want %q)", err, cause)
			}
		})
	}
}

// invalidKeyCause maps a BIP32 test vector 5 reason to the text our error
// must contain, so each key is shown to fail for the reason the BIP gives.
func invalidKeyCause(t *testing.T, reason string) string {
	t.Helper()
	switch {
	case reason == "pubkey version / prvkey mismatch":
		return "public version 0488b21e with key prefix 00"
	case reason == "prvkey version / pubkey mismatch":
		return "private version 0488ade4 with key prefix 0"
	case strings.HasPrefix(reason, "invalid pubkey prefix "):
		return "public version 0488b21e with key prefix " + strings.TrimPrefix(reason, "invalid pubkey prefix ")
	case strings.HasPrefix(reason, "invalid prvkey prefix "):
		return "private version 0488ade4 with key prefix " + strings.TrimPrefix(reason, "invalid prvkey prefix ")
	case reason == "zero depth with non-zero parent fingerprint":
		return "depth 0 with non-zero parent fingerprint"
	case reason == "zero depth with non-zero index":
		return "depth 0 with non-zero child index"
	case reason == "unknown extended key version":
		return "unknown version"
	case strings.HasPrefix(reason, "private key ") && strings.HasSuffix(reason, " not in 1..n-1"):
		return "private key not in 1..n-1"
	case strings.HasPrefix(reason, "invalid pubkey 0"):
		return "not on the secp256k1 curve"
	case reason == "invalid checksum":
		return "bad Base58Check checksum"
	}
	t.Fatalf("unknown reason %q in vectors", reason)
	return ""
}

func TestParseExtendedKeyMalformed(t *testing.T) {
	valid := "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi"
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"not base58", strings.Replace(valid, "Z", "0", 1)},
		{"truncated", valid[:len(valid)-1]},
		{"extended", valid + "1"},
		{"leading 1", "1" + valid},
		{"very long", strings.Repeat("z", 10000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseExtendedKey(tc.in); !errors.Is(err, ErrInvalidExtendedKey) {
				t.Errorf("err = %v, want ErrInvalidExtendedKey", err)
			}
		})
	}
}

func TestDerivePaths(t *testing.T) {
	master, err := NewMasterKey(mustHex(t, "000102030405060708090a0b0c0d0e0f"))
	if err != nil {
		t.Fatal(err)
	}
	const want = "xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM" // m/0H/1/2H
	for _, p := range []string{"m/0H/1/2H", "m/0'/1/2'", "m/0h/1/2h", "m/00'/1/2H"} {
		k, err := master.Derive(p)
		if err != nil {
			t.Fatalf("Derive(%q): %v", p, err)
		}
		if k.String() != want {
			t.Errorf("Derive(%q) = %s", p, k)
		}
	}
	if k, err := master.Derive("m"); err != nil || k.String() != master.String() {
		t.Errorf(`Derive("m") = %v, %v`, k, err)
	}
	for _, p := range []string{
		"", "M", "m/", "/0", "0/1", "m//0", "m/0/", "m/-1", "m/+1", "m/1''", "m/'",
		"m/0x1", "m/1 ", " m/1", "m/2147483648", "m/2147483648'", "m/4294967296",
		"m/99999999999999999999", "m/1e3", "m/1_000", "m/０", "n/0",
		"m" + strings.Repeat("/0", 256),
	} {
		if _, err := master.Derive(p); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Derive(%.40q) err = %v, want ErrInvalidPath", p, err)
		}
	}
	if _, err := master.Derive("m/2147483647'"); err != nil {
		t.Errorf("largest hardened index rejected: %v", err)
	}
	deep, err := master.Derive("m" + strings.Repeat("/0", 255))
	if err != nil {
		t.Fatalf("depth 255: %v", err)
	}
	if _, err := deep.Derive("m/0"); err == nil {
		t.Error("derivation beyond depth 255 succeeded")
	}
}

func TestEthereumPath(t *testing.T) {
	if got := EthereumPath(0); got != "m/44'/60'/0'/0/0" {
		t.Errorf("EthereumPath(0) = %s", got)
	}
	if got := EthereumPath(4294967295); got != "m/44'/60'/0'/0/4294967295" {
		t.Errorf("EthereumPath(max) = %s", got)
	}
}

func TestKeyFromMnemonic(t *testing.T) {
	for _, tc := range []struct {
		index uint32
		want  string
	}{
		{0, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"},
		{1, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"},
	} {
		k, err := KeyFromMnemonic(TestMnemonic, "", tc.index)
		if err != nil {
			t.Fatal(err)
		}
		if got := ChecksumAddress(k.Address()); got != tc.want {
			t.Errorf("index %d: %s, want %s", tc.index, got, tc.want)
		}
		// The same account through the explicit pieces.
		seed, err := MnemonicToSeed(TestMnemonic, "")
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewMasterKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		c, err := m.Derive(EthereumPath(tc.index))
		if err != nil {
			t.Fatal(err)
		}
		pk, err := c.PrivateKey()
		if err != nil || pk.Address() != common.HexToAddress(tc.want) {
			t.Errorf("index %d via Derive: %v, %v", tc.index, pk.Address(), err)
		}
	}
	if k, err := KeyFromMnemonic(TestMnemonic, "x", 0); err != nil || k.Address() == common.HexToAddress("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266") {
		t.Errorf("passphrase ignored: %v", err)
	}
	if _, err := KeyFromMnemonic(TestMnemonic, "", HardenedKeyStart); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("index 2^31: err = %v, want ErrInvalidPath", err)
	}
}

func TestNewMasterKeySeedLength(t *testing.T) {
	for _, n := range []int{0, 15, 65} {
		if _, err := NewMasterKey(make([]byte, n)); err == nil {
			t.Errorf("seed of %d bytes accepted", n)
		}
	}
}
