package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/rpc/rpctest"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// TestProofCommands: 'tally proof tx' fetches a proof from a node serving
// a 3-validator chain whose set changed, 'tally verify-proof' checks it
// with only the genesis file (exit 0), refuses it altered or against
// another genesis (exit 1), and cannot read a missing file (exit 2).
func TestProofCommands(t *testing.T) {
	c := chaintest.New(t)
	s := c.Populate()
	newest := c.Apply(c.Transfers(1)...)
	ts := rpctest.Serve(t, rpctest.NewBackend(c.DB, c.Senders), rpc.DefaultLimits)
	node := []string{"--rpc", ts.URL}
	dir := t.TempDir()
	gen := filepath.Join(dir, "genesis.json")
	if err := os.WriteFile(gen, c.GenesisJSON, 0o644); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "after.json")
	r := tally(t, "", append([]string{"proof", "tx", s.After.Hex(), "--out", out}, node...)...)
	if r.code != exitOK || !strings.Contains(r.stdout, "written to "+out) {
		t.Fatalf("proof tx --out: %+v", r)
	}
	r = tally(t, "", append([]string{"proof", "tx", s.Transfer.Hex()}, node...)...)
	if r.code != exitOK || !strings.HasPrefix(r.stdout, `{"version":2,`) || !strings.HasSuffix(r.stdout, "}\n") {
		t.Fatalf("proof tx to stdout: %+v", r)
	}
	before := filepath.Join(dir, "before.json")
	if err := os.WriteFile(before, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		file string
		tx   common.Hash
	}{{out, s.After}, {before, s.Transfer}} {
		r = tally(t, "", "verify-proof", tc.file, "--genesis", gen)
		if r.code != exitOK {
			t.Fatalf("verify-proof %s: %+v", tc.file, r)
		}
		for _, want := range []string{"proof valid\n", "tx:        " + tc.tx.Hex() + "\n", "status:    1 (success)\n", "of 4 validators\n", "validator set changes followed: 1\n"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("verify-proof output lacks %q:\n%s", want, r.stdout)
			}
		}
	}

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// One altered byte in the middle of a hash, the certificate, and the newline.
	for _, pos := range []int{len(data) / 3, len(data) - 40, len(data) - 1} {
		bad := append([]byte(nil), data...)
		bad[pos] ^= 0x01
		f := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(f, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if r = tally(t, "", "verify-proof", f, "--genesis", gen); r.code != exitFailure || !strings.HasPrefix(r.stderr, "tally: ") || r.stdout != "" {
			t.Fatalf("altered byte %d: %+v", pos, r)
		}
	}
	devGen := filepath.Join(dir, "dev.json")
	if err := os.WriteFile(devGen, genesis.DevJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	if r = tally(t, "", "verify-proof", out, "--genesis", devGen); r.code != exitFailure || !strings.Contains(r.stderr, "proof") {
		t.Fatalf("another genesis: %+v", r)
	}
	if r = tally(t, "", "verify-proof", filepath.Join(dir, "missing.json"), "--genesis", gen); r.code != exitUsage {
		t.Fatalf("missing proof file: %+v", r)
	}
	if r = tally(t, "", "verify-proof", out, "--genesis", out); r.code != exitUsage || !strings.Contains(r.stderr, "genesis") {
		t.Fatalf("a proof as genesis: %+v", r)
	}
	if r = tally(t, "", "verify-proof", out); r.code != exitUsage || !strings.Contains(r.stderr, "--genesis") {
		t.Fatalf("no genesis: %+v", r)
	}

	// The newest block is not certified yet: without waiting, a failure
	// telling to retry; an unknown transaction, not found.
	r = tally(t, "", append([]string{"proof", "tx", newest.Block.Txs[0].Hash().Hex(), "--wait=false"}, node...)...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "retry") {
		t.Fatalf("uncertified: %+v", r)
	}
	r = tally(t, "", append([]string{"proof", "tx", "0x" + strings.Repeat("ab", 32)}, node...)...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("unknown: %+v", r)
	}
	for _, args := range [][]string{{"proof"}, {"proof", "block"}, {"proof", "tx"}, {"proof", "tx", "0x12"}} {
		if r = tally(t, "", args...); r.code != exitUsage {
			t.Errorf("%v: %+v", args, r)
		}
	}
}

// TestProofEndToEnd: a transfer sent to a live dev node is proven once a
// later block certifies it ('tally proof tx' waits), and the proof checks
// offline against the dev genesis.
func TestProofEndToEnd(t *testing.T) {
	setup(t)
	node := wallettest.StartDevNode(t)
	rpcFlag := []string{"--rpc", node.URL}
	mn := writeFile(t, "mnemonic", crypto.TestMnemonic)
	if r := tally(t, "", "wallet", "import", "--mnemonic-file", mn); r.code != exitOK {
		t.Fatalf("import: %+v", r)
	}
	r := tally(t, "", append([]string{"send", "--from", addr0, "--to", addr1, "--value", "1.25"}, rpcFlag...)...)
	if r.code != exitOK {
		t.Fatalf("send: %+v", r)
	}
	m := regexp.MustCompile(`(?m)^hash: +(0x[0-9a-f]{64})$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no hash in send output:\n%s", r.stdout)
	}
	out := filepath.Join(t.TempDir(), "proof.json")
	r = tally(t, "", append([]string{"proof", "tx", m[1], "--out", out, "--timeout", "30s"}, rpcFlag...)...)
	if r.code != exitOK {
		t.Fatalf("proof tx: %+v", r)
	}
	gen := writeFile(t, "genesis.json", string(genesis.DevJSON()))
	r = tally(t, "", "verify-proof", out, "--genesis", gen)
	if r.code != exitOK || !strings.Contains(r.stdout, "tx:        "+m[1]+"\n") || !strings.Contains(r.stdout, "from:      "+addr0+"\n") {
		t.Fatalf("verify-proof: %+v", r)
	}
}
