package rpc

import (
	"encoding/json"
	"fmt"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// TestGetAccountRisk: tally_getAccount shows an account's velocity
// counters against its rules' caps, its active suspension with the rule
// and numbers that caused it, and its watch list entry; an account under
// none shows nulls and an empty list.
func TestGetAccountRisk(t *testing.T) {
	g := genesis.Dev()
	g.Risk = &genesis.Risk{Velocity: []genesis.VelocityRule{{Name: "hkd-hour", Tier: genesis.DevTierInstitutional, Asset: "HKD",
		Window: genesis.WindowHour, MaxTransfers: 2, MaxAmount: &genesis.Amount{Int: big.NewInt(10_000)}, SuspendSeconds: 600}}}
	c := newFilterChainOn(t, g)
	_, client := serveFilters(t, c)
	comp, err := genesis.DevKey(genesis.DevComplianceIndex)
	if err != nil {
		t.Fatal(err)
	}
	watch, err := chain.ComplianceABI.Pack("watch", c.addr(1), "sanctions list hit")
	if err != nil {
		t.Fatal(err)
	}
	id := big.NewInt(genesis.DevChainID)
	watchTx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &chain.ComplianceAddress, Gas: 100_000, Data: watch}), id, comp)
	if err != nil {
		t.Fatal(err)
	}
	account := func(i int) map[string]json.RawMessage {
		t.Helper()
		var raw map[string]json.RawMessage
		if err := client.Call(&raw, "tally_getAccount", c.addr(i)); err != nil {
			t.Fatal(err)
		}
		return raw
	}
	expect := func(what string, got json.RawMessage, want string) {
		t.Helper()
		if string(got) != want {
			t.Errorf("%s:\n got %s\nwant %s", what, got, want)
		}
	}
	fresh := account(0)
	expect("velocity before any transfer", fresh["velocity"], `[{"rule":"hkd-hour","asset":"HKD","window":"1h","transfers":"0x0","maxTransfers":"0x2","amount":"0x0","maxAmount":"0x2710"}]`)
	expect("suspension", fresh["suspension"], "null")
	expect("watchList", fresh["watchList"], "null")

	c.block(c.call(0, 1, "transfer", c.addr(2), big.NewInt(1500)), c.call(0, 1, "transfer", c.addr(2), big.NewInt(500)), watchTx)
	expect("velocity after two transfers", account(0)["velocity"], `[{"rule":"hkd-hour","asset":"HKD","window":"1h","transfers":"0x2","maxTransfers":"0x2","amount":"0x7d0","maxAmount":"0x2710"}]`)
	expect("watchList", account(1)["watchList"], `{"reason":"sanctions list hit","height":"0x1"}`)

	// The third transfer fires the rule: refused, and the sender suspended.
	third := c.call(0, 1, "transfer", c.addr(2), big.NewInt(1))
	tip := c.db.Tip()
	built, err := state.Build(c.db, tip.Parent(), []*types.Transaction{third}, []common.Address{c.addr(0)}, nil, tip.Head.TimeMs+1000, c.val, genesis.DevChainID)
	if err != nil {
		t.Fatal(err)
	}
	c.raftIdx++
	applied, err := c.db.ApplyBlock(built.Block, c.raftIdx, c.senders)
	if err != nil || applied.Receipts[0].Status != types.ReceiptStatusFailed {
		t.Fatalf("apply the third transfer: %v", err)
	}
	at := tip.Head.TimeMs + 1000 // the block time Build was given
	got := account(0)
	expect("suspension", got["suspension"], fmt.Sprintf(`{"rule":"hkd-hour","reason":"risk:hkd-hour:3 transfers in 1h, limit 2","sinceMs":"%#x","untilMs":"%#x","height":"0x2"}`, at, at+600_000))
	expect("frozen", got["frozen"], "false") // a suspension is not compliance's freeze flag
	var reason string
	if err := client.Call(&reason, "tally_getTransactionReason", third.Hash()); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("velocity hkd-hour: 3 transfers in 1h, limit 2; %s suspended until %s", c.addr(0), state.FormatTimeMs(at+600_000)); reason != want {
		t.Errorf("reason %q, want %q", reason, want)
	}
	expect("another account's velocity", account(3)["velocity"], `[{"rule":"hkd-hour","asset":"HKD","window":"1h","transfers":"0x0","maxTransfers":"0x2","amount":"0x0","maxAmount":"0x2710"}]`)
}
