package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/bridge"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// docsOperatorCommands returns the commands of the sh block of
// docs/bridge.md's "Operator tools", split into words as a shell would
// (double quotes group).
func docsOperatorCommands(t *testing.T) [][]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "bridge.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "## Operator tools")
	if !ok {
		t.Fatal(`docs/bridge.md has no "## Operator tools"`)
	}
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(sec)
	if m == nil {
		t.Fatal("docs/bridge.md: no sh block in Operator tools")
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimSpace(m[1]), "\n") {
		var words []string
		for _, w := range regexp.MustCompile(`"[^"]*"|\S+`).FindAllString(line, -1) {
			words = append(words, strings.Trim(w, `"`))
		}
		out = append(out, words)
	}
	return out
}

// TestBridgeOperatorCommands runs the commands of docs/bridge.md's
// "Operator tools" as written against a running bridge on a dev node,
// then the usage errors, a refusal naming its field, and `log --verify`
// on a log tampered with through Pebble while the bridge was stopped.
func TestBridgeOperatorCommands(t *testing.T) {
	node := wallettest.StartDevNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A bank core that accepts every order signed with the order secret.
	var mu sync.Mutex
	var orders []bridge.PayoutOrder
	core := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bridge.Verify([]byte("cli-test-order-secret-0123456789"), body, r.Header.Get(bridge.SignatureHeader), time.Now(), time.Minute) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var o bridge.PayoutOrder
		json.Unmarshal(body, &o)
		mu.Lock()
		orders = append(orders, o)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer core.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String() // the documented commands find the bridge by the config's listen
	l.Close()
	cfgPath, secret := bridgeFiles(t, node.URL, listen, "")
	data, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(data), `url = "http://127.0.0.1:1"`, fmt.Sprintf("url = %q", core.URL), 1)), 0o600)
	cfg, err := bridge.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Outbox.PollInterval, cfg.Follower.PollInterval, cfg.Payout.PollInterval, cfg.Closer.PollInterval =
		bridge.Duration(20*time.Millisecond), bridge.Duration(20*time.Millisecond), bridge.Duration(20*time.Millisecond), bridge.Duration(20*time.Millisecond)
	bankKey, _ := genesis.DevKey(genesis.DevBankBIndex)
	start := func() *bridge.Bridge {
		b, err := bridge.New(cfg, bridge.Options{Key: bankKey})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(ctx); err != nil {
			b.Close()
			t.Fatal(err)
		}
		return b
	}
	b := start()
	defer func() { b.Close() }()
	url := "http://" + b.OperatorAddr()

	post := func(path string, v any) {
		body, _ := json.Marshal(v)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+b.Addr()+path, strings.NewReader(string(body)))
		req.Header.Set(bridge.SignatureHeader, bridge.Sign(secret, body, time.Now()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("POST %s: %s %s", path, resp.Status, raw)
		}
	}
	client, err := wallet.Dial(ctx, node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	send := func(key *crypto.PrivateKey, op wallet.Op) *types.Receipt {
		tx, err := client.Send(ctx, key, op)
		if err != nil {
			t.Fatal(err)
		}
		r, err := client.WaitReceipt(ctx, tx.Hash())
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("%s: %v %+v", op.Method, err, r)
		}
		return r
	}
	hkdAsset, err := client.AssetBySymbol(ctx, "HKD")
	if err != nil {
		t.Fatal(err)
	}
	withdraw := func(key *crypto.PrivateKey) uint64 {
		op, _ := wallet.AssetOp(hkdAsset.ID, "requestWithdrawal", big.NewInt(300), [32]byte{})
		for _, l := range send(key, op).Logs {
			if l.Topics[0] == chain.AssetABI.Events["WithdrawalRequested"].ID {
				return new(big.Int).SetBytes(l.Topics[1][:]).Uint64()
			}
		}
		t.Fatal("no WithdrawalRequested log")
		return 0
	}

	// Two held deposits, a linked holder's payout, an unlinked holder's withdrawal.
	post(bridge.PathNotifications, map[string]any{"msgId": "CLI-OPS-1", "entries": []map[string]any{
		{"ref": "CLI-HELD-1", "account": "CLI-NOBODY", "amount": "6.00", "currency": "HKD", "credit": true},
		{"ref": "CLI-HELD-2", "account": "CLI-NOBODY", "amount": "7.00", "currency": "HKD", "credit": true}}})
	holder, stranger := func() *crypto.PrivateKey { k, _ := genesis.DevKey(5); return k }(), func() *crypto.PrivateKey { k, _ := genesis.DevKey(6); return k }()
	bank, _ := genesis.DevAddress(genesis.DevBankBIndex)
	sig, _ := holder.Sign(common.BytesToHash(accounts.TextHash([]byte(bridge.LinkMessage(bank, "CLI-PAY-5", holder.Address())))))
	sig[64] += 27
	post(bridge.PathLinks, bridge.LinkRequest{Account: "CLI-PAY-5", Wallet: holder.Address().Hex(), Signature: fmt.Sprintf("0x%x", sig)})
	id := withdraw(holder)
	foreign := withdraw(stranger)
	waitUntil(t, "the payout to be ordered", func() bool {
		p, err := b.Store().Payout(id)
		return err == nil && p.Status == bridge.PayoutOrdered
	})
	var refs [2]string
	ds, _ := b.Store().Deposits(10)
	for _, d := range ds {
		refs[map[string]int{"CLI-HELD-1": 0, "CLI-HELD-2": 1}[d.Ref]] = d.BankRef.Hex()
	}
	w, _ := crypto.GenerateKey()
	vars := map[string]string{"$REF": refs[0], "$REF2": refs[1], "$WALLET": w.Address().Hex(),
		"$ID": fmt.Sprint(id), "$FOREIGN": fmt.Sprint(foreign), "bridge.toml": cfgPath}

	// The documented commands, as written.
	var tok string
	var outs []string
	for _, words := range docsOperatorCommands(t) {
		if words[0] == "export" {
			if !strings.HasPrefix(words[1], "TALLY_BRIDGE_TOKEN=$(awk") {
				t.Fatalf("unexpected line %q", words)
			}
			tok = cliOperatorToken // alice's line of the operators file
			t.Setenv("TALLY_BRIDGE_TOKEN", tok)
			continue
		}
		if words[0] != "tally" {
			t.Fatalf("docs line %q is not a tally command", words)
		}
		args := words[1:]
		for i, a := range args {
			if v, ok := vars[a]; ok {
				args[i] = v
			}
		}
		r := tally(t, "", args...)
		if r.code != exitOK {
			t.Fatalf("tally %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		outs = append(outs, r.stdout)
	}
	if tok == "" || !strings.Contains(outs[0], "CLI-HELD-1") || !strings.Contains(outs[0], "CLI-HELD-2") || !strings.Contains(outs[1], "accepted") ||
		!strings.Contains(outs[2], "returned") || !strings.Contains(outs[3], fmt.Sprintf("%d ordered", id)) ||
		!strings.Contains(outs[5], "outcome ACSC") || !strings.Contains(outs[6], "refunding") || !strings.Contains(outs[7], "head: entry 5") {
		t.Fatalf("outputs:\n%s", strings.Join(outs, "---\n"))
	}
	waitUntil(t, "the released deposit's mint", func() bool {
		d, err := b.Store().Deposit(common.HexToHash(refs[0]))
		return err == nil && d.Status == bridge.DepositMinted
	})
	waitUntil(t, "the cancelled withdrawal's refund", func() bool {
		p, err := b.Store().Payout(foreign)
		return err == nil && p.Closed == "refunded"
	})
	mu.Lock()
	var returned bool
	for _, o := range orders {
		returned = returned || (o.Account == "CLI-NOBODY" && o.Amount == "7.00")
	}
	mu.Unlock()
	if !returned {
		t.Fatal("the core received no return order for CLI-HELD-2")
	}

	// Refusals and usage errors.
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no reason", []string{"bridge", "release", "--config", cfgPath, "--bank-ref", refs[0], "--wallet", w.Address().Hex()}, exitUsage, "--reason is required"},
		{"no id", []string{"bridge", "requeue", "--config", cfgPath, "--reason", "x"}, exitUsage, "--id is required"},
		{"no outcome", []string{"bridge", "outcome", "--config", cfgPath, "--id", "1", "--reason", "x"}, exitUsage, "--outcome is required"},
		{"reason on a list", []string{"bridge", "payouts", "--config", cfgPath, "--reason", "x"}, exitUsage, "--reason is for actions"},
		{"unknown flag", []string{"bridge", "log", "--config", cfgPath, "--wallet", "x"}, exitUsage, "flag provided but not defined: -wallet"},
		{"wrong state", []string{"bridge", "release", "--config", cfgPath, "--bank-ref", refs[0], "--wallet", w.Address().Hex(), "--reason", "again"}, exitFailure, "bankRef: deposit " + refs[0] + " is minted, not held"},
		{"unknown id", []string{"bridge", "requeue", "--config", cfgPath, "--id", "99999", "--reason", "x"}, exitFailure, "id: no payout of withdrawal 99999"},
		{"manual rejected after settled", []string{"bridge", "outcome", "--config", cfgPath, "--id", fmt.Sprint(id), "--outcome", "rejected", "--reason", "x"}, exitFailure, "outcome: payout"},
		{"bad status", []string{"bridge", "deposits", "--config", cfgPath, "--status", "stuck"}, exitFailure, `status: "stuck" is not a deposit status`},
		{"wrong token", []string{"bridge", "deposits", "--config", cfgPath, "--token-file", writeFile(t, "tok", "wrong-token-wrong-token-wrong-token")}, exitFailure, "unknown operator token"},
	} {
		r := tally(t, "", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.name, r.code, r.stderr, c.code, c.want)
		}
	}
	t.Setenv("TALLY_BRIDGE_TOKEN", "")
	if r := tally(t, "", "bridge", "log", "--config", cfgPath, "--url", url); r.code != exitUsage || !strings.Contains(r.stderr, "TALLY_BRIDGE_TOKEN") {
		t.Errorf("no token: %+v", r)
	}
	t.Setenv("TALLY_BRIDGE_TOKEN", tok)

	// Tamper with entry 2 through Pebble while the bridge is stopped.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(cfg.Path(cfg.DataDir), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := append([]byte("o/"), binary.BigEndian.AppendUint64(nil, 2)...)
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(v), `"reason":"`, `"reason":"(edited) `, 1)
	closer.Close()
	if err := db.Set(key, []byte(edited), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b = start()
	r := tally(t, "", "bridge", "log", "--config", cfgPath, "--verify")
	if r.code != exitFailure || !strings.Contains(r.stderr, "operator log broken at entry 2") || !strings.Contains(r.stdout, "(edited)") {
		t.Fatalf("tampered log --verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
