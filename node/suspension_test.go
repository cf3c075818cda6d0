package node

import (
	"context"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/state"
)

// A top-tier account loses its rate-limit exemption while a velocity rule
// has it suspended, as it does while frozen (decision 14: a suspension
// stops what a freeze stops): its transactions are still admitted and
// included with status 0, so an exemption would let it submit unbounded.
// The exemption comes back when the suspension ends: at its until time
// with no transaction, or when compliance lifts it.
func TestSuspendedTopTierNotExempt(t *testing.T) {
	g := genesis.Dev()
	g.Risk = &genesis.Risk{Velocity: []genesis.VelocityRule{{Name: "cny-hour", Tier: genesis.DevTierInstitutional,
		Asset: g.Assets[0].Symbol, Window: genesis.WindowHour, MaxAmount: &genesis.Amount{Int: big.NewInt(10)}, SuspendSeconds: 3600}}}
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := os.WriteFile(path, g.Indent(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Genesis = path
	cfg.RateLimit = RateLimitConfig{PerAccount: 0.001, AccountBurst: 1, MaxTracked: 100, ExemptTopTier: true}
	n := startConfiguredDevNode(t, cfg)
	ec, rc := dial(t, n)

	key, err := genesis.DevKey(0) // top tier in the dev genesis
	if err != nil {
		t.Fatal(err)
	}
	comp, err := genesis.DevKey(genesis.DevComplianceIndex)
	if err != nil {
		t.Fatal(err)
	}
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0x42}
	// Transfers of 1; nonce 1 sends 10, over the hour's cap of 10.
	transfer := func(nonce uint64) (*types.Transaction, error) {
		t.Helper()
		value := big.NewInt(1)
		if nonce == 1 {
			value = big.NewInt(10)
		}
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Value: value, Gas: 21000}), id, key)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tx.MarshalBinary()
		var h common.Hash
		return tx, rc.CallContext(context.Background(), &h, "eth_sendRawTransaction", hexutil.Encode(raw))
	}
	mustSend := func(nonce uint64, want uint64) {
		t.Helper()
		tx, err := transfer(nonce)
		if err != nil {
			t.Fatalf("transfer %d: %v", nonce, err)
		}
		if r := waitReceipt(t, ec, tx.Hash()); r.Status != want {
			t.Fatalf("transfer %d: status %d, want %d", nonce, r.Status, want)
		}
	}
	throttled := func(nonce uint64) {
		t.Helper()
		tx, err := transfer(nonce)
		var rerr gethrpc.Error
		if !errors.As(err, &rerr) || rerr.ErrorCode() != rpc.CodeLimitExceeded || !strings.Contains(err.Error(), "rate limit exceeded for account "+key.Address().Hex()) {
			t.Fatalf("transfer %d: %v, want -32005 for the account", nonce, err)
		}
		if _, _, ok := n.pool.Get(tx.Hash()); ok {
			t.Fatalf("throttled transfer %d admitted", nonce)
		}
	}

	// Exempt while not suspended: two transfers at once pass the burst of 1.
	mustSend(0, types.ReceiptStatusSuccessful)
	if !n.topTier(key.Address()) {
		t.Fatal("top-tier account not exempt before its suspension")
	}
	// The second transfer takes the hour over its cap: refused, and the
	// sender suspended.
	mustSend(1, types.ReceiptStatusFailed)
	acc, err := n.db.Account(key.Address())
	if err != nil || acc.Frozen || !acc.Suspended {
		t.Fatalf("after the rule fired: %+v, %v; want suspended, not frozen", acc, err)
	}
	s, ok, err := state.NewOverlay(n.db).Suspension(key.Address())
	if err != nil || !ok {
		t.Fatalf("suspension record: %v, %v", ok, err)
	}
	if n.topTier(key.Address()) {
		t.Fatal("suspended top-tier account still exempt from the rate limits")
	}
	// Its burst of 1 is all it gets now; the one admitted is included with
	// status 0 (the suspension refuses it).
	mustSend(2, types.ReceiptStatusFailed)
	throttled(3)

	// The suspension lifts itself at until: exempt from then on, with no
	// transaction (the exemption judges the time the next block will have).
	if n.exemptAt(key.Address(), s.UntilMs-1) || !n.exemptAt(key.Address(), s.UntilMs) {
		t.Fatalf("exempt just before until %d: %v, at until: %v; want false, true", s.UntilMs,
			n.exemptAt(key.Address(), s.UntilMs-1), n.exemptAt(key.Address(), s.UntilMs))
	}

	// Compliance lifts it early: exempt again at once.
	lift, err := chain.ComplianceABI.Pack("liftSuspension", key.Address(), "reviewed: payroll run")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &chain.ComplianceAddress, Gas: 100_000, Data: lift}), id, comp)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tx.MarshalBinary()
	if err := rc.CallContext(context.Background(), nil, "eth_sendRawTransaction", hexutil.Encode(raw)); err != nil {
		t.Fatal(err)
	}
	if r := waitReceipt(t, ec, tx.Hash()); r.Status != types.ReceiptStatusSuccessful {
		t.Fatal("liftSuspension failed")
	}
	if !n.topTier(key.Address()) {
		t.Fatal("not exempt after compliance lifted the suspension")
	}
	// Two at once again (the hour holds 3 of its 10 after them).
	for nonce := uint64(3); nonce < 5; nonce++ {
		if _, err := transfer(nonce); err != nil {
			t.Fatalf("transfer %d after the lift: %v", nonce, err)
		}
	}
}
