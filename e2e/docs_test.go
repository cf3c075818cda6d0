package e2e

// TestDocs runs the commands of the project's docs as written: each
// document's shell blocks in order, in one bash session (variables and
// the working directory carry from block to block, as in a reader's
// terminal), against the real processes the document itself starts.
//
// The conventions a document follows for it:
//
//   - A fenced block labelled sh, bash or shell is run; any other block is
//     not, unless annotated `file`. Its exit status must be 0 (the session
//     runs under `set -e -o pipefail`, so the first failing command fails
//     the block and ends the document's run).
//   - Expected output is a `# ` comment whose text starts with `{`, `[`,
//     `"`, `0x`, `HTTP/` or `→ ` (any output): at the end of a command
//     line, or on its own lines right below the command, with the comment
//     lines that follow it. Some line of the block's output must
//     contain it, `…` standing for anything. The value of a command
//     substitution (`body=$(tally bridge link …)` followed by such a
//     comment) is printed by the harness for the comparison. Comments of
//     other text are prose and checked by no one.
//   - Annotations: HTML comments `<!-- docs-test: KIND ARGS -->` on lines
//     before a block apply to that block (several may be given):
//   - `skip REASON`: not run; the reason is required (and shown with -v).
//   - `file NAME`: the block's text is written to NAME in the working
//     directory (a config or message the document tells the reader to
//     save); the block is not run.
//   - `background N`: the first N commands of the block are services a
//     reader starts in another terminal: they run in the background
//     (commands written with a trailing `&` already are).
//   - `ready URL...`: after the block's background commands, wait (up to
//     60 s) until each URL answers HTTP, as a reader waits for a service to
//     start, before the rest of the block; a background command that exits
//     meanwhile fails the block at once.
//   - `retry DURATION`: a check of something asynchronous: the block runs
//     again (in a subshell: its variables do not carry over) until every
//     command of it succeeds and its expected output is there, up to
//     DURATION.
//
// The session runs in a fresh temporary directory holding bin/tally and
// bin/tallyd (built once, also first on PATH) and genesis/ (the
// repository's), with HOME there too and no TALLY_* variables, so it sees
// what a reader's fresh checkout shows. One substitution applies to the
// text: `make build` is a no-op (the binaries are built already). Where
// the kernel allows it (`unshare -rn`), the session has a network
// namespace of its own, so the documents' fixed ports (8545, 9545, 8600,
// …) are theirs even while other tests run; elsewhere the runs take a
// machine-wide lock and the ports as they are. Background processes are
// stopped (SIGTERM, then SIGKILL) when the document ends.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tally-ledger/tally/wallet/wallettest"
)

// docsUnderTest are the documents whose commands TestDocs runs, in order.
var docsUnderTest = []string{
	"docs/bridge.md",
	"README.md",
	"docs/cluster.md",
	"docs/wallets.md",
	"docs/proofs.md",
	"docs/audit.md",
	"docs/operations.md",
	"docs/benchmarks.md",
	"docs/architecture.md",
	"docs/monitor.md",
	"docs/merchants.md",
	"docs/payments.md",
}

func TestDocs(t *testing.T) {
	skipShort(t)
	for _, tool := range []string{"bash", "curl", "openssl", "xxd", "jq", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the docs' commands need %s on PATH: %v", tool, err)
		}
	}
	tally, err := wallettest.BuildCommand("tally")
	if err != nil {
		t.Fatal(err)
	}
	// Each document has its own directory and network namespace, so a few
	// run at once: most of their time is spent waiting for blocks.
	slots := make(chan struct{}, docsAtOnce)
	for _, doc := range docsUnderTest {
		t.Run(strings.ReplaceAll(doc, "/", "_"), func(t *testing.T) {
			if haveNetns() {
				t.Parallel()
			}
			slots <- struct{}{}
			defer func() { <-slots }()
			runDoc(t, doc, tally)
		})
	}
}

// docsAtOnce is how many documents run at the same time.
const docsAtOnce = 3

// docBlock is one fenced block of a document.
type docBlock struct {
	doc        string
	line       int // the opening fence's line, 1-based
	lang       string
	text       string
	skip       string // the reason, when skipped
	file       string
	background int
	ready      []string
	retry      time.Duration
}

func (b docBlock) where() string { return fmt.Sprintf("%s:%d", b.doc, b.line) }

// runnable says whether the block is shell to run.
func (b docBlock) runnable() bool {
	switch b.lang {
	case "sh", "bash", "shell":
		return b.file == ""
	}
	return false
}

var annotationRe = regexp.MustCompile(`^\s*<!--\s*docs-test:\s*(\S+)\s*(.*?)\s*-->\s*$`)

