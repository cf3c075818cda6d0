package wallet_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	bind "github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// TestBankFlowsThroughBind drives the bank, merchant and compliance flows of
// the HKD facade end to end through a real tallyd, with go-ethereum's
// abi/bind client over JSON-RPC: contracts bound from the published ABI
// files, Transact (eth_estimateGas, eth_getCode "pending", nonce and fee
// suggestions), Call for views, WatchLogs over WebSocket and FilterLogs over
// eth_getLogs, bind.WaitMined for receipts. The subtests share one node and
// run in order: supply deltas are exact because nothing else runs on it.
func TestBankFlowsThroughBind(t *testing.T) {
	node := wallettest.StartDevNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e := newBankEnv(ctx, t, node.URL)

	t.Run("PublishedABI", e.testPublishedABI)
	t.Run("MerchantPaymentObservedBySubscription", e.testMerchantPayment)
	t.Run("MintTransferWithdrawSettle", e.testMintTransferWithdrawSettle)
	t.Run("RejectedWithdrawalRefunded", e.testRejectedWithdrawal)
	t.Run("MerchantRefund", e.testMerchantRefund)
	t.Run("RevertReasonsThroughEthCall", e.testRevertReasons)
}

// The HKD asset (genesis.BuildDev), and the dev accounts (top tier, holding
// HKD) the subtests spend from: distinct, so no subtest sees another's payments.
const (
	hkdID            = 1
	hkdDecimals      = 2
	customerPayment  = 10
	withdrawRecv     = 11
	refundedHolder   = 12
	refundCustomer   = 13
	revertingAccount = 14
)

type bankEnv struct {
	ctx     context.Context
	chainID *big.Int
	http    *ethclient.Client // bound contracts call and transact over HTTP
	ws      *ethclient.Client // and watch and filter logs over WebSocket
	raw     *rpc.Client       // raw eth_call and tally_* calls, over HTTP

	assetABI, complianceABI abi.ABI
	hkd, compliance         *bind.BoundContract

	bankA, bankB, authority *crypto.PrivateKey
}

func newBankEnv(ctx context.Context, t *testing.T, url string) *bankEnv {
	t.Helper()
	raw, err := rpc.DialContext(ctx, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(raw.Close)
	// The HTTP port also upgrades WebSocket requests (rpc.Server.ServeHTTP).
	wsURL := "ws" + strings.TrimPrefix(url, "http")
	wsRaw, err := rpc.DialContext(ctx, wsURL)
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	t.Cleanup(wsRaw.Close)

	e := &bankEnv{ctx: ctx, chainID: big.NewInt(genesis.DevChainID), http: ethclient.NewClient(raw), ws: ethclient.NewClient(wsRaw), raw: raw}
	e.assetABI = publishedABI(t, "Asset")
	e.complianceABI = publishedABI(t, "Compliance")
	e.hkd = bind.NewBoundContract(chain.AssetAddress(hkdID), e.assetABI, e.http, e.http, e.ws)
	e.compliance = bind.NewBoundContract(chain.ComplianceAddress, e.complianceABI, e.http, e.http, e.ws)
	e.bankA = devKey(t, genesis.DevBankAIndex)
	e.bankB = devKey(t, genesis.DevBankBIndex)
	e.authority = devKey(t, genesis.DevComplianceIndex)

	id, err := e.http.ChainID(ctx)
	if err != nil || id.Cmp(e.chainID) != 0 {
		t.Fatalf("chain id %v (%v), want %v", id, err, e.chainID)
	}
	return e
}

// publishedABI parses abi/<name>.json as published, with abi.JSON.
func publishedABI(t *testing.T, name string) abi.ABI {
	t.Helper()
	b, err := chain.ABIJSON(name)
	if err != nil {
		t.Fatalf("read published ABI %s: %v", name, err)
	}
	a, err := abi.JSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse published ABI %s: %v", name, err)
	}
	return a
}

// testPublishedABI checks that the facade answers the published views as
// tally_assets describes the asset.
func (e *bankEnv) testPublishedABI(t *testing.T) {
	var assets []struct {
		ID       uint32           `json:"id"`
		Symbol   string           `json:"symbol"`
		Decimals uint8            `json:"decimals"`
		Address  common.Address   `json:"address"`
		Banks    []common.Address `json:"banks"`
		Native   bool             `json:"native"`
	}
	if err := e.raw.CallContext(e.ctx, &assets, "tally_assets"); err != nil {
		t.Fatalf("tally_assets: %v", err)
	}
	if len(assets) != 2 {
		t.Fatalf("tally_assets lists %d assets, want CNY and HKD: %+v", len(assets), assets)
	}
	h := assets[hkdID]
	if h.ID != hkdID || h.Symbol != "HKD" || h.Decimals != hkdDecimals || h.Native || h.Address != chain.AssetAddress(hkdID) ||
		len(h.Banks) != 1 || h.Banks[0] != e.bankB.Address() {
		t.Fatalf("tally_assets HKD entry %+v, want id 1, 2 decimals, facade %s, bank B %s only", h, chain.AssetAddress(hkdID), e.bankB.Address())
	}
	if got := e.view(t, e.hkd, "symbol")[0].(string); got != "HKD" {
		t.Errorf("symbol() = %q, want HKD", got)
	}
	if got := e.view(t, e.hkd, "decimals")[0].(uint8); got != hkdDecimals {
		t.Errorf("decimals() = %d, want %d", got, hkdDecimals)
	}
	if !e.view(t, e.hkd, "isIssuer", e.bankB.Address())[0].(bool) || e.view(t, e.hkd, "isIssuer", e.bankA.Address())[0].(bool) {
		t.Errorf("isIssuer: bank B must issue HKD and bank A must not")
	}
	if got := e.view(t, e.compliance, "authority")[0].(common.Address); got != e.authority.Address() {
		t.Errorf("authority() = %s, want the dev compliance key %s", got, e.authority.Address())
	}
}

