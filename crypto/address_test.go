package crypto

import (
	"errors"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

type eip55File struct {
	Example struct {
		Input  string `json:"input"`
		Output string `json:"output"`
	} `json:"example_toChecksumAddress"`
	Vectors []struct {
		Category  string `json:"category"`
		Address   string `json:"address"`
		Lowercase string `json:"lowercase"`
	} `json:"vectors"`
}

// flipFirstLetter toggles the case of the first hex letter after "0x".
func flipFirstLetter(s string) (string, bool) {
	b := []byte(s)
	for i := 2; i < len(b); i++ {
		switch c := b[i]; {
		case c >= 'a' && c <= 'f':
			b[i] = c - 'a' + 'A'
			return string(b), true
		case c >= 'A' && c <= 'F':
			b[i] = c - 'A' + 'a'
			return string(b), true
		}
	}
	return s, false
}

func TestEIP55Vectors(t *testing.T) {
	var f eip55File
	loadVectors(t, "eip55_vectors.json", &f)
	if len(f.Vectors) != 8 {
		t.Fatalf("want 8 EIP-55 vectors, got %d", len(f.Vectors))
	}
	cases := append([]struct{ name, lower, want string }{},
		struct{ name, lower, want string }{"example_toChecksumAddress", f.Example.Input, f.Example.Output})
	for _, v := range f.Vectors {
		cases = append(cases, struct{ name, lower, want string }{v.Category + "/" + v.Address, v.Lowercase, v.Address})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lower != strings.ToLower(tc.want) {
				t.Fatalf("vector inconsistent: %s vs %s", tc.lower, tc.want)
			}
			a, err := ParseAddress(tc.lower)
			if err != nil {
				t.Fatalf("ParseAddress(lowercase): %v", err)
			}
			if got := ChecksumAddress(a); got != tc.want {
				t.Errorf("ChecksumAddress = %s, want %s", got, tc.want)
			}
			b, err := ParseAddress(tc.want)
			if err != nil {
				t.Fatalf("ParseAddress(checksummed): %v", err)
			}
			if b != a {
				t.Errorf("ParseAddress(checksummed) = %x, want %x", b, a)
			}
			upper := "0x" + strings.ToUpper(tc.want[2:])
			if c, err := ParseAddress(upper); err != nil || c != a {
				t.Errorf("ParseAddress(all upper) = %x, %v", c, err)
			}
			flipped, ok := flipFirstLetter(tc.want)
			if !ok {
				t.Fatalf("no hex letter to flip in %s", tc.want)
			}
			if _, err := ParseAddress(flipped); !errors.Is(err, ErrBadChecksum) {
				t.Errorf("ParseAddress(%s) err = %v, want ErrBadChecksum", flipped, err)
			} else if !strings.Contains(err.Error(), "bad EIP-55 checksum") {
				t.Errorf("error %q lacks \"bad EIP-55 checksum\"", err)
			}
		})
	}
}

func TestParseAddressMalformed(t *testing.T) {
	good := "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"no prefix", good[2:]},
		{"no prefix 42 chars", "00" + good[2:]},
		{"upper X prefix", "0X" + good[2:]},
		{"short", good[:41]},
		{"long", good + "0"},
		{"non-hex", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg"},
		{"space", " " + good[:41]},
		{"odd unicode", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA\u00e9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a, err := ParseAddress(tc.in); !errors.Is(err, ErrInvalidAddress) {
				t.Errorf("ParseAddress(%q) = %x, %v; want ErrInvalidAddress", tc.in, a, err)
			}
		})
	}
}

func TestPubkeyBytesToAddress(t *testing.T) {
	k, err := HexToPrivateKey("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	if err != nil {
		t.Fatal(err)
	}
	want := common.HexToAddress("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23")
	if k.Address() != want {
		t.Fatalf("Address = %s, want %s", k.Address().Hex(), want.Hex())
	}
	pub := k.PublicKeyBytes()
	if len(pub) != 65 || pub[0] != 4 {
		t.Fatalf("PublicKeyBytes: %x", pub)
	}
	got, err := PubkeyBytesToAddress(pub)
	if err != nil || got != want {
		t.Fatalf("PubkeyBytesToAddress(uncompressed) = %s, %v", got.Hex(), err)
	}
	compressed := append([]byte{2 + pub[64]&1}, pub[1:33]...)
	if got, err := PubkeyBytesToAddress(compressed); err != nil || got != want {
		t.Fatalf("PubkeyBytesToAddress(compressed) = %s, %v", got.Hex(), err)
	}
	offCurve := append([]byte(nil), pub...)
	offCurve[64] ^= 1
	hybrid := append([]byte(nil), pub...)
	hybrid[0] = 6 + pub[64]&1
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"64 raw bytes", pub[1:]},
		{"off curve", offCurve},
		{"hybrid format", hybrid},
		{"compressed bad prefix", append([]byte{4}, pub[1:33]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := PubkeyBytesToAddress(tc.in); !errors.Is(err, ErrInvalidAddress) {
				t.Errorf("err = %v, want ErrInvalidAddress", err)
			}
		})
	}
}