// parseDocBlocks returns the fenced blocks of a markdown text with the
// annotations that precede them.
func parseDocBlocks(doc, text string) ([]docBlock, error) {
	var blocks []docBlock
	var pending docBlock
	annotated := false
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := annotationRe.FindStringSubmatch(l); m != nil {
			annotated = true
			kind, arg := m[1], m[2]
			switch kind {
			case "skip":
				if arg == "" {
					return nil, fmt.Errorf("%s:%d: docs-test: skip needs a reason", doc, i+1)
				}
				pending.skip = arg
			case "file":
				if arg == "" || strings.ContainsAny(arg, " /") {
					return nil, fmt.Errorf("%s:%d: docs-test: file needs one plain file name, not %q", doc, i+1, arg)
				}
				pending.file = arg
			case "background":
				n, err := strconv.Atoi(arg)
				if err != nil || n < 1 {
					return nil, fmt.Errorf("%s:%d: docs-test: background needs a count of commands, not %q", doc, i+1, arg)
				}
				pending.background = n
			case "ready":
				pending.ready = strings.Fields(arg)
				if len(pending.ready) == 0 {
					return nil, fmt.Errorf("%s:%d: docs-test: ready needs URLs", doc, i+1)
				}
			case "retry":
				d, err := time.ParseDuration(arg)
				if err != nil || d <= 0 {
					return nil, fmt.Errorf("%s:%d: docs-test: retry needs a duration, not %q", doc, i+1, arg)
				}
				pending.retry = d
			default:
				return nil, fmt.Errorf("%s:%d: unknown docs-test annotation %q", doc, i+1, kind)
			}
			continue
		}
		// A fence may be indented (a block in a list item): its lines
		// lose that indentation.
		indent := len(l) - len(strings.TrimLeft(l, " "))
		if !strings.HasPrefix(l[indent:], "```") {
			continue
		}
		b := pending
		b.doc, b.line, b.lang = doc, i+1, strings.TrimSpace(strings.TrimPrefix(l[indent:], "```"))
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(strings.TrimLeft(lines[i], " "), "```"); i++ {
			line := lines[i]
			if n := len(line) - len(strings.TrimLeft(line, " ")); n >= indent {
				line = line[indent:]
			} else {
				line = strings.TrimLeft(line, " ")
			}
			body = append(body, line)
		}
		if i == len(lines) {
			return nil, fmt.Errorf("%s: the block at line %d is not closed", doc, b.line)
		}
		b.text = strings.Join(body, "\n") + "\n"
		if annotated && !b.runnable() && b.file == "" && b.skip == "" {
			return nil, fmt.Errorf("%s: annotations before the %q block at line %d, which is not run", doc, b.lang, b.line)
		}
		blocks = append(blocks, b)
		pending, annotated = docBlock{}, false
	}
	if annotated {
		return nil, fmt.Errorf("%s: annotations after the last block", doc)
	}
	return blocks, nil
}

// docCommand is one logical command of a shell block (continuation lines
// joined) with the output the document shows for it.
type docCommand struct {
	text   string
	expect []string
}

