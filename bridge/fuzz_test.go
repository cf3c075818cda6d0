package bridge

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// docTOML returns the ```toml blocks of a page under docs/: the configs
// the documentation shows, which are the seeds of the config fuzzers.
func docTOML(t testing.TB, page string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(b, -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatalf("docs/%s has no toml block", page)
	}
	return out
}

// FuzzParseConfig: a bridge.toml is either refused with an error naming
// the key, or accepted as a config that writes back to TOML and reads
// again as the same config (so what the operator wrote is what runs).
func FuzzParseConfig(f *testing.F) {
	for _, b := range docTOML(f, "bridge.md") {
		f.Add(b)
	}
	f.Add([]byte(minimalConfig))
	f.Add([]byte(configText(map[string]string{"bankcore.format": `"json"`, "bankcore.debtor-account": ""})))
	f.Add([]byte(configText(map[string]string{"tls.cert-file": `"c.pem"`, "tls.key-file": `"k.pem"`, "tls.client-ca-file": `"ca.pem"`})))
	f.Add([]byte(configText(map[string]string{"limits.max-body-bytes": "1023"})))
	f.Add([]byte(configText(map[string]string{"auth.max-skew": `"-1s"`})))
	f.Add([]byte(configText(map[string]string{"nodes.endpoints": `["ftp://x"]`})))
	f.Add([]byte("asset = \"HKD\"\n[key]\nkeystore-fil = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultConfig()
		if err := ParseConfig(data, "/etc/tally", &cfg); err != nil {
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
		if err := ParseConfig(out, "/etc/tally", &again); err != nil {
			t.Fatalf("accepted config, written back, is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("config changed through TOML:\n%+v\n%+v\n%s", cfg, again, out)
		}
	})
}
