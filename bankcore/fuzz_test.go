package bankcore

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/tally-ledger/tally/bridge/iso20022"
)

// FuzzParseConfig: a sim.toml is either refused with an error naming the
// key, or accepted as a config that writes back to TOML and reads again
// as the same config, and with which the simulator can write the messages
// it owes the bridge: a camt.053 of its omnibus account (currency, account,
// name, opening balance) and the pain.002 rejection its [reject] rule
// names. A config the simulator accepts and then cannot speak ISO 20022
// with would fail only when the first payout is rejected.
func FuzzParseConfig(f *testing.F) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "bridge.md"))
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(doc, -1) {
		f.Add(m[1])
	}
	base := "bridge-url = \"http://127.0.0.1:8600\"\nsecret-file = \"s\"\ncurrency = \"HKD\"\n"
	f.Add([]byte(base))
	f.Add([]byte(base + "opening-balance = \"1000000.50\"\n[reject]\nabove = \"100\"\nreason = \"AM04 insufficient funds\"\n"))
	f.Add([]byte(base + "[reject]\nreason = \"ac04 closed\"\n"))
	f.Add([]byte(base + "omnibus-account = \"HK8200000000000000000001\"\nomnibus-name = \"Bank of Nowhere — omnibus\"\n"))
	f.Add([]byte(strings.Replace(base, "HKD", "123", 1)))
	f.Add([]byte(base + "[reject]\nreason = \"AC04 " + strings.Repeat("é", 60) + "\"\n"))
	dir := f.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	sample, err := os.ReadFile(filepath.Join("..", "bridge", "iso20022", "testdata", "pain001_payout.xml"))
	if err != nil {
		f.Fatal(err)
	}
	order, err := iso20022.ParsePain001(bytes.NewReader(sample))
	if err != nil {
		f.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultConfig()
		if err := ParseConfig(data, dir, &cfg); err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "key ") && !strings.HasPrefix(msg, "unknown key ") {
				t.Fatalf("error does not name the key: %v", err)
			}
			return
		}
		out, err := toml.Marshal(cfg)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		again := DefaultConfig()
		if err := ParseConfig(out, dir, &again); err != nil {
			t.Fatalf("accepted config, written back, is refused: %v\n%s", err, out)
		}
		// Compared as TOML: a nil list and an empty one are the same config.
		if out2, err := toml.Marshal(again); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("config changed through TOML (%v):\n%s\n%s", err, out, out2)
		}

		// The simulator's messages under this config. Its files are the
		// test's: the fuzzed paths are not read.
		run := cfg
		run.SecretFile, run.SnapshotFile, run.ScriptFile, run.StatementFile = secret, "", "", ""
		run.OrderSecretFile = ""
		s, err := New(run, Options{Logger: quiet, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatalf("accepted config, simulator refuses it: %v", err)
		}
		if _, err := s.Statement(); err != nil {
			t.Fatalf("accepted config, no camt.053: %v", err)
		}
		reason, err := reasonOf(cfg.Reject.Reason)
		if err != nil {
			t.Fatalf("accepted reject.reason %q: %v", cfg.Reject.Reason, err)
		}
		rep := iso20022.NewStatusReport(order, "SIM-PSR-1", now, iso20022.StatusRejected, reason)
		if err := iso20022.WritePain002(io.Discard, rep); err != nil {
			t.Fatalf("accepted reject.reason %q, no pain.002: %v", cfg.Reject.Reason, err)
		}
	})
}
