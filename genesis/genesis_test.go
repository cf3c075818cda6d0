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
	if g.ChainID != 1337 || len(g.Alloc) != DevAccounts+6 {
		t.Fatalf("chain id %d, %d allocations", g.ChainID, len(g.Alloc))
	}
	if g.Alloc[0].Address != common.HexToAddress("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266") {
		t.Fatalf("dev account 0 is %s, want MetaMask's first test account", g.Alloc[0].Address)
	}
	for _, a := range g.Alloc[:DevAccounts] {
		if a.Balances["CNY"].Cmp(DevBalance) != 0 || a.Balances["HKD"].Cmp(DevHKDBalance) != 0 || a.Tier != g.TopTier() {
			t.Fatalf("%s has %v at tier %d", a.Address, a.Balances, a.Tier)
		}
	}
	if g.Assets[0].Symbol != "CNY" || g.Assets[1].Symbol != "HKD" || g.Assets[1].Decimals != 2 {
		t.Fatalf("assets %+v", g.Assets)
	}
	for i, want := range map[uint32]common.Address{DevBankAIndex: g.Assets[0].Banks[0], DevBankBIndex: g.Assets[1].Banks[0], DevComplianceIndex: g.Compliance, DevGovernanceIndex + 2: g.Governance.Members[2]} {
		if a, _ := DevAddress(i); a != want {
			t.Fatalf("role at index %d is %s, want %s", i, want, a)
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
		"symbol":    func(g *Genesis) { g.Assets[0].Symbol = "RMB" },
		"bank":      func(g *Genesis) { g.Assets[1].Banks = g.Assets[1].Banks[:0] },
		"tier":      func(g *Genesis) { g.Alloc[2].Tier = 1 },
		"limit": func(g *Genesis) {
			g.Tiers[1].Limits["HKD"].MaxTransfer.Add(g.Tiers[1].Limits["HKD"].MaxTransfer.Int, common.Big1)
		},
		"threshold": func(g *Genesis) { g.Governance.Threshold = 3 },
		"validator": func(g *Genesis) { g.Validators[0].Name = "other" },
		"balance":   func(g *Genesis) { g.Alloc[3].Balances["HKD"].Add(g.Alloc[3].Balances["HKD"].Int, common.Big1) },
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
		"no validators":   {strings.Replace(valid, `"name": "dev-validator"`, `"name": "x"}, {"name": "dev-validator"`, 1), "publicKey"},
		"bad pubkey":      {strings.Replace(valid, `"0x0282b2ca`, `"0x0582b2ca`, 1), "publicKey"},
		"unknown asset":   {strings.Replace(valid, `"HKD": "100000000000000"`, `"USD": "1"`, 1), "unknown asset"},
		"bad symbol":      {strings.Replace(valid, `"symbol": "HKD"`, `"symbol": "hk$"`, 1), "symbol"},
		"dup symbol":      {strings.Replace(valid, `"symbol": "HKD"`, `"symbol": "CNY"`, 1), "used twice"},
		"tier missing":    {strings.Replace(valid, `"tier": 3`, `"tier": 9`, 1), "tier 9"},
		"over max":        {strings.Replace(valid, `"tier": 3`, `"tier": 1`, 1), "maxBalance"},
		"no compliance":   {strings.Replace(valid, `"compliance": "0x`, `"compliance": "0x0000000000000000000000000000000000000000", "x": "0x`, 1), "unknown field"},
		"threshold":       {strings.Replace(valid, `"threshold": 2`, `"threshold": 4`, 1), "governance.threshold"},
		"alloc to facade": {strings.Replace(valid, `"address": "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"`, `"address": "0x0000000000000000000000000000000000001001"`, 1), "system contract address"},
		"zero bank":       {strings.Replace(valid, `"banks": [`, `"banks": ["0x0000000000000000000000000000000000000000", `, 1), "zero address"},
		"limit not text":  {strings.Replace(valid, `"maxTransfer": "0"`, `"maxTransfer": 0`, 1), "decimal string"},
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
