package e2e

// `tally audit`, `tally proof tx` and `tally verify-proof` run as real
// processes against a cluster (docs/audit.md, docs/proofs.md).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/wallet"
)

// runTally runs the tally CLI with args and returns its combined output
// and exit status (-1 if it could not run or was killed).
func (c *testCluster) runTally(args ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, buildTally(c.t), args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return string(out), ee.ExitCode()
	}
	c.t.Fatalf("tally %s: %v\n%s", strings.Join(args, " "), err, out)
	return "", -1
}

// genesisFile is the testnet's genesis file.
func (c *testCluster) genesisFile() string {
	return filepath.Join(c.dir, "testnet", "genesis.json")
}

// mustAudit runs `tally audit --genesis … --json FILE` with src (--rpc URL
// or --datadir DIR, plus any --to) and fails unless it exits 0 with a
// report that is ok, lists no failure, checked blocks, transactions and
// certificates, and every asset's supply row balances.
func (c *testCluster) mustAudit(name string, src ...string) *audit.Report {
	c.t.Helper()
	path := filepath.Join(c.dir, "audit-"+name+".json")
	start := time.Now()
	out, code := c.runTally(append([]string{"audit", "--genesis", c.genesisFile(), "--json", path}, src...)...)
	if code != 0 {
		c.fatal("tally audit %v: exit %d, want 0\n%s", src, code, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	var rep audit.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		c.t.Fatalf("audit report %s: %v", path, err)
	}
	switch {
	case !rep.OK || len(rep.Failures) > 0 || rep.FailuresOmitted > 0:
		c.t.Fatalf("audit %v: ok %v with %d failures (first %+v)", src, rep.OK, len(rep.Failures)+rep.FailuresOmitted, rep.Failures)
	case rep.Blocks == 0 || rep.Blocks < rep.To-rep.From: // block 0 is checked against the genesis, not counted
		c.t.Fatalf("audit %v: %d blocks checked for heights %d..%d", src, rep.Blocks, rep.From, rep.To)
	case rep.Txs == 0 || rep.Certificates == 0 || rep.LastCertified == nil:
		c.t.Fatalf("audit %v: %d txs, %d certificates checked (last certified %v)", src, rep.Txs, rep.Certificates, rep.LastCertified)
	case len(rep.Supply) == 0:
		c.t.Fatalf("audit %v: no supply table", src)
	}
	for _, s := range rep.Supply {
		if !s.OK {
			c.t.Fatalf("audit %v: supply of %s not ok: %+v", src, s.Symbol, s)
		}
	}
	c.t.Logf("AUDIT %s: exit 0 in %v: heights %d..%d (head %d), %d txs, %d certificates (last certified %d), final state checked %v, %d assets",
		rep.Source, time.Since(start).Round(time.Millisecond), rep.From, rep.To, rep.Head, rep.Txs, rep.Certificates, *rep.LastCertified, rep.FinalStateChecked, len(rep.Supply))
	return &rep
}

// checkSupply fails unless every row of rep's supply table is what node
// i's tally_getSupply says (minted, burned, escrow); the chain must not mint
// or burn meanwhile.
func (c *testCluster) checkSupply(ctx context.Context, i int, rep *audit.Report) {
	c.t.Helper()
	wc, err := wallet.Dial(ctx, c.specs[i].RPC)
	if err != nil {
		c.t.Fatal(err)
	}
	defer wc.Close()
	for _, row := range rep.Supply {
		sup, err := wc.Supply(ctx, row.Symbol)
		if err != nil {
			c.t.Fatalf("tally_getSupply(%s): %v", row.Symbol, err)
		}
		for _, f := range []struct {
			what      string
			got, want *big.Int
		}{{"minted", decimal(c, row.Minted), sup.Minted.ToInt()}, {"burned", decimal(c, row.Burned), sup.Burned.ToInt()}, {"escrow", decimal(c, row.Escrow), sup.Escrow.ToInt()}} {
			if f.got.Cmp(f.want) != 0 {
				c.t.Errorf("audit supply of %s: %s %s, tally_getSupply says %s", row.Symbol, f.what, f.got, f.want)
			}
		}
	}
}

func decimal(c *testCluster, s string) *big.Int {
	c.t.Helper()
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		c.t.Fatalf("audit report: %q is not a decimal amount", s)
	}
	return v
}