// testMerchantPayment: a logs subscription opened before a customer pays a
// merchant with a reference sees the payment; the merchant's balance,
// account and history show it.
func (e *bankEnv) testMerchantPayment(t *testing.T) {
	customer := devKey(t, customerPayment)
	merchant := e.freshAccount(t, genesis.DevTierFull)
	ref, decoyRef := randomHash(t), randomHash(t)
	amount := hkd(t, "123.45")
	decoy := hkd(t, "1.00")

	// Both subscriptions exist before either payment is sent.
	watchCtx, stop := context.WithCancel(e.ctx)
	defer stop()
	refLogs, refSub, err := e.hkd.WatchLogs(&bind.WatchOpts{Context: watchCtx}, "PaymentReference", []any{ref})
	if err != nil {
		t.Fatalf("WatchLogs(PaymentReference, ref) over WebSocket: %v", err)
	}
	defer refSub.Unsubscribe()
	transferLogs, transferSub, err := e.hkd.WatchLogs(&bind.WatchOpts{Context: watchCtx}, "Transfer", []any{customer.Address()}, []any{merchant.Address()})
	if err != nil {
		t.Fatalf("WatchLogs(Transfer, customer → merchant) over WebSocket: %v", err)
	}
	defer transferSub.Unsubscribe()

	before := e.balance(t, merchant.Address())
	if before.Sign() != 0 {
		t.Fatalf("fresh merchant holds %v HKD units", before)
	}
	// The decoy, under another reference, must not reach the ref-filtered
	// subscription; the Transfer subscription sees it first.
	decoyTx, _ := e.transact(t, e.hkd, customer, "transferWithReference", merchant.Address(), decoy, decoyRef)
	payTx, r := e.transact(t, e.hkd, customer, "transferWithReference", merchant.Address(), amount, ref)
	if len(r.Logs) != 2 {
		t.Fatalf("payment receipt has %d logs, want Transfer and PaymentReference", len(r.Logs))
	}

	got := receiveLog(t, refLogs, refSub, "PaymentReference")
	var pay struct {
		Ref      [32]byte
		From, To common.Address
		Amount   *big.Int
	}
	if err := e.hkd.UnpackLog(&pay, "PaymentReference", got); err != nil {
		t.Fatalf("unpack PaymentReference log: %v", err)
	}
	if common.Hash(pay.Ref) != ref || pay.From != customer.Address() || pay.To != merchant.Address() || pay.Amount.Cmp(amount) != 0 {
		t.Fatalf("PaymentReference{ref %x from %s to %s amount %v}, want {%s %s %s %v} (a decoy under %s must not match)",
			pay.Ref, pay.From, pay.To, pay.Amount, ref, customer.Address(), merchant.Address(), amount, decoyRef)
	}
	sameLog(t, "subscribed PaymentReference", got, mustLog(t, r, e.assetABI, "PaymentReference"), payTx.Hash())

	var l types.Log
	for i, want := range []struct {
		tx     *types.Transaction
		amount *big.Int
	}{{decoyTx, decoy}, {payTx, amount}} {
		l = receiveLog(t, transferLogs, transferSub, "Transfer")
		var tr struct {
			From, To common.Address
			Value    *big.Int
		}
		if err := e.hkd.UnpackLog(&tr, "Transfer", l); err != nil {
			t.Fatalf("unpack Transfer log %d: %v", i, err)
		}
		if l.TxHash != want.tx.Hash() || tr.From != customer.Address() || tr.To != merchant.Address() || tr.Value.Cmp(want.amount) != 0 {
			t.Fatalf("Transfer log %d: tx %s {%s → %s %v}, want tx %s {%s → %s %v}", i, l.TxHash, tr.From, tr.To, tr.Value,
				want.tx.Hash(), customer.Address(), merchant.Address(), want.amount)
		}
	}
	sameLog(t, "subscribed Transfer", l, mustLog(t, r, e.assetABI, "Transfer"), payTx.Hash())

	total := new(big.Int).Add(amount, decoy)
	if after := e.balance(t, merchant.Address()); new(big.Int).Sub(after, before).Cmp(total) != 0 {
		t.Fatalf("merchant balanceOf went %v → %v, want +%v exactly", before, after, total)
	}
	paid := e.view(t, e.hkd, "paidUnderReference", merchant.Address(), ref, customer.Address())
	if paid[0].(*big.Int).Cmp(amount) != 0 || paid[1].(*big.Int).Sign() != 0 {
		t.Fatalf("paidUnderReference = (%v paid, %v refunded), want (%v, 0)", paid[0], paid[1], amount)
	}

	acc := e.account(t, merchant.Address())
	if acc.Address != merchant.Address() || acc.Tier != genesis.DevTierFull || acc.TierName != "full" || acc.Frozen || acc.Nonce != 0 {
		t.Fatalf("tally_getAccount(merchant) = %+v, want tier %d (full), not frozen, nonce 0", acc, genesis.DevTierFull)
	}
	if len(acc.Balances) != 2 || bigOf(acc.Balances["HKD"]).Cmp(total) != 0 || bigOf(acc.Balances["CNY"]).Sign() != 0 {
		t.Fatalf("tally_getAccount(merchant).balances = %v, want {CNY: 0, HKD: %v}", acc.Balances, total)
	}

	h := e.history(t, merchant.Address())
	if len(h.Items) != 2 {
		t.Fatalf("merchant history has %d items, want the two payments: %+v", len(h.Items), h.Items)
	}
	e.wantHistoryItem(t, "merchant history[0] (newest)", h.Items[0], payTx.Hash(), "transferWithReference", "received", customer.Address(), &ref,
		transferJSON{Asset: "HKD", From: customer.Address(), To: merchant.Address(), Amount: amount})
	e.wantHistoryItem(t, "merchant history[1]", h.Items[1], decoyTx.Hash(), "transferWithReference", "received", customer.Address(), &decoyRef,
		transferJSON{Asset: "HKD", From: customer.Address(), To: merchant.Address(), Amount: decoy})
	if h.Items[0].BlockNumber < h.Items[1].BlockNumber {
		t.Fatalf("history not newest first: blocks %d then %d", h.Items[0].BlockNumber, h.Items[1].BlockNumber)
	}
}

