package bridge

import (
	"bytes"
	"math/big"
	"testing"
	"time"

	"github.com/tally-ledger/tally/bridge/iso20022"
)

// TestOrderAmount: a payment order's amount is written at the currency's
// minor units, never rounded.
func TestOrderAmount(t *testing.T) {
	e18 := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	cny := func(whole, cents int64) *big.Int { // whole.cents CNY in 18-decimal base units
		v := new(big.Int).Mul(big.NewInt(whole*100+cents), new(big.Int).Div(e18, big.NewInt(100)))
		return v
	}
	for _, c := range []struct {
		name            string
		units           *big.Int
		decimals, minor uint8
		want            string
	}{
		{"CNY on an 18-decimal asset", cny(97, 31), 18, 2, "97.31"},
		{"whole CNY", cny(5, 0), 18, 2, "5.00"},
		{"HKD, decimals are the minor units", big.NewInt(5000), 2, 2, "50.00"},
		{"JPY, no minor units", new(big.Int).Mul(big.NewInt(1200), e18), 18, 0, "1200"},
		{"not expressible: written whole, never rounded", new(big.Int).Add(cny(1, 23), big.NewInt(4567)), 18, 2, "1.230000000000004567"},
	} {
		if got := orderAmount(c.units, c.decimals, c.minor); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// TestOrderAtCurrencyPrecision: the bridge of CNY (18 decimals on the dev
// chain, 2 minor units) orders 97.31 CNY, as its bank expects, and the
// pain.001 carries exactly that; a store without minor units (written
// before the chain had them) keeps the asset's decimals.
func TestOrderAtCurrencyPrecision(t *testing.T) {
	u := newUnitBridge(t)
	two := uint8(2)
	u.info = ChainInfo{ChainID: 1337, AssetID: 0, Symbol: "CNY", Decimals: 18, MinorUnits: &two}
	amount, _ := new(big.Int).SetString("97310000000000000000", 10)
	p := u.addPayout(t, 7, 0)
	p.Amount = amount
	o := u.order(p, time.Now())
	if o.Amount != "97.31" {
		t.Fatalf("order amount %s, want 97.31", o.Amount)
	}
	body, err := u.writePain001(o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte(`Ccy="CNY">97.31<`)) {
		t.Fatalf("pain.001 does not carry 97.31 CNY:\n%s", body)
	}
	if _, err := iso20022.ParsePain001(bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	u.info.MinorUnits = nil
	if got := u.info.OrderDecimals(); got != 18 {
		t.Fatalf("without minor units an order has %d decimals, want the asset's 18", got)
	}
}