var (
	proofValidRe   = regexp.MustCompile(`(?m)^proof valid$`)
	proofBlockRe   = regexp.MustCompile(`(?m)^block: +(\d+) `)
	proofChangesRe = regexp.MustCompile(`(?m)^validator set changes followed: (\d+)$`)
)

// mustProve fetches tx's proof from node i (`tally proof tx`) and checks it
// offline (`tally verify-proof`): exit 0, "proof valid", the block the tx
// is in, and wantChanges validator set changes followed (-1: any).
func (c *testCluster) mustProve(i int, name string, tx common.Hash, block uint64, wantChanges int) {
	c.t.Helper()
	path := filepath.Join(c.dir, "proof-"+name+".json")
	if out, code := c.runTally("proof", "tx", tx.Hex(), "--rpc", c.specs[i].RPC, "--out", path, "--timeout", "30s"); code != 0 {
		c.fatal("tally proof tx %s: exit %d\n%s", tx, code, out)
	}
	out, code := c.runTally("verify-proof", path, "--genesis", c.genesisFile())
	if code != 0 || !proofValidRe.MatchString(out) || !strings.Contains(out, tx.Hex()) {
		c.t.Fatalf("tally verify-proof (%s, tx %s): exit %d\n%s", name, tx, code, out)
	}
	m, ch := proofBlockRe.FindStringSubmatch(out), proofChangesRe.FindStringSubmatch(out)
	if m == nil || ch == nil || m[1] != strconv.FormatUint(block, 10) || (wantChanges >= 0 && ch[1] != strconv.Itoa(wantChanges)) {
		c.t.Fatalf("tally verify-proof (%s): want block %d and %d validator changes:\n%s", name, block, wantChanges, out)
	}
	// The same file with one head-certificate signature altered is refused.
	b, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	k := strings.Index(string(b), `"signatures":["0x`) + len(`"signatures":["0x`)
	if k < len(`"signatures":["0x`) {
		c.t.Fatalf("proof %s has no certificate signatures:\n%s", path, b)
	}
	if b[k] == '0' {
		b[k] = '1'
	} else {
		b[k] = '0'
	}
	bad := path + ".altered"
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		c.t.Fatal(err)
	}
	if badOut, code := c.runTally("verify-proof", bad, "--genesis", c.genesisFile()); code != 1 || proofValidRe.MatchString(badOut) {
		c.t.Fatalf("tally verify-proof of an altered proof: exit %d, want 1\n%s", code, badOut)
	}
	c.t.Logf("PROOF %s: tx %s in block %d, verified offline (an altered copy refused):\n%s", name, tx, block, strings.TrimSpace(out))
}

// checkpoint copies node i's data dir with `tally admin checkpoint` and
// returns the copy.
func (c *testCluster) checkpoint(i int, name string) string {
	c.t.Helper()
	dir := filepath.Join(c.dir, "checkpoint-"+name)
	out, code := c.runTally("admin", "checkpoint", "--admin", c.specs[i].Admin, "--token-file", c.specs[i].TokenFile, "--out", dir)
	if code != 0 {
		c.fatal("tally admin checkpoint on node %d: exit %d\n%s", i, code, out)
	}
	c.t.Logf("CHECKPOINT of node %d into %s: %s", i, dir, strings.Join(strings.Fields(out), " "))
	return dir
}

// sameAudit fails unless two reports checked the same heights and agree on
// the transactions, certificates and supply table.
func (c *testCluster) sameAudit(a, b *audit.Report) {
	c.t.Helper()
	ja, _ := json.Marshal(a.Supply)
	jb, _ := json.Marshal(b.Supply)
	if a.From != b.From || a.To != b.To || a.Txs != b.Txs || a.Blocks != b.Blocks || a.Certificates != b.Certificates || string(ja) != string(jb) || a.GenesisHash != b.GenesisHash {
		c.t.Fatalf("audits disagree:\n%s: heights %d..%d, %d blocks, %d txs, %d certs, supply %s\n%s: heights %d..%d, %d blocks, %d txs, %d certs, supply %s",
			a.Source, a.From, a.To, a.Blocks, a.Txs, a.Certificates, ja, b.Source, b.From, b.To, b.Blocks, b.Txs, b.Certificates, jb)
	}
	c.t.Logf("audits of %s and %s agree: heights %d..%d, %d txs, %d certificates, supply %s", a.Source, b.Source, a.From, a.To, a.Txs, a.Certificates, ja)
}

// toFlag is --to h.
func toFlag(h uint64) []string { return []string{"--to", fmt.Sprint(h)} }