// testMintTransferWithdrawSettle: bank B mints to a freshly verified account
// under a bank reference; the holder pays a dev account and withdraws; bank
// B settles. Supply moves exactly; a second settle and a replayed mint fail.
func (e *bankEnv) testMintTransferWithdrawSettle(t *testing.T) {
	holder := e.freshAccount(t, genesis.DevTierBasic)
	recv := devKey(t, withdrawRecv)
	bankRef, payoutRef := randomHash(t), randomHash(t)
	minted, sent, withdrawn := hkd(t, "1000.00"), hkd(t, "250.00"), hkd(t, "500.00")

	s0 := e.supply(t)
	mintTx, r := e.transact(t, e.hkd, e.bankB, "mint", holder.Address(), minted, bankRef)
	var m struct {
		BankRef  [32]byte
		Bank, To common.Address
		Amount   *big.Int
	}
	if err := e.hkd.UnpackLog(&m, "Minted", mustLog(t, r, e.assetABI, "Minted")); err != nil {
		t.Fatalf("unpack Minted: %v", err)
	}
	if common.Hash(m.BankRef) != bankRef || m.Bank != e.bankB.Address() || m.To != holder.Address() || m.Amount.Cmp(minted) != 0 {
		t.Fatalf("Minted{%x %s %s %v}, want {%s bank B %s, to %s, %v}", m.BankRef, m.Bank, m.To, m.Amount, bankRef, e.bankB.Address(), holder.Address(), minted)
	}
	s1 := e.supply(t)
	e.wantSupplyDelta(t, "after mint", s0, s1, minted, nil, nil, minted)
	if !e.view(t, e.hkd, "bankRefUsed", bankRef)[0].(bool) {
		t.Fatalf("bankRefUsed(%s) = false after the mint", bankRef)
	}
	// eth_getLogs through bind's FilterLogs finds the mint by its bank reference.
	logs, fsub, err := e.hkd.FilterLogs(&bind.FilterOpts{Context: e.ctx, Start: r.BlockNumber.Uint64()}, "Minted", []any{bankRef})
	if err != nil {
		t.Fatalf("FilterLogs(Minted, bankRef) over eth_getLogs: %v", err)
	}
	found := filtered(t, logs, fsub, "FilterLogs(Minted, bankRef)")
	if len(found) != 1 || found[0].TxHash != mintTx.Hash() {
		t.Fatalf("FilterLogs(Minted, bankRef) found %d logs (%+v), want the mint %s only", len(found), found, mintTx.Hash())
	}
	sameLog(t, "filtered Minted", found[0], mustLog(t, r, e.assetABI, "Minted"), mintTx.Hash())

	recvBefore := e.balance(t, recv.Address())
	transferTx, _ := e.transact(t, e.hkd, holder, "transfer", recv.Address(), sent)
	if d := new(big.Int).Sub(e.balance(t, recv.Address()), recvBefore); d.Cmp(sent) != 0 {
		t.Fatalf("recipient balance rose by %v, want %v", d, sent)
	}

	reqTx, r := e.transact(t, e.hkd, holder, "requestWithdrawal", withdrawn, payoutRef)
	var req struct {
		Id        *big.Int // abi.ParseTopics fills the field named ToCamelCase("id")
		Holder    common.Address
		Amount    *big.Int
		PayoutRef [32]byte
	}
	if err := e.hkd.UnpackLog(&req, "WithdrawalRequested", mustLog(t, r, e.assetABI, "WithdrawalRequested")); err != nil {
		t.Fatalf("unpack WithdrawalRequested: %v", err)
	}
	if req.Id == nil || req.Id.Sign() <= 0 || req.Holder != holder.Address() || req.Amount.Cmp(withdrawn) != 0 || common.Hash(req.PayoutRef) != payoutRef {
		t.Fatalf("WithdrawalRequested{id %v holder %s amount %v payoutRef %x}, want {>0, %s, %v, %s}", req.Id, req.Holder, req.Amount, req.PayoutRef, holder.Address(), withdrawn, payoutRef)
	}
	id := req.Id
	e.wantWithdrawal(t, id, holder.Address(), withdrawn, payoutRef, state.WithdrawalPending, common.Address{}, common.Hash{})
	s2 := e.supply(t)
	e.wantSupplyDelta(t, "after the withdrawal request", s1, s2, nil, nil, withdrawn, neg(withdrawn))
	if esc := e.balance(t, chain.AssetAddress(hkdID)); esc.Cmp(bigOf(s2.Escrow)) != 0 {
		t.Fatalf("balanceOf(facade) = %v, want the escrow %v", esc, bigOf(s2.Escrow))
	}

	// Bank B claims the payout before its bridge sends the payment order;
	// then it alone settles it.
	wantRevert(t, e.rawCall(t, e.bankB.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "settleWithdrawal", id)), "is not claimed")
	orderID := randomHash(t)
	_, r = e.transact(t, e.hkd, e.bankB, "claimWithdrawal", id, [32]byte(orderID))
	var cl struct {
		Id      *big.Int
		Bank    common.Address
		OrderId [32]byte
	}
	if err := e.hkd.UnpackLog(&cl, "WithdrawalClaimed", mustLog(t, r, e.assetABI, "WithdrawalClaimed")); err != nil {
		t.Fatalf("unpack WithdrawalClaimed: %v", err)
	}
	if cl.Id.Cmp(id) != 0 || cl.Bank != e.bankB.Address() || common.Hash(cl.OrderId) != orderID {
		t.Fatalf("WithdrawalClaimed{%v %s %x}, want {%v bank B %s}", cl.Id, cl.Bank, cl.OrderId, id, orderID)
	}
	e.wantWithdrawal(t, id, holder.Address(), withdrawn, payoutRef, state.WithdrawalPending, e.bankB.Address(), orderID)
	wantRevert(t, e.rawCall(t, e.bankB.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "claimWithdrawal", id, [32]byte(randomHash(t)))), "is already claimed")

	_, r = e.transact(t, e.hkd, e.bankB, "settleWithdrawal", id)
	var st struct {
		Id           *big.Int
		Bank, Holder common.Address
		Amount       *big.Int
	}
	if err := e.hkd.UnpackLog(&st, "WithdrawalSettled", mustLog(t, r, e.assetABI, "WithdrawalSettled")); err != nil {
		t.Fatalf("unpack WithdrawalSettled: %v", err)
	}
	if st.Id.Cmp(id) != 0 || st.Bank != e.bankB.Address() || st.Holder != holder.Address() || st.Amount.Cmp(withdrawn) != 0 {
		t.Fatalf("WithdrawalSettled{%v %s %s %v}, want {%v bank B %s, %s, %v}", st.Id, st.Bank, st.Holder, st.Amount, id, e.bankB.Address(), holder.Address(), withdrawn)
	}
	e.wantWithdrawal(t, id, holder.Address(), withdrawn, payoutRef, state.WithdrawalSettled, e.bankB.Address(), orderID)
	s3 := e.supply(t)
	e.wantSupplyDelta(t, "after the settlement", s2, s3, nil, withdrawn, neg(withdrawn), nil)
	e.wantSupplyDelta(t, "over the whole flow", s0, s3, minted, withdrawn, nil, new(big.Int).Sub(minted, withdrawn))
	e.wantSupplyViews(t, s3)

	// A second settlement: eth_call gives the reason; sent anyway (with a
	// gas limit, so bind does not estimate), it is included with status 0
	// and changes nothing.
	wantRevert(t, e.rawCall(t, e.bankB.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "settleWithdrawal", id)), "already settled")
	if _, r := e.transactUnchecked(t, e.hkd, e.bankB, chain.GasPerSystemCall, "settleWithdrawal", id); r.Status != types.ReceiptStatusFailed || len(r.Logs) != 0 {
		t.Fatalf("second settlement: status %d with %d logs, want status 0 and no logs", r.Status, len(r.Logs))
	}
	if s4 := e.supply(t); !sameSupply(s3, s4) {
		t.Fatalf("a failed second settlement changed the supply: %+v → %+v", s3, s4)
	}

	// A replayed mint fails at bind's gas estimation with the reason, and
	// nothing is sent.
	nonce, err := e.http.PendingNonceAt(e.ctx, e.bankB.Address())
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.hkd.Transact(e.opts(e.bankB), "mint", holder.Address(), minted, bankRef)
	wantRevert(t, err, "already minted")
	if after, err := e.http.PendingNonceAt(e.ctx, e.bankB.Address()); err != nil || after != nonce {
		t.Fatalf("bank B's pending nonce went %d → %d (%v): the replayed mint was sent", nonce, after, err)
	}
	if s5 := e.supply(t); !sameSupply(s3, s5) {
		t.Fatalf("a refused replayed mint changed the supply: %+v → %+v", s3, s5)
	}

	left := new(big.Int).Sub(new(big.Int).Sub(minted, sent), withdrawn)
	if bal := e.balance(t, holder.Address()); bal.Cmp(left) != 0 {
		t.Fatalf("holder balanceOf = %v, want %v − %v − %v = %v", bal, minted, sent, withdrawn, left)
	}
	h := e.history(t, holder.Address())
	if len(h.Items) != 3 {
		t.Fatalf("holder history has %d items, want withdrawal, transfer, mint: %+v", len(h.Items), h.Items)
	}
	e.wantHistoryItem(t, "holder history[0] (newest)", h.Items[0], reqTx.Hash(), "requestWithdrawal", "sent", holder.Address(), &payoutRef,
		transferJSON{Asset: "HKD", From: holder.Address(), To: chain.AssetAddress(hkdID), Amount: withdrawn})
	if h.Items[0].WithdrawalID == nil || bigOf(h.Items[0].WithdrawalID).Cmp(id) != 0 {
		t.Fatalf("holder history[0].withdrawalId = %v, want %v", h.Items[0].WithdrawalID, id)
	}
	e.wantHistoryItem(t, "holder history[1]", h.Items[1], transferTx.Hash(), "transfer", "sent", holder.Address(), nil,
		transferJSON{Asset: "HKD", From: holder.Address(), To: recv.Address(), Amount: sent})
	e.wantHistoryItem(t, "holder history[2]", h.Items[2], mintTx.Hash(), "mint", "received", e.bankB.Address(), &bankRef,
		transferJSON{Asset: "HKD", From: common.Address{}, To: holder.Address(), Amount: minted})
}

