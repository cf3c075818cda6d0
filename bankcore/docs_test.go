package bankcore

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// docBlock returns the fenced block of kind lang that follows the first
// line of doc containing after.
func docBlock(t *testing.T, doc, after, lang string) string {
	t.Helper()
	i := strings.Index(doc, after)
	if i < 0 {
		t.Fatalf("docs/bridge.md has no %q", after)
	}
	rest := doc[i:]
	start := strings.Index(rest, "```"+lang+"\n")
	if start < 0 {
		t.Fatalf("no ```%s block after %q", lang, after)
	}
	rest = rest[start+len("```"+lang+"\n"):]
	end := strings.Index(rest, "```")
	return rest[:end]
}

// TestDocsSimConfig: docs/bridge.md's sim.toml and its script file,
// deposits.json, as written (with the two secret files beside them, and
// the listen address moved to a free port), start a simulator that books
// the script's deposits.
func TestDocsSimConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "bridge.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	simToml := docBlock(t, doc, "`sim.toml` (unknown keys are refused", "toml")
	script := docBlock(t, doc, "`deposits.json` for the walkthrough", "json")
	dir := t.TempDir()
	for name, content := range map[string]string{
		"sim.toml":      strings.Replace(simToml, `listen = "127.0.0.1:8700"`, `listen = "127.0.0.1:0"`, 1),
		"deposits.json": script,
		"hmac.secret":   "00112233445566778899aabbccddeeff\n",
		"order.secret":  "ffeeddccbbaa99887766554433221100\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := LoadConfig(filepath.Join(dir, "sim.toml"))
	if err != nil {
		t.Fatalf("docs' sim.toml: %v", err)
	}
	if cfg.ScriptFile != "deposits.json" {
		t.Fatalf("docs' sim.toml names script-file %q, not the deposits.json it shows", cfg.ScriptFile)
	}
	cfg.StatementFile = "" // not written by this test
	s, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("start with the docs' script file: %v", err)
	}
	// Booked: the same references again are refused as already booked.
	if _, err := s.Deposit([]byte(script)); err == nil || !strings.Contains(err.Error(), "already booked") {
		t.Fatalf("the script's deposits were not booked: %v", err)
	}
}
