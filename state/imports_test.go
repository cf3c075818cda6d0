package state

import (
	"go/parser"
	"go/token"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// allowedImports is everything the state transition may import directly.
// The transition is deterministic because of what it cannot reach: no
// clock (time), no randomness (math/rand, crypto/rand), no files or
// network (os, io/fs, net), no goroutines' scheduling (sync beyond the
// atomic memo of LoadRules, whose result does not depend on it), no
// storage and no logging. Adding a package here is a design decision:
// say why in the commit.
var allowedImports = []string{
	"bytes", "encoding/binary", "errors", "fmt", "math", "math/big", "slices", "strings",
	"sort", "unicode/utf8",
	"sync/atomic", // LoadRules' memo of the last compiled rules, keyed by their bytes
	"github.com/ethereum/go-ethereum/accounts/abi",
	"github.com/ethereum/go-ethereum/common",
	"github.com/ethereum/go-ethereum/core/types",
	"github.com/ethereum/go-ethereum/crypto",
	"github.com/ethereum/go-ethereum/rlp",
	"github.com/tally-ledger/tally/chain",
	"github.com/tally-ledger/tally/crypto",
	"github.com/tally-ledger/tally/genesis",
}

// forbiddenDeps may not appear anywhere below state: storage, consensus,
// networking, and the node's own packages above it.
var forbiddenDeps = []string{
	"github.com/cockroachdb/pebble",
	"github.com/hashicorp/raft",
	"github.com/libp2p/",
	"github.com/tally-ledger/tally/store",
	"github.com/tally-ledger/tally/consensus",
	"github.com/tally-ledger/tally/mempool",
	"github.com/tally-ledger/tally/node",
	"github.com/tally-ledger/tally/rpc",
	"github.com/tally-ledger/tally/p2p",
}

// TestDeterminismImportRule: the state transition's imports are the
// allowed ones, and nothing below it reaches storage or the network.
func TestDeterminismImportRule(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !slices.Contains(allowedImports, path) {
				t.Errorf("%s imports %q: the state transition imports only allowedImports (imports_test.go)", name, path)
			}
		}
	}
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	out, err := osexec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range forbiddenDeps {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("state depends on %s", dep)
			}
		}
	}
}
