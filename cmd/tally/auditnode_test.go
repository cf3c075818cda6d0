package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// freeTCPPort returns a port on 127.0.0.1 free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestAuditNodeDataDir follows docs/audit.md "On a data dir" against a
// real tallyd with its admin API on: the audit refuses the running node's
// data dir saying it is held and what to do; `tally admin checkpoint
// --admin URL --token-file FILE --out DIR` copies it online and the copy
// audits; once the node stopped, its data dir itself (not its state/)
// audits. The docs' commands take exactly these flags.
func TestAuditNodeDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a tallyd process")
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "audit.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"tally admin checkpoint --admin http://127.0.0.1:8745 --token-file /var/lib/tally/admin.token --out /backups/bank-a-2026-11-24\n",
		"tally audit --genesis genesis.json --datadir /backups/bank-a-2026-11-24\n",
		"tally audit --genesis genesis.json --datadir /var/lib/tally\n",
	} {
		if !bytes.Contains(doc, []byte(line)) {
			t.Fatalf("docs/audit.md no longer shows %q: keep this test in step with it", line)
		}
	}
	bin, err := wallettest.BuildCommand("tallyd")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "tally")
	rpcPort, adminPort := freeTCPPort(t), freeTCPPort(t)
	cfg := filepath.Join(dir, "node.toml")
	if err := os.WriteFile(cfg, []byte("[admin]\nport = "+strconv.Itoa(adminPort)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	node := exec.Command(bin, "--dev", "--config", cfg, "--datadir", data, "--http.port", strconv.Itoa(rpcPort))
	node.Stdout, node.Stderr = &log, &log
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- node.Wait() }()
	defer func() {
		node.Process.Signal(syscall.SIGTERM)
		<-exited
		if t.Failed() {
			t.Logf("tallyd log:\n%s", log.String())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if c, err := wallet.Dial(ctx, "http://127.0.0.1:"+strconv.Itoa(rpcPort)); err == nil {
			n, err := c.Eth().BlockNumber(ctx)
			c.Close()
			if err == nil && n >= 2 {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("tallyd exited: %v", err)
		case <-ctx.Done():
			t.Fatal("tallyd made no block")
		case <-time.After(50 * time.Millisecond):
		}
	}
	gen := filepath.Join("..", "..", "genesis", "dev.json")

	r := tally(t, "", "audit", "--genesis", gen, "--datadir", data)
	if r.code != exitUsage || !strings.Contains(r.stderr, filepath.Join(data, "state")+" is held by another process (a running node?)") ||
		!strings.Contains(r.stderr, "audit a copy made with `tally admin checkpoint --out DIR` instead") {
		t.Fatalf("audit of a running node's data dir: %+v", r)
	}

	cp := filepath.Join(dir, "checkpoint")
	r = tally(t, "", "admin", "checkpoint", "--admin", "http://127.0.0.1:"+strconv.Itoa(adminPort),
		"--token-file", filepath.Join(data, "admin.token"), "--out", cp)
	if r.code != exitOK {
		t.Fatalf("admin checkpoint: %+v", r)
	}
	if r = tally(t, "", "audit", "--genesis", gen, "--datadir", cp); r.code != exitOK {
		t.Fatalf("audit of the checkpoint: %+v", r)
	}
	// --rpc is not an admin flag: it would have been ignored.
	r = tally(t, "", "admin", "checkpoint", "--rpc", "http://127.0.0.1:"+strconv.Itoa(rpcPort),
		"--token-file", filepath.Join(data, "admin.token"), "--out", filepath.Join(dir, "cp2"))
	if r.code != exitUsage || !strings.Contains(r.stderr, "flag provided but not defined: -rpc") {
		t.Fatalf("admin checkpoint --rpc: %+v", r)
	}

	node.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 0 {
			t.Fatalf("tallyd stop: %v", err)
		}
	}
	exited <- nil // for the deferred stop
	if r = tally(t, "", "audit", "--genesis", gen, "--datadir", data); r.code != exitOK || !strings.Contains(r.stderr+r.stdout, "OK, every check holds") {
		t.Fatalf("audit of the stopped node's data dir: %+v", r)
	}
}
