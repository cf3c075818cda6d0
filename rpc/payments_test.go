package rpc

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/rpc/schema"
)

// TestGetDisputesAndHeldPayments: the views of disputes, held payments and
// confirmation settings, their filters and pages, and bad filters refused
// with -32602.
func TestGetDisputesAndHeldPayments(t *testing.T) {
	g := genesis.Dev()
	g.Assets[1].DisputeWindowSeconds = 86_400
	c := newFilterChainOn(t, g)
	_, cl := serveFilters(t, c)
	payer, merchant, other, key := devKeyT(t, 0), devKeyT(t, 1), devKeyT(t, 2), devKeyT(t, 3)
	pack := func(a interface {
		Pack(string, ...any) ([]byte, error)
	}, method string, args ...any) []byte {
		data, err := a.Pack(method, args...)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	hkd := chain.AssetAddress(1)
	// Three payments, each disputed: merchant, merchant, other.
	c.block(
		c.sign(payer, hkd, nil, pack(&chain.AssetABI, "transferWithReference", merchant.Address(), big.NewInt(1000), ref32("ORDER-1"))),
		c.sign(payer, hkd, nil, pack(&chain.AssetABI, "transferWithReference", merchant.Address(), big.NewInt(2000), ref32("ORDER-2"))),
		c.sign(payer, hkd, nil, pack(&chain.AssetABI, "transferWithReference", other.Address(), big.NewInt(3000), ref32("ORDER-3"))),
	)
	c.block(
		c.sign(payer, chain.DisputesAddress, nil, pack(&chain.DisputesABI, "openDispute", hkd, merchant.Address(), ref32("ORDER-1"), big.NewInt(1000), uint8(2), [32]byte{1})),
		c.sign(payer, chain.DisputesAddress, nil, pack(&chain.DisputesABI, "openDispute", hkd, merchant.Address(), ref32("ORDER-2"), big.NewInt(500), uint8(3), [32]byte{})),
		c.sign(payer, chain.DisputesAddress, nil, pack(&chain.DisputesABI, "openDispute", hkd, other.Address(), ref32("ORDER-3"), big.NewInt(3000), uint8(5), [32]byte{})),
	)
	c.block(c.sign(merchant, chain.DisputesAddress, nil, pack(&chain.DisputesABI, "contestDispute", big.NewInt(2), "delivered")))

	var page schema.DisputePage
	call := func(f map[string]any) {
		t.Helper()
		if err := cl.Call(&page, "tally_getDisputes", f); err != nil {
			t.Fatal(err)
		}
	}
	call(map[string]any{"merchant": merchant.Address()})
	if len(page.Items) != 2 || page.Items[0].ID != 2 || page.Items[1].ID != 1 || page.NextCursor != nil {
		t.Fatalf("by merchant: %+v", page)
	}
	d := page.Items[0]
	if d.Status != "contested" || d.Reason != "wrong-amount" || d.Answer != "delivered" || d.Amount.Text != "5.00 HKD" ||
		d.Reference.Text == nil || *d.Reference.Text != "ORDER-2" || d.TxHash != nil || d.AnswerByMs != d.OpenedMs+7*86_400_000 {
		t.Fatalf("dispute 2: %+v", d)
	}
	if page.Items[1].TxHash == nil || *page.Items[1].TxHash != (common.Hash{1}) || page.Items[1].Reason != "duplicate" {
		t.Fatalf("dispute 1: %+v", page.Items[1])
	}
	call(map[string]any{"account": other.Address()})
	if len(page.Items) != 1 || page.Items[0].ID != 3 {
		t.Fatalf("by account: %+v", page)
	}
	call(map[string]any{"payer": payer.Address(), "status": "open", "limit": hexutil.Uint(1)})
	if len(page.Items) != 1 || page.Items[0].ID != 3 || page.NextCursor == nil || *page.NextCursor != 3 {
		t.Fatalf("first page: %+v", page)
	}
	call(map[string]any{"payer": payer.Address(), "status": "open", "limit": hexutil.Uint(1), "before": page.NextCursor})
	if len(page.Items) != 1 || page.Items[0].ID != 1 || page.NextCursor != nil {
		t.Fatalf("second page: %+v", page)
	}
	call(nil)
	if len(page.Items) != 3 {
		t.Fatalf("all: %+v", page)
	}
	wantFilterErr(t, "status", cl.Call(&page, "tally_getDisputes", map[string]any{"status": "lost"}), CodeInvalidParams, `status "lost" is not one of`)
	wantFilterErr(t, "limit", cl.Call(&page, "tally_getDisputes", map[string]any{"limit": hexutil.Uint(MaxPaymentsLimit + 1)}), CodeInvalidParams, "limit must be 1..500")

	// Confirmation settings and a held payment.
	c.block(c.sign(payer, chain.ConfirmationsAddress, nil, pack(&chain.ConfirmationsABI, "setConfirmation", key.Address(), []common.Address{hkd}, []*big.Int{big.NewInt(100)})))
	c.block(c.sign(payer, hkd, nil, pack(&chain.AssetABI, "transfer", merchant.Address(), big.NewInt(101))),
		c.sign(payer, chain.ConfirmationsAddress, nil, pack(&chain.ConfirmationsABI, "setConfirmation", common.Address{}, []common.Address{}, []*big.Int{})))
	var conf schema.ConfirmationSettings
	if err := cl.Call(&conf, "tally_getConfirmation", payer.Address()); err != nil {
		t.Fatal(err)
	}
	if conf.Key == nil || *conf.Key != key.Address() || len(conf.Thresholds) != 1 || conf.Thresholds[0].Text != "1.00 HKD" ||
		conf.Change == nil || conf.Change.Key != nil || len(conf.Change.Thresholds) != 0 {
		t.Fatalf("confirmation %+v", conf)
	}
	var held schema.HeldPaymentPage
	if err := cl.Call(&held, "tally_getHeldPayments", map[string]any{"account": merchant.Address(), "status": "pending"}); err != nil {
		t.Fatal(err)
	}
	if len(held.Items) != 1 || held.Items[0].ID != 1 || held.Items[0].Kind != "transfer" || held.Items[0].Amount.Text != "1.01 HKD" ||
		held.Items[0].ExpiresMs != held.Items[0].CreatedMs+86_400_000 || held.Items[0].Reference != nil {
		t.Fatalf("held payments %+v", held)
	}
	// A page that matches nothing is an empty list, not null.
	held = schema.HeldPaymentPage{}
	if err := cl.Call(&held, "tally_getHeldPayments", map[string]any{"account": other.Address()}); err != nil {
		t.Fatal(err)
	}
	if held.Items == nil || len(held.Items) != 0 || held.NextCursor != nil {
		t.Fatalf("held payments of an account with none: %+v", held)
	}
	page = schema.DisputePage{}
	call(map[string]any{"payer": merchant.Address()})
	if page.Items == nil || len(page.Items) != 0 || page.NextCursor != nil {
		t.Fatalf("disputes of a payer with none: %+v", page)
	}
	wantFilterErr(t, "status", cl.Call(&held, "tally_getHeldPayments", map[string]any{"status": "done"}), CodeInvalidParams, `status "done" is not one of`)
	wantFilterErr(t, "limit", cl.Call(&held, "tally_getHeldPayments", map[string]any{"limit": hexutil.Uint(0)}), CodeInvalidParams, "limit must be 1..500")
}
