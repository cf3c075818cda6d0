package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDocsHarnessParse: the markdown conventions TestDocs reads.
func TestDocsHarnessParse(t *testing.T) {
	doc := strings.Join([]string{
		"# T",
		"<!-- docs-test: background 1 -->",
		"<!-- docs-test: ready http://127.0.0.1:1/a http://127.0.0.1:2/b -->",
		"```sh",
		"tally bridge --config bridge.toml   # in another terminal",
		"curl -s http://127.0.0.1:1/a         # {\"status\":\"ok\"}",
		"body=$(tally bridge link --from A \\",
		"    --account B)",
		"# {\"account\":\"B\",…}",
		"# and the line after",
		"",
		"# prose, not output",
		"make build",
		"```",
		"<!-- docs-test: file sim.toml -->",
		"```toml",
		"listen = 1",
		"```",
		"```",
		"not run",
		"```",
		"- item:",
		"",
		"  <!-- docs-test: retry 5s -->",
		"  ```sh",
		"  for i in 1 2; do",
		"    echo x$i",
		"  done",
		"  # → x2",
		"  ```",
		"<!-- docs-test: skip no reason needed here: it has one -->",
		"```bash",
		"rm -rf /",
		"```",
	}, "\n")
	blocks, err := parseDocBlocks("t.md", doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 5 {
		t.Fatalf("%d blocks, want 5: %+v", len(blocks), blocks)
	}
	b := blocks[0]
	if !b.runnable() || b.background != 1 || len(b.ready) != 2 || b.line != 4 || strings.Contains(b.text, "prose") == false {
		t.Fatalf("first block: %+v", b)
	}
	script, expect := b.script()
	for _, want := range []string{
		"tally bridge --config bridge.toml & # in another terminal\n__docs_bg+=($!)\n__docs_ready http://127.0.0.1:1/a http://127.0.0.1:2/b\ncurl",
		"    --account B)\nprintf '%s\\n' \"$body\"\n",
		": make build\n",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script has no %q:\n%s", want, script)
		}
	}
	if len(expect) != 3 || expect[0] != `{"status":"ok"}` || expect[1] != `{"account":"B",…}` || expect[2] != "and the line after" {
		t.Errorf("expectations %q", expect)
	}
	if blocks[1].file != "sim.toml" || blocks[1].runnable() || blocks[1].text != "listen = 1\n" {
		t.Errorf("file block: %+v", blocks[1])
	}
	if blocks[2].runnable() {
		t.Errorf("an unlabelled block is run: %+v", blocks[2])
	}
	if b := blocks[3]; !b.runnable() || b.retry != 5*time.Second || b.text != "for i in 1 2; do\n  echo x$i\ndone\n# → x2\n" {
		t.Errorf("indented block: %+v", b)
	} else if _, expect := b.script(); len(expect) != 1 || expect[0] != "x2" {
		t.Errorf("indented block's expectations %q", expect)
	}
	if b := blocks[4]; b.skip == "" || b.runnable() && b.skip == "" {
		t.Errorf("skipped block: %+v", b)
	}

	for _, bad := range []string{
		"<!-- docs-test: skip -->\n```sh\ntrue\n```\n",
		"<!-- docs-test: frobnicate -->\n```sh\ntrue\n```\n",
		"<!-- docs-test: background 1 -->\n```json\n{}\n```\n",
		"<!-- docs-test: retry soon -->\n```sh\ntrue\n```\n",
		"<!-- docs-test: file ../x -->\n```json\n{}\n```\n",
		"```sh\ntrue\n",
		"```sh\ntrue\n```\n<!-- docs-test: ready http://x -->\n",
	} {
		if _, err := parseDocBlocks("bad.md", bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestDocsHarnessOutputHas(t *testing.T) {
	out := "first line\n{\"status\":\"ok\",\"asset\":\"HKD\"}\n  \"minted\": 2,\n"
	for want, has := range map[string]bool{
		`{"status":"ok"`:           true,
		`{"status":"ok"}`:          false,
		`{"status":…"HKD"}`:        true,
		`"minted": 2,`:             true,
		`"minted": 3,`:             false,
		`first…HKD`:                false, // within one line only
		`{…}`:                      true,
		`"asset":"HKD"}…{"status"`: false, // in order
	} {
		if outputHas(out, want) != has {
			t.Errorf("outputHas(%q) = %v", want, !has)
		}
	}
}

// TestDocsHarnessSession: a block that fails, or lacks its output, fails
// the document and stops it; variables carry between blocks; a retried
// block passes once it does; background processes are stopped.
func TestDocsHarnessSession(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	ok := strings.Join([]string{
		"```sh",
		"x=41",
		"sleep 300 &",
		"```",
		"<!-- docs-test: file note.txt -->",
		"```text",
		"saved",
		"```",
		"```sh",
		"echo $((x + 1))   # → 42",
		"grep -q saved note.txt",
		"```",
		"<!-- docs-test: retry 10s -->",
		"```sh",
		"test -e flag || { touch flag; false; }",
		"```",
		"<!-- docs-test: retry 10s -->",
		"```sh",
		"test -e flag2 || { touch flag2; false; }",
		"echo listed",
		"```",
		"```sh",
		"test -e flag2",
		"```",
	}, "\n")
	start := time.Now()
	if err := runDocText(t, "ok.md", ok, "/bin/true", "/bin/true"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the session took %v: its background sleep was not stopped", d)
	}
	for name, doc := range map[string]string{
		"exit":   "```sh\ntrue\nfalse\necho never\n```\n",
		"output": "```sh\necho hello   # → goodbye\n```\n",
		"stops":  "```sh\nfalse\n```\n```sh\ntouch /dev/null/never\n```\n",
		"retry":  "<!-- docs-test: retry 1s -->\n```sh\nfalse\n```\n",
		// Every command of a retried block counts, not only its last: a
		// check that fails before a command that always succeeds (a
		// list that is empty until the awaited record exists) is not
		// met (docs/monitor.md's walkthrough acked an alert that was
		// not there yet).
		"retryfirst": "<!-- docs-test: retry 1s -->\n```sh\nfalse\ntrue\n```\n",
		"ready":      "<!-- docs-test: background 1 -->\n<!-- docs-test: ready http://127.0.0.1:1/ -->\n```sh\nsleep 0.5; exit 3\necho never\n```\n",
	} {
		err := runDocText(t, name+".md", doc, "/bin/true", "/bin/true")
		if err == nil {
			t.Errorf("%s: a failing document passed", name)
			continue
		}
		if !strings.Contains(err.Error(), name+".md:") {
			t.Errorf("%s: the error names no block: %v", name, err)
		}
		if name == "ready" && !strings.Contains(err.Error(), "exited before http://127.0.0.1:1/ answered") {
			t.Errorf("ready: the error does not say the service exited: %v", err)
		}
	}
}

// TestDocsAllListed: every document with a shell block is one TestDocs
// runs, so a command added to a new page is run too.
func TestDocsAllListed(t *testing.T) {
	listed := map[string]bool{}
	for _, d := range docsUnderTest {
		listed[d] = true
	}
	docs, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join("..", "README.md"))
	for _, path := range docs {
		rel, _ := filepath.Rel("..", path)
		rel = filepath.ToSlash(rel)
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := parseDocBlocks(rel, string(text))
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		for _, b := range blocks {
			if (b.runnable() || b.skip != "") && !listed[rel] {
				t.Errorf("%s has a shell block (line %d) but is not in docsUnderTest", rel, b.line)
				break
			}
		}
	}
}
