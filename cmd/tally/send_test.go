package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// TestSendDryRun drives 'tally send' against a real dev node: a transfer
// that would take a tier-0 recipient over its tier's balance limit is
// refused, naming the node's reason, and nothing is sent; an unfunded one is refused with go-ethereum's
// insufficient funds text; with --force it is sent, fails with status 0
// and the command prints the reason the node kept with the receipt.
func TestSendDryRun(t *testing.T) {
	setup(t)
	node := wallettest.StartDevNode(t)
	rpc := []string{"--rpc", node.URL}
	mn := writeFile(t, "mnemonic", crypto.TestMnemonic)
	if r := tally(t, "", "wallet", "import", "--mnemonic-file", mn); r.code != exitOK {
		t.Fatalf("import: %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := wallet.Dial(ctx, node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	from := common.HexToAddress(addr0)
	nonce0, err := c.PendingNonce(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	fresh := common.HexToAddress("0x00000000000000000000000000000000000fe5a2") // tier 0: at most 1000 CNY
	overLimit := "balance of " + fresh.Hex() + " would be 1001.00 CNY, over the maximum 1000.00 CNY of tier 0"

	r := tally(t, "", append([]string{"send", "--from", addr0, "--to", fresh.Hex(), "--value", "1001"}, rpc...)...)
	if r.code != exitFailure || r.stderr != "tally: send: the transfer would fail: "+overLimit+"; nothing was signed (--force sends it anyway)\n" || r.stdout != "" {
		t.Fatalf("send over the recipient's limit: %+v", r)
	}
	// More than the sender has: the node's words are go-ethereum's.
	r = tally(t, "", append([]string{"send", "--from", addr0, "--to", addr1, "--value", "2000000000000"}, rpc...)...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "the transfer would fail: err: insufficient funds for gas * price + value: address "+addr0+" have 1000000000000000000000000000000 want 2000000000000000000000000000000") || r.stdout != "" {
		t.Fatalf("send over the balance: %+v", r)
	}
	if n, err := c.PendingNonce(ctx, from); err != nil || n != nonce0 {
		t.Fatalf("refused sends changed the nonce: %d → %d (%v)", nonce0, n, err)
	}

	// --force sends it; it fails at execution and the reason is shown.
	r = tally(t, "", append([]string{"send", "--from", addr0, "--to", fresh.Hex(), "--value", "1001", "--force"}, rpc...)...)
	if r.code != exitFailure {
		t.Fatalf("send --force: %+v", r)
	}
	if !strings.Contains(r.stderr, "the transfer would fail now: "+overLimit+"; sending it anyway (--force)") {
		t.Errorf("send --force does not warn:\n%s", r.stderr)
	}
	if !strings.Contains(r.stdout, "status:    0 (failed)\nreason:    "+overLimit+"\nblock:     ") {
		t.Errorf("send --force output lacks the failure and its reason:\n%s", r.stdout)
	}
	m := regexp.MustCompile(`(?m)^hash: +(0x[0-9a-f]{64})$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no hash in send output:\n%s", r.stdout)
	}
	if rc, err := c.WaitReceipt(ctx, common.HexToHash(m[1])); err != nil || rc.Status != 0 {
		t.Fatalf("forced send's receipt: %+v %v", rc, err)
	}
	if bal, err := c.Balance(ctx, fresh); err != nil || bal.Sign() != 0 {
		t.Fatalf("recipient balance after the failed send: %v %v", bal, err)
	}
}
