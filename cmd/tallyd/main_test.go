package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/version"
	"github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/store"
)

// TestBadInvocations: a typo on the command line or in the config file
// stops tallyd before it opens anything, with a message naming the flag or key.
func TestBadInvocations(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.toml")
	os.WriteFile(typo, []byte("[http]\nprot = 8545\n"), 0o600)
	badValue := filepath.Join(dir, "bad.toml")
	os.WriteFile(badValue, []byte("[builder]\nblock-interval = \"fast\"\n"), 0o600)
	corsAny := filepath.Join(dir, "cors.toml")
	os.WriteFile(corsAny, []byte("[http]\ncors-origins = [\"*\"]\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--http.port", "x"}, "http.port"},
		{[]string{"--dev", "--http.port", "70000"}, "http.port"},
		{[]string{"--dev", "--log.level", "loud"}, "log.level"},
		{[]string{"--config", typo}, "unknown key http.prot"},
		{[]string{"--config", badValue}, "builder.block-interval"},
		{[]string{"--config", filepath.Join(dir, "missing.toml")}, "read config"},
		{[]string{"--config", corsAny}, "key http.cors-origins[0]: \"*\" (any web page may call this node) is only accepted with --dev"},
		// With --dev the same file passes: the flag counts before validation,
		// and the next mistake is the one reported.
		{[]string{"--config", corsAny, "--dev", "--http.port", "70000"}, "key http.port: 70000 out of range"},
		{[]string{}, "--datadir"},
		{[]string{"--dev", "extra"}, "unexpected argument"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(c.args, io.Discard, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), c.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"--help"}, io.Discard, &stderr); code != 0 || !strings.Contains(stderr.String(), "--datadir") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// TestClearHalt: --clear-halt removes a stopped node's halt record (saying
