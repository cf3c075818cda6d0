package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// devTraffic sends, on a real dev node, payments that make four rules
// fire (large amount, new payee, many senders, rapid in-and-out) among
// ordinary ones, and returns the height of the last one's block.
func devTraffic(t *testing.T, ctx context.Context, c *wallet.Client) uint64 {
	t.Helper()
	key := func(i uint32) *crypto.PrivateKey {
		k, err := genesis.DevKey(i)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	type pay struct {
		from, to uint32
		cny      int64
	}
	var pays []pay
	for range 5 {
		pays = append(pays, pay{0, 1, 100})
	}
	pays = append(pays, pay{0, 1, 5000}, pay{2, 3, 25000}) // large amount; new payee
	for i := uint32(4); i < 14; i++ {
		pays = append(pays, pay{i, unfunded, 10}) // many senders to a new account
	}
	pays = append(pays, pay{15, 16, 15000}, pay{16, 17, 14500}) // rapid in and out
	var last *types.Transaction
	for _, p := range pays {
		to, err := genesis.DevAddress(p.to)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := c.Transfer(ctx, key(p.from), to, cny(p.cny))
		if err != nil {
			t.Fatalf("pay %+v: %v", p, err)
		}
		r, err := c.WaitReceipt(ctx, tx.Hash())
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("pay %+v: %v %v", p, r, err)
		}
		last = tx
	}
	r, err := c.Receipt(ctx, last.Hash())
	if err != nil {
		t.Fatal(err)
	}
	return r.BlockNumber.Uint64()
}

// TestSIGKILL: `tally monitor` killed with SIGKILL at its commits (each
// after judging a run of blocks, before writing it with the cursor) and
// at random moments, restarted each time, ends with exactly the alerts
// and account profiles of a monitor that ran without a crash over the
// same real blocks: no block missed, none counted twice.
func TestSIGKILL(t *testing.T) {
	node := wallettest.StartDevNode(t)
	bin, err := wallettest.BuildCommand("tally")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := wallet.Dial(ctx, node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	height := devTraffic(t, ctx, c)

	// The reference: one monitor, no crash.
	cfg := testConfig(t)
	cfg.Nodes.Endpoints = []string{node.URL}
	ref, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if err := ref.prepare(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		cur, err := ref.store.Cursor()
		if err != nil {
			t.Fatal(err)
		}
		if cur.Next > height {
			break
		}
		if _, err := ref.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := allAlerts(t, ref)
	if len(want) < 4 {
		t.Fatalf("the traffic raised %d alerts, want at least 4: %q", len(want), ruleAccounts(want))
	}

	// The crashing one: a process, two blocks a commit.
	dir := t.TempDir()
	token := "crash-test-token-0123456789abcdef0123"
	conf := fmt.Sprintf("listen = \"127.0.0.1:0\"\ndatadir = \"data\"\n[nodes]\nendpoints = [%q]\n[follow]\npoll-interval = \"20ms\"\nbatch = 2\n[operator]\ntokens-file = \"operators\"\n[log]\nlevel = \"warn\"\n", node.URL)
	for f, data := range map[string]string{"monitor.toml": conf, "operators": "alice " + token + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(env string, killAfter time.Duration) (killed bool, log string) {
		cmd := exec.Command(bin, "monitor", "--config", filepath.Join(dir, "monitor.toml"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Env = append(os.Environ(), env)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(killAfter):
			cmd.Process.Kill()
			err = <-done
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return true, out.String()
			}
		}
		return false, out.String()
	}
	progress := func() uint64 {
		s, err := OpenStore(filepath.Join(dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		cur, err := s.Cursor()
		if err != nil {
			t.Fatal(err)
		}
		return cur.Next
	}
	kills := 0
	for k := 1; progress() <= height; k++ {
		if k > 200 {
			t.Fatalf("no progress after %d restarts: the cursor is at %d, the traffic ends at %d", k, progress(), height)
		}
		env := fmt.Sprintf("%s=%s:%d", CrashAtEnv, crashBeforeCommit, 1+k%4)
		wait := 30 * time.Second
		if k%3 == 0 {
			env, wait = CrashAtEnv+"=", time.Duration(50+37*k%200)*time.Millisecond // killed from outside, anywhere
		}
		killed, log := run(env, wait)
		if !killed {
			t.Fatalf("run %d (%s) ended without SIGKILL:\n%s", k, env, log)
		}
		kills++
	}
	t.Logf("%d SIGKILLs to judge blocks 0..%d", kills, height)

	s, err := OpenStore(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Alerts(AlertFilter{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	// The reference may have judged a few (empty) blocks more or fewer
	// past the traffic: alerts and profiles depend only on the traffic.
	if g, w := jsonOf(t, got), jsonOf(t, want); g != w {
		t.Fatalf("after %d SIGKILLs the alerts differ from a run without crashes:\n got %s\nwant %s", kills, g, w)
	}
	for i := range uint32(18) {
		a, _ := genesis.DevAddress(i)
		accountsAgree(t, s, ref.store, a)
	}
	u, _ := genesis.DevAddress(unfunded)
	accountsAgree(t, s, ref.store, u)
}

func accountsAgree(t *testing.T, got, want *Store, a common.Address) {
	t.Helper()
	g, err := got.Profile(a)
	if err != nil {
		t.Fatal(err)
	}
	w, err := want.Profile(a)
	if err != nil {
		t.Fatal(err)
	}
	if jsonOf(t, g) != jsonOf(t, w) {
		t.Errorf("profile of %s after crashes:\n %s\nwant %s", a, jsonOf(t, g), jsonOf(t, w))
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
