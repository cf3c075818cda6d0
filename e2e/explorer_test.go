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
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// explorerScreenshots names the env var holding the directory the
// explorer test writes its screenshots to (docs/img in the repository:
// TALLY_SCREENSHOTS=$PWD/docs/img go test -run TestExplorer ./e2e).
const explorerScreenshots = "TALLY_SCREENSHOTS"

// The references of the explorer test's payments: an order reference, and
// two an attacker wrote, which the pages must show as text.
const (
	orderRef   = "ORDER-1234"
	xssImgRef  = `<img src=x onerror=alert(1)>`
	xssTagRef  = `<script>alert(1)</script>`
	failureRef = "ORDER-OVER-LIMIT"
)

// TestExplorer drives the explorer a real tallyd serves in a real headless
// Chromium: the payments made here appear decoded (amount in the
// currency's units, reference as text), search finds a payment by its
// reference and by its hash, a failed payment shows its status and the
// reason the node gives, references an attacker wrote stay inert text, and
// the account, asset, validators and governance pages load.
func TestExplorer(t *testing.T) {
	skipShort(t)
	chromium := requireChromium(t)
	n := startNode(t, t.TempDir())
	n.waitLeader(readyTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := wallet.Dial(ctx, n.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	payer, shop := devWalletKey(t, 0), devWalletKey(t, 1)
	hkd := uint32(1)
	send := func(key int, op wallet.Op, want uint64) common.Hash {
		t.Helper()
		return sendDevOp(t, ctx, c, key, op, want)
	}
	pay := func(to common.Address, amount int64, ref string, want uint64) common.Hash {
		t.Helper()
		var r [32]byte
		copy(r[:], ref)
		op, err := wallet.AssetOp(hkd, "transferWithReference", to, big.NewInt(amount), r)
		if err != nil {
			t.Fatal(err)
		}
		return send(0, op, want)
	}
	paid := pay(shop.Address(), 1250, orderRef, types.ReceiptStatusSuccessful)
	xssImg := pay(shop.Address(), 1, xssImgRef, types.ReceiptStatusSuccessful)
	xssTag := pay(shop.Address(), 2, xssTagRef, types.ReceiptStatusSuccessful)
	// A new account is at tier 0, which holds at most 1,000.00 HKD: a
	// payment of 2,000.00 fails at execution (status 0).
	newcomer := common.HexToAddress("0x00000000000000000000000000000000000e4b10")
	failed := pay(newcomer, 200_000, failureRef, types.ReceiptStatusFailed)
	// The compliance authority puts it on the watch list: its page says why.
	watch, err := wallet.ComplianceOp("watch", newcomer, "sanctions list hit")
	if err != nil {
		t.Fatal(err)
	}
	send(int(genesis.DevComplianceIndex), watch, types.ReceiptStatusSuccessful)
	member := int(genesis.DevGovernanceIndex)
	bankA := devWalletKey(t, int(genesis.DevBankAIndex)).Address()
	propose, err := wallet.GovernanceOp("proposeAddBank", chain.AssetAddress(hkd), bankA)
	if err != nil {
		t.Fatal(err)
	}
	send(member, propose, types.ReceiptStatusSuccessful)

	// The reason the node kept for the failure: the page shows it verbatim.
	var reason *string
	if err := c.Call(ctx, &reason, "tally_getTransactionReason", failed); err != nil || reason == nil || !strings.Contains(*reason, "tier 0") {
		t.Fatalf("tally_getTransactionReason of the failed payment: %v, %v", reason, err)
	}

	b := newBrowser(t, ctx, chromium)
	shots := os.Getenv(explorerScreenshots)
	shot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		png, err := chromedp.Run(b, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, "explorer-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := n.url + "/explorer/"

	// Home: the latest blocks and transactions, the payment among them.
	home := visit(t, b, n.url+"/")
	for _, want := range []string{"Latest blocks", "Latest transactions", "transferWithReference", "12.50 HKD", orderRef} {
		if !strings.Contains(home, want) {
			t.Errorf("home page lacks %q:\n%s", want, home)
		}
	}
	shot("home")
	// The home page follows the chain: a payment made while it is open
	// appears without a reload.
	live := pay(shop.Address(), 700, "ORDER-LIVE", types.ReceiptStatusSuccessful)
	for deadline := time.Now().Add(15 * time.Second); ; {
		if page := text(t, b, "main"); strings.Contains(page, "ORDER-LIVE") && strings.Contains(page, "7.00 HKD") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment %s never appeared on the open home page:\n%s", live, text(t, b, "main"))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Search by the order reference finds the payment, decoded.
	search(t, b, base, orderRef)
	checkPayment := func(how string) {
		t.Helper()
		loc, err := chromedp.Run(b, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(loc, "/explorer/tx/"+paid.Hex()) {
			t.Fatalf("search by %s went to %s, want the payment %s", how, loc, paid)
		}
		for id, want := range map[string]string{"#amount": "12.50 HKD", "#reference": orderRef, "#status": "success", "#operation": "transferWithReference"} {
			if got := text(t, b, id); got != want && !strings.HasPrefix(got, want) {
				t.Errorf("search by %s: %s is %q, want %q", how, id, got, want)
			}
		}
	}
	checkPayment("reference")
	// JSON-RPC gives addresses in lower case (go-ethereum's encoding).
	if s := strings.ToLower(text(t, b, "#summary")); !strings.Contains(s, strings.ToLower("Payment of 12.50 HKD from "+payer.Address().Hex()+" to "+shop.Address().Hex()+", reference "+orderRef)) {
		t.Errorf("payment summary %q", s)
	}
	shot("transaction")
	search(t, b, base, paid.Hex())
	checkPayment("hash")

	// References an attacker wrote are text: no element, no script ran.
	for _, x := range []struct {
		hash common.Hash
		ref  string
	}{{xssImg, xssImgRef}, {xssTag, xssTagRef}} {
		visit(t, b, base+"tx/"+x.hash.Hex())
		if got := text(t, b, "#reference"); got != x.ref {
			t.Errorf("reference %q shown as %q", x.ref, got)
		}
		injected, err := chromedp.Run(b, chromedp.Evaluate[int](`document.querySelectorAll("main img, main script, #reference * *").length`))
		if err != nil {
			t.Fatal(err)
		}
		if injected != 0 {
			t.Errorf("reference %q made %d elements", x.ref, injected)
		}
	}

	// The failed payment: status failed and the node's reason.
	visit(t, b, base+"tx/"+failed.Hex())
	if got := text(t, b, "#status"); got != "failed" {
		t.Errorf("failed payment status %q", got)
	}
	if got := text(t, b, "#reason"); got != *reason {
		t.Errorf("failed payment reason %q, want %q", got, *reason)
	}
	shot("failed")

	// The block of the payment, with its certificate once one is carried.
	blockNum := txBlock(t, ctx, c, paid)
	deadline := time.Now().Add(20 * time.Second)
	for {
		page := visit(t, b, base+"block/"+blockNum)
		if strings.Contains(page, "quorum") {
			if !strings.Contains(page, "12.50 HKD") || !strings.Contains(page, orderRef) {
				t.Errorf("block %s page lacks the payment:\n%s", blockNum, page)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("block %s shows no certificate:\n%s", blockNum, page)
		}
		time.Sleep(300 * time.Millisecond)
	}
	shot("block")

	// Search by the block's hash and by an address.
	blockHash, err := c.Eth().HeaderByNumber(ctx, mustBig(t, blockNum))
	if err != nil {
		t.Fatal(err)
	}
	search(t, b, base, blockHash.Hash().Hex())
	if loc := location(t, b); !strings.HasSuffix(loc, "/explorer/block/"+blockNum) {
		t.Errorf("search by block hash went to %s", loc)
	}
	search(t, b, base, shop.Address().Hex())
	if loc := location(t, b); !strings.HasSuffix(loc, "/explorer/address/"+shop.Address().Hex()) {
		t.Errorf("search by address went to %s", loc)
	}

	// The shop's account: balances, tier, and its history in pages of 25:
	// after 26 more payments the first ones are on the second page.
	sender := devWalletKey(t, 2)
	nonce, err := c.PendingNonce(ctx, sender.Address())
	if err != nil {
		t.Fatal(err)
	}
	var raws [][]byte
	for i := range 26 {
		op, err := wallet.AssetOp(hkd, "transfer", shop.Address(), big.NewInt(int64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		tx, err := wallet.SignOp(sender, big.NewInt(devChainID), nonce+uint64(i), op)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := tx.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	hashes, errs, err := c.SendRawBatch(ctx, raws)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("transfer %d: %v", i, e)
		}
	}
	if _, err := c.WaitReceipt(ctx, hashes[len(hashes)-1]); err != nil {
		t.Fatal(err)
	}
	acct := visit(t, b, base+"address/"+shop.Address().Hex())
	for _, want := range []string{"KYC tier", "3 (institutional)", "HKD", "received", "Page 1", "0.26 HKD", "Older transactions"} {
		if !strings.Contains(acct, want) {
			t.Errorf("account page lacks %q:\n%s", want, acct)
		}
	}
	if strings.Contains(acct, orderRef) {
		t.Errorf("the first page holds the oldest payment:\n%s", acct)
	}
	shot("account")
	if strings.Contains(acct, "watch list") {
		t.Errorf("the shop's page shows a watch list entry:\n%s", acct)
	}
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS("#older"))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		page := text(t, b, "main")
		if strings.Contains(page, "Page 2") {
			if !strings.Contains(page, orderRef) || !strings.Contains(page, "12.50 HKD") || strings.Contains(page, "Older transactions") {
				t.Errorf("second page of the history:\n%s", page)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second page:\n%s", page)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The listed newcomer's page shows its watch list entry (the
	// compliance authority's reason).
	listed := visit(t, b, base+"address/"+newcomer.Hex())
	if !strings.Contains(listed, "watch list") || !strings.Contains(listed, "sanctions list hit") {
		t.Errorf("the listed account's page lacks its watch list entry:\n%s", listed)
	}

	// A block that does not exist says so.
	if page := visit(t, b, base+"block/999999"); !strings.Contains(page, "no block 999999") {
		t.Errorf("missing block: %s", page)
	}

	list := visit(t, b, base+"assets")
	for _, want := range []string{"CNY", "Chinese Yuan", "HKD", "Hong Kong Dollar", "circulating"} {
		if !strings.Contains(list, want) {
			t.Errorf("assets page lacks %q:\n%s", want, list)
		}
	}
	asset := visit(t, b, base+"asset/HKD")
	for _, want := range []string{"Hong Kong Dollar", "minted", "circulating", "Issuing banks", "outstanding", "cap"} {
		if !strings.Contains(asset, want) {
			t.Errorf("asset page lacks %q:\n%s", want, asset)
		}
	}
	shot("asset")

	vals := visit(t, b, base+"validators")
	for _, want := range []string{"dev-validator", "a certificate needs 1 signatures", "Latest certificates"} {
		if !strings.Contains(vals, want) {
			t.Errorf("validators page lacks %q:\n%s", want, vals)
		}
	}
	shot("validators")

	gov := visit(t, b, base+"governance")
	for _, want := range []string{"proposeAddBank", "pending", bankA.Hex(), "1 for, 0 against"} {
		if !strings.Contains(strings.ToLower(gov), strings.ToLower(want)) {
			t.Errorf("governance page lacks %q:\n%s", want, gov)
		}
	}
	shot("governance")

	// The payments page lists disputes and held payments (none on the dev
	// chain's fresh node: its rows are driven in cmd/tally's TestPaymentsOnNode).
	pays := visit(t, b, base+"payments")
	for _, want := range []string{"Disputes", "No disputes.", "Held for a second confirmation", "No payments held for a confirmation."} {
		if !strings.Contains(pays, want) {
			t.Errorf("payments page lacks %q:\n%s", want, pays)
		}
	}

	// An unknown page and a search that finds nothing say so.
	if page := visit(t, b, base+"nowhere"); !strings.Contains(page, "no page") {
		t.Errorf("unknown page: %s", page)
	}
	for _, q := range []string{"NO-SUCH-ORDER", "999999"} {
		search(t, b, base, q)
		if page := text(t, b, "main"); !strings.Contains(page, `Nothing found for "`+q+`"`) {
			t.Errorf("search for %s: %s", q, page)
		}
	}
}

// sendDevOp signs op with dev account key's key at its pending nonce,
// sends it, waits for its receipt and fails the test unless its status is
// want.
func sendDevOp(t *testing.T, ctx context.Context, c *wallet.Client, key int, op wallet.Op, want uint64) common.Hash {
	t.Helper()
	k := devWalletKey(t, key)
	nonce, err := c.PendingNonce(ctx, k.Address())
	if err != nil {
		t.Fatal(err)
	}
	tx, err := wallet.SignOp(k, big.NewInt(devChainID), nonce, op)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendSigned(ctx, tx); err != nil {
		t.Fatalf("send %s: %v", op.Method, err)
	}
	r, err := c.WaitReceipt(ctx, tx.Hash())
	if err != nil {
		t.Fatalf("receipt of %s: %v", op.Method, err)
	}
	if r.Status != want {
		t.Fatalf("%s: status %d, want %d", op.Method, r.Status, want)
	}
	return tx.Hash()
}

// devWalletKey is dev account i's key.
func devWalletKey(t *testing.T, i int) *crypto.PrivateKey {
	t.Helper()
	k, err := genesis.DevKey(uint32(i))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newBrowser starts a headless Chromium for the test and returns a
// context of its first tab.
func newBrowser(t *testing.T, ctx context.Context, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("headless", "new"))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(bcancel)
	if _, err := chromedp.Run(bctx, chromedp.Location()); err != nil {
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	return bctx
}

// visit loads url and returns the text of the page's main element once
// the page has rendered it.
func visit(t *testing.T, b context.Context, url string) string {
	t.Helper()
	if err := chromedp.Do(b, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return ready(t, b, url)
}

// ready waits for the page to finish rendering (main[data-ready]) and
// returns main's text.
func ready(t *testing.T, b context.Context, what string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("main[data-ready]"))); err != nil {
		t.Fatalf("%s: page not rendered: %v", what, err)
	}
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	// A value the page failed to render shows as JavaScript's words for it.
	for _, bad := range []string{"null", "undefined", "NaN", "[object"} {
		if strings.Contains(s, bad) {
			t.Errorf("%s shows %q:\n%s", what, bad, s)
		}
	}
	return s
}

// search types q into the search box of the explorer at base and submits it.
func search(t *testing.T, b context.Context, base, q string) {
	t.Helper()
	visit(t, b, base)
	if err := chromedp.Do(b, chromedp.SetValue(chromedp.CSS("#q"), q), chromedp.Submit(chromedp.CSS("#q"))); err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	// The result replaces the home page: wait until the location moved
	// off it, then for the new page.
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc, err := chromedp.Run(b, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(loc, "/explorer/") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search %q never left the home page", q)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ready(t, b, "search "+q)
}

// location is the page's URL.
func location(t *testing.T, b context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(b, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustBig(t *testing.T, s string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// text returns the text of the element sel.
func text(t *testing.T, b context.Context, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// txBlock returns the block number of an applied transaction, in decimal.
func txBlock(t *testing.T, ctx context.Context, c *wallet.Client, h common.Hash) string {
	t.Helper()
	r, err := c.Receipt(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	return r.BlockNumber.String()
}
