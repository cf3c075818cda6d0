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
		"minor units over decimals": {strings.Replace(valid, `"decimals": 2,`, `"decimals": 2, "minorUnits": 3,`, 1),
			"assets[1].minorUnits 3 is more than its decimals 2"},
		"cap for a non-bank": {strings.Replace(valid, `"decimals": 2,`, `"decimals": 2, "issuanceCaps": [{"bank": "0x8c3229ec621644789d7f61faa82c6d0e5f97d43d", "cap": "5"}],`, 1),
			"assets[1].issuanceCaps[0].bank 0x8C3229EC621644789d7F61FAa82c6d0E5F97d43D is not an issuing bank of HKD"},
		"cap twice": {strings.Replace(valid, `"decimals": 2,`, `"decimals": 2, "issuanceCaps": [{"bank": "0x9586a4833970847aef259ad5bfb7aa8901ddf746", "cap": "5"}, {"bank": "0x9586a4833970847aef259ad5bfb7aa8901ddf746", "cap": "6"}],`, 1),
			"issuanceCaps[1].bank 0x9586A4833970847aef259aD5BFB7aa8901DDf746 appears twice"},
		"cap not text": {strings.Replace(valid, `"decimals": 2,`, `"decimals": 2, "issuanceCaps": [{"bank": "0x9586a4833970847aef259ad5bfb7aa8901ddf746", "cap": 5}],`, 1),
			"decimal string"},
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

// TestMinorUnitsAndCaps: an asset's minor units default from ISO 4217
// (never above its decimals, its decimals for a symbol that is no currency
// code), an explicit value wins; caps parse, and the dev genesis, which
// sets neither, keeps its hash.
func TestMinorUnitsAndCaps(t *testing.T) {
	for _, c := range []struct {
		symbol   string
		decimals uint8
		want     uint8
	}{
		{"CNY", 18, 2}, {"HKD", 2, 2}, {"USD", 6, 2}, {"JPY", 2, 0}, {"KWD", 3, 3}, {"KWD", 2, 2}, {"BHD", 18, 3},
		{"CLF", 18, 4}, {"GOLD", 6, 6}, {"PTS", 0, 0}, {"XYZ", 18, 18},
	} {
		if got := (Asset{Symbol: c.symbol, Decimals: c.decimals}).Minor(); got != c.want {
			t.Errorf("%s with %d decimals: minor units %d, want %d", c.symbol, c.decimals, got, c.want)
		}
	}
	three := uint8(3)
	if got := (Asset{Symbol: "CNY", Decimals: 18, MinorUnits: &three}).Minor(); got != 3 {
		t.Errorf("explicit minorUnits 3: %d", got)
	}
	valid := string(DevJSON())
	g, err := Parse([]byte(strings.Replace(valid, `"decimals": 2,`, `"decimals": 2, "minorUnits": 1, "issuanceCaps": [{"bank": "0x9586a4833970847aef259ad5bfb7aa8901ddf746", "cap": "500"}],`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	bankB := common.HexToAddress("0x9586a4833970847aef259ad5bfb7aa8901ddf746")
	if g.Assets[1].Minor() != 1 || g.Assets[1].CapOf(bankB).Int64() != 500 || g.Assets[0].CapOf(bankB) != nil {
		t.Fatalf("parsed HKD %+v", g.Assets[1])
	}
	if g.Hash() == Dev().Hash() {
		t.Fatal("minor units and caps are not in the genesis hash")
	}
	if strings.Contains(valid, "minorUnits") || strings.Contains(valid, "issuanceCaps") {
		t.Fatal("the dev genesis sets minor units or caps: its hash changed with this feature")
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