// testRejectedWithdrawal: the bank refunds a withdrawal with a reason; the
// holder's balance and the escrow are restored.
func (e *bankEnv) testRejectedWithdrawal(t *testing.T) {
	holder := devKey(t, refundedHolder)
	amount, payoutRef := hkd(t, "300.00"), randomHash(t)
	const reason = "account closed"

	bal0, s0 := e.balance(t, holder.Address()), e.supply(t)
	reqTx, r := e.transact(t, e.hkd, holder, "requestWithdrawal", amount, payoutRef)
	var req struct {
		Id        *big.Int
		Holder    common.Address
		Amount    *big.Int
		PayoutRef [32]byte
	}
	if err := e.hkd.UnpackLog(&req, "WithdrawalRequested", mustLog(t, r, e.assetABI, "WithdrawalRequested")); err != nil {
		t.Fatalf("unpack WithdrawalRequested: %v", err)
	}
	if req.Holder != holder.Address() || req.Amount.Cmp(amount) != 0 || common.Hash(req.PayoutRef) != payoutRef {
		t.Fatalf("WithdrawalRequested{holder %s amount %v payoutRef %x}, want {%s %v %s}", req.Holder, req.Amount, req.PayoutRef, holder.Address(), amount, payoutRef)
	}
	id := req.Id
	if d := new(big.Int).Sub(bal0, e.balance(t, holder.Address())); d.Cmp(amount) != 0 {
		t.Fatalf("the request took %v from the holder, want %v", d, amount)
	}
	s1 := e.supply(t)
	e.wantSupplyDelta(t, "after the request", s0, s1, nil, nil, amount, neg(amount))

	// Only an issuing bank refunds, and only with a reason.
	wantRevert(t, e.rawCall(t, holder.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "refundWithdrawal", id, reason)), "is not an issuing bank of HKD")
	wantRevert(t, e.rawCall(t, e.bankB.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "refundWithdrawal", id, "")), "a reason is required")

	refundTx, r := e.transact(t, e.hkd, e.bankB, "refundWithdrawal", id, reason)
	var ref struct {
		Id           *big.Int
		Bank, Holder common.Address
		Amount       *big.Int
		Reason       string
	}
	if err := e.hkd.UnpackLog(&ref, "WithdrawalRefunded", mustLog(t, r, e.assetABI, "WithdrawalRefunded")); err != nil {
		t.Fatalf("unpack WithdrawalRefunded: %v", err)
	}
	if ref.Id.Cmp(id) != 0 || ref.Bank != e.bankB.Address() || ref.Holder != holder.Address() || ref.Amount.Cmp(amount) != 0 || ref.Reason != reason {
		t.Fatalf("WithdrawalRefunded{%v %s %s %v %q}, want {%v, bank B %s, %s, %v, %q}", ref.Id, ref.Bank, ref.Holder, ref.Amount, ref.Reason,
			id, e.bankB.Address(), holder.Address(), amount, reason)
	}
	if bal := e.balance(t, holder.Address()); bal.Cmp(bal0) != 0 {
		t.Fatalf("holder balance after the refund %v, want it restored to %v", bal, bal0)
	}
	e.wantWithdrawal(t, id, holder.Address(), amount, payoutRef, state.WithdrawalRefunded, common.Address{}, common.Hash{})
	s2 := e.supply(t)
	if !sameSupply(s0, s2) {
		t.Fatalf("supply after request and refund %+v, want it as before %+v", s2, s0)
	}
	if bigOf(s2.Escrow).Sign() != 0 {
		t.Fatalf("escrow %v after the refund, want 0 (no other withdrawal is pending)", bigOf(s2.Escrow))
	}
	e.wantSupplyViews(t, s2)
	wantRevert(t, e.rawCall(t, e.bankB.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "settleWithdrawal", id)), "already refunded")
	wantRevert(t, e.rawCall(t, e.bankB.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "refundWithdrawal", id, reason)), "already refunded")

	h := e.history(t, holder.Address())
	if len(h.Items) < 2 {
		t.Fatalf("holder history has %d items, want the refund and the request", len(h.Items))
	}
	e.wantHistoryItem(t, "holder history[0] (newest)", h.Items[0], refundTx.Hash(), "refundWithdrawal", "received", e.bankB.Address(), nil,
		transferJSON{Asset: "HKD", From: chain.AssetAddress(hkdID), To: holder.Address(), Amount: amount})
	e.wantHistoryItem(t, "holder history[1]", h.Items[1], reqTx.Hash(), "requestWithdrawal", "sent", holder.Address(), &payoutRef,
		transferJSON{Asset: "HKD", From: holder.Address(), To: chain.AssetAddress(hkdID), Amount: amount})
	for i, it := range h.Items[:2] {
		if it.WithdrawalID == nil || bigOf(it.WithdrawalID).Cmp(id) != 0 {
			t.Fatalf("holder history[%d].withdrawalId = %v, want %v", i, it.WithdrawalID, id)
		}
	}
}

