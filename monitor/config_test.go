package monitor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/txdecode"
)

// TestConfig: a mistake in monitor.toml is refused naming the key; the
// minimal file of docs/monitor.md loads with every default.
func TestConfig(t *testing.T) {
	base := "[nodes]\nendpoints = [\"http://127.0.0.1:8545\"]\n"
	for _, c := range []struct{ name, text, want string }{
		{"unknown key", "colour = 1\n" + base, "unknown key colour"},
		{"no endpoints", "listen = \"127.0.0.1:1\"\n", "key nodes.endpoints: required"},
		{"bad endpoint", "[nodes]\nendpoints = [\"ftp://x\"]\n", "key nodes.endpoints[0]"},
		{"bad listen", "listen = \"nowhere\"\n" + base, "key listen"},
		{"batch", base + "[follow]\nbatch = 0\n", "key follow.batch"},
		{"wrong type", base + "[follow]\nbatch = \"many\"\n", "key follow.batch"},
		{"webhook without secret", base + "[webhook]\nurl = \"https://wallet.example/hook\"\n", "key webhook.secret-file"},
		{"unknown event", base + "[webhook]\nevents = [\"deleted\"]\n", "key webhook.events[0]"},
		{"retry order", base + "[webhook]\nretry-min = \"1m\"\nretry-max = \"1s\"\n", "key webhook.retry-max"},
		{"margin", base + "[rules.structuring]\nmargin = 1.5\n", "key rules.structuring.margin"},
		{"multiplier", base + "[rules.large-amount]\nmultiplier = 1\n", "key rules.large-amount.multiplier"},
		{"negative window", base + "[rules.failed-burst]\nwindow = \"-1m\"\n", "key rules.failed-burst.window"},
		{"amount", base + "[rules.new-payee]\nmin-amount = { CNY = \"1e5\" }\n", "key rules.new-payee.min-amount.CNY"},
		{"max-txs", base + "[queue]\nmax-txs = 0\n", "key queue.max-txs"},
		{"log level", base + "[log]\nlevel = \"loud\"\n", "key log.level"},
	} {
		cfg := DefaultConfig()
		if err := ParseConfig([]byte(c.text), t.TempDir(), &cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// An asset the chain does not have is refused when the chain is known.
	g, err := genesis.BuildDev()
	if err != nil {
		t.Fatal(err)
	}
	rules := DefaultConfig().Rules
	rules.NewPayee.MinAmount = Amounts{"EUR": "100"}
	if _, err := newEngine(rules, txdecode.FromGenesis(g.Assets)); err == nil || !strings.Contains(err.Error(), "key rules.new-payee.min-amount.EUR: the chain has no asset EUR") {
		t.Errorf("unknown asset: %v", err)
	}
	rules.NewPayee.MinAmount = Amounts{"HKD": "0.001"} // 2 decimals
	if _, err := newEngine(rules, txdecode.FromGenesis(g.Assets)); err == nil || !strings.Contains(err.Error(), "key rules.new-payee.min-amount.HKD") {
		t.Errorf("too many decimals: %v", err)
	}

	doc, err := os.ReadFile(filepath.Join("..", "docs", "monitor.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "<!-- docs-test: file monitor.toml -->\n```toml\n")
	toml, _, _ := strings.Cut(rest, "```")
	cfg := DefaultConfig()
	if err := ParseConfig([]byte(toml), t.TempDir(), &cfg); err != nil {
		t.Fatalf("docs/monitor.md's monitor.toml: %v", err)
	}
	if cfg.Queue.MaxClosed != DefaultMaxClosed || cfg.Rules.Structuring.Count != 3 || cfg.Key.KeystoreFile != "compliance.json" {
		t.Errorf("docs/monitor.md's monitor.toml decoded to %+v", cfg)
	}
}
