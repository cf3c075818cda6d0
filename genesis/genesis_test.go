package genesis

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

var update = flag.Bool("update", false, "rewrite dev.json from the test mnemonic")

// TestDevGenesisFile keeps the embedded dev.json equal to what the test
// mnemonic derives; run with -update after changing BuildDev.
func TestDevGenesisFile(t *testing.T) {
	g, err := BuildDev()
	if err != nil {
		t.Fatal(err)
	}
	want := g.Indent()
	if *update {
		if err := os.WriteFile("dev.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("dev.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("dev.json differs from BuildDev(); run go test ./genesis -run TestDevGenesisFile -update")
	}
}

func TestDevGenesis(t *testing.T) {
	g := Dev()
	if g.ChainID != 1337 || len(g.Alloc) != DevAccounts {
		t.Fatalf("chain id %d, %d allocations", g.ChainID, len(g.Alloc))
	}
	if g.Alloc[0].Address != common.HexToAddress("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266") {
		t.Fatalf("dev account 0 is %s, want MetaMask's first test account", g.Alloc[0].Address)
	}
	for _, a := range g.Alloc {
		if a.Balance.Cmp(DevBalance) != 0 {
			t.Fatalf("%s has %s", a.Address, a.Balance)
		}
	}
	k, err := DevKey(DevValidatorIndex)
	if err != nil {
		t.Fatal(err)
	}
	if vals := g.ValidatorAddresses(); len(vals) != 1 || vals[0] != k.Address() {
		t.Fatalf("validators %v, want dev key %s", vals, k.Address())
	}
}

func TestHashCommitsToEverything(t *testing.T) {
	base := Dev()
	h := base.Hash()
	mods := map[string]func(g *Genesis){
		"chainId":   func(g *Genesis) { g.ChainID++ },
		"timestamp": func(g *Genesis) { g.TimestampMs++ },
		"symbol":    func(g *Genesis) { g.NativeAsset.Symbol = "HKD" },
		"validator": func(g *Genesis) { g.Validators[0].Name = "other" },
		"balance":   func(g *Genesis) { g.Alloc[3].Balance.Int.Add(g.Alloc[3].Balance.Int, common.Big1) },
		"drop":      func(g *Genesis) { g.Alloc = g.Alloc[1:] },
	}
	for name, mod := range mods {
		t.Run(name, func(t *testing.T) {
			g := Dev()
			mod(g)
			if g.Hash() == h {
				t.Fatal("hash unchanged")
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	valid := string(DevJSON())
	cases := map[string]struct {
		json string
		want string
	}{
		"unknown field":   {strings.Replace(valid, `"chainId"`, `"chainID2": 1, "chainId"`, 1), "unknown field"},
		"zero chain":      {strings.Replace(valid, `"chainId": 1337`, `"chainId": 0`, 1), "chainId"},
		"decimals":        {strings.Replace(valid, `"decimals": 18`, `"decimals": 2`, 1), "decimals"},
		"bad balance":     {strings.Replace(valid, `"1000000000000000000000000000000"`, `"-5"`, 1), "non-negative"},
		"numeric balance": {strings.Replace(valid, `"1000000000000000000000000000000"`, `12`, 1), "decimal string"},
		"trailing":        {valid + "{}", "trailing"},
		"not json":        {"chainId = 5", "invalid"},
		"no validators":   {`{"chainId":1,"nativeAsset":{"symbol":"X","decimals":18},"validators":[]}`, "validators"},
		"bad pubkey":      {`{"chainId":1,"nativeAsset":{"symbol":"X","decimals":18},"validators":[{"publicKey":"0x02"}]}`, "publicKey"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.json))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DevJSON())
	f.Add([]byte(`{"chainId":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses must validate, hash and re-parse to the same hash.
		again, err := Parse(g.Canonical())
		if err != nil || again.Hash() != g.Hash() {
			t.Fatalf("canonical form does not round-trip: %v", err)
		}
	})
}
