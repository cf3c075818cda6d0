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

// TestEndToEnd drives the command against a real tallyd dev node: import dev
// account 0, send 2.5 CNY to a fresh address, and read it back with
// balance, tx and block.
func TestEndToEnd(t *testing.T) {
	setup(t)
	node := wallettest.StartDevNode(t)
	rpc := []string{"--rpc", node.URL}
	mn := writeFile(t, "mnemonic", crypto.TestMnemonic)
	if r := tally(t, "", "wallet", "import", "--mnemonic-file", mn); r.code != exitOK || r.stdout != addr0+"\n" {
		t.Fatalf("import: %+v", r)
	}
	fresh, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	to := fresh.Address().Hex()

	// A list fails over: the first node is down (connection refused).
	r := tally(t, "", "send", "--from", addr0, "--to", to, "--value", "2.5", "--rpc", "http://127.0.0.1:1,"+node.URL)
	if r.code != exitOK {
		t.Fatalf("send: %+v", r)
	}
	m := regexp.MustCompile(`(?m)^hash: +(0x[0-9a-f]{64})$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no hash in send output:\n%s", r.stdout)
	}
	hash := m[1]
	if !strings.Contains(r.stdout, "status:    1 (success)\n") || !regexp.MustCompile(`(?m)^block: +[1-9]\d*$`).MatchString(r.stdout) {
		t.Fatalf("send output lacks status 1 and a block:\n%s", r.stdout)
	}

	r = tally(t, "", append([]string{"balance", to}, rpc...)...)
	if r.code != exitOK || r.stdout != "2.50 CNY (2500000000000000000 base units)\n" {
		t.Fatalf("balance: %+v", r)
	}
	// The node's address as tallyd logs it, without a scheme, works too.
	r = tally(t, "", "balance", to, "--rpc", strings.TrimPrefix(node.URL, "http://"))
	if r.code != exitOK || r.stdout != "2.50 CNY (2500000000000000000 base units)\n" {
		t.Fatalf("balance with --rpc %s: %+v", strings.TrimPrefix(node.URL, "http://"), r)
	}

	r = tally(t, "", append([]string{"tx", hash}, rpc...)...)
	if r.code != exitOK {
		t.Fatalf("tx: %+v", r)
	}
	for _, want := range []string{
		"hash:      " + hash,
		"status:    1 (success)",
		"from:      " + addr0,
		"to:        " + to,
		"operation: transfer (native CNY)",
		"  to:      " + to,
		"  amount:  2.50 CNY",
		"type:      2 (EIP-1559)",
	} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("tx output lacks %q:\n%s", want, r.stdout)
		}
	}
	block := regexp.MustCompile(`(?m)^block: +(\d+)$`).FindStringSubmatch(r.stdout)
	if block == nil {
		t.Fatalf("no block in tx output:\n%s", r.stdout)
	}

	txOut := r.stdout
	r = tally(t, "", append([]string{"block", "latest"}, rpc...)...)
	latestOut := r.stdout
	if r.code != exitOK {
		t.Fatalf("block latest: %+v", r)
	}
	for _, field := range []string{"number:", "hash:", "parent:", "time:", "txs:", "proposer:"} {
		if !strings.Contains(r.stdout, "\n"+field) && !strings.HasPrefix(r.stdout, field) {
			t.Errorf("block output lacks %s:\n%s", field, r.stdout)
		}
	}
	r = tally(t, "", append([]string{"block", block[1]}, rpc...)...)
	if r.code != exitOK || !strings.Contains(r.stdout, "number:   "+block[1]+"\n") || !regexp.MustCompile(`(?m)^txs: +[1-9]`).MatchString(r.stdout) {
		t.Fatalf("block %s: %+v\nafter tx:\n%s\nand block latest:\n%s", block[1], r, txOut, latestOut)
	}

	// Legacy, in base units, without waiting; then the receipt comes.
	r = tally(t, "", append([]string{"send", "--from", addr0, "--to", to, "--value", "500000000000000000wei", "--legacy", "--wait=false"}, rpc...)...)
	if r.code != exitOK || strings.Contains(r.stdout, "status:") {
		t.Fatalf("send --wait=false: %+v", r)
	}
	m = regexp.MustCompile(`(?m)^hash: +(0x[0-9a-f]{64})$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no hash in send output:\n%s", r.stdout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := wallet.Dial(ctx, node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rc, err := c.WaitReceipt(ctx, common.HexToHash(m[1])); err != nil || rc.Status != 1 {
		t.Fatalf("legacy send receipt: %v %v", rc, err)
	}
	if r = tally(t, "", append([]string{"tx", m[1]}, rpc...)...); !strings.Contains(r.stdout, "type:      0 (legacy, EIP-155)") {
		t.Fatalf("tx legacy: %+v", r)
	}
	if r = tally(t, "", append([]string{"balance", to}, rpc...)...); r.stdout != "3.00 CNY (3000000000000000000 base units)\n" {
		t.Fatalf("balance after legacy send: %+v", r)
	}

	// Failures exit 1 with one line.
	unknown := "0x" + strings.Repeat("ab", 32)
	if r = tally(t, "", append([]string{"tx", unknown}, rpc...)...); r.code != exitFailure || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("tx unknown: %+v", r)
	}
	if r = tally(t, "", append([]string{"block", "99999999"}, rpc...)...); r.code != exitFailure || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("block future: %+v", r)
	}
	// The fresh account has no key here and cannot send anyway.
	if r = tally(t, "", append([]string{"send", "--from", to, "--to", addr0, "--value", "1"}, rpc...)...); r.code != exitFailure {
		t.Fatalf("send from an account not in the keystore: %+v", r)
	}
}

