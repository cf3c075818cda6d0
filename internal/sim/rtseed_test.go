package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tally-ledger/tally/internal/simexec"
)

// A seed replays in a test process of its own, started with the Go
// runtime's random seed derived from the simulator's seed
// (internal/simexec) and with the runtime's other sources of variation
// that can be turned off from outside turned off: `make sim SEED=N`
// runs there, and so does the replay check of TestSim, which then
// measures what a user replaying a seed gets (docs/architecture.md, "How
// far a seed reproduces a run").

// replayEnv is set in a replay process: TestSim runs its seed there
// instead of starting another process.
const replayEnv = "TALLY_SIM_REPLAY"

var (
	replayOut  = flag.String("replayout", "", "write the run's trace hash and events to this file (set by the replay check for its replay processes)")
	rtseedFlag = flag.Uint64("rtseed", 0, "with -seed: derive the replay process's runtime seed from this number too (0: from the seed alone); each number is another path of the seed, most often the same on every replay")
)

// inReplayProcess reports whether this test binary is a replay process.
func inReplayProcess() bool { return os.Getenv(replayEnv) != "" }

// runtimeSeed is the runtime's AT_RANDOM for the replay of seed with
// -rtseed variant (0: the seed's own). The runtime ignores the bytes if
// either half is zero, so neither is.
func runtimeSeed(seed, variant uint64) [16]byte {
	b := binary.BigEndian.AppendUint64([]byte("tally sim runtime seed "), seed)
	if variant != 0 {
		b = binary.BigEndian.AppendUint64(b, variant)
	}
	h := sha256.Sum256(b)
	var rt [16]byte
	copy(rt[:], h[:])
	rt[0] |= 1
	rt[8] |= 1
	return rt
}

// replayEnviron is the environment of a replay process: one P from the
// start; no collection at all (a run of 2,000 steps allocates about
// 100 MB, and a collection walks the goroutines' stacks, drawing on the
// runtime's generator for its cache as many times as the stacks and its
// pacing make it); no heap profile sampling (it draws at allocations,
// also the few the process makes outside the run); no asynchronous
// preemption (a goroutine stopped by a signal after 10 ms of real time
// lets another run first).
func replayEnviron() []string {
	godebug := "asyncpreemptoff=1,memprofilerate=0"
	if g := os.Getenv("GODEBUG"); g != "" {
		godebug = g + "," + godebug
	}
	return append(os.Environ(), replayEnv+"=1", "GOMAXPROCS=1", "GOGC=off", "GODEBUG="+godebug)
}

// startReplay starts this test binary with args as a replay process of
// seed. If the runtime's seed cannot be set here (ptrace refused, not
// Linux), it starts the process without it and returns why in unseeded.
func startReplay(seed, variant uint64, args []string, stdout, stderr io.Writer) (cmd *exec.Cmd, unseeded, err error) {
	command := func() *exec.Cmd {
		c := exec.Command(os.Args[0], args...)
		c.Env = replayEnviron()
		c.Stdout, c.Stderr = stdout, stderr
		// A test process killed by its timeout takes its replay along.
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		return c
	}
	cmd = command()
	if unseeded = simexec.Start(cmd, runtimeSeed(seed, variant)); unseeded == nil {
		return cmd, nil, nil
	}
	cmd = command()
	if err := cmd.Start(); err != nil {
		return nil, unseeded, fmt.Errorf("start the replay of seed %d: %w", seed, err)
	}
	return cmd, unseeded, nil
}

// replayInOwnProcess runs TestSim's -seed in a replay process, its
// output this process's, and fails if the seed failed there.
func replayInOwnProcess(t *testing.T) {
	args := []string{"-test.run=^TestSim$"}
	if testing.Verbose() {
		args = append(args, "-test.v=true")
	}
	flag.Visit(func(f *flag.Flag) {
		if !strings.HasPrefix(f.Name, "test.") {
			args = append(args, "-"+f.Name+"="+f.Value.String())
		}
	})
	cmd, unseeded, err := startReplay(*seedFlag, *rtseedFlag, args, os.Stdout, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if unseeded != nil {
		t.Logf("seed %d runs in a process of its own without a fixed runtime seed: %v", *seedFlag, unseeded)
	} else {
		t.Logf("seed %d runs in a process of its own, runtime seed %x (-rtseed=%d; another number takes another path)", *seedFlag, runtimeSeed(*seedFlag, *rtseedFlag), *rtseedFlag)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("seed %d failed in its replay process (%v); its output is above", *seedFlag, err)
	}
}

// writeReplay writes a replay process's trace hash and events for the
// replay check.
func writeReplay(path string, res *Result, trace *bytes.Buffer) error {
	return os.WriteFile(path, append([]byte(hex.EncodeToString(res.TraceHash[:])+"\n"), trace.Bytes()...), 0o600)
}

// replayRun is one replay process's run of a seed.
type replayRun struct {
	hash  string
	trace string
}

// replayTwice runs seed in two replay processes side by side and
// returns their runs, and why the runtime's seed was not fixed if it
// was not.
func replayTwice(dir string, seed uint64) (runs [2]replayRun, unseeded, err error) {
	var wg sync.WaitGroup
	var errs [2]error
	var why [2]error
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(dir, fmt.Sprintf("seed%d.%d", seed, i))
			var log bytes.Buffer
			args := append([]string{"-test.run=^TestSim$", fmt.Sprintf("-seed=%d", seed),
				fmt.Sprintf("-steps=%d", *stepsFlag), fmt.Sprintf("-stall=%s", *stallFlag), "-replayout=" + out}, cfgFlags.args()...)
			cmd, unseeded, err := startReplay(seed, 0, args, &log, &log)
			why[i] = unseeded
			if err == nil {
				err = cmd.Wait()
			}
			if err != nil {
				errs[i] = fmt.Errorf("seed %d in a replay process: %w\n%s", seed, err, log.String())
				return
			}
			b, err := os.ReadFile(out)
			if err != nil {
				errs[i] = fmt.Errorf("seed %d in a replay process: %w", seed, err)
				return
			}
			hash, trace, _ := strings.Cut(string(b), "\n")
			runs[i] = replayRun{hash, trace}
		}()
	}
	wg.Wait()
	if why[0] == nil {
		why[0] = why[1]
	}
	return runs, why[0], errors.Join(errs[0], errs[1])
}
