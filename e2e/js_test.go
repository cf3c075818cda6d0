package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/wallet/wallettest"
)

const (
	// jsDir is the npm client suite, relative to this package.
	jsDir = "../clients/js"
	// jsStamp, inside node_modules, holds the sha256 of the package-lock.json
	// that node_modules was installed from.
	jsStamp = ".tally-package-lock.sha256"
	// jsSuiteTimeout bounds the whole `node --test` run.
	jsSuiteTimeout = 5 * time.Minute
	// jsFileTimeout bounds one check file of the npm suite.
	jsFileTimeout = 3 * time.Minute
	// jsMinChecks is fewer checks than the suite holds: a run that reports
	// fewer lost a file without failing it.
	jsMinChecks = 35
	// jsHistoryBlocks is the node's state.history-blocks in the run.
	jsHistoryBlocks = 32
)

// TestJSClients runs the npm suite in clients/js (ethers v6, viem, wagmi's
// core and web3.js v4, pinned by its package-lock.json; Node's own test runner)
// against a real tallyd --dev on a free port and a fresh data dir, the way
// wallet apps and dApps use the node, and a dApp page in headless Chromium
// (playwright-core) on an origin the node's http.cors-origins allows and
// on one it does not. It installs the packages (npm ci)
// when node_modules is missing or was installed from another lock file, and
// fails if any check fails, is skipped or is missing. The spec output of
// every check is in the test log; the summary is the last lines.
func TestJSClients(t *testing.T) {
	skipShort(t)
	node := requireNode(t)
	dir, err := filepath.Abs(jsDir)
	if err != nil {
		t.Fatal(err)
	}
	npmInstall(t, dir)
	chromium := requireChromium(t)
	// checkout.test.js makes a payment request with tally request.
	tally, err := wallettest.BuildCommand("tally")
	if err != nil {
		t.Fatal(err)
	}

	// The browser checks serve a dApp page on pagePort, the one origin the
	// node allows (http.cors-origins, http.ws-origins), and on otherPort,
	// which it does not.
	pagePort, otherPort := freePort(t), freePort(t)
	for otherPort == pagePort {
		otherPort = freePort(t)
	}
	// A window of past states short enough that the reads past it are
	// reached within the run.
	cfg := filepath.Join(t.TempDir(), "tallyd.toml")
	page := fmt.Sprintf("%q", fmt.Sprintf("http://127.0.0.1:%d", pagePort))
	conf := fmt.Sprintf("[http]\ncors-origins = [%s]\nws-origins = [%s]\n\n[state]\nhistory-blocks = %d\n", page, page, jsHistoryBlocks)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, t.TempDir(), "--config", cfg)
	n.waitLeader(readyTimeout)

	tap := filepath.Join(t.TempDir(), "results.tap")
	ctx, cancel := context.WithTimeout(context.Background(), jsSuiteTimeout)
	defer cancel()
	// Three check files at a time (each signs with its own accounts): they
	// mostly wait on the node. Node 20's --test-timeout bounds each file's
	// process as a whole, not each check in it: a minute failed
	// ethers.test.js, all of whose checks passed, on a loaded machine (CI
	// under 8 concurrent test runs). A file that hangs fails after
	// jsFileTimeout, well inside jsSuiteTimeout.
	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=3", "--test-timeout="+strconv.FormatInt(jsFileTimeout.Milliseconds(), 10),
		"--test-reporter=spec", "--test-reporter-destination=stdout",
		"--test-reporter=tap", "--test-reporter-destination="+tap)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"TALLY_RPC_URL="+n.url,
		"TALLY_WS_URL=ws://127.0.0.1:"+strconv.Itoa(n.port),
		"TALLY_PAGE_PORT="+strconv.Itoa(pagePort),
		"TALLY_OTHER_PAGE_PORT="+strconv.Itoa(otherPort),
		"TALLY_CHROMIUM="+chromium,
		"TALLY_CLI="+tally,
		"TALLY_HISTORY_BLOCKS="+strconv.Itoa(jsHistoryBlocks),
		"NO_COLOR=1")
	start := time.Now()
	out, runErr := cmd.CombinedOutput()
	t.Logf("node --test in %s (%v):\n%s", dir, time.Since(start).Round(time.Millisecond), out)

	tapOut, err := os.ReadFile(tap)
	if err != nil {
		t.Fatalf("read the TAP results: %v (node --test: %v)", err, runErr)
	}
	sum, err := parseTAPSummary(tapOut)
	if err != nil {
		t.Fatalf("TAP results: %v (node --test: %v)", err, runErr)
	}
	t.Logf("npm client suite: %d checks, %d passed, %d failed, %d cancelled, %d skipped, %d todo",
		sum["tests"], sum["pass"], sum["fail"], sum["cancelled"], sum["skipped"], sum["todo"])
	if runErr != nil {
		t.Errorf("node --test: %v", runErr)
	}
	if bad := sum["fail"] + sum["cancelled"] + sum["skipped"] + sum["todo"]; bad > 0 || sum["pass"] != sum["tests"] {
		t.Errorf("%d of %d checks did not pass: %s", sum["tests"]-sum["pass"], sum["tests"], strings.Join(failedChecks(tapOut), "; "))
	}
	if sum["tests"] < jsMinChecks {
		t.Errorf("only %d checks ran, want at least %d: a check file did not load?", sum["tests"], jsMinChecks)
	}
}

