package main

import (
	"bytes"
	"context"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// startPaymentsNode starts tallyd --dev on the dev genesis with HKD taking
// disputes (30 days) and a one-hour merchant response time, and returns
// its URL once it has made a block.
func startPaymentsNode(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a tallyd process")
	}
	g := genesis.Dev()
	g.Assets[1].DisputeWindowSeconds = 30 * 86_400
	g.Payments = &genesis.Payments{DisputeResponseSeconds: 3600}
	dir := t.TempDir()
	gen := filepath.Join(dir, "genesis.json")
	if err := os.WriteFile(gen, g.Indent(), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, err := wallettest.BuildCommand("tallyd")
	if err != nil {
		t.Fatal(err)
	}
	port := freeTCPPort(t)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	var log bytes.Buffer
	node := exec.Command(bin, "--dev", "--genesis", gen, "--datadir", filepath.Join(dir, "data"), "--http.addr", "127.0.0.1", "--http.port", strconv.Itoa(port))
	node.Stdout, node.Stderr = &log, &log
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- node.Wait() }()
	t.Cleanup(func() {
		node.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			node.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("tallyd log:\n%s", log.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if ec, err := ethclient.DialContext(ctx, url); err == nil {
			n, err := ec.BlockNumber(ctx)
			ec.Close()
			if err == nil && n >= 1 {
				return url
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("tallyd exited: %v", err)
		case <-ctx.Done():
			t.Fatal("tallyd made no block")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// gethClient is a go-ethereum client driving the published ABIs (the
// files under abi/, as a third party reads them) with signed EIP-1559
// transactions, as any wallet would.
type gethClient struct {
	t       *testing.T
	ctx     context.Context
	ec      *ethclient.Client
	chainID *big.Int
	abis    map[string]abi.ABI
}

func newGethClient(t *testing.T, ctx context.Context, url string) *gethClient {
	t.Helper()
	ec, err := ethclient.DialContext(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ec.Close)
	id, err := ec.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := &gethClient{t: t, ctx: ctx, ec: ec, chainID: id, abis: map[string]abi.ABI{}}
	for _, name := range []string{"Asset", "Confirmations", "Disputes"} {
		f, err := os.Open(filepath.Join("..", "..", "abi", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		a, err := abi.JSON(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		g.abis[name] = a
	}
	return g
}

// send signs and sends a call of the contract's method and waits for its
// receipt, which must have status 1.
func (g *gethClient) send(key *crypto.PrivateKey, to common.Address, contract, method string, args ...any) *types.Receipt {
	g.t.Helper()
	a := g.abis[contract]
	data, err := a.Pack(method, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	from := key.Address()
	nonce, err := g.ec.PendingNonceAt(g.ctx, from)
	if err != nil {
		g.t.Fatal(err)
	}
	gas, err := g.ec.EstimateGas(g.ctx, ethereum.CallMsg{From: from, To: &to, Data: data})
	if err != nil {
		g.t.Fatalf("%s: estimate gas: %v", method, err)
	}
	tx, err := types.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: g.chainID, Nonce: nonce, To: &to, Gas: gas, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Data: data}),
		types.LatestSignerForChainID(g.chainID), key.ECDSA())
	if err != nil {
		g.t.Fatal(err)
	}
	if err := g.ec.SendTransaction(g.ctx, tx); err != nil {
		g.t.Fatalf("%s: %v", method, err)
	}
	for {
		r, err := g.ec.TransactionReceipt(g.ctx, tx.Hash())
		if err == nil {
			if r.Status != types.ReceiptStatusSuccessful {
				g.t.Fatalf("%s: status %d", method, r.Status)
			}
			return r
		}
		select {
		case <-g.ctx.Done():
			g.t.Fatalf("%s: no receipt: %v", method, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// view calls a view and returns its outputs.
func (g *gethClient) view(to common.Address, contract, method string, args ...any) []any {
	g.t.Helper()
	a := g.abis[contract]
	data, err := a.Pack(method, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	out, err := g.ec.CallContract(g.ctx, ethereum.CallMsg{To: &to, Data: data}, nil)
	if err != nil {
		g.t.Fatalf("%s: %v", method, err)
	}
	vals, err := a.Unpack(method, out)
	if err != nil {
		g.t.Fatal(err)
	}
	return vals
}

func (g *gethClient) balance(asset, who common.Address) *big.Int {
	return g.view(asset, "Asset", "balanceOf", who)[0].(*big.Int)
}

// event returns the first log of the contract's event in r, decoded.
func (g *gethClient) event(r *types.Receipt, addr common.Address, contract, name string) (*types.Log, map[string]any) {
	g.t.Helper()
	a := g.abis[contract]
	ev := a.Events[name]
	for _, l := range r.Logs {
		if l.Address == addr && l.Topics[0] == ev.ID {
			m := map[string]any{}
			if err := a.UnpackIntoMap(m, name, l.Data); err != nil {
				g.t.Fatal(err)
			}
			return l, m
		}
	}
	g.t.Fatalf("no %s event in %v", name, r.Logs)
	return nil, nil
}

// TestPaymentsOnNode drives a confirmation and a dispute on a real node:
// a go-ethereum client (ethclient + the published ABIs) signs the
// settings, the held transfer, the payment, the merchant's answer and the
// bank's decision; the CLI signs the confirmation and opens the dispute
// from the payment's transaction hash; the CLI's listings are golden.
func TestPaymentsOnNode(t *testing.T) {
	setup(t)
	url := startPaymentsNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g := newGethClient(t, ctx, url)
	key := func(i uint32) *crypto.PrivateKey {
		k, err := genesis.DevKey(i)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	alice, bob, confirmKey, bank := key(0), key(1), key(2), key(genesis.DevBankBIndex)
	mn := writeFile(t, "mnemonic", crypto.TestMnemonic)
	for _, i := range []string{"0", "2"} {
		if r := tally(t, "", "wallet", "import", "--mnemonic-file", mn, "--index", i); r.code != exitOK {
			t.Fatalf("import %s: %+v", i, r)
		}
	}
	confirmations := common.HexToAddress("0x0000000000000000000000000000000000000c04")
	disputes := common.HexToAddress("0x0000000000000000000000000000000000000c05")
	hkd := common.HexToAddress("0x0000000000000000000000000000000000001001")
	rpc := []string{"--rpc", url}

	// Confirmation: 250.00 HKD is over alice's 100.00 threshold.
	g.send(alice, confirmations, "Confirmations", "setConfirmation", confirmKey.Address(), []common.Address{hkd}, []*big.Int{big.NewInt(10_000)})
	bobBefore := g.balance(hkd, bob.Address())
	r := g.send(alice, hkd, "Asset", "transfer", bob.Address(), big.NewInt(25_000))
	l, ev := g.event(r, confirmations, "Confirmations", "ConfirmationRequired")
	id := new(big.Int).SetBytes(l.Topics[1][:])
	if id.Int64() != 1 || ev["amount"].(*big.Int).Int64() != 25_000 || common.BytesToAddress(l.Topics[3][:]) != bob.Address() {
		t.Fatalf("ConfirmationRequired %v %v", l.Topics, ev)
	}
	if got := g.balance(hkd, bob.Address()); got.Cmp(bobBefore) != 0 {
		t.Fatalf("held transfer reached bob: %s", got)
	}
	pending := g.view(confirmations, "Confirmations", "pendingPayment", id)
	if pending[0].(common.Address) != alice.Address() || pending[7].(uint8) != 1 {
		t.Fatalf("pendingPayment %v", pending)
	}
	// The primary key cannot confirm: eth_call shows the reason before signing.
	if res := tally(t, "", append([]string{"confirmations", "confirm", "--from", addr0, "1"}, rpc...)...); res.code != exitFailure ||
		!strings.Contains(res.stderr, "only the confirmation key "+confirmKey.Address().Hex()) {
		t.Fatalf("confirm by the primary key: %+v", res)
	}
	if res := tally(t, "", append([]string{"confirmations", "confirm", "--from", addr2, "1"}, rpc...)...); res.code != exitOK || !strings.Contains(res.stdout, "PaymentConfirmed") {
		t.Fatalf("confirm by the key: %+v", res)
	}
	if got := new(big.Int).Sub(g.balance(hkd, bob.Address()), bobBefore); got.Int64() != 25_000 {
		t.Fatalf("bob got %s after the confirmation", got)
	}

	// Dispute: alice pays bob 50.00 for ORDER-77, disputes it from the
	// transaction's hash, bob contests, the bank upholds it.
	ref := [32]byte{'O', 'R', 'D', 'E', 'R', '-', '7', '7'}
	pay := g.send(alice, hkd, "Asset", "transferWithReference", bob.Address(), big.NewInt(5_000), ref)
	res := tally(t, "", append([]string{"dispute", "open", "--from", addr0, "--tx", pay.TxHash.Hex(), "--reason", "duplicate"}, rpc...)...)
	if res.code != exitOK || !strings.Contains(res.stdout, "DisputeOpened") {
		t.Fatalf("dispute open --tx: %+v", res)
	}
	d := g.view(disputes, "Disputes", "dispute", big.NewInt(1))
	if d[0].(common.Address) != alice.Address() || d[1].(common.Address) != bob.Address() || d[4].(*big.Int).Int64() != 5_000 ||
		d[5].(uint8) != 2 || d[6].(uint8) != 1 || common.Hash(d[9].([32]byte)) != pay.TxHash {
		t.Fatalf("dispute 1: %v", d)
	}
	g.send(bob, disputes, "Disputes", "contestDispute", big.NewInt(1), "delivered to the door")
	aliceBefore := g.balance(hkd, alice.Address())
	r = g.send(bank, disputes, "Disputes", "upholdDispute", big.NewInt(1), big.NewInt(5_000), "courier confirms no delivery")
	if _, ev := g.event(r, disputes, "Disputes", "DisputeUpheld"); ev["amount"].(*big.Int).Int64() != 5_000 {
		t.Fatalf("DisputeUpheld %v", ev)
	}
	if got := new(big.Int).Sub(g.balance(hkd, alice.Address()), aliceBefore); got.Int64() != 5_000 {
		t.Fatalf("alice got %s back", got)
	}

	// The listings, text and JSON, with the times masked.
	times := regexp.MustCompile(`20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`)
	for _, c := range []struct {
		file string
		args []string
	}{
		{"dispute-list.txt", []string{"dispute", "list", "--merchant", bob.Address().Hex()}},
		{"dispute-list.json", []string{"dispute", "list", "--merchant", bob.Address().Hex(), "--json"}},
		{"dispute-show.txt", []string{"dispute", "show", "1"}},
		{"confirmations-list.txt", []string{"confirmations", "list", "--account", bob.Address().Hex()}},
		{"confirmations-list.json", []string{"confirmations", "list", "--account", bob.Address().Hex(), "--json"}},
		{"confirmations-show.txt", []string{"confirmations", "show", addr0}},
		{"confirmations-show.json", []string{"confirmations", "show", addr0, "--json"}},
	} {
		res := tally(t, "", append(c.args, rpc...)...)
		if res.code != exitOK {
			t.Fatalf("%v: %+v", c.args, res)
		}
		checkGolden(t, c.file, times.ReplaceAllString(res.stdout, "TIME"))
	}
	// Bad input: named flags, nothing sent.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dispute", "open", "--from", addr0, "--reason", "angry", "--tx", pay.TxHash.Hex()}, `--reason "angry" is not one of`},
		{[]string{"dispute", "open", "--from", addr0, "--reason", "fraud"}, "give --tx HASH, or --asset, --merchant and --ref"},
		{[]string{"dispute", "list", "--status", "lost"}, `status "lost" is not one of`},
		{[]string{"dispute", "show", "x"}, `dispute show: ID: "x" is not an id`},
		{[]string{"confirmations", "set", "--from", addr0, "--key", addr2, "--threshold", "HKD"}, `--threshold "HKD" is not SYMBOL=AMOUNT`},
		{[]string{"confirmations", "set", "--from", addr0, "--key", addr2, "--threshold", "XYZ=1"}, `--asset: unknown asset "XYZ"`},
	} {
		res := tally(t, "", append(c.args, rpc...)...)
		if res.code == exitOK || !strings.Contains(res.stderr, c.want) {
			t.Errorf("%v: %+v, want %q", c.args, res, c.want)
		}
	}
}