var (
	// outputComment is a comment showing output rather than prose.
	outputComment = regexp.MustCompile(`^#\s+(?:→\s*)?((?:\{|\[|"|0x|HTTP/).*)$|^#\s+→\s*(.+)$`)
	// trailingOutput is a command line's trailing output comment.
	trailingOutput = regexp.MustCompile(`\s#\s+(?:→\s*)?((?:\{|\[|"|0x|HTTP/).*)$|\s#\s+→\s*(.+)$`)
	assignmentRe   = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=\$\(`)
)

// splitCommands splits a shell block into its commands.
func splitCommands(text string) []docCommand {
	var cmds []docCommand
	var cur []string
	// lastWasCommand: the comment lines read belong to the last command;
	// inOutput: one of them was output, and so are the ones that follow.
	lastWasCommand, inOutput := false, false
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		trimmed := strings.TrimSpace(l)
		if len(cur) > 0 {
			cur = append(cur, l)
			if !strings.HasSuffix(l, `\`) {
				cmds = append(cmds, finishCommand(cur))
				cur = nil
				lastWasCommand, inOutput = true, false
			}
			continue
		}
		switch {
		case trimmed == "":
			lastWasCommand = false
		case strings.HasPrefix(trimmed, "#"):
			last := len(cmds) - 1
			if m := outputComment.FindStringSubmatch(trimmed); m != nil && lastWasCommand {
				cmds[last].expect = append(cmds[last].expect, m[1]+m[2])
				inOutput = true
			} else if inOutput && lastWasCommand {
				if text := strings.TrimSpace(strings.TrimPrefix(trimmed, "#")); text != "" {
					cmds[last].expect = append(cmds[last].expect, text)
				}
			} else {
				lastWasCommand = false
			}
		default:
			cur = append(cur, l)
			if !strings.HasSuffix(l, `\`) {
				cmds = append(cmds, finishCommand(cur))
				cur = nil
				lastWasCommand, inOutput = true, false
			}
		}
	}
	if len(cur) > 0 {
		cmds = append(cmds, finishCommand(cur))
	}
	return cmds
}

func finishCommand(lines []string) docCommand {
	c := docCommand{text: strings.Join(lines, "\n")}
	if m := trailingOutput.FindStringSubmatch(lines[len(lines)-1]); m != nil {
		c.expect = append(c.expect, m[1]+m[2])
	}
	return c
}

// isBackground says whether a command ends with a lone & (not &&).
func isBackground(cmd string) bool {
	s := strings.TrimSpace(cmd)
	if i := strings.Index(s, " #"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return strings.HasSuffix(s, "&") && !strings.HasSuffix(s, "&&")
}

// script is the text the session sources for a block, and the output
// lines the block must show.
func (b docBlock) script() (string, []string) {
	var sb strings.Builder
	var expect []string
	cmds := splitCommands(b.text)
	started := false
	if len(b.ready) > 0 {
		sb.WriteString("__docs_bg=()\n")
	}
	for i, c := range cmds {
		text := c.text
		if strings.TrimSpace(text) == "make build" || strings.HasPrefix(strings.TrimSpace(text), "make build ") {
			text = ": " + text // the binaries are built already
		}
		bg := isBackground(text)
		if i < b.background && !bg {
			// Before a trailing comment, which would swallow it.
			cmd, comment := text, ""
			if j := strings.Index(text, " #"); j >= 0 {
				cmd, comment = text[:j], text[j:]
			}
			text = strings.TrimRight(cmd, " ") + " &" + comment
			bg = true
		}
		if !bg && started && len(b.ready) > 0 {
			fmt.Fprintf(&sb, "__docs_ready %s\n", strings.Join(b.ready, " "))
			started = false
		}
		sb.WriteString(text + "\n")
		if bg {
			started = true
			if len(b.ready) > 0 {
				sb.WriteString("__docs_bg+=($!)\n")
			}
		}
		if m := assignmentRe.FindStringSubmatch(strings.TrimSpace(c.text)); m != nil && len(c.expect) > 0 {
			fmt.Fprintf(&sb, "printf '%%s\\n' \"$%s\"\n", m[1])
		}
		expect = append(expect, c.expect...)
	}
	if started && len(b.ready) > 0 {
		fmt.Fprintf(&sb, "__docs_ready %s\n", strings.Join(b.ready, " "))
	}
	return sb.String(), expect
}

// outputHas says whether some line of out contains want, … matching
// anything.
func outputHas(out, want string) bool {
	parts := strings.Split(want, "…")
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

// docsPrelude starts every session.
//
// Its EXIT trap stops the session's background processes with it: when
// the test binary dies (a go test timeout), the shell reads the end of its
// input and exits, and takes them along.
const docsPrelude = `set -e -o pipefail
trap 'trap - EXIT; kill -TERM 0 2>/dev/null' EXIT
__docs_ready() {
	local u i p
	for u in "$@"; do
		for i in $(seq 600); do
			curl -s -o /dev/null --max-time 2 "$u" && continue 2
			for p in "${__docs_bg[@]}"; do
				if ! kill -0 "$p" 2>/dev/null; then
					echo "docs-test: a background command (pid $p) exited before $u answered" >&2
					return 1
				fi
			done
			sleep 0.1
		done
		echo "docs-test: $u did not answer within 60 s" >&2
		return 1
	done
}
`

// docSession is one bash process running a document's blocks.
type docSession struct {
	t       *testing.T
	dir     string // the working directory
	meta    string // the harness's files
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string // the session's stdout: the harness's markers
	exited  chan struct{}
	stopped bool
}

// haveNetns says whether this kernel lets the test make a network
// namespace of its own.
func haveNetns() bool {
	return exec.Command("unshare", "-rn", "ip", "link", "set", "lo", "up").Run() == nil
}

func runDoc(t *testing.T, doc, tally string) {
	text, err := os.ReadFile(filepath.Join("..", doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := runDocText(t, doc, string(text), tally, tallydBin); err != nil {
		t.Fatal(err)
	}
}

// runDocText runs a document's blocks in a session of their own, up to
// the first that fails.
func runDocText(t *testing.T, doc, text, tally, tallyd string) error {
	blocks, err := parseDocBlocks(doc, text)
	if err != nil {
		return err
	}
	s := startDocSession(t, tally, tallyd)
	defer s.stop()
	for _, b := range blocks {
		switch {
		case b.skip != "":
			t.Logf("%s: skipped: %s", b.where(), b.skip)
		case b.file != "":
			if err := os.WriteFile(filepath.Join(s.dir, b.file), []byte(b.text), 0o600); err != nil {
				return err
			}
		case b.runnable():
			if err := s.run(b); err != nil {
				return err
			}
		}
	}
	return nil
}

func startDocSession(t *testing.T, tally, tallyd string) *docSession {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	s := &docSession{t: t, dir: t.TempDir(), meta: t.TempDir(), lines: make(chan string, 16), exited: make(chan struct{})}
	bin := filepath.Join(s.dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"tally": tally, "tallyd": tallyd} {
		if err := os.Symlink(path, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "genesis"), filepath.Join(s.dir, "genesis")); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(s.dir, ".home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "LANG=C.UTF-8", "TZ=UTC"}
	if v := os.Getenv("TMPDIR"); v != "" {
		env = append(env, "TMPDIR="+v)
	}
	var args []string
	if haveNetns() {
		args = []string{"unshare", "-rn", "bash", "-c", "ip link set lo up && exec bash --noprofile --norc"}
	} else {
		// Without a namespace the documents' ports are the machine's: one
		// run at a time.
		lock := filepath.Join(os.TempDir(), "tally-docs-test.lock")
		args = []string{"flock", lock, "bash", "--noprofile", "--norc"}
		t.Logf("no network namespace (unshare -rn): the docs' ports are the machine's, runs serialized by %s", lock)
	}
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Dir = s.dir
	s.cmd.Env = env
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.cmd.Stderr = os.Stderr
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start the docs' shell: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	prelude := filepath.Join(s.meta, "prelude.sh")
	if err := os.WriteFile(prelude, []byte(docsPrelude), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(s.stdin, "source %s\n", prelude); err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs one block; an error ends the document.
func (s *docSession) run(b docBlock) error {
	t := s.t
	script, expect := b.script()
	name := fmt.Sprintf("block-%d", b.line)
	path := filepath.Join(s.meta, name+".sh")
	outPath := filepath.Join(s.meta, name+".out")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		return err
	}
	line := fmt.Sprintf("source %s </dev/null >%s 2>&1; echo __docs_test_done__ $?\n", path, outPath)
	if b.retry > 0 {
		// A retried block runs in a subshell so a failed attempt does not
		// end the session. Bash ignores set -e inside a command of an
		// && or || list, so `( … ) && …` would judge the block by its
		// last command alone; a background subshell keeps set -e, and
		// wait gives its status.
		line = fmt.Sprintf("( source %s ) </dev/null >%s 2>&1 & wait $! && echo __docs_test_done__ 0 || echo __docs_test_done__ $?\n", path, outPath)
	}
	deadline := time.Now().Add(b.retry)
	start := time.Now()
	for attempt := 1; ; attempt++ {
		status, ok := s.send(line)
		out, _ := os.ReadFile(outPath)
		var missing []string
		for _, e := range expect {
			if !outputHas(string(out), e) {
				missing = append(missing, e)
			}
		}
		if ok && status == 0 && len(missing) == 0 {
			t.Logf("%s: ok in %v", b.where(), time.Since(start).Round(time.Millisecond))
			return nil
		}
		if ok && time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		why := fmt.Sprintf("exit status %d", status)
		switch {
		case !ok:
			why = "the shell exited (a command failed under set -e)"
		case status == 0:
			why = fmt.Sprintf("its output has no line containing %q", missing)
		}
		if b.retry > 0 {
			why += fmt.Sprintf(" (%d attempts over %v)", attempt, b.retry)
		}
		return fmt.Errorf("%s: %s\n--- block as run:\n%s--- output:\n%s", b.where(), why, script, out)
	}
}

// send gives the shell one line and returns the status it reports, or
// false when the shell ended instead.
func (s *docSession) send(line string) (int, bool) {
	if _, err := io.WriteString(s.stdin, line); err != nil {
		return 0, false
	}
	timeout := time.NewTimer(blockTimeout)
	defer timeout.Stop()
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return 0, false
			}
			if rest, ok := strings.CutPrefix(l, "__docs_test_done__ "); ok {
				if n, err := strconv.Atoi(rest); err == nil {
					return n, true
				}
			}
			s.t.Logf("docs session: %s", l)
		case <-timeout.C:
			s.t.Logf("docs session: the block did not end within %v (a service not marked background?)", blockTimeout)
			return 0, false
		}
	}
}

// blockTimeout bounds one run of a block.
const blockTimeout = 90 * time.Second

// stop ends the session and every process it started: they share its
// process group.
func (s *docSession) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.stdin.Close()
	pgid := s.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if syscall.Kill(-pgid, 0) == nil {
		s.t.Logf("docs session: processes still running 20 s after SIGTERM: SIGKILL")
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	<-s.exited
}
