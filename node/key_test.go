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

// TestNodeKeySurvivesPowerCut: the key a first start made is the key the
// next start reads after a power cut (a lost or empty nodekey would give
// the node another identity beside the Raft state it wrote under the
// first, or keep it from starting).
func TestNodeKeySurvivesPowerCut(t *testing.T) {
	fs := vfs.NewCrashableMem()
	if err := durable.MkdirAll(fs, "/data"); err != nil {
		t.Fatal(err)
	}
	k1, err := LoadOrCreateKey(fs, "/data/nodekey", false)
	if err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0, RNG: rand.New(rand.NewPCG(1, 1))})
	k2, err := LoadOrCreateKey(crashed, "/data/nodekey", false)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Address() != k2.Address() {
		t.Fatalf("after a power cut the node key is %s, was %s", k2.Address(), k1.Address())
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