// requireNode returns the path of Node.js (20 or later, whose test runner
// the suite uses), or fails the test saying how to get it.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("Node.js is needed for the npm client suite (clients/js): %v", err)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	v := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	if major < 20 {
		t.Fatalf("the npm client suite needs Node.js 20 or later, found %s", v)
	}
	return node
}

// requireChromium returns the Chromium the browser checks drive
// ($TALLY_CHROMIUM, default Debian's /usr/bin/chromium), or fails the test
// saying how to install it: a browser download by a test tool is not what
// CI machines can do, so the suite uses the distribution's.
func requireChromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("TALLY_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("the npm suite's browser checks need Chromium at %s (TALLY_CHROMIUM): apt-get install -y chromium (make test installs it when missing)", path)
	}
	return path
}

// npmInstall runs `npm ci` in dir unless node_modules was installed from the
// same package-lock.json (its sha256 is recorded in node_modules/jsStamp).
func npmInstall(t *testing.T, dir string) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatalf("read package-lock.json: %v", err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", jsStamp)
	if got, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(got)) == want {
		return
	}
	start := time.Now()
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	if err := os.WriteFile(stamp, []byte(want+"\n"), 0o644); err != nil {
		t.Fatalf("record the installed lock file: %v", err)
	}
	t.Logf("npm ci in %s (%v): %s", dir, time.Since(start).Round(time.Millisecond), bytes.TrimSpace(out))
}

var tapSummaryRe = regexp.MustCompile(`(?m)^# (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$`)

// parseTAPSummary reads the counts node's TAP reporter prints last.
func parseTAPSummary(tap []byte) (map[string]int, error) {
	sum := map[string]int{}
	for _, m := range tapSummaryRe.FindAllSubmatch(tap, -1) {
		n, _ := strconv.Atoi(string(m[2]))
		sum[string(m[1])] = n
	}
	for _, k := range []string{"tests", "pass", "fail", "cancelled", "skipped", "todo"} {
		if _, ok := sum[k]; !ok {
			return nil, fmt.Errorf("no %q count in the summary:\n%s", k, lastLines(tap, 12))
		}
	}
	return sum, nil
}

var tapNotOkRe = regexp.MustCompile(`^\s*not ok \d+ - (.*)$`)

// failedChecks lists the names of the checks TAP reports as not ok.
func failedChecks(tap []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(tap))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if m := tapNotOkRe.FindStringSubmatch(sc.Text()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

// lastLines is the last n lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
