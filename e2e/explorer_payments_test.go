package e2e

import (
	"context"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/wallet"
)

// TestExplorerPayments drives the transaction and account pages of the
// explorer a real tallyd serves (the dev genesis with a dispute window
// on HKD) in a real headless Chromium, after the payment rules acted
// (docs/payments.md):
//
//   - a payment held for a second confirmation (over the sender's
//     threshold): its transaction's page and the sender's account page
//     show it pending, with its id and expiry (tally_getHeldPayments'
//     expiresMs) and a link to the sender's payments page; once the
//     sender cancels it, the cancel's page and the held transaction's
//     show it cancelled;
//   - a dispute on a payment: the payment's page, the dispute's own
//     transaction pages and the payer's and the merchant's account pages
//     show it with its state and reason, contested with the merchant's
//     answer once contested;
//   - an account the rules did not touch, and a payment no one disputed,
//     show no payment rows.
func TestExplorerPayments(t *testing.T) {
	skipShort(t)
	chromium := requireChromium(t)
	g := genesis.Dev()
	for i := range g.Assets {
		g.Assets[i].DisputeWindowSeconds = 86_400
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, c := startGenesisNode(t, ctx, g)
	const hkd = uint32(1)
	hkdAddr := chain.AssetAddress(hkd)
	op := func(o wallet.Op, err error) wallet.Op {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	send := func(key int, o wallet.Op) common.Hash {
		t.Helper()
		return sendDevOp(t, ctx, c, key, o, types.ReceiptStatusSuccessful)
	}
	payer, shop, saver, second := devWalletKey(t, 0).Address(), devWalletKey(t, 1).Address(), devWalletKey(t, 2).Address(), devWalletKey(t, 3).Address()

	// A payment of ORDER-7 and a dispute on it, contested.
	ref, err := wallet.ParseReference("ORDER-7")
	if err != nil {
		t.Fatal(err)
	}
	paid := send(0, op(wallet.AssetOp(hkd, "transferWithReference", shop, big.NewInt(1200), ref)))
	undisputed := send(0, op(wallet.AssetOp(hkd, "transferWithReference", shop, big.NewInt(300), ref)))
	opened := send(0, op(wallet.DisputesOp("openDispute", hkdAddr, shop, ref, big.NewInt(1200), state.DisputeNotReceived, paid)))
	contested := send(1, op(wallet.DisputesOp("contestDispute", big.NewInt(1), "delivered, signed for")))
	reason := state.DisputeReasonNames[state.DisputeNotReceived]

	// Dev account 2 confirms HKD payments over 10.00 with dev account 3's
	// key; its payment of 50.00 is held.
	send(2, op(wallet.ConfirmationsOp("setConfirmation", second, []common.Address{hkdAddr}, []*big.Int{big.NewInt(1000)})))
	heldTx := send(2, op(wallet.AssetOp(hkd, "transfer", shop, big.NewInt(5000))))
	var held struct {
		Items []struct {
			ID        string `json:"id"`
			Status    string `json:"status"`
			ExpiresMs string `json:"expiresMs"`
		} `json:"items"`
	}
	if err := c.Call(ctx, &held, "tally_getHeldPayments", map[string]any{"account": saver}); err != nil || len(held.Items) != 1 || held.Items[0].Status != "pending" {
		t.Fatalf("tally_getHeldPayments of the saver: %+v, %v; want one pending", held, err)
	}
	expMs, ok := new(big.Int).SetString(strings.TrimPrefix(held.Items[0].ExpiresMs, "0x"), 16)
	if !ok {
		t.Fatalf("expiresMs %q", held.Items[0].ExpiresMs)
	}
	expires := time.UnixMilli(expMs.Int64()).UTC().Format("2006-01-02 15:04:05") + " UTC"

	b := newBrowser(t, ctx, chromium)
	base := n.url + "/explorer/"
	// has checks that the page's section sel holds every want, and that
	// it links the payments page of account.
	has := func(what, sel string, account common.Address, want ...string) {
		t.Helper()
		got := text(t, b, sel)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %s %q lacks %q", what, sel, got, w)
			}
		}
		href, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector("a.payments-link").getAttribute("href")`))
		if err != nil || !strings.EqualFold(href, "/explorer/payments?account="+account.Hex()) {
			t.Errorf("%s: the payments link is %q (%v), want the payments page of %s", what, href, err, account.Hex())
		}
	}

	// The held payment.
	for _, tc := range []struct {
		what, url string
		account   common.Address
	}{{"the held transfer's page", base + "tx/" + heldTx.Hex(), saver}, {"the saver's page", base + "address/" + saver.Hex(), saver}} {
		page := visit(t, b, tc.url)
		if !strings.Contains(page, "Held for a second confirmation") {
			t.Errorf("%s lacks the held payment:\n%s", tc.what, page)
			continue
		}
		has(tc.what, "#held", tc.account, "1", "pending", "transfer", "50.00 HKD", expires)
	}
	visit(t, b, base+"tx/"+heldTx.Hex())
	explorerShot(t, b, "explorer-held.png")

	// The dispute, on every page that concerns it.
	for _, tc := range []struct {
		what, url string
		account   common.Address
	}{
		{"the disputed payment's page", base + "tx/" + paid.Hex(), payer},
		{"the dispute's opening", base + "tx/" + opened.Hex(), payer},
		{"the merchant's contest", base + "tx/" + contested.Hex(), shop}, // its sender
		{"the payer's page", base + "address/" + payer.Hex(), payer},
		{"the merchant's page", base + "address/" + shop.Hex(), shop},
	} {
		page := visit(t, b, tc.url)
		if !strings.Contains(page, "Disputes") {
			t.Errorf("%s lacks the dispute:\n%s", tc.what, page)
			continue
		}
		has(tc.what, "#disputes", tc.account, "contested", reason, "12.00 HKD", "ORDER-7", "merchant: delivered, signed for")
	}
	visit(t, b, base+"tx/"+paid.Hex())
	explorerShot(t, b, "explorer-disputed.png")

	// No rows where nothing happened.
	for what, url := range map[string]string{
		"the undisputed payment's page": base + "tx/" + undisputed.Hex(),
		"an untouched account's page":   base + "address/" + devWalletKey(t, 5).Address().Hex(),
	} {
		if page := visit(t, b, url); strings.Contains(page, "Disputes") || strings.Contains(page, "Held for") {
			t.Errorf("%s shows payment rows:\n%s", what, page)
		}
	}

	// The sender cancels the held payment: cancelled on its pages.
	cancelTx := send(2, op(wallet.ConfirmationsOp("cancelPayment", big.NewInt(1))))
	for _, url := range []string{base + "tx/" + cancelTx.Hex(), base + "tx/" + heldTx.Hex(), base + "address/" + saver.Hex()} {
		visit(t, b, url)
		has(url, "#held", saver, "cancelled")
	}
}