// testMerchantRefund: a merchant refunds part of a payment, then the rest;
// it can never refund more than was paid under the reference.
func (e *bankEnv) testMerchantRefund(t *testing.T) {
	customer := devKey(t, refundCustomer)
	stranger := devKey(t, revertingAccount)
	merchant := e.freshAccount(t, genesis.DevTierBasic)
	ref := randomHash(t)
	paid, first, rest := hkd(t, "120.00"), hkd(t, "50.00"), hkd(t, "70.00")

	cust0 := e.balance(t, customer.Address())
	payTx, _ := e.transact(t, e.hkd, customer, "transferWithReference", merchant.Address(), paid, ref)

	refund1Tx, r := e.transact(t, e.hkd, merchant, "refund", ref, customer.Address(), first)
	var rf struct {
		Ref          [32]byte
		Merchant, To common.Address
		Amount       *big.Int
	}
	if err := e.hkd.UnpackLog(&rf, "Refund", mustLog(t, r, e.assetABI, "Refund")); err != nil {
		t.Fatalf("unpack Refund: %v", err)
	}
	if common.Hash(rf.Ref) != ref || rf.Merchant != merchant.Address() || rf.To != customer.Address() || rf.Amount.Cmp(first) != 0 {
		t.Fatalf("Refund{%x %s %s %v}, want {%s %s %s %v}", rf.Ref, rf.Merchant, rf.To, rf.Amount, ref, merchant.Address(), customer.Address(), first)
	}
	e.wantPaid(t, merchant.Address(), ref, customer.Address(), paid, first)

	// More than is left: refused at eth_call and at bind's estimation.
	over := new(big.Int).Add(rest, big.NewInt(1))
	reason := wantRevert(t, e.rawCall(t, merchant.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "refund", ref, customer.Address(), over)), "is more than")
	if !strings.Contains(reason, "left to refund") || !strings.Contains(reason, rest.String()) || !strings.Contains(reason, over.String()) {
		t.Fatalf("over-refund reason %q does not name the %v asked and the %v left to refund", reason, over, rest)
	}
	_, err := e.hkd.Transact(e.opts(merchant), "refund", ref, customer.Address(), over)
	wantRevert(t, err, "left to refund")
	// Nothing under another reference, nor to someone who did not pay.
	wantRevert(t, e.rawCall(t, merchant.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "refund", randomHash(t), customer.Address(), big.NewInt(1))), "is more than")
	wantRevert(t, e.rawCall(t, merchant.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "refund", ref, stranger.Address(), big.NewInt(1))), "is more than")
	wantRevert(t, e.rawCall(t, merchant.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "refund", ref, customer.Address(), big.NewInt(0))), "amount must be positive")

	refund2Tx, _ := e.transact(t, e.hkd, merchant, "refund", ref, customer.Address(), rest)
	e.wantPaid(t, merchant.Address(), ref, customer.Address(), paid, paid)
	wantRevert(t, e.rawCall(t, merchant.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "refund", ref, customer.Address(), big.NewInt(1))), "is more than")

	if bal := e.balance(t, merchant.Address()); bal.Sign() != 0 {
		t.Fatalf("merchant holds %v after refunding everything", bal)
	}
	if bal := e.balance(t, customer.Address()); bal.Cmp(cust0) != 0 {
		t.Fatalf("customer balance %v after a full refund, want %v as before paying", bal, cust0)
	}

	h := e.history(t, merchant.Address())
	if len(h.Items) != 3 {
		t.Fatalf("merchant history has %d items, want two refunds and the payment: %+v", len(h.Items), h.Items)
	}
	e.wantHistoryItem(t, "merchant history[0] (newest)", h.Items[0], refund2Tx.Hash(), "refund", "sent", merchant.Address(), &ref,
		transferJSON{Asset: "HKD", From: merchant.Address(), To: customer.Address(), Amount: rest})
	e.wantHistoryItem(t, "merchant history[1]", h.Items[1], refund1Tx.Hash(), "refund", "sent", merchant.Address(), &ref,
		transferJSON{Asset: "HKD", From: merchant.Address(), To: customer.Address(), Amount: first})
	e.wantHistoryItem(t, "merchant history[2]", h.Items[2], payTx.Hash(), "transferWithReference", "received", customer.Address(), &ref,
		transferJSON{Asset: "HKD", From: customer.Address(), To: merchant.Address(), Amount: paid})
}

// testRevertReasons reads revert reasons through bind's Call and Transact
// and through a raw eth_call: code 3, data Error(reason).
func (e *bankEnv) testRevertReasons(t *testing.T) {
	rich := devKey(t, revertingAccount)
	unverified, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	one := big.NewInt(1)

	// A tier-0 account may only receive: through bind's Call (eth_call with
	// from), bind's Transact (refused at eth_estimateGas, before the
	// mempool would refuse it) and a raw eth_call.
	var out []any
	err = e.hkd.Call(&bind.CallOpts{Context: e.ctx, From: unverified.Address()}, &out, "transfer", rich.Address(), one)
	wantRevert(t, err, "is not KYC-verified")
	_, err = e.hkd.Transact(e.opts(unverified), "transfer", rich.Address(), one)
	wantRevert(t, err, "is not KYC-verified")
	wantRevert(t, e.rawCall(t, unverified.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "transfer", rich.Address(), one)), "tier 0 may only receive")

	// Over the balance.
	over := new(big.Int).Add(e.balance(t, rich.Address()), one)
	err = e.hkd.Call(&bind.CallOpts{Context: e.ctx, From: rich.Address()}, &out, "transfer", unverified.Address(), over)
	wantRevert(t, err, "insufficient balance")
	wantRevert(t, e.rawCall(t, rich.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "transfer", unverified.Address(), over)), "insufficient balance")

	// Minting by a non-bank, and by bank A, which issues only CNY.
	for _, k := range []*crypto.PrivateKey{rich, e.bankA} {
		_, err = e.hkd.Transact(e.opts(k), "mint", rich.Address(), one, randomHash(t))
		wantRevert(t, err, "is not an issuing bank of HKD")
		wantRevert(t, e.rawCall(t, k.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "mint", rich.Address(), one, randomHash(t))), "is not an issuing bank of HKD")
	}
	// The same call works from bank B: eth_call returns the output (true).
	var res hexutil.Bytes
	if err := e.raw.CallContext(e.ctx, &res, "eth_call", callArgs(e.bankB.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "mint", rich.Address(), one, randomHash(t))), "latest"); err != nil {
		t.Fatalf("eth_call mint from bank B: %v", err)
	}
	if vals, err := e.assetABI.Unpack("mint", res); err != nil || len(vals) != 1 || vals[0] != true {
		t.Fatalf("eth_call mint from bank B returned %x (%v %v), want true", []byte(res), vals, err)
	}

	// Compliance: only the authority sets tiers; a frozen account cannot pay.
	_, err = e.compliance.Transact(e.opts(rich), "setKycTier", unverified.Address(), uint8(1), "onboarding")
	wantRevert(t, err, "only the compliance authority")
	frozen := e.freshAccount(t, genesis.DevTierBasic)
	e.transact(t, e.hkd, rich, "transfer", frozen.Address(), hkd(t, "10.00"))
	_, r := e.transact(t, e.compliance, e.authority, "freeze", frozen.Address(), "court order 42")
	var fr struct {
		Account, Authority common.Address
		Reason             string
	}
	if err := e.compliance.UnpackLog(&fr, "Frozen", mustLog(t, r, e.complianceABI, "Frozen")); err != nil {
		t.Fatalf("unpack Frozen: %v", err)
	}
	if fr.Account != frozen.Address() || fr.Authority != e.authority.Address() || fr.Reason != "court order 42" {
		t.Fatalf("Frozen{%s %s %q}, want {%s, %s, court order 42}", fr.Account, fr.Authority, fr.Reason, frozen.Address(), e.authority.Address())
	}
	if !e.view(t, e.compliance, "isFrozen", frozen.Address())[0].(bool) {
		t.Fatalf("isFrozen = false after freeze")
	}
	acc := e.account(t, frozen.Address())
	if !acc.Frozen || acc.Tier != genesis.DevTierBasic || acc.TierName != "basic" || bigOf(acc.Balances["HKD"]).Cmp(hkd(t, "10.00")) != 0 {
		t.Fatalf("tally_getAccount(frozen) = %+v, want frozen, tier 1 (basic), HKD 1000 units", acc)
	}
	if left := acc.RemainingDaily["HKD"]; left == nil || bigOf(left).Sign() != 0 {
		t.Fatalf("tally_getAccount(frozen).remainingDaily.HKD = %v, want 0", left)
	}
	wantRevert(t, e.rawCall(t, frozen.Address(), e.hkd.Address(), e.pack(t, e.assetABI, "transfer", rich.Address(), one)), "is frozen")
	err = e.hkd.Call(&bind.CallOpts{Context: e.ctx, From: rich.Address()}, &out, "transfer", frozen.Address(), one)
	wantRevert(t, err, "is frozen")
}

