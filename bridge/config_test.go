package bridge

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/internal/credentials"
)

// minimalConfig sets the required keys only.
const minimalConfig = `
asset = "HKD"
[key]
keystore-file = "bank.json"
password-file = "bank.pass"
[nodes]
endpoints = ["http://127.0.0.1:8545"]
[bankcore]
url = "http://127.0.0.1:9000"
debtor-account = "HK-OMNIBUS-1"
[auth]
intake-secret-file = "intake.secret"
order-secret-file = "order.secret"
`

func TestConfigDefaultsAndPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bridge.toml")
	if err := os.WriteFile(path, []byte(minimalConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	if cfg.Auth.MaxSkew.D() != 5*time.Minute {
		t.Errorf("auth.max-skew default %v, want 5m (docs/bridge.md)", cfg.Auth.MaxSkew.D())
	}
	if cfg.Limits.MaxBodyBytes != DefaultMaxBodyBytes || cfg.Limits.MaxEntries != DefaultMaxEntries {
		t.Errorf("limits %+v, want the defaults", cfg.Limits)
	}
	if got, want := cfg.Path(cfg.Key.KeystoreFile), filepath.Join(dir, "bank.json"); got != want {
		t.Errorf("relative keystore path resolves to %s, want %s (next to the config file)", got, want)
	}
	if got := cfg.Path("/abs/x"); got != "/abs/x" {
		t.Errorf("absolute path changed to %s", got)
	}
}

// configText is the minimal config with keys (dotted, raw TOML values)
// set or added: one line per key, so a case names exactly what it changes.
func configText(set map[string]string) string {
	keys := map[string]string{
		"asset": `"HKD"`, "key.keystore-file": `"bank.json"`, "key.password-file": `"bank.pass"`,
		"nodes.endpoints": `["http://127.0.0.1:8545"]`, "bankcore.url": `"http://127.0.0.1:9000"`, "bankcore.debtor-account": `"HK-OMNIBUS-1"`,
		"auth.intake-secret-file": `"intake.secret"`, "auth.order-secret-file": `"order.secret"`,
	}
	for k, v := range set {
		if v == "" {
			delete(keys, k)
		} else {
			keys[k] = v
		}
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%s = %s\n", k, keys[k])
	}
	return b.String()
}

func TestConfigRefusesTyposNamingTheKey(t *testing.T) {
	for _, c := range []struct {
		name string
		set  map[string]string
		want string
	}{
		{"unknown top-level key", map[string]string{"listn": `"x"`}, "unknown key listn"},
		{"unknown key in a section", map[string]string{"outbox.poll-intervall": `"1s"`}, "unknown key outbox.poll-intervall"},
		{"unknown section", map[string]string{"bankcorr.url": `"x"`}, "unknown key bankcorr"},
		{"bad duration", map[string]string{"auth.max-skew": `"five minutes"`}, "key auth.max-skew"},
		{"wrong type", map[string]string{"limits.max-entries": `"many"`}, "key limits.max-entries"},
		{"zero duration", map[string]string{"closer.poll-interval": `"0s"`}, "key closer.poll-interval"},
		{"bad endpoint", map[string]string{"nodes.endpoints": `["ftp://x"]`}, "key nodes.endpoints[0]"},
		{"no endpoints", map[string]string{"nodes.endpoints": `[]`}, "key nodes.endpoints"},
		{"bad format", map[string]string{"bankcore.format": `"xml"`}, "key bankcore.format"},
		{"tiny body bound", map[string]string{"limits.max-body-bytes": `10`}, "key limits.max-body-bytes"},
		{"retry max below min", map[string]string{"payout.retry-min": `"10s"`, "payout.retry-max": `"1s"`}, "key payout.retry-max"},
		{"bad listen", map[string]string{"listen": `"8600"`}, "key listen"},
		{"bad log level", map[string]string{"log.level": `"loud"`}, "key log.level"},
		{"pain.001 without a debtor account", map[string]string{"bankcore.debtor-account": ""}, "key bankcore.debtor-account"},
		{"missing asset", map[string]string{"asset": ""}, "key asset"},
		{"missing intake secret", map[string]string{"auth.intake-secret-file": ""}, "key auth.intake-secret-file: required"},
		{"missing order secret", map[string]string{"auth.order-secret-file": ""}, "key auth.order-secret-file: required"},
		{"old single secret", map[string]string{"auth.secret-file": `"hmac.secret"`}, "key auth.secret-file: no longer accepted"},
		{"old single secret names the new keys", map[string]string{"auth.secret-file": `"hmac.secret"`}, "auth.intake-secret-file (the bank core signs its POSTs to the bridge) and auth.order-secret-file"},
		{"bad operator listen", map[string]string{"operator.listen": `"nowhere"`}, "key operator.listen"},
		{"operator listen = listen", map[string]string{"operator.listen": `"127.0.0.1:8600"`}, "key operator.listen: \"127.0.0.1:8600\" is listen too"},
		{"operator typo", map[string]string{"operator.token-file": `"ops"`}, "unknown key operator.token-file"},
		{"no password source", map[string]string{"key.password-file": "", "key.password-env": `""`}, "key key.password-file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			err := ParseConfig([]byte(configText(c.set)), t.TempDir(), &cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
	cfg := DefaultConfig()
	if err := ParseConfig([]byte(configText(nil)), t.TempDir(), &cfg); err != nil {
		t.Fatalf("the minimal config is refused: %v", err)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := crypto.EncryptKey(key, "pw from env", crypto.LightScryptN, crypto.LightScryptP)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bank.json"), ks, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wrong.pass"), []byte("not it\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.SetDir(dir)
	cfg.Key = KeyConfig{KeystoreFile: "bank.json", PasswordEnv: "TALLY_BRIDGE_TEST_PW"}
	if _, err := credentials.LoadKey(cfg.Key, cfg.Path); err == nil || !strings.Contains(err.Error(), "key key.password-env") {
		t.Fatalf("unset variable: %v, want an error naming key.password-env", err)
	}
	t.Setenv("TALLY_BRIDGE_TEST_PW", "pw from env")
	got, err := credentials.LoadKey(cfg.Key, cfg.Path)
	if err != nil || got.Address() != key.Address() {
		t.Fatalf("loadKey = %v, %v", got, err)
	}
	cfg.Key.PasswordFile = "wrong.pass" // the file wins over the variable
	if _, err := credentials.LoadKey(cfg.Key, cfg.Path); err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("wrong password: %v", err)
	}
}
