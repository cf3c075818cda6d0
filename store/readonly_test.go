package store

import (
	"bufio"
	"errors"
	"os"
	osexec "os/exec"
	"strings"
	"testing"
)

// holdEnv makes the test binary, re-executed, hold a data dir open like a
// running node until its stdin closes.
const holdEnv = "TALLY_STATE_TEST_HOLD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdEnv); dir != "" {
		db, err := Open(dir, Options{NoSync: true})
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("open\n")
		bufio.NewReader(os.Stdin).ReadString('\n')
		db.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestReadOnly: an audit opens a data dir read-only and reads everything;
// it cannot write; and a data dir held by another process (a running node)
// is refused with ErrInUse saying so, with advice to audit a checkpoint
// copy for the read-only open.
func TestReadOnly(t *testing.T) {
	e := newEnv(t)
	e.apply(e.build(e.transfer(0, 0, e.keys[1].Address(), 7)).Block)
	head, _ := e.db.Head()
	e.db.Close()

	ro, err := Open(e.dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a closed data dir: %v", err)
	}
	if h, ok := ro.Head(); !ok || h != head {
		t.Fatalf("read-only head %+v, want %+v", h, head)
	}
	if err := ro.CheckConservation(); err != nil {
		t.Fatal(err)
	}
	if err := ro.RecordSkipped(head.RaftIndex + 1); err == nil {
		t.Fatal("a read-only database accepted a write")
	}
	ro.Close()
	rw, err := Open(e.dir, Options{})
	if err != nil {
		t.Fatalf("the data dir is unusable after the read-only session: %v", err)
	}
	rw.Close()

	// Another process holds it, as a node would.
	cmd := osexec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+e.dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "open\n" {
		t.Fatalf("holder process: %q, %v", line, err)
	}
	_, err = Open(e.dir, Options{ReadOnly: true})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "is held by another process (a running node?)") ||
		!strings.Contains(err.Error(), "tally admin checkpoint") {
		t.Fatalf("read-only open of a data dir held by another process: %v, want ErrInUse naming the checkpoint advice", err)
	}
	// A second node on it is told the same, without the audit's advice.
	_, err = Open(e.dir, Options{})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), e.dir+" is held by another process (a running node?)") ||
		strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("open of a data dir held by another process: %v, want ErrInUse saying it is held", err)
	}
}