// opts returns fresh TransactOpts for k: bind estimates gas and asks for the
// nonce and fees itself.
func (e *bankEnv) opts(k *crypto.PrivateKey) *bind.TransactOpts {
	o := bind.NewKeyedTransactor(k.ECDSA(), e.chainID)
	o.Context = e.ctx
	return o
}

// transact sends method through bind and waits for a successful receipt.
func (e *bankEnv) transact(t *testing.T, c *bind.BoundContract, k *crypto.PrivateKey, method string, args ...any) (*types.Transaction, *types.Receipt) {
	t.Helper()
	tx, r := e.transactUnchecked(t, c, k, 0, method, args...)
	if r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("%s from %s: receipt status %d (estimation passed, execution failed)", method, k.Address(), r.Status)
	}
	return tx, r
}

// transactUnchecked sends method (with gasLimit, or estimating if 0) and
// returns its receipt whatever its status.
func (e *bankEnv) transactUnchecked(t *testing.T, c *bind.BoundContract, k *crypto.PrivateKey, gasLimit uint64, method string, args ...any) (*types.Transaction, *types.Receipt) {
	t.Helper()
	o := e.opts(k)
	o.GasLimit = gasLimit
	tx, err := c.Transact(o, method, args...)
	if err != nil {
		t.Fatalf("%s from %s: %v", method, k.Address(), err)
	}
	r, err := bind.WaitMined(e.ctx, receiptWaiter{e.http}, tx.Hash())
	if err != nil {
		t.Fatalf("%s from %s: wait for receipt of %s: %v", method, k.Address(), tx.Hash(), err)
	}
	if r.TxHash != tx.Hash() || r.GasUsed != chain.GasPerSystemCall {
		t.Fatalf("%s: receipt for %s with gasUsed %d, want %s and %d", method, r.TxHash, r.GasUsed, tx.Hash(), chain.GasPerSystemCall)
	}
	return tx, r
}

// receiptWaiter is the backend bind.WaitMined polls. WaitMined asks once a
// second; blocks come every few milliseconds here, so TransactionReceipt
// itself waits for the receipt, asking every 10 ms, and WaitMined's first
// poll finds it (otherwise this file's ~25 transactions would take ~25 s).
type receiptWaiter struct{ *ethclient.Client }

func (w receiptWaiter) TransactionReceipt(ctx context.Context, h common.Hash) (*types.Receipt, error) {
	for {
		r, err := w.Client.TransactionReceipt(ctx, h)
		if !errors.Is(err, ethereum.NotFound) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// view calls a view through bind's Call and returns its outputs.
func (e *bankEnv) view(t *testing.T, c *bind.BoundContract, method string, args ...any) []any {
	t.Helper()
	var out []any
	if err := c.Call(&bind.CallOpts{Context: e.ctx}, &out, method, args...); err != nil {
		t.Fatalf("%s(%v): %v", method, args, err)
	}
	return out
}

func (e *bankEnv) balance(t *testing.T, a common.Address) *big.Int {
	t.Helper()
	return e.view(t, e.hkd, "balanceOf", a)[0].(*big.Int)
}

func (e *bankEnv) wantPaid(t *testing.T, merchant common.Address, ref common.Hash, payer common.Address, paid, refunded *big.Int) {
	t.Helper()
	got := e.view(t, e.hkd, "paidUnderReference", merchant, ref, payer)
	if got[0].(*big.Int).Cmp(paid) != 0 || got[1].(*big.Int).Cmp(refunded) != 0 {
		t.Fatalf("paidUnderReference = (%v paid, %v refunded), want (%v, %v)", got[0], got[1], paid, refunded)
	}
}

func (e *bankEnv) wantWithdrawal(t *testing.T, id *big.Int, holder common.Address, amount *big.Int, payoutRef common.Hash, status uint8, bank common.Address, order common.Hash) {
	t.Helper()
	w := e.view(t, e.hkd, "withdrawal", id)
	if w[0].(common.Address) != holder || w[1].(*big.Int).Cmp(amount) != 0 || common.Hash(w[2].([32]byte)) != payoutRef || w[3].(uint8) != status ||
		w[4].(common.Address) != bank || common.Hash(w[5].([32]byte)) != order {
		t.Fatalf("withdrawal(%v) = (%s, %v, %x, status %d, bank %s, order %x), want (%s, %v, %s, status %d, bank %s, order %s)",
			id, w[0], w[1], w[2], w[3], w[4], w[5], holder, amount, payoutRef, status, bank, order)
	}
}

// freshAccount returns a new key the compliance authority raised to tier.
func (e *bankEnv) freshAccount(t *testing.T, tier uint8) *crypto.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, r := e.transact(t, e.compliance, e.authority, "setKycTier", k.Address(), tier, "onboarding")
	var set struct {
		Account, Authority common.Address
		OldTier, NewTier   uint8
		Reason             string
	}
	if err := e.compliance.UnpackLog(&set, "KycTierSet", mustLog(t, r, e.complianceABI, "KycTierSet")); err != nil {
		t.Fatalf("unpack KycTierSet: %v", err)
	}
	if set.Account != k.Address() || set.Authority != e.authority.Address() || set.OldTier != 0 || set.NewTier != tier {
		t.Fatalf("KycTierSet{%s %s %d→%d}, want {%s %s 0→%d}", set.Account, set.Authority, set.OldTier, set.NewTier, k.Address(), e.authority.Address(), tier)
	}
	if got := e.view(t, e.compliance, "kycTier", k.Address())[0].(uint8); got != tier {
		t.Fatalf("kycTier = %d after setKycTier(%d)", got, tier)
	}
	return k
}

func (e *bankEnv) pack(t *testing.T, a abi.ABI, method string, args ...any) []byte {
	t.Helper()
	data, err := a.Pack(method, args...)
	if err != nil {
		t.Fatalf("pack %s: %v", method, err)
	}
	return data
}

func callArgs(from, to common.Address, data []byte) map[string]any {
	return map[string]any{"from": from, "to": to, "input": hexutil.Bytes(data)}
}

// rawCall makes a raw eth_call with go-ethereum's rpc client and returns its error.
func (e *bankEnv) rawCall(t *testing.T, from, to common.Address, data []byte) error {
	t.Helper()
	var out hexutil.Bytes
	err := e.raw.CallContext(e.ctx, &out, "eth_call", callArgs(from, to, data), "latest")
	if err == nil {
		t.Fatalf("eth_call from %s to %s (selector %x) returned %x, want a revert", from, to, data[:4], []byte(out))
	}
	return err
}

// wantRevert checks that err is go-ethereum's revert error: code 3, message
// "execution reverted: <reason>" and data the ABI-encoded Error(reason),
// with reason containing substr; it returns the reason.
func wantRevert(t *testing.T, err error, substr string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want a revert with reason containing %q", substr)
	}
	var rerr rpc.Error
	if !errors.As(err, &rerr) || rerr.ErrorCode() != 3 {
		t.Fatalf("error %q (%T) is not a JSON-RPC error with code 3", err, err)
	}
	var derr rpc.DataError
	if !errors.As(err, &derr) {
		t.Fatalf("revert %q carries no error data", err)
	}
	s, ok := derr.ErrorData().(string)
	if !ok {
		t.Fatalf("revert data %v (%T), want a hex string", derr.ErrorData(), derr.ErrorData())
	}
	data, herr := hexutil.Decode(s)
	if herr != nil {
		t.Fatalf("revert data %q: %v", s, herr)
	}
	reason, uerr := abi.UnpackRevert(data)
	if uerr != nil {
		t.Fatalf("revert data %s is not Error(string): %v", s, uerr)
	}
	if !strings.Contains(reason, substr) {
		t.Fatalf("revert reason %q, want it to contain %q", reason, substr)
	}
	if msg := err.Error(); !strings.Contains(msg, "execution reverted: "+reason) {
		t.Fatalf("error message %q does not carry the reason %q as go-ethereum words it", msg, reason)
	}
	return reason
}

