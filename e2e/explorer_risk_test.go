package e2e

import (
	"context"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// TestExplorerRisk drives the account page of the explorer a real tallyd
// serves (on the dev genesis with two velocity rules) in a real headless
// Chromium: the page shows each velocity rule of the account's tier with
// what it sent in the window against the caps; once a transfer takes the
// hour over its cap, the sender's page shows the suspension with its end
// and its risk:<rule>:<numbers> reason (the rows of tally_getAccount),
// not as a freeze; when compliance lifts it the row goes. An account the
// rule did not fire on shows no suspension.
func TestExplorerRisk(t *testing.T) {
	skipShort(t)
	chromium := requireChromium(t)
	g := genesis.Dev()
	hkd := uint32(1)
	g.Risk = &genesis.Risk{Velocity: []genesis.VelocityRule{
		{Name: "hkd-hour", Tier: genesis.DevTierInstitutional, Asset: "HKD", Window: genesis.WindowHour,
			MaxTransfers: 2, MaxAmount: &genesis.Amount{Int: big.NewInt(10_000)}, SuspendSeconds: 600},
		{Name: "hkd-day", Tier: genesis.DevTierInstitutional, Asset: "HKD", Window: genesis.WindowDay,
			MaxAmount: &genesis.Amount{Int: big.NewInt(50_000)}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n, c := startGenesisNode(t, ctx, g)
	send := func(key int, op wallet.Op, want uint64) common.Hash {
		t.Helper()
		return sendDevOp(t, ctx, c, key, op, want)
	}
	payer, shop := devWalletKey(t, 0).Address(), devWalletKey(t, 1).Address()
	pay := func(amount int64, want uint64) common.Hash {
		t.Helper()
		op, err := wallet.AssetOp(hkd, "transfer", shop, big.NewInt(amount))
		if err != nil {
			t.Fatal(err)
		}
		return send(0, op, want)
	}

	b := newBrowser(t, ctx, chromium)
	base := n.url + "/explorer/"
	// The counters against the caps, before the rule fires.
	pay(1250, types.ReceiptStatusSuccessful)
	pay(700, types.ReceiptStatusSuccessful)
	page := visit(t, b, base+"address/"+payer.Hex())
	velocity := []string{"Velocity rules", "hkd-hour", "1h", "2 of 2", "19.50 HKD of 100.00 HKD", "hkd-day", "24h", "19.50 HKD of 500.00 HKD"}
	for _, want := range velocity {
		if !strings.Contains(page, want) {
			t.Errorf("account page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "suspended") {
		t.Errorf("account page shows a suspension before any rule fired:\n%s", page)
	}

	// A third transfer in the hour fires hkd-hour: refused (status 0), not
	// counted, and the payer suspended for 600 s.
	third := pay(1, types.ReceiptStatusFailed)
	var acct struct {
		Frozen     bool `json:"frozen"`
		Suspension *struct {
			Reason  string         `json:"reason"`
			UntilMs hexutil.Uint64 `json:"untilMs"`
		} `json:"suspension"`
	}
	if err := c.Call(ctx, &acct, "tally_getAccount", payer); err != nil || acct.Suspension == nil || acct.Frozen {
		t.Fatalf("tally_getAccount after the rule fired: %+v, %v; want suspended, not frozen", acct, err)
	}
	const reason = "risk:hkd-hour:3 transfers in 1h, limit 2"
	if acct.Suspension.Reason != reason {
		t.Fatalf("suspension reason %q, want %q", acct.Suspension.Reason, reason)
	}
	blockMs := blockTimeMs(t, ctx, c, third)
	if uint64(acct.Suspension.UntilMs) != blockMs+600_000 {
		t.Fatalf("suspension until %d, want the block's time %d + 600 s", acct.Suspension.UntilMs, blockMs)
	}
	until := time.UnixMilli(int64(acct.Suspension.UntilMs)).UTC().Format("2006-01-02 15:04:05") + " UTC"

	page = visit(t, b, base+"address/"+payer.Hex())
	if got, want := text(t, b, "#suspension"), "until "+until+": "+reason; got != want {
		t.Errorf("suspension row %q, want %q", got, want)
	}
	if got := text(t, b, "#frozen"); got != "no" {
		t.Errorf("frozen row %q: a suspension is not compliance's freeze", got)
	}
	for _, want := range velocity { // the refused transfer is not counted
		if !strings.Contains(page, want) {
			t.Errorf("suspended account's page lacks %q:\n%s", want, page)
		}
	}
	explorerShot(t, b, "explorer-account-risk.png")
	// The shop, under the same rules, was never suspended.
	if shopPage := visit(t, b, base+"address/"+shop.Hex()); strings.Contains(shopPage, "suspended") || !strings.Contains(shopPage, "0 of 2") {
		t.Errorf("the shop's page:\n%s", shopPage)
	}

	// Compliance lifts the suspension: the row goes.
	lift, err := wallet.ComplianceOp("liftSuspension", payer, "reviewed: known customer")
	if err != nil {
		t.Fatal(err)
	}
	send(int(genesis.DevComplianceIndex), lift, types.ReceiptStatusSuccessful)
	if page := visit(t, b, base+"address/"+payer.Hex()); strings.Contains(page, "suspended") || !strings.Contains(page, "2 of 2") {
		t.Errorf("after the lift, the payer's page:\n%s", page)
	}
}

// explorerShot saves a screenshot of the page b shows as name in the
// directory $TALLY_SCREENSHOTS names (docs/img), when it names one.
func explorerShot(t *testing.T, b context.Context, name string) {
	t.Helper()
	shots := os.Getenv(explorerScreenshots)
	if shots == "" {
		return
	}
	png, err := chromedp.Run(b, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startGenesisNode starts a tallyd on genesis g, waits until it leads
// and dials it (the client closes with the test).
func startGenesisNode(t *testing.T, ctx context.Context, g *genesis.Genesis) (*node, *wallet.Client) {
	t.Helper()
	gpath := filepath.Join(t.TempDir(), "genesis.json")
	if err := os.WriteFile(gpath, g.Indent(), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, t.TempDir(), "--genesis", gpath)
	n.waitLeader(readyTimeout)
	c, err := wallet.Dial(ctx, n.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return n, c
}

// blockTimeMs is the block time, in ms, of the block of transaction tx.
func blockTimeMs(t *testing.T, ctx context.Context, c *wallet.Client, tx common.Hash) uint64 {
	t.Helper()
	r, err := c.Receipt(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Eth().HeaderByNumber(ctx, r.BlockNumber)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := chain.TimeMs(h)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}
