//go:build linux

package simexec

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// childEnv marks the test binary run as a child: it prints the runtime's
// randomness and exits.
const childEnv = "SIMEXEC_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		fmt.Print(runtimeRandomness())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runtimeRandomness is the first draws from the runtime's generator of
// the M running main (math/rand/v2's global source is runtime.rand).
func runtimeRandomness() string {
	var b strings.Builder
	for range 8 {
		fmt.Fprintln(&b, rand.Uint64())
	}
	return b.String()
}

// sameStream reports whether two children's draws come from one stream:
// the runtime may draw once or twice more before main, as other
// goroutines of its start run (map seeds), so b's draws may start one
// or two later in the stream than a's, or earlier.
func sameStream(a, b string) bool {
	da, db := strings.Fields(a), strings.Fields(b)
	for shift := -2; shift <= 2; shift++ {
		n := 0
		for i := range da {
			if j := i + shift; j >= 0 && j < len(db) && da[i] == db[j] {
				n++
			}
		}
		if n >= len(da)-2 {
			return true
		}
	}
	return false
}

func child(t *testing.T, seed *[16]byte) string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1", "GOMAXPROCS=1")
	var out strings.Builder
	cmd.Stdout = &out
	if seed == nil {
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if err := Start(cmd, *seed); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestSeedRepeatsRuntimeRandomness(t *testing.T) {
	s1, s2 := [16]byte{1, 2, 3, 8: 4}, [16]byte{1, 2, 3, 8: 5}
	a, b := child(t, &s1), child(t, &s1)
	if !sameStream(a, b) {
		t.Errorf("two children of one seed drew from different streams:\n%s\n%s", a, b)
	}
	if c := child(t, &s2); sameStream(a, c) {
		t.Errorf("children of two seeds drew from one stream:\n%s\n%s", a, c)
	}
	if p, q := child(t, nil), child(t, nil); sameStream(p, q) {
		t.Errorf("two children started plainly drew from one stream (the test proves nothing):\n%s\n%s", p, q)
	}
}

func TestZeroHalfRefused(t *testing.T) {
	for _, seed := range [][16]byte{{}, {1, 2, 3}, {8: 1}} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"=1")
		if err := Start(cmd, seed); err == nil {
			_ = cmd.Wait()
			t.Errorf("seed %x with a zero half started a child: the runtime would have ignored it", seed)
		}
		if cmd.Process != nil {
			t.Errorf("seed %x: a child was left behind", seed)
		}
	}
}

func TestAuxvEntry(t *testing.T) {
	vec := func(pairs ...uint64) []byte {
		var b []byte
		for _, p := range pairs {
			b = binary.NativeEndian.AppendUint64(b, p)
		}
		return b
	}
	for _, c := range []struct {
		name string
		auxv []byte
		want uint64
		ok   bool
	}{
		{"found", vec(6, 4096, atRandom, 0x7ffc1234, 0, 0), 0x7ffc1234, true},
		{"first", vec(atRandom, 0x10, 0, 0), 0x10, true},
		{"after the end", vec(6, 4096, 0, 0, atRandom, 0x10), 0, false},
		{"absent", vec(6, 4096, 0, 0), 0, false},
		{"zero address", vec(atRandom, 0, 0, 0), 0, false},
		{"truncated", vec(6, 4096, atRandom)[:20], 0, false},
		{"empty", nil, 0, false},
	} {
		got, err := auxvEntry(c.auxv, atRandom)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%s: got %#x, %v; want %#x, ok %t", c.name, got, err, c.want, c.ok)
		}
	}
}
