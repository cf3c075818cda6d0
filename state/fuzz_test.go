package state

import (
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// FuzzSystemCall feeds arbitrary calldata, from arbitrary senders, to every
// system contract on the dev genesis state: a call either succeeds or
// reverts with a reason; it never panics, never fails with any other error,
// and admission (CheckCall) never accepts what execution finds malformed.
func FuzzSystemCall(f *testing.F) {
	c := newGenesisChain(f)
	bank, err := genesis.DevAddress(genesis.DevBankBIndex)
	if err != nil {
		f.Fatal(err)
	}
	seed := func(compliance bool, method string, args ...any) {
		contract := &chain.AssetABI
		if compliance {
			contract = &chain.ComplianceABI
		}
		data, err := contract.Pack(method, args...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint16(1), uint8(0), data)
	}
	to := common.Address{7}
	seed(false, "transfer", to, big.NewInt(5))
	seed(false, "mint", to, big.NewInt(5), [32]byte{1})
	seed(false, "refundWithdrawal", big.NewInt(1), "reason")
	seed(false, "claimWithdrawal", big.NewInt(1), [32]byte{3})
	seed(false, "returnWithdrawal", big.NewInt(1), "AC04")
	seed(false, "reverseMint", [32]byte{1}, "reversed")
	seed(false, "bankIssuance", bank)
	seed(false, "mintRecord", [32]byte{1})
	seed(false, "balanceOf", to)
	seed(true, "freeze", to, "court order")
	seed(false, "batchTransfer", []common.Address{to, {8}}, []*big.Int{big.NewInt(5), big.NewInt(6)}, [32]byte{2})
	f.Add(uint16(0), uint8(1), []byte{0xa9, 0x05, 0x9c, 0xbb})
	rules, err := LoadRules(c.state)
	if err != nil {
		f.Fatal(err)
	}
	senders := []common.Address{c.keys[0].Address(), bank, rules.Compliance, {9}}
	targets := []common.Address{chain.AssetAddress(0), chain.AssetAddress(1), chain.ComplianceAddress, chain.AssetAddress(2), chain.ExchangeAddress,
		chain.ConfirmationsAddress, chain.DisputesAddress}
	for _, args := range [][]any{
		{"createOffer", chain.AssetAddress(1), big.NewInt(5), chain.AssetAddress(0), big.NewInt(7), to, uint64(1 << 40)},
		{"acceptOffer", big.NewInt(1)},
		{"cancelOffer", big.NewInt(1)},
		{"offer", big.NewInt(1)},
	} {
		data, err := chain.ExchangeABI.Pack(args[0].(string), args[1:]...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint16(slices.Index(targets, chain.ExchangeAddress)), uint8(0), data)
	}
	for _, c := range []struct {
		to   common.Address
		abi  *abi.ABI
		args []any
	}{
		{chain.ConfirmationsAddress, &chain.ConfirmationsABI, []any{"setConfirmation", to, []common.Address{chain.AssetAddress(1)}, []*big.Int{big.NewInt(5)}}},
		{chain.ConfirmationsAddress, &chain.ConfirmationsABI, []any{"confirmPayment", big.NewInt(1)}},
		{chain.ConfirmationsAddress, &chain.ConfirmationsABI, []any{"pendingPayment", big.NewInt(1)}},
		{chain.ConfirmationsAddress, &chain.ConfirmationsABI, []any{"thresholdOf", to, chain.AssetAddress(1)}},
		{chain.DisputesAddress, &chain.DisputesABI, []any{"openDispute", chain.AssetAddress(1), to, [32]byte{1}, big.NewInt(5), uint8(2), [32]byte{}}},
		{chain.DisputesAddress, &chain.DisputesABI, []any{"upholdDispute", big.NewInt(1), big.NewInt(5), "why"}},
		{chain.DisputesAddress, &chain.DisputesABI, []any{"dispute", big.NewInt(1)}},
	} {
		data, err := c.abi.Pack(c.args[0].(string), c.args[1:]...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint16(slices.Index(targets, c.to)), uint8(0), data)
	}
	f.Fuzz(func(t *testing.T, target uint16, sender uint8, data []byte) {
		to := targets[int(target)%len(targets)]
		from := senders[int(sender)%len(senders)]
		_, _, err := Call(c.state, BlockContext{Number: 1, TimeMs: c.parent.TimeMs + 1000}, from, to, new(big.Int), data)
		if err != nil {
			if _, ok := IsRevert(err); !ok {
				t.Fatalf("call to %s: non-revert error %v", to, err)
			}
		}
		if admitErr := CheckCall(rules, to, data); admitErr == nil && err != nil {
			if r, _ := IsRevert(err); r != nil && (containsAny(r.Reason, "malformed", "selector", "no system contract")) {
				t.Fatalf("admission accepted calldata execution calls malformed: %v", err)
			}
		}
	})
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// FuzzEscrowOf feeds arbitrary records to the audit's escrow reader (a data
// dir's state is untrusted input): it returns an error or an amount, never
// panics, and reads only the escrow records' prefixes.
func FuzzEscrowOf(f *testing.F) {
	f.Add([]byte(HeldPrefix+"\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{0xc0})
	f.Add([]byte(WithdrawPrefix+"\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{0xc3, 0x01, 0x02, 0x03})
	f.Add([]byte(OfferPrefix+"12345678"), []byte{})
	f.Add([]byte(BalancePrefix+"1234"), []byte{1})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		_, amount, open, err := EscrowOf(k, v)
		if err == nil && open && (amount == nil || amount.Sign() < 0) {
			t.Fatalf("open escrow record %x with amount %v", k, amount)
		}
		if (err != nil || open) && !(len(k) == 10 && (string(k[:2]) == HeldPrefix || string(k[:2]) == WithdrawPrefix || string(k[:2]) == OfferPrefix)) {
			t.Fatalf("key %x is not an escrow record, yet read as one (%v, %v)", k, open, err)
		}
	})
}
