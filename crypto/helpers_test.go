package crypto

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// sharedTestdata returns the directory holding the shared JSON vectors:
// $TALLY_SHARED/testdata (or $TALLY_SHARED itself if it is that directory),
// else the first shared/testdata found walking up from the package dir.
func sharedTestdata(t testing.TB) string {
	t.Helper()
	const probe = "bip39_vectors.json"
	if env := os.Getenv("TALLY_SHARED"); env != "" {
		for _, dir := range []string{filepath.Join(env, "testdata"), env} {
			if fileExists(filepath.Join(dir, probe)) {
				return dir
			}
		}
		t.Fatalf("TALLY_SHARED=%q but neither it nor its testdata/ holds %s", env, probe)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		cand := filepath.Join(dir, "shared", "testdata")
		if fileExists(filepath.Join(cand, probe)) {
			return cand
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	t.Fatalf("shared test vectors not found: no shared/testdata/%s in %s or any parent; set TALLY_SHARED to the shared/ directory", probe, wd)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// loadVectors decodes shared/testdata/name into v, failing the test clearly.
func loadVectors(t testing.TB, name string, v any) {
	t.Helper()
	p := filepath.Join(sharedTestdata(t), name)
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
