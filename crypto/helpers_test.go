package crypto

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// vectorDir is the repository's own copy of the public test vectors
// (testdata/README.md says where each file comes from), so a clone alone
// runs these tests.
var vectorDir = filepath.Join("..", "testdata")

// loadVectors decodes testdata/name into v, failing the test clearly.
func loadVectors(t testing.TB, name string, v any) {
	t.Helper()
	p := filepath.Join(vectorDir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", p, err)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q in test data: %v", s, err)
	}
	return b
}
