package node

import (
	"context"
	"encoding/binary"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// The published addresses (docs/payments.md, docs/operations.md), written
// out as a client's configuration would have them.
var (
	confirmationsAddr = common.HexToAddress("0x0000000000000000000000000000000000000C04")
	disputesAddr      = common.HexToAddress("0x0000000000000000000000000000000000000C05")
	governanceAddr    = common.HexToAddress("0x0000000000000000000000000000000000000C02")
	hkdAddr           = common.HexToAddress("0x0000000000000000000000000000000000001001")
)

// payClient is what a wallet or a merchant's backend is: go-ethereum's
// ethclient with the ABIs read from the published files under abi/, and
// plain EIP-1559 transactions it signs itself after eth_estimateGas (whose
// revert reason is what it shows when a call would fail).
type payClient struct {
	t       *testing.T
	ctx     context.Context
	ec      *ethclient.Client
	chainID *big.Int
	abis    map[string]abi.ABI
}

func newPayClient(t *testing.T, ctx context.Context, ec *ethclient.Client) *payClient {
	t.Helper()
	id, err := ec.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &payClient{t: t, ctx: ctx, ec: ec, chainID: id, abis: map[string]abi.ABI{}}
	for _, name := range []string{"Asset", "Confirmations", "Disputes", "Governance"} {
		f, err := os.Open(filepath.Join("..", "abi", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		a, err := abi.JSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("abi/%s.json: %v", name, err)
		}
		c.abis[name] = a
	}
	return c
}

func (c *payClient) pack(contract, method string, args ...any) []byte {
	c.t.Helper()
	a := c.abis[contract]
	data, err := a.Pack(method, args...)
	if err != nil {
		c.t.Fatalf("pack %s.%s: %v", contract, method, err)
	}
	return data
}

// send estimates, signs and sends a call and waits for its receipt, which
// must have status 1.
func (c *payClient) send(key *crypto.PrivateKey, to common.Address, contract, method string, args ...any) *types.Receipt {
	c.t.Helper()
	data := c.pack(contract, method, args...)
	from := key.Address()
	gas, err := c.ec.EstimateGas(c.ctx, ethereum.CallMsg{From: from, To: &to, Data: data})
	if err != nil {
		c.t.Fatalf("%s by %s: estimate gas: %v", method, from, err)
	}
	nonce, err := c.ec.PendingNonceAt(c.ctx, from)
	if err != nil {
		c.t.Fatal(err)
	}
	tx, err := types.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: c.chainID, Nonce: nonce, To: &to, Gas: gas, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Data: data}),
		types.LatestSignerForChainID(c.chainID), key.ECDSA())
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.ec.SendTransaction(c.ctx, tx); err != nil {
		c.t.Fatalf("%s by %s: %v", method, from, err)
	}
	for {
		r, err := c.ec.TransactionReceipt(c.ctx, tx.Hash())
		if err == nil {
			if r.Status != types.ReceiptStatusSuccessful {
				c.t.Fatalf("%s by %s: status %d", method, from, r.Status)
			}
			return r
		}
		select {
		case <-c.ctx.Done():
			c.t.Fatalf("%s by %s: no receipt: %v", method, from, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// refused checks that the call is refused before anything is signed:
// eth_estimateGas fails with the revert reason, which contains want.
func (c *payClient) refused(want string, key *crypto.PrivateKey, to common.Address, contract, method string, args ...any) {
	c.t.Helper()
	data := c.pack(contract, method, args...)
	_, err := c.ec.EstimateGas(c.ctx, ethereum.CallMsg{From: key.Address(), To: &to, Data: data})
	if err == nil || !strings.Contains(err.Error(), "execution reverted") || !strings.Contains(err.Error(), want) {
		c.t.Fatalf("%s by %s: %v, want reverted with %q", method, key.Address(), err, want)
	}
}

// view calls a view at the head and returns its outputs.
func (c *payClient) view(to common.Address, contract, method string, args ...any) []any {
	c.t.Helper()
	out, err := c.ec.CallContract(c.ctx, ethereum.CallMsg{To: &to, Data: c.pack(contract, method, args...)}, nil)
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	a := c.abis[contract]
	vals, err := a.Unpack(method, out)
	if err != nil {
		c.t.Fatal(err)
	}
	return vals
}

func (c *payClient) balance(who common.Address) int64 {
	return c.view(hkdAddr, "Asset", "balanceOf", who)[0].(*big.Int).Int64()
}

// escrow is HKD's supply().escrow.
func (c *payClient) escrow() int64 { return c.view(hkdAddr, "Asset", "supply")[2].(*big.Int).Int64() }

// events returns the logs of contract's event among logs, with their
// non-indexed fields decoded.
func (c *payClient) events(logs []*types.Log, addr common.Address, contract, name string) ([]*types.Log, []map[string]any) {
	c.t.Helper()
	a := c.abis[contract]
	ev := a.Events[name]
	var ls []*types.Log
	var ms []map[string]any
	for _, l := range logs {
		if l.Address == addr && len(l.Topics) > 0 && l.Topics[0] == ev.ID {
			m := map[string]any{}
			if err := a.UnpackIntoMap(m, name, l.Data); err != nil {
				c.t.Fatal(err)
			}
			ls, ms = append(ls, l), append(ms, m)
		}
	}
	return ls, ms
}

// event returns the one log of the event in r.
func (c *payClient) event(r *types.Receipt, addr common.Address, contract, name string) (*types.Log, map[string]any) {
	c.t.Helper()
	ls, ms := c.events(r.Logs, addr, contract, name)
	if len(ls) != 1 {
		c.t.Fatalf("%d %s events in %v, want 1", len(ls), name, r.Logs)
	}
	return ls[0], ms[0]
}

// no checks r has no log of the event.
func (c *payClient) no(r *types.Receipt, addr common.Address, contract, name string) {
	c.t.Helper()
	if ls, _ := c.events(r.Logs, addr, contract, name); len(ls) != 0 {
		c.t.Fatalf("unexpected %s in %v", name, r.Logs)
	}
}

// blockTimeMs is a block's time in ms: the first 8 bytes of its extraData
// (docs/rpc.md); nil is the head.
func (c *payClient) blockTimeMs(number *big.Int) uint64 {
	c.t.Helper()
	h, err := c.ec.HeaderByNumber(c.ctx, number)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(h.Extra) < 8 {
		c.t.Fatalf("block %s: extraData %x holds no time", number, h.Extra)
	}
	return binary.BigEndian.Uint64(h.Extra[:8])
}

func (c *payClient) headTime() uint64 { return c.blockTimeMs(nil) }

// until polls cond until it holds or the test's deadline passes.
func (c *payClient) until(what string, cond func() bool) {
	c.t.Helper()
	for !cond() {
		select {
		case <-c.ctx.Done():
			c.t.Fatalf("%s: never", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func idOf(l *types.Log) *big.Int { return new(big.Int).SetBytes(l.Topics[1][:]) }

// blockClock is the node's block clock: the wall clock moved ahead by
// what the test skipped.
type blockClock struct{ skip atomic.Int64 }

func (b *blockClock) now() time.Time { return time.Now().Add(time.Duration(b.skip.Load())) }

// advance moves block time d ahead and waits for a block stamped after it.
func (b *blockClock) advance(c *payClient, d time.Duration) {
	c.t.Helper()
	b.skip.Add(int64(d))
	target := uint64(b.now().UnixMilli())
	c.until("a block after the skip", func() bool { return c.headTime() >= target })
}

// payNode is a dev node whose block clock the test moves, with the dev
// accounts in their roles.
type payNode struct {
	*payClient
	clock                                      *blockClock
	alice, bob, carol, key, key2, bank, m1, m2 *crypto.PrivateKey
}

func startPayNode(t *testing.T) *payNode {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a node through every payment flow")
	}
	clock := &blockClock{}
	n := startDevNode(t, t.TempDir(), func(c *Config) {
		c.BlockClock = clock.now
		c.Builder.Heartbeat = Duration(50 * time.Millisecond)
	})
	ec, _ := dial(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	key := func(i uint32) *crypto.PrivateKey {
		k, err := genesis.DevKey(i)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	return &payNode{payClient: newPayClient(t, ctx, ec), clock: clock,
		alice: key(0), bob: key(1), key: key(2), key2: key(3), carol: key(4), bank: key(genesis.DevBankBIndex),
		m1: key(genesis.DevGovernanceIndex), m2: key(genesis.DevGovernanceIndex + 1)}
}

// govern has two of the three dev members pass the change and waits
// until it is executed (status 4).
func (p *payNode) govern(method string, args ...any) {
	p.t.Helper()
	r := p.send(p.m1, governanceAddr, "Governance", method, args...)
	l, _ := p.event(r, governanceAddr, "Governance", "Proposed")
	id := idOf(l)
	p.send(p.m2, governanceAddr, "Governance", "vote", id, true)
	p.until("proposal executed", func() bool { return p.view(governanceAddr, "Governance", "proposal", id)[2].(uint8) == 4 })
}

// TestConfirmationsOnNode drives every confirmation flow on a real node
// with a go-ethereum client: below the threshold a transfer moves at once;
// above it, it is held (escrow, ConfirmationRequired) until the key
// confirms it or rejects it, its sender cancels it, or it expires (the
// node's keeper sends expirePayments: PaymentExpired, in eth_getLogs);
// the wrong parties are refused with the reason; a stolen primary key
// cannot switch the confirmation off before the delay, while the key
// approves a change at once. Governance changes the hold on the running
// chain, refusing a bad value by its field.
func TestConfirmationsOnNode(t *testing.T) {
	p := startPayNode(t)
	alice, bob := p.alice.Address(), p.bob.Address()
	threshold := big.NewInt(10_000) // 100.00 HKD

	// Governance: a hold under a minute is refused, naming the field; two
	// hours is taken.
	p.refused("payments.holdSeconds 59 is under 60", p.m1, governanceAddr, "Governance", "proposeSetPayments", uint64(59), uint64(0), uint64(0))
	p.govern("proposeSetPayments", uint64(7200), uint64(0), uint64(0))

	p.send(p.alice, confirmationsAddr, "Confirmations", "setConfirmation", p.key.Address(), []common.Address{hkdAddr}, []*big.Int{threshold})
	if got := p.view(confirmationsAddr, "Confirmations", "thresholdOf", alice, hkdAddr); !got[0].(bool) || got[1].(*big.Int).Cmp(threshold) != 0 {
		t.Fatalf("thresholdOf %v", got)
	}

	// Below (and at) the threshold: moves at once.
	a0, b0 := p.balance(alice), p.balance(bob)
	r := p.send(p.alice, hkdAddr, "Asset", "transfer", bob, threshold)
	p.no(r, confirmationsAddr, "Confirmations", "ConfirmationRequired")
	if p.balance(bob)-b0 != 10_000 || a0-p.balance(alice) != 10_000 || p.escrow() != 0 {
		t.Fatalf("at the threshold: bob +%d, alice -%d, escrow %d", p.balance(bob)-b0, a0-p.balance(alice), p.escrow())
	}

	// hold sends 250.00 to bob and returns the held payment's id, checking
	// the escrow and the event: it expires at the hold's block time plus
	// the hold governance set, rounded up to a second.
	hold := func() *big.Int {
		t.Helper()
		a0, b0, e0 := p.balance(alice), p.balance(bob), p.escrow()
		r := p.send(p.alice, hkdAddr, "Asset", "transfer", bob, big.NewInt(25_000))
		l, ev := p.event(r, confirmationsAddr, "Confirmations", "ConfirmationRequired")
		want := (p.blockTimeMs(r.BlockNumber) + 7200_000 + 999) / 1000 * 1000
		if ev["amount"].(*big.Int).Int64() != 25_000 || ev["asset"].(common.Address) != hkdAddr || common.BytesToAddress(l.Topics[3][:]) != bob ||
			ev["expiresAtMs"].(uint64) != want {
			t.Fatalf("ConfirmationRequired %v %v, want expiresAtMs %d", l.Topics, ev, want)
		}
		if a0-p.balance(alice) != 25_000 || p.balance(bob) != b0 || p.escrow()-e0 != 25_000 {
			t.Fatalf("held: alice -%d, bob +%d, escrow +%d", a0-p.balance(alice), p.balance(bob)-b0, p.escrow()-e0)
		}
		return idOf(l)
	}
	status := func(id *big.Int) uint8 {
		return p.view(confirmationsAddr, "Confirmations", "pendingPayment", id)[7].(uint8)
	}

	// Confirmed by the key (not by the primary key, nor the payee).
	id := hold()
	p.refused("only the confirmation key", p.alice, confirmationsAddr, "Confirmations", "confirmPayment", id)
	p.refused("only the confirmation key", p.bob, confirmationsAddr, "Confirmations", "confirmPayment", id)
	b0 = p.balance(bob)
	r = p.send(p.key, confirmationsAddr, "Confirmations", "confirmPayment", id)
	if l, _ := p.event(r, confirmationsAddr, "Confirmations", "PaymentConfirmed"); idOf(l).Cmp(id) != 0 || common.BytesToAddress(l.Topics[3][:]) != p.key.Address() {
		t.Fatalf("PaymentConfirmed %v", l.Topics)
	}
	if p.balance(bob)-b0 != 25_000 || p.escrow() != 0 || status(id) != 2 {
		t.Fatalf("confirmed: bob +%d, escrow %d, status %d", p.balance(bob)-b0, p.escrow(), status(id))
	}
	p.refused("is already confirmed", p.key, confirmationsAddr, "Confirmations", "rejectPayment", id)

	// Rejected by the key; cancelled by the sender (not by the payee).
	for _, c := range []struct {
		event  string
		by     *crypto.PrivateKey
		method string
		status uint8
	}{{"PaymentRejected", p.key, "rejectPayment", 3}, {"PaymentCancelled", p.alice, "cancelPayment", 4}} {
		a0 := p.balance(alice)
		id := hold()
		if c.method == "cancelPayment" {
			p.refused("only the sender", p.bob, confirmationsAddr, "Confirmations", "cancelPayment", id)
			p.refused("only the sender", p.key, confirmationsAddr, "Confirmations", "cancelPayment", id)
		} else {
			p.refused("only the confirmation key", p.alice, confirmationsAddr, "Confirmations", "rejectPayment", id)
		}
		r := p.send(c.by, confirmationsAddr, "Confirmations", c.method, id)
		p.event(r, confirmationsAddr, "Confirmations", c.event)
		if ts, _ := p.events(r.Logs, hkdAddr, "Asset", "Transfer"); len(ts) != 1 || common.BytesToAddress(ts[0].Topics[2][:]) != alice {
			t.Fatalf("%s: Transfer back %v", c.event, r.Logs)
		}
		if p.balance(alice) != a0 || p.escrow() != 0 || status(id) != c.status {
			t.Fatalf("%s: alice %d (had %d), escrow %d, status %d", c.event, p.balance(alice), a0, p.escrow(), status(id))
		}
	}

	// Expiry: two hours on, confirming is refused and the node's keeper
	// returns the money with PaymentExpired, which eth_getLogs shows.
	a0 = p.balance(alice)
	id = hold()
	p.clock.advance(p.payClient, 2*time.Hour+2*time.Second)
	var expiredLog types.Log
	p.until("PaymentExpired in eth_getLogs", func() bool {
		ev := p.abis["Confirmations"].Events["PaymentExpired"]
		logs, err := p.ec.FilterLogs(p.ctx, ethereum.FilterQuery{FromBlock: new(big.Int).SetUint64(0), Addresses: []common.Address{confirmationsAddr},
			Topics: [][]common.Hash{{ev.ID}, {common.BigToHash(id)}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) == 1 {
			expiredLog = logs[0]
		}
		return len(logs) == 1
	})
	m := map[string]any{}
	if err := p.abis["Confirmations"].UnpackIntoMap(m, "PaymentExpired", expiredLog.Data); err != nil {
		t.Fatal(err)
	}
	if common.BytesToAddress(expiredLog.Topics[2][:]) != alice || m["asset"].(common.Address) != hkdAddr || m["amount"].(*big.Int).Int64() != 25_000 {
		t.Fatalf("PaymentExpired %v %v", expiredLog.Topics, m)
	}
	p.refused("is already expired", p.key, confirmationsAddr, "Confirmations", "confirmPayment", id)
	if p.balance(alice) != a0 || p.escrow() != 0 || status(id) != 5 {
		t.Fatalf("expired: alice %d (had %d), escrow %d, status %d", p.balance(alice), a0, p.escrow(), status(id))
	}
	// The keeper's transaction is a plain one in the block.
	tx, _, err := p.ec.TransactionByHash(p.ctx, expiredLog.TxHash)
	if err != nil || *tx.To() != confirmationsAddr {
		t.Fatalf("keeper transaction %v: %v", tx, err)
	}
	// Nothing due: an expirePayments from anyone is refused.
	if _, err := p.ec.EstimateGas(p.ctx, ethereum.CallMsg{From: bob, To: &confirmationsAddr, Data: p.pack("Confirmations", "expirePayments")}); err == nil ||
		!strings.Contains(err.Error(), "no held payment is due to expire") {
		t.Fatalf("expirePayments with nothing due: %v", err)
	}
	// Signed anyway, by an unverified account: refused at admission, with
	// nothing written (its nonce stays 0).
	stranger, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := types.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: p.chainID, To: &confirmationsAddr, Gas: 60_000, GasTipCap: new(big.Int), GasFeeCap: new(big.Int),
		Data: p.pack("Confirmations", "expirePayments")}), types.LatestSignerForChainID(p.chainID), stranger.ECDSA())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ec.SendTransaction(p.ctx, signed); err == nil || !strings.Contains(err.Error(), "no held payment is due to expire") {
		t.Fatalf("expirePayments sent with nothing due: %v", err)
	}
	if n, err := p.ec.NonceAt(p.ctx, stranger.Address(), nil); err != nil || n != 0 {
		t.Fatalf("stranger's nonce %d (%v) after a refused send", n, err)
	}

	// A stolen primary key removes the confirmation: it waits the delay
	// (2 days), payments are still held meanwhile, and the key rejects the
	// thief's payment and cancels the change.
	r = p.send(p.alice, confirmationsAddr, "Confirmations", "setConfirmation", common.Address{}, []common.Address{}, []*big.Int{})
	_, ev := p.event(r, confirmationsAddr, "Confirmations", "ConfirmationChangeScheduled")
	if at, want := ev["effectiveAtMs"].(uint64), p.blockTimeMs(r.BlockNumber)+genesis.DefaultKeyChangeDelaySeconds*1000; at != want {
		t.Fatalf("effectiveAtMs %d, want the block's time + the 2-day delay %d", at, want)
	}
	if c := p.view(confirmationsAddr, "Confirmations", "confirmationOf", alice); c[0].(common.Address) != p.key.Address() || !c[1].(bool) || c[2].(common.Address) != (common.Address{}) {
		t.Fatalf("confirmationOf during the delay: %v", c)
	}
	id = hold()
	p.send(p.key, confirmationsAddr, "Confirmations", "rejectPayment", id)
	r = p.send(p.key, confirmationsAddr, "Confirmations", "cancelConfirmationChange", alice)
	p.event(r, confirmationsAddr, "Confirmations", "ConfirmationChangeCancelled")

	// A new key: the current key approves it, in force at once.
	p.send(p.alice, confirmationsAddr, "Confirmations", "setConfirmation", p.key2.Address(), []common.Address{hkdAddr}, []*big.Int{threshold})
	p.refused("only the confirmation key", p.alice, confirmationsAddr, "Confirmations", "approveConfirmationChange", alice)
	p.refused("only the confirmation key", p.key2, confirmationsAddr, "Confirmations", "approveConfirmationChange", alice)
	r = p.send(p.key, confirmationsAddr, "Confirmations", "approveConfirmationChange", alice)
	if l, _ := p.event(r, confirmationsAddr, "Confirmations", "ConfirmationSet"); common.BytesToAddress(l.Topics[2][:]) != p.key2.Address() {
		t.Fatalf("ConfirmationSet %v", l.Topics)
	}
	if c := p.view(confirmationsAddr, "Confirmations", "confirmationOf", alice); c[0].(common.Address) != p.key2.Address() || c[1].(bool) {
		t.Fatalf("confirmationOf after the approval: %v", c)
	}
	id = hold()
	p.refused("only the confirmation key", p.key, confirmationsAddr, "Confirmations", "confirmPayment", id)
	p.send(p.key2, confirmationsAddr, "Confirmations", "confirmPayment", id)

	// Removal unapproved: in force once the delay has passed, by itself.
	p.send(p.alice, confirmationsAddr, "Confirmations", "setConfirmation", common.Address{}, []common.Address{}, []*big.Int{})
	p.clock.advance(p.payClient, time.Duration(genesis.DefaultKeyChangeDelaySeconds)*time.Second+2*time.Second)
	if c := p.view(confirmationsAddr, "Confirmations", "confirmationOf", alice); c[0].(common.Address) != (common.Address{}) || c[1].(bool) {
		t.Fatalf("confirmationOf after the delay: %v", c)
	}
	b0 = p.balance(bob)
	r = p.send(p.alice, hkdAddr, "Asset", "transfer", bob, big.NewInt(25_000))
	p.no(r, confirmationsAddr, "Confirmations", "ConfirmationRequired")
	if p.balance(bob)-b0 != 25_000 {
		t.Fatalf("after the removal: bob +%d", p.balance(bob)-b0)
	}
}

// TestDisputesOnNode drives every dispute path on a real node with a
// go-ethereum client. The dev genesis takes no disputes (its pinned hash
// stays as it is): governance gives HKD a one-hour window on the running
// chain, after a refused bad value. Then: opened by transaction (its
// asset, merchant and reference read from the transaction, as
// `tally dispute open --tx` does) and closed by the merchant's refunds;
// opened by order reference, contested with a reason and upheld by the
// bank (a forced transfer naming the dispute); contested and dismissed
// with a reason; left unanswered and decided by the bank once the
// response time has passed; refused after the window. Wrong parties are
// refused with the reason.
func TestDisputesOnNode(t *testing.T) {
	p := startPayNode(t)
	alice, bob := p.alice.Address(), p.bob.Address()
	p.refused("takes no disputes", p.alice, disputesAddr, "Disputes", "openDispute", hkdAddr, bob, [32]byte{1}, big.NewInt(1), uint8(1), [32]byte{})
	p.refused("assets[1].disputeWindowSeconds 34560001 is over 34560000", p.m1, governanceAddr, "Governance", "proposeSetDisputeWindow", hkdAddr, uint64(genesis.MaxDisputeWindowSeconds+1))
	p.refused("is not a governance member", p.alice, governanceAddr, "Governance", "proposeSetDisputeWindow", hkdAddr, uint64(3600))
	p.govern("proposeSetDisputeWindow", hkdAddr, uint64(3600))

	// pay has alice pay bob amount under ref and returns the receipt.
	pay := func(ref string, amount int64) *types.Receipt {
		t.Helper()
		var r32 [32]byte
		copy(r32[:], ref)
		return p.send(p.alice, hkdAddr, "Asset", "transferWithReference", bob, big.NewInt(amount), r32)
	}
	// open opens alice's dispute and returns its id, checking the event.
	open := func(ref [32]byte, amount int64, reason uint8, txHash common.Hash) *big.Int {
		t.Helper()
		r := p.send(p.alice, disputesAddr, "Disputes", "openDispute", hkdAddr, bob, ref, big.NewInt(amount), reason, txHash)
		l, ev := p.event(r, disputesAddr, "Disputes", "DisputeOpened")
		if common.BytesToAddress(l.Topics[2][:]) != alice || common.BytesToAddress(l.Topics[3][:]) != bob || ev["amount"].(*big.Int).Int64() != amount ||
			ev["reason"].(uint8) != reason || common.Hash(ev["txHash"].([32]byte)) != txHash || ev["ref"].([32]byte) != ref {
			t.Fatalf("DisputeOpened %v %v", l.Topics, ev)
		}
		return idOf(l)
	}
	dispute := func(id *big.Int) []any { return p.view(disputesAddr, "Disputes", "dispute", id) }
	status := func(id *big.Int) uint8 { return dispute(id)[6].(uint8) }
	ref := func(s string) (r [32]byte) { copy(r[:], s); return r }

	// 1. By transaction: the client reads the payment's call from its
	// transaction, then the merchant's refunds close the dispute.
	paid := pay("ORDER-1", 5_000)
	tx, _, err := p.ec.TransactionByHash(p.ctx, paid.TxHash)
	if err != nil {
		t.Fatal(err)
	}
	assetABI := p.abis["Asset"]
	m, err := assetABI.MethodById(tx.Data()[:4])
	if err != nil || m.Name != "transferWithReference" {
		t.Fatalf("payment's method %v: %v", m, err)
	}
	args, err := m.Inputs.Unpack(tx.Data()[4:])
	if err != nil {
		t.Fatal(err)
	}
	if *tx.To() != hkdAddr || args[0].(common.Address) != bob {
		t.Fatalf("payment to %s, payee %s", tx.To(), args[0])
	}
	p.refused("is more than the 50.00 HKD paid and not refunded", p.alice, disputesAddr, "Disputes", "openDispute", hkdAddr, bob, args[2].([32]byte), big.NewInt(5_001), uint8(2), paid.TxHash)
	p.refused("paid "+bob.Hex()+" nothing under reference", p.carol, disputesAddr, "Disputes", "openDispute", hkdAddr, bob, args[2].([32]byte), big.NewInt(1), uint8(2), paid.TxHash)
	id1 := open(args[2].([32]byte), 3_000, 2, paid.TxHash)
	p.refused("already has dispute "+id1.String(), p.alice, disputesAddr, "Disputes", "openDispute", hkdAddr, bob, ref("ORDER-1"), big.NewInt(1), uint8(2), common.Hash{})
	if got := p.view(disputesAddr, "Disputes", "disputeOf", hkdAddr, bob, ref("ORDER-1"), alice)[0].(*big.Int); got.Cmp(id1) != 0 {
		t.Fatalf("disputeOf %s, want %s", got, id1)
	}
	a0 := p.balance(alice)
	r := p.send(p.bob, hkdAddr, "Asset", "refund", ref("ORDER-1"), alice, big.NewInt(1_000))
	p.no(r, disputesAddr, "Disputes", "DisputeRefunded")
	if d := dispute(id1); d[6].(uint8) != 1 || d[7].(*big.Int).Int64() != 1_000 {
		t.Fatalf("after a partial refund: %v", d)
	}
	r = p.send(p.bob, hkdAddr, "Asset", "refund", ref("ORDER-1"), alice, big.NewInt(2_000))
	if _, ev := p.event(r, disputesAddr, "Disputes", "DisputeRefunded"); ev["amount"].(*big.Int).Int64() != 3_000 {
		t.Fatalf("DisputeRefunded %v", ev)
	}
	p.event(r, hkdAddr, "Asset", "Refund")
	if p.balance(alice)-a0 != 3_000 || status(id1) != 3 {
		t.Fatalf("refunded: alice +%d, status %d", p.balance(alice)-a0, status(id1))
	}
	p.refused("is already refunded", p.bob, disputesAddr, "Disputes", "contestDispute", id1, "too late")

	// 2. By order reference: contested with a reason, upheld by the bank.
	pay("ORDER-2", 8_000)
	id2 := open(ref("ORDER-2"), 8_000, 1, common.Hash{})
	p.refused("awaits the merchant's refund or answer until", p.bank, disputesAddr, "Disputes", "upholdDispute", id2, big.NewInt(8_000), "no answer")
	p.refused("only the merchant", p.alice, disputesAddr, "Disputes", "contestDispute", id2, "mine")
	p.refused("only the merchant", p.carol, disputesAddr, "Disputes", "contestDispute", id2, "mine")
	r = p.send(p.bob, disputesAddr, "Disputes", "contestDispute", id2, "delivered on 2 Jan, signed for")
	if l, ev := p.event(r, disputesAddr, "Disputes", "DisputeContested"); ev["reason"].(string) != "delivered on 2 Jan, signed for" || common.BytesToAddress(l.Topics[2][:]) != bob {
		t.Fatalf("DisputeContested %v %v", l.Topics, ev)
	}
	p.refused("is already contested", p.bob, disputesAddr, "Disputes", "contestDispute", id2, "again")
	p.refused("is not an issuing bank", p.bob, disputesAddr, "Disputes", "upholdDispute", id2, big.NewInt(8_000), "mine")
	p.refused("is not an issuing bank", p.alice, disputesAddr, "Disputes", "dismissDispute", id2, "mine")
	p.refused("is more than the 80.00 HKD of dispute", p.bank, disputesAddr, "Disputes", "upholdDispute", id2, big.NewInt(8_001), "too much")
	a0, b0 := p.balance(alice), p.balance(bob)
	r = p.send(p.bank, disputesAddr, "Disputes", "upholdDispute", id2, big.NewInt(8_000), "courier confirms no delivery")
	l, ev := p.event(r, disputesAddr, "Disputes", "DisputeUpheld")
	if idOf(l).Cmp(id2) != 0 || common.BytesToAddress(l.Topics[2][:]) != p.bank.Address() || ev["amount"].(*big.Int).Int64() != 8_000 || ev["reason"].(string) != "courier confirms no delivery" {
		t.Fatalf("DisputeUpheld %v %v", l.Topics, ev)
	}
	if ts, _ := p.events(r.Logs, hkdAddr, "Asset", "Transfer"); len(ts) != 1 || common.BytesToAddress(ts[0].Topics[1][:]) != bob || common.BytesToAddress(ts[0].Topics[2][:]) != alice {
		t.Fatalf("upheld: Transfer %v", r.Logs)
	}
	if p.balance(alice)-a0 != 8_000 || b0-p.balance(bob) != 8_000 || status(id2) != 4 {
		t.Fatalf("upheld: alice +%d, bob -%d, status %d", p.balance(alice)-a0, b0-p.balance(bob), status(id2))
	}
	// The merchant cannot refund the same money again.
	p.refused("refund of 1 is more than the 0 left to refund", p.bob, hkdAddr, "Asset", "refund", ref("ORDER-2"), alice, big.NewInt(1))

	// 3. Contested, dismissed with a reason: no money moves.
	pay("ORDER-3", 2_000)
	id3 := open(ref("ORDER-3"), 2_000, 3, common.Hash{})
	p.send(p.bob, disputesAddr, "Disputes", "contestDispute", id3, "the price on the order was 20.00")
	a0, b0 = p.balance(alice), p.balance(bob)
	r = p.send(p.bank, disputesAddr, "Disputes", "dismissDispute", id3, "the order shows 20.00")
	if _, ev := p.event(r, disputesAddr, "Disputes", "DisputeDismissed"); ev["reason"].(string) != "the order shows 20.00" {
		t.Fatalf("DisputeDismissed %v", ev)
	}
	p.no(r, hkdAddr, "Asset", "Transfer")
	if p.balance(alice) != a0 || p.balance(bob) != b0 || status(id3) != 5 {
		t.Fatalf("dismissed: alice %+d, bob %+d, status %d", p.balance(alice)-a0, p.balance(bob)-b0, status(id3))
	}
	p.refused("is already dismissed", p.bank, disputesAddr, "Disputes", "upholdDispute", id3, big.NewInt(1), "changed my mind")

	// 4. Unanswered: the bank decides once the merchant's response time
	// (a week) has passed; 5. a payment's window (an hour) has closed.
	pay("ORDER-4", 1_500)
	id4 := open(ref("ORDER-4"), 1_500, 5, common.Hash{})
	pay("ORDER-5", 1_000)
	p.refused("awaits the merchant's refund or answer until", p.bank, disputesAddr, "Disputes", "dismissDispute", id4, "no answer")
	p.clock.advance(p.payClient, time.Duration(genesis.DefaultDisputeResponseSeconds)*time.Second+2*time.Second)
	p.refused("the dispute window of the payment under reference", p.alice, disputesAddr, "Disputes", "openDispute", hkdAddr, bob, ref("ORDER-5"), big.NewInt(1), uint8(1), common.Hash{})
	a0 = p.balance(alice)
	p.send(p.bank, disputesAddr, "Disputes", "upholdDispute", id4, big.NewInt(1_500), "no answer from the merchant in a week")
	if p.balance(alice)-a0 != 1_500 || status(id4) != 4 {
		t.Fatalf("unanswered, upheld: alice +%d, status %d", p.balance(alice)-a0, status(id4))
	}
	if p.escrow() != 0 {
		t.Fatalf("escrow %d", p.escrow())
	}
}
