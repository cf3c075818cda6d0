package state

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// reasonCase is one transaction of TestExecuteKeepsReasons: what it does
// and the exact reason it fails with ("" for success).
type reasonCase struct {
	name   string
	from   uint32 // dev key index
	to     common.Address
	value  *big.Int
	data   []byte
	gas    uint64
	reason string
}

// pack ABI-encodes a call of method, which the test names correctly.
func pack(a abi.ABI, method string, args ...any) []byte {
	data, err := a.Pack(method, args...)
	if err != nil {
		panic(fmt.Sprintf("pack %s: %v", method, err))
	}
	return data
}

// TestExecuteKeepsReasons runs one block of transactions that fail in
// every way execution decides, mixed with successes, through Execute (the
// path ApplyBlock and the audit's replay take), and checks that
// Result.Reasons names exactly the status-0 receipts, in order, each with
// its exact text.
func TestExecuteKeepsReasons(t *testing.T) {
	const (
		alice, bob, carol = 0, 1, 2
		compliance        = genesis.DevComplianceIndex
		basic             = 510 // fresh: made tier 1 in the block
	)
	g := genesis.Dev()
	keys := map[uint32]*crypto.PrivateKey{}
	addr := func(i uint32) common.Address {
		if k, ok := keys[i]; ok {
			return k.Address()
		}
		k, err := genesis.DevKey(i)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
		return k.Address()
	}
	fresh := common.HexToAddress("0x00000000000000000000000000000000000fe5a1") // tier 0, never funded
	cny := func(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }
	hkdFacade := chain.AssetAddress(1)
	noAsset := chain.AssetAddress(7)
	ab, cb := chain.AssetABI, chain.ComplianceABI

	cases := []reasonCase{
		{name: "recipient over its tier's balance limit", from: alice, to: fresh, value: cny(1001),
			reason: fmt.Sprintf("balance of %s would be 1001.00 CNY, over the maximum 1000.00 CNY of tier 0", fresh)},
		{name: "freeze bob", from: compliance, to: chain.ComplianceAddress,
			data: pack(cb, "freeze", addr(bob), "court order")},
		{name: "frozen sender", from: bob, to: addr(carol), value: cny(1),
			reason: fmt.Sprintf("account %s is frozen", addr(bob))},
		{name: "frozen recipient", from: carol, to: addr(bob), value: cny(1),
			reason: fmt.Sprintf("account %s is frozen", addr(bob))},
		{name: "insufficient balance", from: carol, to: hkdFacade,
			data:   pack(ab, "transfer", addr(alice), big.NewInt(100000000000001)),
			reason: fmt.Sprintf("insufficient balance: %s has 1000000000000.00 HKD, needs 1000000000000.01 HKD", addr(carol))},
		{name: "unknown asset", from: carol, to: noAsset,
			data:   pack(ab, "transfer", addr(alice), big.NewInt(1)),
			reason: fmt.Sprintf("no system contract at %s", noAsset)},
		{name: "tier 0 sender", from: basic, to: addr(alice), value: new(big.Int),
			reason: fmt.Sprintf("account %s is not KYC-verified: tier 0 may only receive", addr(basic))},
		{name: "raise basic to tier 1", from: compliance, to: chain.ComplianceAddress,
			data: pack(cb, "setKycTier", addr(basic), uint8(1), "kyc done")},
		{name: "fund basic", from: alice, to: addr(basic), value: cny(25000)},
		{name: "over the per-transfer limit", from: basic, to: addr(alice), value: cny(5001),
			reason: "amount 5001.00 CNY is over the per-transfer limit 5000.00 CNY of tier 1"},
	}
	for i := 0; i < 4; i++ {
		cases = append(cases, reasonCase{name: fmt.Sprintf("basic sends 5000 (%d)", i+1), from: basic, to: addr(alice), value: cny(5000)})
	}
	cases = append(cases,
		reasonCase{name: "over the daily outflow (velocity)", from: basic, to: addr(alice), value: cny(1),
			reason: "amount 1.00 CNY is over the daily outflow limit 20000.00 CNY of tier 1: 0.00 CNY left today (UTC)"},
		reasonCase{name: "calldata to an account", from: alice, to: addr(carol), value: cny(1), data: []byte{1, 2, 3, 4},
			reason: ErrDataNotAllowed.Error()},
		reasonCase{name: "mint by a non-bank", from: alice, to: chain.AssetAddress(NativeAsset),
			data:   pack(ab, "mint", addr(alice), cny(1), common.Hash{1}),
			reason: fmt.Sprintf("%s is not an issuing bank of CNY", addr(alice))},
		reasonCase{name: "system operation out of gas", from: carol, to: hkdFacade, gas: chain.GasPerTransfer,
			data:   pack(ab, "transfer", addr(alice), big.NewInt(1)),
			reason: fmt.Sprintf("out of gas: a system operation uses %d", chain.GasPerSystemCall)},
		reasonCase{name: "a success after the failures", from: carol, to: addr(alice), value: cny(1)},
	)

	_, base, err := GenesisBlock(g)
	if err != nil {
		t.Fatal(err)
	}
	chainID := g.ChainIDBig()
	nonces := map[uint32]uint64{}
	var txs []*types.Transaction
	var senders []common.Address
	for _, c := range cases {
		gas := c.gas
		if gas == 0 {
			gas = 100_000
		}
		value := c.value
		if value == nil {
			value = new(big.Int)
		}
		to := c.to
		from := addr(c.from)
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: nonces[c.from], To: &to,
			Value: value, Gas: gas, Data: c.data, GasTipCap: new(big.Int), GasFeeCap: new(big.Int)}), chainID, keys[c.from])
		if err != nil {
			t.Fatal(err)
		}
		nonces[c.from]++
		txs, senders = append(txs, tx), append(senders, from)
	}
	res, err := Execute(base, BlockContext{Number: 1, TimeMs: g.TimestampMs + 1000}, txs, senders)
	if err != nil {
		t.Fatal(err)
	}
	var want []TxReason
	for i, c := range cases {
		if got := res.Receipts[i].Status == StatusSuccess; got != (c.reason == "") {
			t.Errorf("tx %d (%s): status %d, want failure %q", i, c.name, res.Receipts[i].Status, c.reason)
		}
		if c.reason != "" {
			want = append(want, TxReason{Index: uint32(i), Reason: c.reason})
		}
	}
	if len(res.Reasons) != len(want) {
		t.Fatalf("%d reasons kept, want %d: %+v", len(res.Reasons), len(want), res.Reasons)
	}
	for j, w := range want {
		if got := res.Reasons[j]; got != w {
			t.Errorf("reason %d (tx %d, %s):\n got %d %q\nwant %d %q", j, w.Index, cases[w.Index].name, got.Index, got.Reason, w.Index, w.Reason)
		}
	}
	// ReasonAt, which serves blocks applied before reasons were kept,
	// re-executes up to each transaction and gives the same text.
	blk := BlockContext{Number: 1, TimeMs: g.TimestampMs + 1000}
	for i, c := range cases {
		got, err := ReasonAt(base, blk, txs, senders, i)
		if err != nil || got != c.reason {
			t.Errorf("ReasonAt tx %d (%s) = %q, %v; want %q", i, c.name, got, err, c.reason)
		}
	}
	for _, i := range []int{-1, len(txs)} {
		if _, err := ReasonAt(base, blk, txs, senders, i); err == nil {
			t.Errorf("ReasonAt of tx %d of %d: no error", i, len(txs))
		}
	}
	if _, err := ReasonAt(base, blk, txs, senders[:2], 2); err == nil {
		t.Error("ReasonAt with a sender missing: no error")
	}
}

