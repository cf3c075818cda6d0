package wallettest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// modulePath is this module's import path.
const modulePath = "github.com/tally-ledger/tally"

// StartTimeout bounds building the node and waiting for its first block.
const StartTimeout = 90 * time.Second

// Node is a running dev node: chain id 1337, the first 20 accounts of the
// test mnemonic funded with 10^30 base units each.
type Node struct {
	// URL is the JSON-RPC endpoint, http://127.0.0.1:<port>.
	URL string
	// DataDir is the node's data directory, removed after the test.
	DataDir string

	cmd *exec.Cmd
	log *syncBuffer
}

// StartDevNode builds tallyd, starts it with --dev on a free port and waits
// until it answers eth_chainId and has committed a block (so a Raft leader
// exists and transactions will be included). The node is stopped, and its
// log shown if the test failed, in t.Cleanup. Tests calling it are skipped
// with -short.
func StartDevNode(t testing.TB) *Node {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a tallyd process; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	start := time.Now()
	bin := buildTallyd(ctx, t)
	t.Logf("built tallyd in %v", time.Since(start).Round(time.Millisecond))
	// The free port can be taken between freePort and tallyd's bind; then
	// tallyd exits and another port is tried.
	for attempt := 1; ; attempt++ {
		n, err := launch(ctx, t, bin)
		if err == nil {
			t.Logf("tallyd at %s ready in %v", n.URL, time.Since(start).Round(time.Millisecond))
			return n
		}
		if attempt == 3 || !strings.Contains(n.log.String(), "address already in use") {
			t.Fatalf("%v (its log follows)", err) // the cleanup prints the log
		}
	}
}

// launch starts one tallyd on a free port and waits for its first block.
// On error the returned Node still carries the log.
func launch(ctx context.Context, t testing.TB, bin string) (*Node, error) {
	port := freePort(t)
	n := &Node{
		URL:     "http://127.0.0.1:" + strconv.Itoa(port),
		DataDir: filepath.Join(t.TempDir(), "data"),
		log:     &syncBuffer{},
	}
	n.cmd = exec.Command(bin, "--dev", "--datadir", n.DataDir,
		"--http.addr", "127.0.0.1", "--http.port", strconv.Itoa(port))
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		return n, fmt.Errorf("start tallyd: %w", err)
	}
	exited := make(chan struct{})
	go func() { n.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			n.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("tallyd log:\n%s", n.log.String())
		}
	})
	for {
		var num string
		if err := call(ctx, n.URL, "eth_chainId", nil); err == nil {
			if err := call(ctx, n.URL, "eth_blockNumber", &num); err == nil && num != "0x0" {
				// Whoever answered, it must be our process: a tallyd that
				// failed to bind exits long before a first block (> 1 s).
				select {
				case <-exited:
					return n, errors.New("tallyd exited during start, and another node answers on its port")
				default:
					return n, nil
				}
			}
		}
		select {
		case <-exited:
			return n, errors.New("tallyd exited during start")
		case <-ctx.Done():
			return n, fmt.Errorf("tallyd did not commit a block within %v", StartTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// buildTallyd builds cmd/tallyd (BuildCommand) or fails the test.
func buildTallyd(ctx context.Context, t testing.TB) string {
	t.Helper()
	if err := ctx.Err(); err != nil {
		t.Fatalf("build tallyd: %v", err)
	}
	bin, err := BuildCommand("tallyd")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// builds holds one build per command name and test process.
var builds sync.Map // name → *build

type build struct {
	once sync.Once
	bin  string
	err  error
}

// BuildCommand builds cmd/<name> of this module (cgo on) once per test
// process and returns the binary's path, for tests that run the node or
// the CLI as real processes. The binary goes to a fixed path in the user's
// cache directory, one per test package, checkout and command: go build
// skips the link when the file there is already up to date, which saves
// most of the 10 to 20 s a cgo link takes. Packages get separate paths so
// that their test binaries, which go test runs in parallel, never write
// the same file. The cache prunes itself (CacheMaxAge, CacheMaxBytes). It
// needs no testing.TB so that a TestMain can call it.
func BuildCommand(name string) (string, error) {
	v, _ := builds.LoadOrStore(name, &build{})
	b := v.(*build)
	b.once.Do(func() {
		dir, err := binDir()
		if err != nil {
			fmt.Fprintf(os.Stderr, "wallettest: no binary cache (%v); building in a temporary directory\n", err)
			if dir, b.err = os.MkdirTemp("", "tally-test-bin-"); b.err != nil {
				return
			}
		}
		b.bin = filepath.Join(dir, name)
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", b.bin, modulePath+"/cmd/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s/cmd/%s (CGO_ENABLED=1): %v\n%s", modulePath, name, err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "wallettest: built cmd/%s in %v\n", name, time.Since(start).Round(time.Millisecond))
	})
	return b.bin, b.err
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// could take it before tallyd binds it; on this test machine that is rare.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// call makes one JSON-RPC call with no parameters; result may be nil.
func call(ctx context.Context, url, method string, result any) error {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":%q,"params":[]}`, method)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return err
	}
	if out.Error != nil {
		return fmt.Errorf("%s: %s", method, out.Error.Message)
	}
	if result != nil {
		return json.Unmarshal(out.Result, result)
	}
	return nil
}

// syncBuffer collects the node's output from its two pipes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
