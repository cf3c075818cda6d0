package e2e

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/merchant"
	"github.com/tally-ledger/tally/wallet"
)

// dashMerchantJob is the scrape job of the merchant notifier in
// TestDashboard.
const dashMerchantJob = "tally-merchant"

// dashMerchant is a `tally merchant` following the dashboard test's node,
// as docs/merchants.md runs one: the e2e operator token as its API token,
// dev account 12 as the shop, and a webhook receiver that takes every
// notification.
type dashMerchant struct {
	*dashService     // its order API
	shop         int // the dev account orders are paid to
}

// startDashMerchant starts the notifier on nodeURL and waits for /healthz.
func startDashMerchant(t *testing.T, nodeURL string) *dashMerchant {
	t.Helper()
	const shopIndex = 12
	shop := clusterDevKeys(t, shopIndex, shopIndex+1)[0]
	files := map[string][]byte{"tokens": []byte("e2e " + e2eOperatorToken + "\n"),
		"webhook.secret": []byte("e2e-dashboard-merchant-secret-0123456789")}
	return &dashMerchant{startDashService(t, "merchant", nodeURL, files, fmt.Sprintf(`[api]
tokens-file = "tokens"
[orders]
payees = [%q]
`, shop.Address().Hex())), shopIndex}
}

// sell registers an order of 2 CNY and pays it from dev account 9 under
// its reference; once the notifier has delivered its order.paid, every
// merchant panel of the dashboard has data but the two dashNoData names.
func (m *dashMerchant) sell(ctx context.Context, cl *wallet.Client) {
	t := m.t
	t.Helper()
	id, err := cl.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cny, err := cl.AssetBySymbol(ctx, "CNY")
	if err != nil {
		t.Fatal(err)
	}
	shop := clusterDevKeys(t, m.shop, m.shop+1)[0]
	amount := new(big.Int).Mul(big.NewInt(2), big.NewInt(1e18))
	req, err := wallet.NewPaymentRequest(id.Uint64(), cny, shop.Address(), amount, "DASH-ORDER-1", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.call(http.MethodPost, merchant.PathOrders, req, nil); err != nil {
		t.Fatal(err)
	}
	ref, err := wallet.ParseReference(req.Order)
	if err != nil {
		t.Fatal(err)
	}
	op, err := wallet.AssetOp(cny.ID, "transferWithReference", shop.Address(), amount, ref)
	if err != nil {
		t.Fatal(err)
	}
	payer := clusterDevKeys(t, 9, 10)[0]
	tx, err := cl.Send(ctx, payer, op)
	if err != nil {
		t.Fatalf("pay the order: %v", err)
	}
	if r, err := cl.WaitReceipt(ctx, tx.Hash()); err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("pay the order: receipt %v: %v", r, err)
	}
	var st merchant.StatusView
	pollUntil(t, 30*time.Second, func() string { return fmt.Sprintf("the order paid and its notification delivered (status %+v)", st) }, func() bool {
		var o merchant.Order
		return m.call(http.MethodGet, merchant.PathOrder+req.Order, nil, &o) == nil && o.Status == merchant.StatusPaid &&
			m.call(http.MethodGet, merchant.PathStatus, nil, &st) == nil && st.Pending == 0
	})
}
