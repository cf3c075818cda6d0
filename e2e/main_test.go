package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

const (
	devChainID   = 1337
	readyTimeout = 30 * time.Second
	stopTimeout  = 30 * time.Second
)

// tallydBin is the tallyd binary built once by TestMain.
var tallydBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Fprintln(os.Stderr, "e2e: -short: not building tallyd; the end-to-end tests skip")
		return m.Run()
	}
	var err error
	if tallydBin, err = wallettest.BuildCommand("tallyd"); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAILED to build the node: %v\n", err)
		return 1
	}
	return m.Run()
}

// node is one tallyd process.
type node struct {
	t       *testing.T
	datadir string
	logPath string
	port    int
	url     string
	// name and launched label a node started from a config
	// (launchConfigNode) in its readiness log.
	name     string
	launched time.Time

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid once done is closed
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNode starts tallyd --dev on datadir and waits until eth_chainId
// answers. Its output goes to a log file in the test's temp dir whose tail is
// printed if the test fails. A start that loses the race for its port is
// retried on another one.
func startNode(t *testing.T, datadir string, extraArgs ...string) *node {
	t.Helper()
	if tallydBin == "" {
		t.Fatal("tallyd was not built (TestMain)")
	}
	for attempt := 1; ; attempt++ {
		n, err := tryStartNode(t, datadir, extraArgs)
		if err == nil {
			return n
		}
		if attempt < 3 && strings.Contains(tail(n.logPath, 20), "address already in use") {
			t.Logf("node start: port %d taken, retrying: %v", n.port, err)
			continue
		}
		t.Fatalf("node start: %v", err)
	}
}

func tryStartNode(t *testing.T, datadir string, extraArgs []string) (*node, error) {
	t.Helper()
	logDir := t.TempDir()
	n := &node{
		t:       t,
		datadir: datadir,
		logPath: filepath.Join(logDir, "tallyd.log"),
		port:    freePort(t),
		done:    make(chan struct{}),
	}
	n.url = "http://127.0.0.1:" + strconv.Itoa(n.port)
	if err := n.launch("node", 60, append([]string{"--dev", "--datadir", datadir, "--http.port", strconv.Itoa(n.port)}, extraArgs...)...); err != nil {
		return n, err
	}
	start := time.Now()
	if err := n.waitReady(readyTimeout); err != nil {
		if !n.exited() {
			n.cmd.Process.Kill()
			<-n.done
		}
		return n, err
	}
	t.Logf("node pid %d ready on %s after %v (datadir %s, log %s)", n.cmd.Process.Pid, n.url, time.Since(start).Round(time.Millisecond), datadir, n.logPath)
	return n, nil
}

// launch starts tallyd with args, its output going to n.logPath. The
// test's cleanup kills the process if it still runs and, if the test
// failed, prints the last tailLines lines of its log under label.
func (n *node) launch(label string, tailLines int, args ...string) error {
	f, err := os.Create(n.logPath)
	if err != nil {
		return err
	}
	n.logFile = f
	n.cmd = exec.Command(tallydBin, args...)
	n.cmd.Stdout = f
	n.cmd.Stderr = f
	if err := n.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", tallydBin, err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		n.logFile.Close()
		close(n.done)
	}()
	n.t.Cleanup(func() {
		if !n.exited() {
			n.cmd.Process.Kill()
			<-n.done
		}
		if n.t.Failed() {
			n.t.Logf("tail of %s log %s (pid %d):\n%s", label, n.logPath, n.cmd.Process.Pid, tail(n.logPath, tailLines))
		}
	})
	return nil
}

