package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/rpc/rpctest"
	"github.com/tally-ledger/tally/wallet"
)

// TestRequest: tally request prints the order's EIP-681 URI, writes its
// QR code, and --json is a payment request the library reads back; bad
// flags are usage errors naming the flag, before any network call.
func TestRequest(t *testing.T) {
	c := chaintest.New(t)
	node := rpctest.Serve(t, rpctest.NewBackend(c.DB, c.Senders), rpc.DefaultLimits)
	dir := t.TempDir()
	qr := filepath.Join(dir, "order.png")
	args := []string{"request", "--rpc", node.URL, "--asset", "HKD", "--to", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "--amount", "12.34", "--order", "ORDER-1234", "--expires", "2099-01-02T03:04:05Z"}
	r := tally(t, "", append(args, "--qr", qr)...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := "uri:       ethereum:0x0000000000000000000000000000000000001001@1337/transferWithReference?address=0x70997970C51812dc3A010C7d01b50e0d17dc79C8&uint256=12.34e2&bytes32=0x4f524445522d3132333400000000000000000000000000000000000000000000\n" +
		"payee:     0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n" +
		"amount:    12.34 HKD\n" +
		"order:     ORDER-1234\n" +
		"reference: 0x4f524445522d3132333400000000000000000000000000000000000000000000\n" +
		"expires:   2099-01-02T03:04:05Z\n" +
		"qr:        " + qr + "\n"
	if r.stdout != want {
		t.Fatalf("stdout\n%s\nwant\n%s", r.stdout, want)
	}
	png, err := os.ReadFile(qr)
	if err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("QR file: %v", err)
	}
	r = tally(t, "", append(args, "--json")...)
	var req wallet.PaymentRequest
	if err := json.Unmarshal([]byte(r.stdout), &req); err != nil || r.code != 0 {
		t.Fatalf("--json: %v %s", err, r.stdout)
	}
	u, err := wallet.ParsePaymentURI(req.URI)
	if err != nil || u.Amount.Int64() != 1234 || req.AmountBase != "1234" || req.ChainID != 1337 {
		t.Fatalf("--json: %+v, URI %+v, %v", req, u, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"request", "--to", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "--amount", "1", "--order", "A"}, "--asset is required"},
		{[]string{"request", "--asset", "HKD", "--to", "nope", "--amount", "1", "--order", "A"}, "--to"},
		{[]string{"request", "--asset", "HKD", "--to", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "--amount", "1", "--order", strings.Repeat("x", 33)}, "--order"},
		{[]string{"request", "--asset", "HKD", "--to", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "--amount", "1", "--order", "A", "--expires", "-5m"}, "--expires"},
		{[]string{"request", "--asset", "HKD", "--to", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "--amount", "1", "--order", "A", "--expires", "2001-01-01T00:00:00Z"}, "not in the future"},
		{[]string{"request", "--rpc", node.URL, "--asset", "HKD", "--to", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "--amount", "1.001", "--order", "A"}, "--amount"},
		{[]string{"request", "--rpc", node.URL, "--asset", "EUR", "--to", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "--amount", "1", "--order", "A"}, "unknown asset"},
	} {
		r := tally(t, "", tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d %q, want a usage error naming %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// TestMerchantUsage: the notifier's commands refuse bad flags and
// arguments as usage errors naming them, before any network call.
func TestMerchantUsage(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "merchant.toml")
	if err := os.WriteFile(cfg, []byte("[nodes]\nendpoints = [\"http://127.0.0.1:1\"]\n[orders]\npayees = [\"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[orders]\npayees = [\"nope\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notJSON := filepath.Join(dir, "req.txt")
	if err := os.WriteFile(notJSON, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"merchant"}, "--config is required"},
		{[]string{"merchant", "--config", bad}, "nodes.endpoints"},
		{[]string{"merchant", "orders"}, "missing subcommand"},
		{[]string{"merchant", "orders", "list"}, "unknown subcommand"},
		{[]string{"merchant", "orders", "show", "--config", cfg}, "--order is required"},
		{[]string{"merchant", "orders", "show", "--config", cfg, "--order", strings.Repeat("x", 33)}, "--order"},
		{[]string{"merchant", "orders", "show", "--order", "A"}, "--config or --url"},
		{[]string{"merchant", "orders", "show", "--config", cfg, "--order", "A"}, "token is required"},
		{[]string{"merchant", "orders", "add", "--config", cfg, notJSON}, "not a payment request"},
		{[]string{"merchant", "receiver"}, "--secret-file and --out"},
		{[]string{"merchant", "receiver", "--secret-file", cfg, "--out", filepath.Join(dir, "h"), "--fail", "404"}, "--fail"},
	} {
		r := tally(t, "", tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d %q, want a usage error naming %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
