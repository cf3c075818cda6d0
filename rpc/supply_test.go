package rpc

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/rpc/schema"
)

// TestGetSupplyPerBank: tally_getSupply counts each issuing bank's own
// mints (decision 11): bank B's mint of HKD shows as its minted and
// outstanding, the asset's other banks at zero, in the genesis' order,
// with the cap governance set (none on the dev chain: null).
func TestGetSupplyPerBank(t *testing.T) {
	c := newFilterChain(t)
	bank := devKeyT(t, genesis.DevBankBIndex)
	data, err := chain.AssetABI.Pack("mint", c.addr(5), big.NewInt(10_000), ref32("DEPOSIT-1"))
	if err != nil {
		t.Fatal(err)
	}
	c.block(c.sign(bank, chain.AssetAddress(1), nil, data))

	srv, err := NewServer(c, DefaultLimits, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	cl := gethrpc.DialInProc(srv.rpc)
	t.Cleanup(cl.Close)
	var got schema.Supply
	if err := cl.Call(&got, "tally_getSupply", "HKD"); err != nil {
		t.Fatal(err)
	}
	rules, err := c.db.Rules()
	if err != nil {
		t.Fatal(err)
	}
	want := rules.Assets[1].Banks
	if len(got.Banks) != len(want) {
		t.Fatalf("%d banks, want %d (%v)", len(got.Banks), len(want), want)
	}
	for i, b := range got.Banks {
		var minted int64
		if b.Bank == bank.Address() {
			minted = 10_000
		}
		if b.Bank != want[i] || b.Minted.ToInt().Int64() != minted || b.Burned.ToInt().Sign() != 0 ||
			b.Outstanding.ToInt().Int64() != minted || b.Cap != nil {
			t.Fatalf("bank %d: %+v, want %s minted and outstanding %d, no cap", i, b, want[i], minted)
		}
	}
	if !containsBank(got.Banks, bank.Address()) {
		t.Fatalf("bank B %s not among %+v", bank.Address(), got.Banks)
	}
}

func containsBank(banks []schema.BankIssuance, a common.Address) bool {
	for _, b := range banks {
		if b.Bank == a {
			return true
		}
	}
	return false
}
