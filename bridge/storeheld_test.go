package bridge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tally-ledger/tally/store"
)

const storeHolderEnv = "TALLY_TEST_HOLD_BRIDGE_STORE"

// TestStoreHolder is not a test: re-executed with storeHolderEnv set, it
// is another process holding a bridge store open (a running bridge) until
// its stdin closes.
func TestStoreHolder(t *testing.T) {
	dir := os.Getenv(storeHolderEnv)
	if dir == "" {
		t.Skip("helper process for TestStoreHeld")
	}
	s, err := OpenStore(dir, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("open")
	io.Copy(io.Discard, os.Stdin)
	s.Close()
}

// TestStoreHeld: a second bridge on a store another process holds is
// refused with store.ErrInUse saying so, as the node and the audit say it.
func TestStoreHeld(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreHolder$")
	cmd.Env = append(os.Environ(), storeHolderEnv+"="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "open\n" {
		t.Fatalf("holder process: %q, %v", line, err)
	}
	_, err := OpenStore(dir, 10, nil)
	want := "open bridge store: data dir in use: " + dir + " is held by another process (a running bridge?)"
	if !errors.Is(err, store.ErrInUse) || !strings.HasPrefix(fmt.Sprint(err), want) {
		t.Fatalf("open of a held store: %v, want ErrInUse starting %q", err, want)
	}
}
