package node

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tally-ledger/tally/internal/durable"
)

// TestFirstStartFilesSurvivePowerCut: the node key and the admin token a
// first start made are what the next start reads after a power cut (a
// lost or empty nodekey would give the node another identity beside the
// Raft state it wrote under the first; an empty token file keeps the
// node from starting).
func TestFirstStartFilesSurvivePowerCut(t *testing.T) {
	for _, tc := range []struct {
		name string
		load func(fs vfs.FS) (string, error)
	}{
		{"nodekey", func(fs vfs.FS) (string, error) {
			k, err := LoadOrCreateKey(fs, "/data/nodekey", false)
			if err != nil {
				return "", err
			}
			return k.Address().Hex(), nil
		}},
		{"admin.token", func(fs vfs.FS) (string, error) {
			tok, err := loadOrCreateToken(fs, "/data/admin.token")
			return string(tok), err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			if err := durable.MkdirAll(fs, "/data"); err != nil {
				t.Fatal(err)
			}
			first, err := tc.load(fs)
			if err != nil {
				t.Fatal(err)
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0, RNG: rand.New(rand.NewPCG(1, 1))})
			again, err := tc.load(crashed)
			if err != nil {
				t.Fatalf("start after a power cut: %v", err)
			}
			if again != first {
				t.Fatalf("after a power cut %s is %s, was %s", tc.name, again, first)
			}
		})
	}
}

// TestNodeKeyFile: the key file is mode 0600 and read back as written; a
// damaged one is an error naming the file, never replaced by a new key.
func TestNodeKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodekey")
	k1, err := LoadOrCreateKey(vfs.Default, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("nodekey: %v, %v; want mode 0600", fi, err)
	}
	k2, err := LoadOrCreateKey(vfs.Default, path, false)
	if err != nil || k2.Address() != k1.Address() {
		t.Fatalf("read back: %v, %v", k2, err)
	}
	if err := os.WriteFile(path, []byte("0xzz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(vfs.Default, path, false); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged key: %v, want an error naming %s", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != "0xzz\n" {
		t.Fatalf("damaged key replaced: %q", b)
	}
}