// TestBankOperations drives 'tally op', 'account' and 'supply' against a
// real dev node: bank B mints HKD under a reference, the customer pays a
// merchant with a reference, a replayed mint is refused before signing
// with the node's reason, and views print decoded results.
func TestBankOperations(t *testing.T) {
	setup(t)
	node := wallettest.StartDevNode(t)
	rpc := []string{"--rpc", node.URL}
	mn := writeFile(t, "mnemonic", crypto.TestMnemonic)
	bankB := "0x" + strings.Repeat("0", 40)
	for _, index := range []string{"0", "101"} {
		r := tally(t, "", "wallet", "import", "--mnemonic-file", mn, "--index", index)
		if r.code != exitOK {
			t.Fatalf("import index %s: %+v", index, r)
		}
		if index == "101" {
			bankB = strings.TrimSpace(r.stdout)
		}
	}
	fresh, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	to := fresh.Address().Hex()

	r := tally(t, "", append([]string{"op", "--from", bankB, "--asset", "HKD", "mint", to, "100.25", "DEPOSIT-0001"}, rpc...)...)
	if r.code != exitOK || !strings.Contains(r.stdout, "status:    1 (success)\n") || !strings.Contains(r.stdout, "  Minted (HKD)\n    bankRef: DEPOSIT-0001\n") || !strings.Contains(r.stdout, "    amount:  100.25 HKD\n") {
		t.Fatalf("mint: %+v", r)
	}
	r = tally(t, "", append([]string{"op", "--from", bankB, "--asset", "HKD", "mint", to, "1", "DEPOSIT-0001"}, rpc...)...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "mint reverted: bank reference") || !strings.Contains(r.stderr, "has already minted") {
		t.Fatalf("replayed mint: %+v", r)
	}
	r = tally(t, "", append([]string{"op", "--asset", "HKD", "balanceOf", to}, rpc...)...)
	if r.code != exitOK || r.stdout != "result: 100.25 HKD\n" {
		t.Fatalf("balanceOf: %+v", r)
	}
	r = tally(t, "", append([]string{"op", "--from", addr0, "--asset", "HKD", "transferWithReference", to, "0.75", "ORDER-1"}, rpc...)...)
	if r.code != exitOK || !strings.Contains(r.stdout, "  PaymentReference (HKD)\n    ref:    ORDER-1\n") || !strings.Contains(r.stdout, "    amount: 0.75 HKD\n") {
		t.Fatalf("transferWithReference: %+v", r)
	}
	r = tally(t, "", append([]string{"account", to}, rpc...)...)
	if r.code != exitOK || !strings.Contains(r.stdout, "tier:    0 (unverified)") || !strings.Contains(r.stdout, "HKD      balance 101.00 HKD, may send 0.00 HKD more today") {
		t.Fatalf("account: %+v", r)
	}
	r = tally(t, "", append([]string{"supply", "HKD"}, rpc...)...)
	if r.code != exitOK || !strings.Contains(r.stdout, "escrow:      0.00 HKD") || !strings.Contains(r.stdout, "address:     0x0000000000000000000000000000000000001001") {
		t.Fatalf("supply: %+v", r)
	}
	// The bank edge: a withdrawal CNY cannot pay (1.234567 CNY; CNY has 2
	// decimal places) is refused before signing; a payable one is claimed
	// by bank B, settled and returned; bank B's deposit credit is reversed,
	// once.
	r = tally(t, "", append([]string{"op", "--from", addr0, "--asset", "CNY", "requestWithdrawal", "1.234567", "PAYOUT-1"}, rpc...)...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "requestWithdrawal reverted: amount 1234567000000000000 is not a whole number of CNY minor units") {
		t.Fatalf("withdrawal in sub-cent units: %+v", r)
	}
	for _, step := range []struct{ args, want string }{
		{"--from " + addr0 + " --asset CNY requestWithdrawal 5.00 PAYOUT-1", "  WithdrawalRequested (CNY)\n    id:        1\n"},
		{"--from " + bankB + " --asset CNY settleWithdrawal 1", "!settleWithdrawal reverted: withdrawal 1 is not claimed"},
		{"--from " + bankB + " --asset CNY claimWithdrawal 1 ORDER-B-1", "    orderId: ORDER-B-1\n"},
		{"--from " + bankB + " --asset CNY settleWithdrawal 1", "  WithdrawalSettled (CNY)\n"},
		{"--from " + bankB + " --asset CNY returnWithdrawal 1 AC04-account-closed", "    reason: AC04-account-closed\n"},
		{"--asset CNY bankIssuance " + bankB, "minted: 5.00 CNY\nburned: 5.00 CNY\noutstanding: 0.00 CNY\n"},
		{"--from " + bankB + " --asset HKD reverseMint DEPOSIT-0001 RvslInd", "  MintReversed (HKD)\n    bankRef: DEPOSIT-0001\n"},
		{"--from " + bankB + " --asset HKD reverseMint DEPOSIT-0001 RvslInd", "!reverseMint reverted: the mint of bank reference"},
	} {
		r = tally(t, "", append(append([]string{"op"}, strings.Fields(step.args)...), rpc...)...)
		want, fails := strings.CutPrefix(step.want, "!")
		switch {
		case fails && (r.code != exitFailure || !strings.Contains(r.stderr, want)):
			t.Fatalf("op %s: %+v, want failure %q", step.args, r, want)
		case !fails && (r.code != exitOK || !strings.Contains(r.stdout, want)):
			t.Fatalf("op %s: %+v, want %q", step.args, r, want)
		}
	}
	// Bad arguments name the argument and never reach the node's state.
	r = tally(t, "", append([]string{"op", "--from", addr0, "--asset", "HKD", "transfer", to, "0.001"}, rpc...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "argument 2 (uint256 amount)") {
		t.Fatalf("too many decimals: %+v", r)
	}
	r = tally(t, "", append([]string{"op", "--from", addr0, "--asset", "XYZ", "transfer", to, "1"}, rpc...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, `unknown asset "XYZ"`) {
		t.Fatalf("unknown asset: %+v", r)
	}
	r = tally(t, "", append([]string{"op", "--from", addr0, "--compliance", "mint", to, "1", "X"}, rpc...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, `compliance has no operation "mint"`) {
		t.Fatalf("wrong contract: %+v", r)
	}
}