func (n *node) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// waitReady polls eth_chainId until it answers.
func (n *node) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}`)
	client := &http.Client{Timeout: time.Second}
	for {
		if n.exited() {
			return fmt.Errorf("tallyd exited before answering eth_chainId: %v", n.waitErr)
		}
		resp, err := client.Post(n.url, "application/json", bytes.NewReader(body))
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var r struct {
				Result string `json:"result"`
			}
			if json.Unmarshal(data, &r) == nil && r.Result != "" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("eth_chainId did not answer on %s within %v (last error: %v)", n.url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLeader polls /healthz until the node reports a leader (status 200),
// so that transactions sent next are built into blocks at once rather than
// piling up in the mempool until the first election ends.
func (n *node) waitLeader(timeout time.Duration) {
	n.t.Helper()
	start := time.Now()
	client := &http.Client{Timeout: time.Second}
	var last string
	for time.Since(start) < timeout {
		resp, err := client.Get(n.url + "/healthz")
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				n.t.Logf("node pid %d leads after %v: %s", n.cmd.Process.Pid, time.Since(start).Round(time.Millisecond), bytes.TrimSpace(data))
				return
			}
			last = fmt.Sprintf("HTTP %d %s", resp.StatusCode, bytes.TrimSpace(data))
		} else {
			last = err.Error()
		}
		if n.exited() {
			n.t.Fatalf("node pid %d exited: %v", n.cmd.Process.Pid, n.waitErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("node pid %d has no leader after %v (/healthz: %s)", n.cmd.Process.Pid, timeout, last)
}

// stop sends SIGTERM and waits for a clean exit (status 0).
func (n *node) stop() {
	n.t.Helper()
	if n.exited() {
		n.t.Fatalf("node pid %d already exited: %v", n.cmd.Process.Pid, n.waitErr)
	}
	start := time.Now()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		n.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-n.done:
	case <-time.After(stopTimeout):
		n.cmd.Process.Kill()
		<-n.done
		n.t.Fatalf("node pid %d did not stop within %v of SIGTERM (killed)", n.cmd.Process.Pid, stopTimeout)
	}
	if n.waitErr != nil {
		n.t.Fatalf("node pid %d: unclean exit after SIGTERM: %v", n.cmd.Process.Pid, n.waitErr)
	}
	n.t.Logf("node pid %d stopped cleanly by SIGTERM in %v", n.cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
}

// kill sends SIGKILL and waits for the process to be gone.
func (n *node) kill() {
	n.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		n.t.Fatalf("SIGKILL: %v", err)
	}
	<-n.done
	n.t.Logf("node pid %d killed (SIGKILL): %v", n.cmd.Process.Pid, n.waitErr)
}

var stateOpenedRe = regexp.MustCompile(`msg="state opened" height=(\d+) hash=(0x[0-9a-f]{64}) state_root=(0x[0-9a-f]{64})`)

// openedHead returns the head the node found in its state database when it
// started, from its "state opened" log line (before Raft applies anything).
func (n *node) openedHead() (uint64, common.Hash, common.Hash) {
	n.t.Helper()
	data, err := os.ReadFile(n.logPath)
	if err != nil {
		n.t.Fatalf("read node log: %v", err)
	}
	m := stateOpenedRe.FindSubmatch(data)
	if m == nil {
		n.t.Fatalf("no \"state opened\" line in %s", n.logPath)
	}
	h, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return h, common.HexToHash(string(m[2])), common.HexToHash(string(m[3]))
}

// client dials the node with ethclient over a pooled HTTP client.
func (n *node) client() *ethclient.Client {
	n.t.Helper()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}, Timeout: 30 * time.Second}
	c, err := gethrpc.DialOptions(context.Background(), n.url, gethrpc.WithHTTPClient(hc))
	if err != nil {
		n.t.Fatalf("dial %s: %v", n.url, err)
	}
	ec := ethclient.NewClient(c)
	n.t.Cleanup(ec.Close)
	return ec
}

// tail returns the last lines of a file.
func tail(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	var ring []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ring = append(ring, sc.Text())
		if len(ring) > lines {
			ring = ring[1:]
		}
	}
	return strings.Join(ring, "\n")
}

// skipShort skips an end-to-end test under -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: runs real tallyd processes; skipped with -short")
	}
}

// devKey returns dev account i's key as go-ethereum's ecdsa key.
func devKey(t *testing.T, i uint32) *ecdsa.PrivateKey {
	t.Helper()
	k, err := genesis.DevKey(i)
	if err != nil {
		t.Fatalf("dev key %d: %v", i, err)
	}
	return k.ECDSA()
}

// blockInfo is what a height must keep across restarts.
type blockInfo struct {
	Hash       common.Hash `json:"hash"`
	ParentHash common.Hash `json:"parentHash"`
	StateRoot  common.Hash `json:"stateRoot"`
	TxHashes   []common.Hash
}

// rawBlock returns the block fields as the node writes them (the JSON hash,
// which ethclient ignores).
func rawBlock(ctx context.Context, t *testing.T, ec *ethclient.Client, h uint64) blockInfo {
	t.Helper()
	var raw *struct {
		blockInfo
		Transactions []common.Hash `json:"transactions"`
	}
	if err := ec.Client().CallContext(ctx, &raw, "eth_getBlockByNumber", hexutil.EncodeUint64(h), false); err != nil {
		t.Fatalf("eth_getBlockByNumber(%d): %v", h, err)
	}
	if raw == nil {
		t.Fatalf("eth_getBlockByNumber(%d): null", h)
	}
	raw.blockInfo.TxHashes = raw.Transactions
	return raw.blockInfo
}

// headNumber is eth_blockNumber.
func headNumber(ctx context.Context, t *testing.T, ec *ethclient.Client) uint64 {
	t.Helper()
	h, err := ec.BlockNumber(ctx)
	if err != nil {
		t.Fatalf("eth_blockNumber: %v", err)
	}
	return h
}

// waitReceipt polls eth_getTransactionReceipt until the receipt exists.
func waitReceipt(ctx context.Context, ec *ethclient.Client, h common.Hash, timeout time.Duration) (*types.Receipt, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := ec.TransactionReceipt(ctx, h)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, ethereum.NotFound) {
			return nil, fmt.Errorf("receipt %s: %w", h, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no receipt for %s within %v", h, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// bigU is v as a big.Int.
func bigU(v uint64) *big.Int { return new(big.Int).SetUint64(v) }