// what it held) and exits; a second run finds none; it needs a data dir
// holding a node's state.
func TestClearHalt(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(node.StateDir(dir), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordHalt(store.HaltRecord{Height: 7, RaftIndex: 9, Entry: 10, Reason: "panic applying raft index 10: boom"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--clear-halt"}, 2, "--clear-halt needs --datadir"},
		{[]string{"--datadir", filepath.Join(dir, "nowhere"), "--clear-halt"}, 1, "no node state in data dir"},
		{[]string{"--datadir", dir, "--clear-halt"}, 0, "reason=\"panic applying raft index 10: boom\""},
		{[]string{"--datadir", dir, "--clear-halt"}, 0, "no halt record"},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, io.Discard, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Fatalf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}

// asMain makes the test binary run as tallyd when re-executed with this
// variable set, so the tests below watch a real process: its signals, its
// exit status, its log, what it leaves on disk.
const asMain = "TALLYD_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// proc is a tallyd process started by a test, with its log.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

// startTallyd runs tallyd with args and $TMPDIR set to tmp.
func startTallyd(t *testing.T, tmp string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(os.Args[0], args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), asMain+"=1", "TMPDIR="+tmp)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := stderr.Read(buf)
			p.mu.Lock()
			p.log.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.wait()
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// waitFor polls the log for want until the deadline.
func (p *proc) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.output(), want) {
		if time.Now().After(deadline) || p.cmd.ProcessState != nil {
			t.Fatalf("tallyd did not log %q; log:\n%s", want, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait() int {
	<-p.done
	p.cmd.Wait()
	return p.cmd.ProcessState.ExitCode()
}

// logLine returns the line of log holding msg, without its time stamp.
func logLine(t *testing.T, log, msg string) string {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, msg) {
			_, rest, _ := strings.Cut(l, " ")
			return rest
		}
	}
	t.Fatalf("no %q in the log:\n%s", msg, log)
	return ""
}

// TestDevStartAndStop: a dev node started as a new user does logs one
// startup line with its version, chain id, role and addresses, nothing at
// WARN or above, and on SIGINT exits 0 and removes its temporary data dir.
func TestDevStartAndStop(t *testing.T) {
	tmp := t.TempDir()
	p := startTallyd(t, tmp, "--dev", "--http.port", "0")
	p.waitFor(t, "became leader")
	started := logLine(t, p.output(), `msg="node started"`)
	rpcAddr := regexp.MustCompile(`rpc=(http://127\.0\.0\.1:\d+) `).FindStringSubmatch(started)
	dir := regexp.MustCompile(`datadir=(\S+)$`).FindStringSubmatch(started)
	if rpcAddr == nil || dir == nil {
		t.Fatalf("startup line without rpc or datadir: %s", started)
	}
	want := `level=INFO msg="node started" version=` + node.Version + ` chain_id=1337 role="validator (dev)" address=0x6d58073aeeb28068c5925d618da9f4c4f35727b3 rpc=` +
		rpcAddr[1] + ` p2p=off admin=off datadir=` + dir[1]
	if started != want {
		t.Fatalf("startup line\n got %s\nwant %s", started, want)
	}
	if filepath.Dir(dir[1]) != tmp {
		t.Fatalf("dev data dir %s not under $TMPDIR %s", dir[1], tmp)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d after SIGINT; log:\n%s", code, p.output())
	}
	for _, bad := range []string{"level=WARN", "level=ERROR"} {
		if strings.Contains(p.output(), bad) {
			t.Errorf("a normal dev start and stop logged %s:\n%s", bad, p.output())
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("the dev data dir was left behind: %v", left)
	}
}

// TestFailedStart: a start that fails on a busy port says which flag and
// key move it, and leaves no data dir it created: not the dev temp dir,
// not a --datadir (or its parents) that did not exist before.
func TestFailedStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	want := `level=ERROR msg="start failed" err="key http.port: 127.0.0.1:` + port +
		`: address already in use by another process (a running node?): change it with --http.port or key http.port in the config"`
	tmp := t.TempDir()
	parent := filepath.Join(t.TempDir(), "new")
	for _, args := range [][]string{
		{"--dev", "--http.port", port},
		{"--dev", "--http.port", port, "--datadir", filepath.Join(parent, "node")},
	} {
		p := startTallyd(t, tmp, args...)
		if code := p.wait(); code != 1 {
			t.Fatalf("%v: exit %d, want 1; log:\n%s", args, code, p.output())
		}
		if got := logLine(t, p.output(), "start failed"); got != want {
			t.Fatalf("%v:\n got %s\nwant %s", args, got, want)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Fatalf("%v: a failed dev start left %v in $TMPDIR", args, left)
		}
		if _, err := os.Stat(parent); !os.IsNotExist(err) {
			t.Fatalf("%v: a failed start left the data dir it created: %v", args, err)
		}
	}
}

// TestDataDirHeld: a second node on a data dir a running node holds is
// refused saying so, and the data dir (given with --datadir) stays.
func TestDataDirHeld(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first := startTallyd(t, t.TempDir(), "--dev", "--http.port", "0", "--datadir", dir)
	first.waitFor(t, "node started")
	second := startTallyd(t, t.TempDir(), "--dev", "--http.port", "0", "--datadir", dir)
	if code := second.wait(); code != 1 {
		t.Fatalf("second node on a held data dir: exit %d; log:\n%s", code, second.output())
	}
	want := `level=ERROR msg="start failed" err="data dir in use: ` + filepath.Join(dir, "state") +
		` is held by another process (a running node?): resource temporarily unavailable"`
	if got := logLine(t, second.output(), "start failed"); got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	first.cmd.Process.Signal(syscall.SIGINT)
	if code := first.wait(); code != 0 {
		t.Fatalf("first node: exit %d; log:\n%s", code, first.output())
	}
	if _, err := os.Stat(filepath.Join(dir, "nodekey")); err != nil {
		t.Fatalf("the data dir given with --datadir was not kept: %v", err)
	}
}

// TestConfigTypeErrors: a config value of the wrong type is refused with
// the key and the type it takes, in the operator's words (golden output).
func TestConfigTypeErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ toml, want string }{
		{"[http]\nport = \"8545\"\n", `key http.port: expected an integer, got the string "8545"`},
		{"[raft]\nheartbeat-timeout = 500\n", `key raft.heartbeat-timeout: expected a duration string such as "500ms" or "2s", got the integer 500`},
		{"[p2p]\npeers = \"/ip4/10.0.0.2/tcp/8645/p2p/16Uiu2\"\n", `key p2p.peers: expected an array of strings, got the string "/ip4/10.0.0.2/tcp/8645/p2p/16Uiu2"`},
		{"dev = \"true\"\n", `key dev: expected true or false, got the string "true"`},
		{"[mempool]\nmax-total = 1.5\n", `key mempool.max-total: expected an integer, got the number 1.5`},
	} {
		path := filepath.Join(dir, "node.toml")
		if err := os.WriteFile(path, []byte(c.toml), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		code := run([]string{"--config", path}, io.Discard, &stderr)
		if want := "tallyd: config " + path + ": " + c.want + "\n"; code != 2 || stderr.String() != want {
			t.Errorf("%q: exit %d, stderr\n %q\nwant\n %q", c.toml, code, stderr.String(), want)
		}
	}
}

// TestVersion: --version prints the build's version and commit on stdout
// and exits 0 without starting anything (cmd/tally's
// TestVersionFromMakefile checks what make build stamps).
func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--version"}, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if want := "tallyd " + version.Get().String() + "\n"; stdout.String() != want {
		t.Fatalf("stdout %q, want %q", stdout.String(), want)
	}
}