func TestFailureReasonBounds(t *testing.T) {
	long := strings.Repeat("a", MaxReasonBytes-4) + "€€" // the cut falls inside a 3-byte character
	cases := []struct {
		in, want string
	}{
		{"account 0x1 is frozen", "account 0x1 is frozen"},
		{"", noReason},
		{strings.Repeat("x", MaxReasonBytes), strings.Repeat("x", MaxReasonBytes)},
		{strings.Repeat("x", MaxReasonBytes+1), strings.Repeat("x", MaxReasonBytes-len(reasonCut)) + reasonCut},
		{long, strings.Repeat("a", MaxReasonBytes-4) + reasonCut},
		{"bad \xff byte", "bad \uFFFD byte"},
	}
	for _, c := range cases {
		got := FailureReason(&Revert{Reason: c.in})
		if got != c.want {
			t.Errorf("FailureReason(%.40q…) = %.60q…, want %.60q…", c.in, got, c.want)
		}
		if len(got) > MaxReasonBytes || !utf8.ValidString(got) || got == "" {
			t.Errorf("FailureReason(%.40q…): %d bytes, valid UTF-8 %v", c.in, len(got), utf8.ValidString(got))
		}
	}
	if got := FailureReason(fmt.Errorf("to[0]: %w", errors.New("x"))); got != "to[0]: x" {
		t.Errorf("wrapped reason %q", got)
	}
}
