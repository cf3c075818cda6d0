package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// service is a service's config as Load takes it: keys, an embedded Dir
// and a Validate that names the key.
type service struct {
	Dir
	Listen string `toml:"listen"`
	Secret string `toml:"secret-file"`
}

func (s *service) Validate() error {
	if s.Listen == "" {
		return errors.New("key listen: required")
	}
	return nil
}

// TestLoad: Load decodes over the defaults, keeps the keys the file does
// not set, resolves relative paths against the file's directory (absolute
// ones stay), and names the service, the file and the key in its errors:
// an unreadable file, a typo, a bad type, a value Validate refuses.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	defaults := service{Listen: "127.0.0.1:1", Secret: "secret"}
	cfg, err := Load(write("ok.toml", "listen = \"127.0.0.1:2\"\n"), "svc", defaults)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:2" || cfg.Secret != "secret" {
		t.Fatalf("loaded %+v: want listen from the file, secret-file the default", cfg)
	}
	if got, want := cfg.Path(cfg.Secret), filepath.Join(dir, "secret"); got != want {
		t.Fatalf("relative path %q, want %q", got, want)
	}
	if got := cfg.Path("/etc/x"); got != "/etc/x" {
		t.Fatalf("absolute path became %q", got)
	}
	if defaults.Path("secret") != "secret" {
		t.Fatal("Load changed the defaults' directory")
	}

	for name, c := range map[string]struct{ file, want string }{
		"missing file": {filepath.Join(dir, "none.toml"), "read svc config: open " + filepath.Join(dir, "none.toml")},
		"typo":         {write("typo.toml", "lisen = \"x\"\n"), "svc config " + filepath.Join(dir, "typo.toml") + ": unknown key lisen"},
		"wrong type":   {write("type.toml", "listen = 8\n"), "key listen"},
		"invalid":      {write("invalid.toml", "listen = \"\"\n"), "svc config " + filepath.Join(dir, "invalid.toml") + ": key listen: required"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(c.file, "svc", defaults); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}
