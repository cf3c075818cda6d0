package main

import (
	"context"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// update rewrites the golden files: go test ./cmd/tally -run TestGolden -update
var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenDir holds one file per rendering: NAME.txt (text) and NAME.json (--json).
const goldenDir = "testdata/golden"

// goldenScenario is what TestGolden did on a fresh dev node. Keys, nonces
// and the genesis are fixed, so transaction hashes are the same on every
// run; what depends on the clock (block numbers and hashes after the
// genesis, times, cursors, which carry block numbers) is masked.
type goldenScenario struct {
	node     *wallettest.Node
	merchant common.Address
	// native, payment, binaryRef, mint and failed are the transactions'
	// hashes: 2.50 CNY to the merchant; 12.50 HKD paying ORDER-1001; a
	// payment whose reference is not text; bank B minting 100.00 HKD under
	// DEP-2026-0001; 2,000.00 HKD the merchant's tier cannot hold (status 0).
	native, payment, binaryRef, mint, failed common.Hash
}

func newGoldenScenario(t *testing.T) *goldenScenario {
	t.Helper()
	node := wallettest.StartDevNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := wallet.Dial(ctx, node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	key := func(i uint32) *crypto.PrivateKey {
		k, err := genesis.DevKey(i)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	payer, bank, merchant := key(0), key(genesis.DevBankBIndex), key(20) // index 20: tier 0, no balance
	s := &goldenScenario{node: node, merchant: merchant.Address()}
	wait := func(tx *types.Transaction, err error, wantStatus uint64) common.Hash {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		r, err := client.WaitReceipt(ctx, tx.Hash())
		if err != nil || r.Status != wantStatus {
			t.Fatalf("tx %s: receipt %+v, %v; want status %d", tx.Hash(), r, err, wantStatus)
		}
		return tx.Hash()
	}
	op := func(method string, args ...any) wallet.Op {
		o, err := wallet.AssetOp(1, method, args...)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	ref := func(s string) (r [32]byte) { copy(r[:], s); return r }
	cny := new(big.Int).Mul(big.NewInt(25), new(big.Int).Exp(big.NewInt(10), big.NewInt(17), nil))
	tx, err := client.Transfer(ctx, payer, s.merchant, cny)
	s.native = wait(tx, err, 1)
	tx, err = client.Send(ctx, payer, op("transferWithReference", s.merchant, big.NewInt(1250), ref("ORDER-1001")))
	s.payment = wait(tx, err, 1)
	tx, err = client.Send(ctx, payer, op("transferWithReference", s.merchant, big.NewInt(1), [32]byte{0x00, 0xff, 0x10}))
	s.binaryRef = wait(tx, err, 1)
	tx, err = client.Send(ctx, bank, op("mint", s.merchant, big.NewInt(10000), ref("DEP-2026-0001")))
	s.mint = wait(tx, err, 1)
	tx, err = client.Send(ctx, payer, op("transfer", s.merchant, big.NewInt(200000)))
	s.failed = wait(tx, err, 0)
	return s
}

// rpc is the --rpc flag of the scenario's node.
func (s *goldenScenario) rpc() []string { return []string{"--rpc", s.node.URL} }

// TestGolden runs every query command, as text and --json, against a real
// dev node after a fixed scenario, and compares each output with its file
// under testdata/golden (-update rewrites them).
func TestGolden(t *testing.T) {
	s := newGoldenScenario(t)
	dir := t.TempDir()
	proof, failedProof := filepath.Join(dir, "payment-proof.json"), filepath.Join(dir, "failed-proof.json")
	for tx, file := range map[common.Hash]string{s.payment: proof, s.failed: failedProof} {
		if r := tally(t, "", append([]string{"proof", "tx", tx.Hex(), "--out", file}, s.rpc()...)...); r.code != exitOK {
			t.Fatalf("proof tx: %+v", r)
		}
	}
	devGenesis := filepath.Join("..", "..", "genesis", "dev.json")
	merchant := s.merchant.Hex()

	// The second page of the merchant's HKD history, from the first's cursor.
	r := tally(t, "", append([]string{"history", merchant, "--asset", "HKD", "--limit", "2", "--json"}, s.rpc()...)...)
	m := regexp.MustCompile(`"nextCursor": "(0x[0-9a-f]+)"`).FindStringSubmatch(r.stdout)
	if r.code != exitOK || m == nil {
		t.Fatalf("history --asset HKD --limit 2 has no next cursor: %+v", r)
	}
	cursor := m[1]

	cases := []struct {
		name string
		args []string // without --rpc and --json
		rpc  bool
	}{
		{"tx-native", []string{"tx", s.native.Hex()}, true},
		{"tx-payment", []string{"tx", s.payment.Hex()}, true},
		{"tx-binary-ref", []string{"tx", s.binaryRef.Hex()}, true},
		{"tx-mint", []string{"tx", s.mint.Hex()}, true},
		{"tx-failed", []string{"tx", s.failed.Hex()}, true},
		{"verify-proof", []string{"verify-proof", proof, "--genesis", devGenesis}, false},
		{"verify-proof-failed", []string{"verify-proof", failedProof, "--genesis", devGenesis}, false},
		{"history", []string{"history", merchant}, true},
		{"history-hkd-page1", []string{"history", merchant, "--asset", "HKD", "--limit", "2"}, true},
		{"history-hkd-page2", []string{"history", merchant, "--asset", "HKD", "--limit", "2", "--cursor", cursor}, true},
		{"history-cny", []string{"history", merchant, "--asset", "CNY"}, true},
		{"history-payer", []string{"history", addr0, "--limit", "3"}, true},
		{"history-empty", []string{"history", "0x" + strings.Repeat("0", 39) + "1"}, true},
		{"account", []string{"account", merchant}, true},
		{"balance", []string{"balance", merchant}, true},
		{"supply", []string{"supply", "HKD"}, true},
		{"assets", []string{"assets"}, true},
		{"block-0", []string{"block", "0"}, true},
		{"op-balanceOf", []string{"op", "--asset", "HKD", "balanceOf", merchant}, true},
		{"op-paidUnderReference", []string{"op", "--asset", "HKD", "paidUnderReference", merchant, "ORDER-1001", addr0}, true},
	}
	t.Run("bad input", func(t *testing.T) { checkBadInput(t, s.node.URL) })
	masks := s.masks(t)
	for _, tc := range cases {
		for _, asJSON := range []bool{false, true} {
			args, file := tc.args, tc.name+".txt"
			if asJSON {
				args, file = append(append([]string{}, args...), "--json"), tc.name+".json"
			}
			if tc.rpc {
				args = append(args, s.rpc()...)
			}
			t.Run(file, func(t *testing.T) {
				r := tally(t, "", args...)
				if r.code != exitOK || r.stderr != "" {
					t.Fatalf("tally %s: %+v", strings.Join(args, " "), r)
				}
				checkGolden(t, file, masks.apply(r.stdout))
			})
		}
	}
	// After the queries, whose outputs the transfers would change.
	t.Run("send", func(t *testing.T) { checkSendGolden(t, s) })
}

// checkSendGolden compares what 'tally send' prints with its golden files:
// a transfer waited for (send.txt); one the dry run refuses, sent anyway
// with --force, that fails with the node's reason (send-failed.txt); and
// the same sent with --wait=false (send-nowait.txt), whose printed check
// command then shows the failure and its reason as 'tally tx' does; and
// 'tally op' making a payment, waited for (op-payment.txt) and not
// (op-nowait.txt).
func checkSendGolden(t *testing.T, s *goldenScenario) {
	setup(t)
	if r := tally(t, "", "wallet", "import", "--mnemonic-file", writeFile(t, "mnemonic", crypto.TestMnemonic)); r.code != exitOK {
		t.Fatalf("import: %+v", r)
	}
	// The node's URL changes from run to run.
	masks := func(out string) string {
		m := s.masks(t)
		return strings.ReplaceAll(m.apply(out), s.node.URL, "URL")
	}
	fresh := common.HexToAddress("0x00000000000000000000000000000000000fe5a3").Hex() // tier 0: at most 1000.00 CNY
	overLimit := "the transfer would fail now: balance of " + fresh + " would be 1001.00 CNY, over the maximum 1000.00 CNY of tier 0; sending it anyway (--force)"

	r := tally(t, "", append([]string{"send", "--from", addr0, "--to", s.merchant.Hex(), "--value", "1.25"}, s.rpc()...)...)
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("send: %+v", r)
	}
	checkGolden(t, "send.txt", masks(r.stdout))

	r = tally(t, "", append([]string{"send", "--from", addr0, "--to", fresh, "--value", "1001", "--force"}, s.rpc()...)...)
	if r.code != exitFailure || r.stderr != "tally: send: "+overLimit+"\ntally: send: the transaction failed at execution (status 0)\n" {
		t.Fatalf("send --force: %+v", r)
	}
	checkGolden(t, "send-failed.txt", masks(r.stdout))

	r = tally(t, "", append([]string{"send", "--from", addr0, "--to", fresh, "--value", "1001", "--force", "--wait=false"}, s.rpc()...)...)
	if r.code != exitOK || r.stderr != "tally: send: "+overLimit+"\n" {
		t.Fatalf("send --wait=false: %+v", r)
	}
	checkGolden(t, "send-nowait.txt", masks(r.stdout))
	m := regexp.MustCompile(`(?m)^check: +tally (tx 0x[0-9a-f]{64} --rpc \S+)$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("send --wait=false prints no check command:\n%s", r.stdout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := wallet.Dial(ctx, s.node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.WaitReceipt(ctx, common.HexToHash(strings.Fields(m[1])[1])); err != nil {
		t.Fatal(err)
	}
	r = tally(t, "", strings.Fields(m[1])...)
	if r.code != exitOK || !strings.Contains(r.stdout, "status:    0 (failed)\nreason:    balance of "+fresh+" would be 1001.00 CNY, over the maximum 1000.00 CNY of tier 0\n") {
		t.Fatalf("the check command %q: %+v", m[1], r)
	}

	// 'tally op' prints the same, then the operation's events decoded.
	for _, c := range []struct {
		file string
		args []string
	}{
		{"op-payment.txt", []string{"op", "--from", addr0, "--asset", "HKD", "transferWithReference", s.merchant.Hex(), "3.75", "ORDER-1002"}},
		{"op-nowait.txt", []string{"op", "--from", addr0, "--asset", "HKD", "transferWithReference", s.merchant.Hex(), "0.25", "ORDER-1003", "--wait=false"}},
	} {
		r = tally(t, "", append(c.args, s.rpc()...)...)
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("%s: %+v", strings.Join(c.args, " "), r)
		}
		checkGolden(t, c.file, masks(r.stdout))
	}
}

// checkBadInput: a malformed or unknown argument gets one line naming the
// argument and a non-zero exit (2 for a usage error, 1 for what the chain
// does not have), and nothing on stdout, with or without --json. TestGolden
// runs it on its node.
func checkBadInput(t *testing.T, nodeURL string) {
	unknownHash := "0x" + strings.Repeat("ab", 32)
	tests := []struct {
		name string
		args []string
		code int
		want string // a substring of the error line
	}{
		{"tx short hash", []string{"tx", "0x1234"}, exitUsage, `tx: HASH: "0x1234" is not 0x and 64 hex digits`},
		{"tx hash without 0x", []string{"tx", strings.Repeat("ab", 32)}, exitUsage, "tx: HASH"},
		{"tx unknown hash", []string{"tx", unknownHash}, exitFailure, "tx " + unknownHash + ": not found"},
		{"history bad address", []string{"history", "0xzz"}, exitUsage, "history: ADDR"},
		{"history bad checksum", []string{"history", badSum}, exitUsage, "history: ADDR"},
		{"history unknown asset", []string{"history", addr1, "--asset", "XYZ"}, exitUsage, `history: --asset: unknown asset "XYZ" (this chain has CNY, HKD)`},
		{"history lower-case asset", []string{"history", addr1, "--asset", "hkd"}, exitUsage, `history: --asset: unknown asset "hkd"`},
		{"history cursor not hex", []string{"history", addr1, "--cursor", "next"}, exitUsage, `history: --cursor: "next" is not a cursor`},
		{"history empty cursor", []string{"history", addr1, "--cursor", "0x"}, exitUsage, "history: --cursor"},
		{"history cursor the node refuses", []string{"history", addr1, "--cursor", "0x1234"}, exitUsage, "history: --cursor: the node refuses 0x1234"},
		{"history limit 0", []string{"history", addr1, "--limit", "0"}, exitUsage, "history: --limit: 0 is not in 1..500"},
		{"history limit 501", []string{"history", addr1, "--limit", "501"}, exitUsage, "history: --limit: 501 is not in 1..500"},
		{"history two addresses", []string{"history", addr1, addr2}, exitUsage, "unexpected argument"},
		{"supply unknown asset", []string{"supply", "XYZ"}, exitUsage, `supply: SYMBOL: unknown asset "XYZ" (this chain has CNY, HKD)`},
		{"account bad address", []string{"account", "0x1"}, exitUsage, "account: ADDR"},
		{"balance bad address", []string{"balance", "bob"}, exitUsage, "balance: ADDR"},
		{"block not a number", []string{"block", "tip"}, exitUsage, `block: N: "tip" is not a block number`},
		{"block not found", []string{"block", "99999999"}, exitFailure, "block 99999999: not found"},
		{"assets extra argument", []string{"assets", "HKD"}, exitUsage, `assets: unexpected argument "HKD"`},
		{"op view unknown asset", []string{"op", "--asset", "XYZ", "balanceOf", addr1}, exitUsage, `op: --asset: unknown asset "XYZ"`},
	}
	for _, tc := range tests {
		for _, asJSON := range []bool{false, true} {
			args := append(append([]string{}, tc.args...), "--rpc", nodeURL)
			if asJSON {
				args = append(args, "--json")
			}
			r := tally(t, "", args...)
			if r.code != tc.code || r.stdout != "" || !strings.HasPrefix(r.stderr, "tally: ") || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("%s (json %t): %+v\nwant exit %d and %q", tc.name, asJSON, r, tc.code, tc.want)
			}
		}
	}
	// 'op --json' is for a view's results: on an operation it is refused
	// before anything is signed (the keystore is not even opened).
	r := tally(t, "", "op", "--from", addr0, "--asset", "HKD", "transfer", addr1, "1", "--json", "--rpc", nodeURL)
	if r.code != exitUsage || r.stdout != "" || !strings.Contains(r.stderr, "op: --json prints a view's results; transfer is an operation") {
		t.Errorf("op --json on an operation: %+v", r)
	}
}

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, file)
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/tally -run TestGolden -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (-update rewrites it after a deliberate change)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// goldenMasks replace what depends on the clock: the hashes and times of
// the blocks after the genesis (exact strings), and block numbers above 0
// and cursors where a rendering shows them.
type goldenMasks struct {
	exact *strings.Replacer
}

var numberMasks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?m)^(block: +)[1-9]\d*`), "${1}N"},                     // tx, verify-proof
	{regexp.MustCompile(`(?m)^(block )[1-9]\d*(\.\d+ )`), "${1}N${2}"},           // history
	{regexp.MustCompile(`(certified: +block )[1-9]\d*`), "${1}N"},                // verify-proof
	{regexp.MustCompile(`("(?:blockNumber|number)": )[1-9]\d*`), `${1}"N"`},      // JSON
	{regexp.MustCompile(`(--cursor |"nextCursor": ")0x[0-9a-f]+`), "${1}CURSOR"}, // cursors carry a block number
}

func (s *goldenScenario) masks(t *testing.T) goldenMasks {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := wallet.Dial(ctx, s.node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	head, err := client.BlockByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for n := uint64(1); n <= head.NumberU64()+2; n++ {
		b, err := client.BlockByNumber(ctx, new(big.Int).SetUint64(n))
		if err != nil {
			break // the blocks after the head, made while the test ran, are read if there
		}
		ms, err := chain.TimeMs(b.Header())
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, b.Hash().Hex(), "BLOCKHASH", timeText(ms), "TIME", strconv.FormatUint(ms, 10), "TIMEMS")
	}
	return goldenMasks{exact: strings.NewReplacer(pairs...)}
}

func (m goldenMasks) apply(s string) string {
	s = m.exact.Replace(s)
	for _, nm := range numberMasks {
		s = nm.re.ReplaceAllString(s, nm.with)
	}
	return s
}
