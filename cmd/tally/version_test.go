package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersionFromMakefile builds tally exactly as `make build` does (its
// go build line, with VERSION given) and checks what --version says: the
// version and the commit of this checkout, so a wrong -X path in the
// Makefile (which the linker ignores silently) fails here.
func TestVersionFromMakefile(t *testing.T) {
	if testing.Short() {
		t.Skip("links a binary")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	commit, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	root := filepath.Join("..", "..")
	plan, err := exec.Command("make", "-n", "-C", root, "build", "VERSION=v9.9.9-test").Output()
	if err != nil {
		t.Fatalf("make -n build: %v", err)
	}
	var line string
	for _, l := range strings.Split(string(plan), "\n") {
		if strings.HasSuffix(l, " -o bin/tally ./cmd/tally") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("make -n build has no go build of ./cmd/tally:\n%s", plan)
	}
	bin := filepath.Join(t.TempDir(), "tally")
	line = strings.Replace(line, " -o bin/tally ", " -o "+bin+" ", 1)
	build := exec.Command("sh", "-c", line)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^tally v9\.9\.9-test \(commit ` + strings.TrimSpace(string(commit)) +
		`(, modified)?; go[0-9.]+ ` + runtime.GOOS + "/" + runtime.GOARCH + `\)\n$`)
	if !want.Match(out) {
		t.Fatalf("tally --version: %q, want %s", out, want)
	}
}
