package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/store"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// buildTally builds this command (once per test process) and returns its path.
func buildTally(t *testing.T) string {
	t.Helper()
	bin, err := wallettest.BuildCommand("tally")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// runBin runs the real binary and returns its exit code and output.
func runBin(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(buildTally(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errOut.String()}
}

func TestAuditExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tally binary")
	}
	c := chaintest.New(t)
	c.Populate()
	head := c.DB.Tip().Head.Number
	c.Close()
	gen := writeFile(t, "genesis.json", string(c.GenesisJSON))
	other := writeFile(t, "dev.json", string(genesis.Dev().Indent()))
	dir := c.Dir

	// 0: a clean chain; the JSON report on stdout, the summary on stderr.
	r := runBin(t, "audit", "--genesis", gen, "--datadir", dir, "--json", "-")
	if r.code != 0 {
		t.Fatalf("clean chain: %+v", r)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, r.stdout)
	}
	if !rep.OK || rep.To != head || rep.Blocks != head || !rep.FinalStateChecked || len(rep.Supply) != 2 || rep.Failures == nil {
		t.Fatalf("report: %+v", rep)
	}
	t.Logf("clean chain:\n%s", r.stderr)
	if !strings.Contains(r.stderr, "OK, every check holds") || !strings.Contains(r.stderr, "blocks/s") {
		t.Fatalf("summary on stderr:\n%s", r.stderr)
	}

	// 0: a stopped node's data dir, its state database in state/.
	nodeDir := t.TempDir()
	if err := os.Rename(chaintest.CopyDir(t, dir), node.StateDir(nodeDir)); err != nil {
		t.Fatal(err)
	}
	if r := runBin(t, "audit", "--genesis", gen, "--datadir", nodeDir); r.code != 0 || !strings.Contains(r.stdout, "OK, every check holds") {
		t.Fatalf("a node's data dir: %+v", r)
	}

	// 0 with --to: no final state; the report to a file, the summary on stdout.
	out := filepath.Join(t.TempDir(), "report.json")
	r = runBin(t, "audit", "--genesis", gen, "--datadir", dir, "--to", "3", "--json", out)
	if r.code != 0 || !strings.Contains(r.stdout, "heights:      0 to 3") || !strings.Contains(r.stdout, "not compared") {
		t.Fatalf("--to 3: %+v", r)
	}
	if data, err := os.ReadFile(out); err != nil || !bytes.Contains(data, []byte(`"finalStateChecked": false`)) {
		t.Fatalf("report file: %v\n%s", err, data)
	}

	// 1: another genesis file.
	r = runBin(t, "audit", "--genesis", other, "--datadir", dir)
	t.Logf("other genesis:\n%s%s", r.stdout, r.stderr)
	if r.code != 1 || !strings.Contains(r.stdout, "genesis") || !strings.Contains(r.stderr, "audit failed") {
		t.Fatalf("other genesis: %+v", r)
	}

	// 1: intact blocks, but the data dir's head record names another
	// block (tallyd would build on it): the check that fails is named.
	cp := chaintest.CopyDir(t, dir)
	pdb, err := pebble.Open(cp, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, closer, err := pdb.Get([]byte("mhead"))
	if err != nil {
		t.Fatal(err)
	}
	var h store.Head
	if err := rlp.DecodeBytes(v, &h); err != nil {
		t.Fatal(err)
	}
	closer.Close()
	h.Hash[0] ^= 1
	v, _ = rlp.EncodeToBytes(&h)
	if err := pdb.Set([]byte("mhead"), v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	pdb.Close()
	r = runBin(t, "audit", "--genesis", gen, "--datadir", cp)
	t.Logf("altered head record:\n%s%s", r.stdout, r.stderr)
	if r.code != 1 || !strings.Contains(r.stdout, audit.CheckHeadRecord) || !strings.Contains(r.stderr, "audit failed") {
		t.Fatalf("altered head record: %+v", r)
	}

	// 2: the input cannot be read.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no genesis flag", []string{"--datadir", dir}, "--genesis is required"},
		{"no source", []string{"--genesis", gen}, "--rpc URL or --datadir DIR"},
		{"two sources", []string{"--genesis", gen, "--datadir", dir, "--rpc", "http://127.0.0.1:1"}, "--rpc URL or --datadir DIR"},
		{"unreadable genesis", []string{"--genesis", filepath.Join(t.TempDir(), "none.json"), "--datadir", dir}, "--genesis"},
		{"missing data dir", []string{"--genesis", gen, "--datadir", filepath.Join(t.TempDir(), "none")}, "data dir"},
		{"rpc down", []string{"--genesis", gen, "--rpc", "http://127.0.0.1:1"}, "tally_stateDigest"},
		{"from without checkpoint", []string{"--genesis", gen, "--datadir", dir, "--from", "3"}, "--checkpoint"},
		{"to above head", []string{"--genesis", gen, "--datadir", dir, "--to", "99999"}, "above the source's head"},
	} {
		r := runBin(t, append([]string{"audit"}, tc.args...)...)
		t.Logf("%s: %s", tc.name, r.stderr)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tc.name, r.code, r.stderr, tc.want)
		}
	}

	// 2: a data dir held by a running process (this one), with the advice.
	db, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r = runBin(t, "audit", "--genesis", gen, "--datadir", dir)
	db.Close()
	t.Logf("in use: %s", r.stderr)
	if r.code != 2 || !strings.Contains(r.stderr, "tally admin checkpoint") {
		t.Fatalf("data dir in use: %+v", r)
	}
}

// TestAuditCheckpoint audits the second half of a chain from a checkpoint
// copy whose head is the height before it.
func TestAuditCheckpoint(t *testing.T) {
	c := chaintest.New(t)
	c.Populate()
	head := c.DB.Tip().Head.Number
	from := head / 2
	cp := filepath.Join(t.TempDir(), "checkpoint")
	// Rebuild the chain up to from-1 in its own dir: the checkpoint.
	c2 := chaintest.New(t)
	for n := uint64(1); n < from; n++ {
		b, err := c.DB.BlockByNumber(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c2.ApplyBlock(b); err != nil {
			t.Fatalf("replay block %d: %v", n, err)
		}
	}
	if err := c2.DB.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	c.Close()
	gen := writeFile(t, "genesis.json", string(c.GenesisJSON))

	r := tally(t, "", "audit", "--genesis", gen, "--datadir", c.Dir, "--from", itoa(from), "--checkpoint", cp)
	if r.code != exitOK || !strings.Contains(r.stdout, "heights:      "+itoa(from)+" to "+itoa(head)) {
		t.Fatalf("from checkpoint: %+v", r)
	}
	// A checkpoint whose head is not from-1 is refused.
	r = tally(t, "", "audit", "--genesis", gen, "--datadir", c.Dir, "--from", itoa(from+1), "--checkpoint", cp)
	if r.code != exitUsage || !strings.Contains(r.stderr, "needs head") {
		t.Fatalf("wrong checkpoint: %+v", r)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
