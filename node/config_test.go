package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(path, []byte(`
datadir = "/var/lib/tally"
[http]
port = 9000
[builder]
block-interval = "20ms"
max-inflight-blocks = 3
[raft]
heartbeat-timeout = "3s"
election-timeout = "3s"
`), 0o600)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Port != 9000 || time.Duration(cfg.Builder.BlockInterval) != 20*time.Millisecond || cfg.Builder.MaxInflightBlocks != 3 || cfg.HTTP.Addr != "127.0.0.1" {
		t.Fatalf("%+v", cfg)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := map[string]struct{ toml, want string }{
		"typo":            {"[http]\nprot = 1\n", "http.prot"},
		"unknown section": {"[htp]\nport = 1\n", "htp"},
		"wrong type":      {"[http]\nport = \"x\"\n", "http.port"},
		"bad duration":    {"[builder]\nblock-interval = \"soon\"\n", "builder.block-interval"},
		"out of range":    {"[http]\nport = 70000\n", "http.port"},
		"zero inflight":   {"[builder]\nmax-inflight-blocks = 0\n", "builder.max-inflight-blocks"},
		"bad level":       {"[log]\nlevel = \"loud\"\n", "log.level"},
		"bad addr":        {"[http]\naddr = \"not an ip\"\n", "http.addr"},
		"lease":           {"[raft]\nleader-lease-timeout = \"5s\"\n", "raft.leader-lease-timeout"},
		"not toml":        {"this is = = not toml", "line"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			os.WriteFile(path, []byte(c.toml), 0o600)
			_, err := LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want mention of %q", err, c.want)
			}
		})
	}
}

func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte("[http]\nport = 8545\n"))
	f.Add([]byte("[builder]\nblock-interval = \"10ms\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultConfig()
		if decodeConfig(data, &cfg) == nil {
			if err := cfg.Validate(); err != nil {
				t.Fatalf("accepted config fails validation: %v", err)
			}
		}
	})
}
