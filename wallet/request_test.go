package wallet

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

var updateGolden = flag.Bool("update", false, "rewrite wallet/testdata/request-*")

// hkd is the dev chain's HKD (docs/dev-chain.md): 2 decimals, facade 0x…1001.
var hkd = Asset{ID: 1, Symbol: "HKD", Name: "Hong Kong Dollar", Decimals: 2, MinorUnits: 2, Address: common.HexToAddress("0x0000000000000000000000000000000000001001")}

var shop = common.HexToAddress("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./wallet -run TestPaymentRequestGolden -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file:\n%s\nwant:\n%s", name, got, want)
	}
}

// TestPaymentRequestGolden: the request of ORDER-1234, 12.34 HKD to the
// shop, is the EIP-681 URI of the facade's transferWithReference with
// typed parameters in the function's order and the amount as 12.34e2
// (the exponent is the asset's decimals), its JSON and its QR code PNG
// are those of the golden files.
func TestPaymentRequestGolden(t *testing.T) {
	expires := time.Date(2026, 12, 6, 14, 15, 0, 0, time.UTC)
	r, err := NewPaymentRequest(1337, hkd, shop, big.NewInt(1234), "ORDER-1234", expires)
	if err != nil {
		t.Fatal(err)
	}
	const wantURI = "ethereum:0x0000000000000000000000000000000000001001@1337/transferWithReference?address=0x70997970C51812dc3A010C7d01b50e0d17dc79C8&uint256=12.34e2&bytes32=0x4f524445522d3132333400000000000000000000000000000000000000000000"
	if r.URI != wantURI {
		t.Fatalf("URI\n got %s\nwant %s", r.URI, wantURI)
	}
	doc, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "request-order-1234.json", append(doc, '\n'))
	png, err := r.QRCode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("QRCode is not a PNG")
	}
	golden(t, "request-order-1234.png", png)
}

// TestPaymentURIRoundTrip: what String writes, ParsePaymentURI reads
// back, for amounts with and without a fraction and a 0-decimal asset.
func TestPaymentURIRoundTrip(t *testing.T) {
	ref, _ := ParseReference("INV-7")
	for _, tc := range []struct {
		amount   string
		decimals uint8
		want     string
	}{
		{"1234", 2, "uint256=12.34e2"},
		{"1000", 2, "uint256=10e2"},
		{"1", 2, "uint256=0.01e2"},
		{"1500000000000000000", 18, "uint256=1.5e18"},
		{"42", 0, "uint256=42&"},
	} {
		v, _ := new(big.Int).SetString(tc.amount, 10)
		u := PaymentURI{Target: hkd.Address, ChainID: 1337, To: shop, Amount: v, Decimals: tc.decimals, Ref: ref}
		s := u.String()
		if !strings.Contains(s, tc.want) {
			t.Errorf("%s with %d decimals: %s lacks %s", tc.amount, tc.decimals, s, tc.want)
		}
		got, err := ParsePaymentURI(s)
		if err != nil || got.Amount.Cmp(v) != 0 || got.Decimals != tc.decimals || got.To != shop || got.Ref != ref || got.Target != hkd.Address || got.ChainID != 1337 {
			t.Errorf("parse %s: %+v, %v", s, got, err)
		}
	}
}

// TestParsePaymentURIRefuses: what EIP-681's grammar or the function's
// parameters do not allow is an error naming the part.
func TestParsePaymentURIRefuses(t *testing.T) {
	const base = "ethereum:0x0000000000000000000000000000000000001001@1337/transferWithReference?"
	const to = "address=0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
	const ref = "&bytes32=0x4f524445522d3132333400000000000000000000000000000000000000000000"
	for _, tc := range []struct{ uri, want string }{
		{"bitcoin:1abc", "not an \"ethereum:\""},
		{"ethereum:0x0000000000000000000000000000000000001001@1337/transfer?" + to + "&uint256=1" + ref, "function"},
		{"ethereum:0x00000000000000000000000000000000000010@1337/transferWithReference?" + to + "&uint256=1" + ref, "target"},
		{"ethereum:0x0000000000000000000000000000000000001001@x/transferWithReference?" + to + "&uint256=1" + ref, "chain id"},
		{base + to + "&uint256=12.345e2" + ref, "not an integer"},
		{base + to + "&uint256=-1" + ref, "negative"},
		{base + to + "&uint256=1e999" + ref, "exponent"},
		{base + to + "&uint256=abc" + ref, "not an EIP-681 number"},
		{base + to + ref, "uint256 is missing"},
		{base + to + "&uint256=1&uint256=2" + ref, "given twice"},
		{base + to + "&uint256=1&bytes32=0x12", "bytes32"},
		{base + "address=0x70997970c51812dc3A010C7d01b50e0d17dc79C8&uint256=1" + ref, "address"}, // bad EIP-55 checksum
		{base + to + "&uint256=1" + ref + "&string=hi", "not one of"},
		{base + to + "&uint256" + ref, "key=value"},
		{"ethereum:" + strings.Repeat("0", 3000), "characters"},
	} {
		if _, err := ParsePaymentURI(tc.uri); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.90s: error %v, want one containing %q", tc.uri, err, tc.want)
		}
	}
	// EIP-681's optional parts: the pay- prefix, no chain id, a value suggestion.
	u, err := ParsePaymentURI("ethereum:pay-0x0000000000000000000000000000000000001001/transferWithReference?" + to + "&uint256=1.5E2" + ref + "&value=0")
	if err != nil || u.ChainID != 0 || u.Amount.Int64() != 150 {
		t.Fatalf("optional parts: %+v, %v", u, err)
	}
}

func TestNewPaymentRequestRefuses(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name   string
		chain  uint64
		payee  common.Address
		amount *big.Int
		order  string
		exp    time.Time
	}{
		{"chain 0", 0, shop, big.NewInt(1), "A", exp},
		{"zero payee", 1, common.Address{}, big.NewInt(1), "A", exp},
		{"zero amount", 1, shop, big.NewInt(0), "A", exp},
		{"nil amount", 1, shop, nil, "A", exp},
		{"empty order", 1, shop, big.NewInt(1), "", exp},
		{"long order", 1, shop, big.NewInt(1), strings.Repeat("x", 33), exp},
		{"no expiry", 1, shop, big.NewInt(1), "A", time.Time{}},
	} {
		if _, err := NewPaymentRequest(tc.chain, hkd, tc.payee, tc.amount, tc.order, tc.exp); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// FuzzParsePaymentURI: no input crashes the parser, and what it accepts
// writes back to a URI it reads the same.
func FuzzParsePaymentURI(f *testing.F) {
	f.Add("ethereum:0x0000000000000000000000000000000000001001@1337/transferWithReference?address=0x70997970C51812dc3A010C7d01b50e0d17dc79C8&uint256=12.34e2&bytes32=0x4f524445522d3132333400000000000000000000000000000000000000000000")
	f.Add("ethereum:pay-0x0000000000000000000000000000000000001001/transferWithReference?uint256=.5e1&address=0x0000000000000000000000000000000000000001&bytes32=0x00")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParsePaymentURI(s)
		if err != nil {
			return
		}
		if u.ChainID == 0 {
			u.ChainID = 1
		}
		back, err := ParsePaymentURI(u.String())
		if err != nil || back.Amount.Cmp(u.Amount) != 0 || back.To != u.To || back.Ref != u.Ref || back.Target != u.Target {
			t.Fatalf("%q parsed to %+v, which writes %q, read back as %+v (%v)", s, u, u.String(), back, err)
		}
	})
}