// mustLog returns the only log of event in r.
func mustLog(t *testing.T, r *types.Receipt, a abi.ABI, event string) types.Log {
	t.Helper()
	var found []*types.Log
	for _, l := range r.Logs {
		if len(l.Topics) > 0 && l.Topics[0] == a.Events[event].ID {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("receipt of %s has %d %s logs, want 1", r.TxHash, len(found), event)
	}
	return *found[0]
}

// filtered returns the logs bind's FilterLogs found. Its subscription ends
// (Err is closed) once it has queued every log in the buffered channel.
func filtered(t *testing.T, logs <-chan types.Log, sub ethereum.Subscription, what string) []types.Log {
	t.Helper()
	select {
	case err := <-sub.Err():
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not done within 10 s", what)
	}
	var out []types.Log
	for {
		select {
		case l := <-logs:
			out = append(out, l)
		default:
			return out
		}
	}
}

// receiveLog waits for one log of a subscription.
func receiveLog(t *testing.T, logs <-chan types.Log, sub ethereum.Subscription, what string) types.Log {
	t.Helper()
	select {
	case l := <-logs:
		return l
	case err := <-sub.Err():
		t.Fatalf("%s: subscription ended before the log: %v", what, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no log within 10 s", what)
	}
	panic("unreachable")
}

// sameLog checks that a delivered log is the receipt's log of tx.
func sameLog(t *testing.T, what string, got, want types.Log, tx common.Hash) {
	t.Helper()
	if got.TxHash != tx || got.Removed || got.Address != want.Address || got.BlockNumber != want.BlockNumber || got.BlockHash != want.BlockHash ||
		got.Index != want.Index || got.TxIndex != want.TxIndex || !bytes.Equal(got.Data, want.Data) || len(got.Topics) != len(want.Topics) {
		t.Fatalf("%s log %+v, want the receipt's %+v of tx %s", what, got, want, tx)
	}
	for i := range got.Topics {
		if got.Topics[i] != want.Topics[i] {
			t.Fatalf("%s log topic %d = %s, want %s", what, i, got.Topics[i], want.Topics[i])
		}
	}
}

// JSON shapes of the tally_* answers, as documented in rpc/tally.go.
type (
	supplyJSON struct {
		Symbol      string         `json:"symbol"`
		Address     common.Address `json:"address"`
		Decimals    uint8          `json:"decimals"`
		Minted      *hexutil.Big   `json:"minted"`
		Burned      *hexutil.Big   `json:"burned"`
		Escrow      *hexutil.Big   `json:"escrow"`
		Circulating *hexutil.Big   `json:"circulating"`
		TotalSupply *hexutil.Big   `json:"totalSupply"`
	}
	accountJSON struct {
		Address        common.Address          `json:"address"`
		Nonce          hexutil.Uint64          `json:"nonce"`
		Balances       map[string]*hexutil.Big `json:"balances"`
		Tier           uint8                   `json:"tier"`
		TierName       string                  `json:"tierName"`
		Frozen         bool                    `json:"frozen"`
		RemainingDaily map[string]*hexutil.Big `json:"remainingDaily"`
	}
	historyJSON struct {
		Items      []historyItemJSON `json:"items"`
		NextCursor *hexutil.Bytes    `json:"nextCursor"`
	}
	historyItemJSON struct {
		BlockNumber  hexutil.Uint64 `json:"blockNumber"`
		TxHash       common.Hash    `json:"transactionHash"`
		From         common.Address `json:"from"`
		To           common.Address `json:"to"`
		Operation    string         `json:"operation"`
		Status       hexutil.Uint64 `json:"status"`
		Direction    string         `json:"direction"`
		Transfers    []transferJSON `json:"transfers"`
		Reference    *common.Hash   `json:"reference"`
		WithdrawalID *hexutil.Big   `json:"withdrawalId"`
	}
	transferJSON struct {
		Asset  string         `json:"asset"`
		From   common.Address `json:"from"`
		To     common.Address `json:"to"`
		Amount *big.Int       `json:"amount"`
	}
)

// UnmarshalJSON reads the hex amount.
func (tr *transferJSON) UnmarshalJSON(b []byte) error {
	var v struct {
		Asset  string         `json:"asset"`
		From   common.Address `json:"from"`
		To     common.Address `json:"to"`
		Amount *hexutil.Big   `json:"amount"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*tr = transferJSON{Asset: v.Asset, From: v.From, To: v.To, Amount: bigOf(v.Amount)}
	return nil
}

func (e *bankEnv) supply(t *testing.T) supplyJSON {
	t.Helper()
	var s supplyJSON
	if err := e.raw.CallContext(e.ctx, &s, "tally_getSupply", "HKD"); err != nil {
		t.Fatalf("tally_getSupply(HKD): %v", err)
	}
	if s.Symbol != "HKD" || s.Address != chain.AssetAddress(hkdID) || s.Decimals != hkdDecimals {
		t.Fatalf("tally_getSupply(HKD) describes %s at %s with %d decimals", s.Symbol, s.Address, s.Decimals)
	}
	if s.Minted == nil || s.Burned == nil || s.Escrow == nil || s.Circulating == nil || s.TotalSupply == nil {
		t.Fatalf("tally_getSupply(HKD) lacks a figure: %+v", s)
	}
	minted, burned, escrow, circ := bigOf(s.Minted), bigOf(s.Burned), bigOf(s.Escrow), bigOf(s.Circulating)
	total := new(big.Int).Sub(minted, burned)
	if bigOf(s.TotalSupply).Cmp(total) != 0 || new(big.Int).Add(circ, escrow).Cmp(total) != 0 {
		t.Fatalf("tally_getSupply(HKD) inconsistent: minted %v burned %v escrow %v circulating %v totalSupply %v", minted, burned, escrow, circ, bigOf(s.TotalSupply))
	}
	return s
}

// wantSupplyDelta checks the exact change of each supply figure from a to
// b; nil means unchanged.
func (e *bankEnv) wantSupplyDelta(t *testing.T, when string, a, b supplyJSON, minted, burned, escrow, circulating *big.Int) {
	t.Helper()
	for _, f := range []struct {
		name     string
		from, to *hexutil.Big
		want     *big.Int
	}{{"minted", a.Minted, b.Minted, minted}, {"burned", a.Burned, b.Burned, burned}, {"escrow", a.Escrow, b.Escrow, escrow}, {"circulating", a.Circulating, b.Circulating, circulating}} {
		want := f.want
		if want == nil {
			want = new(big.Int)
		}
		if d := new(big.Int).Sub(bigOf(f.to), bigOf(f.from)); d.Cmp(want) != 0 {
			t.Errorf("%s: tally_getSupply(HKD).%s went %v → %v (%+v), want %+v", when, f.name, bigOf(f.from), bigOf(f.to), d, want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// wantSupplyViews checks totalSupply() and supply() against tally_getSupply.
func (e *bankEnv) wantSupplyViews(t *testing.T, s supplyJSON) {
	t.Helper()
	if ts := e.view(t, e.hkd, "totalSupply")[0].(*big.Int); ts.Cmp(bigOf(s.TotalSupply)) != 0 {
		t.Fatalf("totalSupply() = %v, tally_getSupply says %v", ts, bigOf(s.TotalSupply))
	}
	v := e.view(t, e.hkd, "supply")
	for i, want := range []*hexutil.Big{s.Minted, s.Burned, s.Escrow, s.Circulating} {
		if v[i].(*big.Int).Cmp(bigOf(want)) != 0 {
			t.Fatalf("supply() = %v, tally_getSupply says minted %v burned %v escrow %v circulating %v", v, s.Minted, s.Burned, s.Escrow, s.Circulating)
		}
	}
}

func sameSupply(a, b supplyJSON) bool {
	return bigOf(a.Minted).Cmp(bigOf(b.Minted)) == 0 && bigOf(a.Burned).Cmp(bigOf(b.Burned)) == 0 &&
		bigOf(a.Escrow).Cmp(bigOf(b.Escrow)) == 0 && bigOf(a.Circulating).Cmp(bigOf(b.Circulating)) == 0
}

func (e *bankEnv) account(t *testing.T, a common.Address) accountJSON {
	t.Helper()
	var acc accountJSON
	if err := e.raw.CallContext(e.ctx, &acc, "tally_getAccount", a); err != nil {
		t.Fatalf("tally_getAccount(%s): %v", a, err)
	}
	for _, sym := range []string{"CNY", "HKD"} {
		if acc.Balances[sym] == nil {
			t.Fatalf("tally_getAccount(%s).balances lacks %s: %v", a, sym, acc.Balances)
		}
	}
	return acc
}

func (e *bankEnv) history(t *testing.T, a common.Address) historyJSON {
	t.Helper()
	var h historyJSON
	if err := e.raw.CallContext(e.ctx, &h, "tally_getAccountHistory", a, nil, hexutil.Uint(50)); err != nil {
		t.Fatalf("tally_getAccountHistory(%s): %v", a, err)
	}
	if h.NextCursor != nil {
		t.Fatalf("tally_getAccountHistory(%s) has a next page; this test's accounts have only a few entries", a)
	}
	return h
}

// wantHistoryItem checks one history entry: a successful call to the HKD
// facade (or the transfer's target) by from, with exactly the one transfer.
func (e *bankEnv) wantHistoryItem(t *testing.T, what string, it historyItemJSON, tx common.Hash, op, direction string, from common.Address, ref *common.Hash, want transferJSON) {
	t.Helper()
	if it.TxHash != tx || it.Operation != op || it.Direction != direction || it.From != from || it.To != chain.AssetAddress(hkdID) || it.Status != 1 {
		t.Fatalf("%s: tx %s %s %s from %s to %s status %d, want tx %s %s %s from %s to the HKD facade, status 1",
			what, it.TxHash, it.Operation, it.Direction, it.From, it.To, it.Status, tx, op, direction, from)
	}
	switch {
	case ref == nil && it.Reference != nil:
		t.Fatalf("%s: reference %s, want none", what, it.Reference)
	case ref != nil && (it.Reference == nil || *it.Reference != *ref):
		t.Fatalf("%s: reference %v, want %s", what, it.Reference, ref)
	}
	if len(it.Transfers) != 1 {
		t.Fatalf("%s: transfers %+v, want exactly %+v", what, it.Transfers, want)
	}
	if got := it.Transfers[0]; got.Asset != want.Asset || got.From != want.From || got.To != want.To || got.Amount == nil || got.Amount.Cmp(want.Amount) != 0 {
		t.Fatalf("%s: transfer %+v, want %+v", what, got, want)
	}
}

func devKey(t *testing.T, i uint32) *crypto.PrivateKey {
	t.Helper()
	k, err := genesis.DevKey(i)
	if err != nil {
		t.Fatalf("dev key %d: %v", i, err)
	}
	return k
}

// hkd parses an HKD amount into base units (2 decimals).
func hkd(t *testing.T, s string) *big.Int {
	t.Helper()
	v, err := wallet.ParseAmount(s, hkdDecimals)
	if err != nil {
		t.Fatalf("parse %s HKD: %v", s, err)
	}
	return v
}

func randomHash(t *testing.T) common.Hash {
	t.Helper()
	var h common.Hash
	if _, err := rand.Read(h[:]); err != nil {
		t.Fatal(err)
	}
	return h
}

// bigOf reads a hex quantity; callers check presence where it matters.
func bigOf(v *hexutil.Big) *big.Int {
	if v == nil {
		return new(big.Int)
	}
	return v.ToInt()
}

func neg(v *big.Int) *big.Int { return new(big.Int).Neg(v) }
