package txdecode

import (
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
)

// dev is the dev chain's assets: CNY native (18 decimals, 2 minor units)
// and HKD (2 decimals).
var dev = Assets{
	0: {Symbol: "CNY", Decimals: 18, MinorUnits: 2},
	1: {Symbol: "HKD", Decimals: 2, MinorUnits: 2},
}

var (
	payer = common.HexToAddress("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
	payee = common.HexToAddress("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
	hkd   = chain.AssetAddress(1)
)

func ref(s string) [32]byte {
	var r [32]byte
	copy(r[:], s)
	return r
}

func pack(t *testing.T, method string, args ...any) []byte {
	t.Helper()
	for _, a := range []*abi.ABI{&chain.AssetABI, &chain.ComplianceABI, &chain.GovernanceABI, &chain.ExchangeABI} {
		if data, err := a.Pack(method, args...); err == nil {
			return data
		}
	}
	t.Fatalf("no ABI packs %s%v", method, args)
	return nil
}

// texts renders a call's or event's arguments as "name=text" lines.
func texts(vs []Value) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.Name + "=" + v.Text
	}
	return strings.Join(parts, "; ")
}

func TestDecodeCall(t *testing.T) {
	hundred := new(big.Int).Mul(big.NewInt(100), new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil))
	native := new(big.Int).Mul(big.NewInt(25), new(big.Int).Exp(big.NewInt(10), big.NewInt(17), nil))
	compliance, governance, exchange := chain.ComplianceAddress, chain.GovernanceAddress, chain.ExchangeAddress
	unknownFacade := chain.AssetAddress(7)
	tests := []struct {
		name      string
		to        *common.Address
		value     *big.Int
		data      []byte
		contract  string
		asset     string
		operation string
		args      string
	}{
		{"native transfer", &payee, native, nil, "account", "CNY", "transfer",
			"to=" + payee.Hex() + "; amount=2.50 CNY"},
		{"merchant payment", &hkd, new(big.Int), pack(t, "transferWithReference", payee, big.NewInt(1250), ref("ORDER-1001")),
			"asset", "HKD", "transferWithReference", "to=" + payee.Hex() + "; amount=12.50 HKD; ref=ORDER-1001"},
		{"mint", &hkd, new(big.Int), pack(t, "mint", payee, big.NewInt(10000), ref("DEP-2026-0001")),
			"asset", "HKD", "mint", "to=" + payee.Hex() + "; amount=100.00 HKD; bankRef=DEP-2026-0001"},
		{"binary reference in hex", &hkd, new(big.Int), pack(t, "transferWithReference", payee, big.NewInt(1), [32]byte{0x4f, 0x52, 0x00, 0x01}),
			"asset", "HKD", "transferWithReference", "to=" + payee.Hex() + "; amount=0.01 HKD; ref=0x4f52000100000000000000000000000000000000000000000000000000000000"},
		{"batch", &hkd, new(big.Int), pack(t, "batchTransfer", []common.Address{payer, payee}, []*big.Int{big.NewInt(5), big.NewInt(120000)}, ref("PAYROLL-12")),
			"asset", "HKD", "batchTransfer", "to=" + payer.Hex() + ", " + payee.Hex() + "; amounts=0.05 HKD, 1200.00 HKD; ref=PAYROLL-12"},
		{"withdrawal id is not an amount", &hkd, new(big.Int), pack(t, "refundWithdrawal", big.NewInt(3), "bank\nrejected"),
			"asset", "HKD", "refundWithdrawal", `id=3; reason="bank\nrejected"`},
		{"native asset via facade", ptr(chain.AssetAddress(0)), new(big.Int), pack(t, "transfer", payee, hundred),
			"asset", "CNY", "transfer", "to=" + payee.Hex() + "; amount=100.00 CNY"},
		{"unknown asset", &unknownFacade, new(big.Int), pack(t, "transfer", payee, big.NewInt(1250)),
			"asset", "asset #7", "transfer", "to=" + payee.Hex() + "; amount=1250 (asset #7 base units)"},
		{"kyc tier is a number", &compliance, new(big.Int), pack(t, "setKycTier", payee, uint8(2), "documents verified"),
			"compliance", "", "setKycTier", "account=" + payee.Hex() + "; tier=2; reason=documents verified"},
		{"governance amount counts its asset input", &governance, new(big.Int), pack(t, "proposeSetTierLimits", uint8(1), hkd, big.NewInt(500000), big.NewInt(100000), big.NewInt(200000)),
			"governance", "", "proposeSetTierLimits", "tier=1; asset=" + hkd.Hex() + " (HKD); maxBalance=5000.00 HKD; maxTransfer=1000.00 HKD; maxDailyOutflow=2000.00 HKD"},
		{"exchange amounts count their own assets", &exchange, new(big.Int), pack(t, "createOffer", hkd, big.NewInt(1000), chain.AssetAddress(0), hundred, common.Address{}, uint64(99)),
			"exchange", "", "createOffer", "assetOut=" + hkd.Hex() + " (HKD); amountOut=10.00 HKD; assetIn=" + chain.AssetAddress(0).Hex() + " (CNY); amountIn=100.00 CNY; counterparty=" + (common.Address{}).Hex() + "; expiry=99"},
		{"unknown selector", &hkd, new(big.Int), []byte{1, 2, 3, 4, 5}, "asset", "HKD", "", ""},
		{"truncated calldata", &hkd, new(big.Int), pack(t, "transfer", payee, big.NewInt(1))[:30], "asset", "HKD", "", ""},
		{"short calldata", &compliance, new(big.Int), []byte{1}, "compliance", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DecodeCall(tc.to, tc.value, tc.data, dev)
			asset := ""
			if c.Asset != nil {
				asset = c.Asset.Symbol
			}
			if c.Contract != tc.contract || asset != tc.asset || c.Operation != tc.operation || texts(c.Args) != tc.args {
				t.Fatalf("got %s/%s/%s %q\nwant %s/%s/%s %q", c.Contract, asset, c.Operation, texts(c.Args), tc.contract, tc.asset, tc.operation, tc.args)
			}
			if (tc.operation == "" && tc.contract != "account") != (len(c.Data) > 0) {
				t.Errorf("undecoded data %x for operation %q", c.Data, c.Operation)
			}
			if _, err := json.Marshal(c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func ptr(a common.Address) *common.Address { return &a }

// TestScriptValues: the JSON values are base units, EIP-55 and hex, so a
// script never parses a rendering meant for people.
func TestScriptValues(t *testing.T) {
	c := DecodeCall(&hkd, new(big.Int), pack(t, "transferWithReference", payee, big.NewInt(1250), ref("ORDER-1001")), dev)
	got, err := json.Marshal(c.Args)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"to","type":"address","value":"` + payee.Hex() + `","text":"` + payee.Hex() + `"},` +
		`{"name":"amount","type":"uint256","value":"1250","text":"12.50 HKD","asset":"HKD"},` +
		`{"name":"ref","type":"bytes32","value":"0x4f524445522d3130303100000000000000000000000000000000000000000000","text":"ORDER-1001"}]`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestDecodeLog(t *testing.T) {
	ev := chain.AssetABI.Events
	topic := func(a common.Address) common.Hash { return common.BytesToHash(a[:]) }
	amount := func(n int64) []byte { return common.LeftPadBytes(big.NewInt(n).Bytes(), 32) }
	r := ref("PAYOUT-77")
	wdData, err := ev["WithdrawalRequested"].Inputs.NonIndexed().Pack(big.NewInt(5000), r)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		log  types.Log
		want string // name: args
	}{
		{"transfer", types.Log{Address: hkd, Topics: []common.Hash{ev["Transfer"].ID, topic(payer), topic(payee)}, Data: amount(1250)},
			"Transfer: from=" + payer.Hex() + "; to=" + payee.Hex() + "; value=12.50 HKD"},
		{"payment reference", types.Log{Address: hkd, Topics: []common.Hash{ev["PaymentReference"].ID, common.Hash(ref("ORDER-1001")), topic(payer), topic(payee)}, Data: amount(1250)},
			"PaymentReference: ref=ORDER-1001; from=" + payer.Hex() + "; to=" + payee.Hex() + "; amount=12.50 HKD"},
		{"indexed and data", types.Log{Address: hkd, Topics: []common.Hash{ev["WithdrawalRequested"].ID, common.BigToHash(big.NewInt(4)), topic(payer)}, Data: wdData},
			"WithdrawalRequested: id=4; holder=" + payer.Hex() + "; amount=50.00 HKD; payoutRef=PAYOUT-77"},
		{"missing topic", types.Log{Address: hkd, Topics: []common.Hash{ev["Transfer"].ID, topic(payer)}, Data: amount(1)}, ": "},
		{"short data", types.Log{Address: hkd, Topics: []common.Hash{ev["Transfer"].ID, topic(payer), topic(payee)}, Data: []byte{1}}, ": "},
		{"unknown topic", types.Log{Address: hkd, Topics: []common.Hash{{1}}}, ": "},
		{"no topics", types.Log{Address: chain.ComplianceAddress}, ": "},
		{"not a system contract", types.Log{Address: payee, Topics: []common.Hash{ev["Transfer"].ID}}, ": "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := DecodeLog(&tc.log, dev)
			if got := e.Name + ": " + texts(e.Args); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if e.Name == "" && (len(e.Topics) != len(tc.log.Topics) || string(e.Data) != string(tc.log.Data)) {
				t.Errorf("an undecoded log keeps its topics and data: %+v", e)
			}
		})
	}
}

func TestFormatUnits(t *testing.T) {
	e18 := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	tests := []struct {
		v               *big.Int
		decimals, minor uint8
		want            string
	}{
		{big.NewInt(1250), 2, 2, "12.50"},
		{big.NewInt(1200), 2, 2, "12.00"},
		{big.NewInt(5), 2, 2, "0.05"},
		{big.NewInt(0), 2, 2, "0.00"},
		{e18, 18, 2, "1.00"},
		{new(big.Int).Add(e18, big.NewInt(1)), 18, 2, "1.000000000000000001"},
		{big.NewInt(1), 18, 2, "0.000000000000000001"},
		{big.NewInt(1250), 0, 0, "1250"},
		{big.NewInt(1250), 3, 3, "1.250"},
		{big.NewInt(1250), 3, 0, "1.25"},
		{big.NewInt(1000), 3, 0, "1"},
		{big.NewInt(-1250), 2, 2, "-12.50"},
		{big.NewInt(7), 2, 5, "0.07"}, // minor units above decimals are capped
		{nil, 2, 2, "0.00"},
	}
	for _, tc := range tests {
		if got := FormatUnits(tc.v, tc.decimals, tc.minor); got != tc.want {
			t.Errorf("FormatUnits(%v, %d, %d) = %q, want %q", tc.v, tc.decimals, tc.minor, got, tc.want)
		}
	}
}

func TestReference(t *testing.T) {
	var zero [32]byte
	full := ref(strings.Repeat("A", 32))
	tests := []struct {
		ref  [32]byte
		want string
	}{
		{ref("ORDER-1001"), "ORDER-1001"},
		{ref("订单-42"), "订单-42"},
		{full, strings.Repeat("A", 32)},
		{zero, "0x" + strings.Repeat("0", 64)},
		{ref("A\x1b[2J"), "0x411b5b324a" + strings.Repeat("0", 54)},         // an escape sequence is not text
		{ref("\xff\xfe"), "0xfffe" + strings.Repeat("0", 60)},               // not UTF-8
		{[32]byte{0, 'A'}, "0x0041" + strings.Repeat("0", 60)},              // a leading zero byte
		{ref("ORDER\x00X"), "0x4f52444552005800" + strings.Repeat("0", 48)}, // a zero inside
	}
	for _, tc := range tests {
		if got := Reference(tc.ref); got != tc.want {
			t.Errorf("Reference(%x) = %q, want %q", tc.ref, got, tc.want)
		}
	}
}

// FuzzDecode: no calldata or log, however malformed, makes the decoder
// panic, and what it returns always marshals to JSON.
func FuzzDecode(f *testing.F) {
	f.Add(chain.AssetAddress(1).Bytes(), []byte{0xa9, 0x05, 0x9c, 0xbb}, []byte{})
	f.Add(chain.ExchangeAddress.Bytes(), []byte{}, chain.AssetABI.Events["Transfer"].ID.Bytes())
	f.Fuzz(func(t *testing.T, to, data, topics []byte) {
		addr := common.BytesToAddress(to)
		c := DecodeCall(&addr, big.NewInt(1), data, dev)
		var ts []common.Hash
		for len(topics) >= 32 && len(ts) < 4 {
			ts = append(ts, common.BytesToHash(topics[:32]))
			topics = topics[32:]
		}
		e := DecodeLog(&types.Log{Address: addr, Topics: ts, Data: data}, dev)
		if _, err := json.Marshal(c); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(e); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDecodeResult(t *testing.T) {
	word := func(n int64) []byte { return common.LeftPadBytes(big.NewInt(n).Bytes(), 32) }
	neg := common.LeftPadBytes(new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(150)).Bytes(), 32) // int256 -150
	compliance := chain.ComplianceAddress
	tests := []struct {
		name string
		to   common.Address
		data []byte
		out  []byte
		want string
	}{
		{"balanceOf counts the facade's asset", hkd, pack(t, "balanceOf", payee), word(10025), "result=100.25 HKD"},
		{"named amounts", hkd, pack(t, "paidUnderReference", payee, ref("ORDER-1001"), payer), append(word(1250), word(250)...), "paid=12.50 HKD; refunded=2.50 HKD"},
		{"a negative amount", hkd, pack(t, "bankIssuance", payer), append(append(append(word(100), word(250)...), neg...), word(0)...),
			"minted=1.00 HKD; burned=2.50 HKD; outstanding=-1.50 HKD; cap=0.00 HKD"},
		{"the asset input counts", compliance, pack(t, "remainingDailyAllowance", payee, hkd), word(5000), "result=50.00 HKD"},
		{"a tier is a number", compliance, pack(t, "kycTier", payee), word(2), "result=2"},
		{"decimals are not an amount", hkd, pack(t, "decimals"), word(2), "result=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := DecodeResult(tc.to, tc.data, tc.out, dev)
			if err != nil {
				t.Fatal(err)
			}
			if got := texts(vs); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []struct {
		name      string
		to        common.Address
		data, out []byte
	}{
		{"an account", payee, pack(t, "balanceOf", payee), word(1)},
		{"no selector", hkd, []byte{1}, word(1)},
		{"unknown selector", hkd, []byte{1, 2, 3, 4}, word(1)},
		{"short result", hkd, pack(t, "balanceOf", payee), []byte{1}},
	} {
		if vs, err := DecodeResult(bad.to, bad.data, bad.out, dev); err == nil {
			t.Errorf("%s: %v, want an error", bad.name, vs)
		}
	}
}
