package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/bridge"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// bridgeFiles writes a bridge's keystore file (bank B, light scrypt),
// password file, HMAC secret and config; extra is appended to the config.
func bridgeFiles(t *testing.T, nodeURL, listen, extra string) (cfgPath string, secret []byte) {
	t.Helper()
	dir := t.TempDir()
	bank, err := genesis.DevKey(genesis.DevBankBIndex)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := crypto.EncryptKey(bank, "bank password", crypto.LightScryptN, crypto.LightScryptP)
	if err != nil {
		t.Fatal(err)
	}
	secret = []byte("cli-test-secret-0123456789abcdef")
	for name, data := range map[string][]byte{"bank.json": ks, "bank.pass": []byte("bank password\n"), "hmac.secret": secret,
		"order.secret": []byte("cli-test-order-secret-0123456789"), "operators": []byte("alice " + cliOperatorToken + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`listen = %q
datadir = "data"
asset = "HKD"
%s
[key]
keystore-file = "bank.json"
password-file = "bank.pass"
[nodes]
endpoints = [%q]
[bankcore]
url = "http://127.0.0.1:1"
format = "json"
[auth]
intake-secret-file = "hmac.secret"
order-secret-file = "order.secret"
[operator]
tokens-file = "operators"
[log]
level = "warn"
`, listen, extra, nodeURL)
	cfgPath = filepath.Join(dir, "bridge.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, secret
}

// cliOperatorToken is operator alice's token in bridgeFiles' operators file.
const cliOperatorToken = "cli-operator-token-0123456789abcdef"

func TestBridgeCommandUsage(t *testing.T) {
	typo, _ := bridgeFiles(t, "http://127.0.0.1:1", "127.0.0.1:0", "\n[outbox]\npoll-intervall = \"1s\"")
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no config", []string{"bridge"}, exitUsage, "--config is required"},
		{"extra argument", []string{"bridge", "--config", typo, "now"}, exitUsage, `unexpected argument "now"`},
		{"reconcile without a statement", []string{"bridge", "reconcile"}, exitUsage, "--config and --statement are required"},
		{"config typo", []string{"bridge", "--config", typo}, exitUsage, "unknown key outbox.poll-intervall"},
		{"missing config file", []string{"bridge", "--config", filepath.Join(t.TempDir(), "none.toml")}, exitUsage, "read bridge config"},
	} {
		r := tally(t, "", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.name, r.code, r.stderr, c.code, c.want)
		}
	}
	if r := tally(t, "", "bridge", "--help"); r.code != exitOK || !strings.Contains(r.stderr, "--config FILE") {
		t.Errorf("bridge --help: %+v", r)
	}
}

// TestBridgeCommandRuns starts `tally bridge` against a dev node, links a
// wallet and deposits through it, and stops it with SIGTERM.
func TestBridgeCommandRuns(t *testing.T) {
	node := wallettest.StartDevNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	cfgPath, secret := bridgeFiles(t, node.URL, listen, "")

	var mu sync.Mutex
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		var out bytes.Buffer
		code := run([]string{"bridge", "--config", cfgPath}, strings.NewReader(""), &out, lockedWriter{&mu, &stderr})
		done <- code
	}()
	base := "http://" + listen
	waitUntil(t, "the bridge's /healthz", func() bool {
		select {
		case code := <-done:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("tally bridge exited %d before it served:\n%s", code, stderr.String())
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})

	w, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	bank, _ := genesis.DevAddress(genesis.DevBankBIndex)
	sig, _ := w.Sign(common.BytesToHash(accounts.TextHash([]byte(bridge.LinkMessage(bank, "CLI-ACCT-1", w.Address())))))
	post := func(path string, v any) {
		body, _ := json.Marshal(v)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
		req.Header.Set(bridge.SignatureHeader, bridge.Sign(secret, body, time.Now()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	post(bridge.PathLinks, bridge.LinkRequest{Account: "CLI-ACCT-1", Wallet: w.Address().Hex(), Signature: fmt.Sprintf("0x%x", sig)})
	post(bridge.PathNotifications, map[string]any{"msgId": "CLI-MSG-1", "entries": []map[string]any{
		{"ref": "CLI-DEP-1", "account": "CLI-ACCT-1", "amount": "12.50", "currency": "HKD", "credit": true}}})

	client, err := wallet.Dial(ctx, node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	waitUntil(t, "the deposit to be minted", func() bool {
		a, err := client.Account(ctx, w.Address())
		return err == nil && a.Balances["HKD"] != nil && a.Balances["HKD"].ToInt().Int64() == 1250
	})

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		mu.Lock()
		defer mu.Unlock()
		if code != exitOK {
			t.Fatalf("tally bridge exited %d after SIGTERM:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("tally bridge did not stop within 15 s of SIGTERM")
	}
}

// lockedWriter serialises writes to a buffer another goroutine reads.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
