package monitor

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// CrashAtEnv arms a crash point, for tests only: "before-commit:N" makes
// the monitor kill itself with SIGKILL the Nth time it is about to commit
// a run of judged blocks (after judging them, before the batch with the
// cursor is written), a real crash with no cleanup. Unset, nothing
// happens.
const CrashAtEnv = "TALLY_MONITOR_CRASH_AT"

const crashBeforeCommit = "before-commit"

var crashEnv = sync.OnceValues(func() (string, int) {
	v := os.Getenv(CrashAtEnv)
	if v == "" {
		return "", 0
	}
	p, n, _ := strings.Cut(v, ":")
	k, err := strconv.Atoi(n)
	if p != crashBeforeCommit || err != nil || k < 1 {
		return v, -1
	}
	return p, k
})

var crashCount atomic.Int64

func checkCrashEnv() error {
	if v, n := crashEnv(); n < 0 {
		return fmt.Errorf("%s=%q: want %s:N (N >= 1)", CrashAtEnv, v, crashBeforeCommit)
	}
	return nil
}

// crashPoint kills the process at the armed point's Nth passage.
func crashPoint(point string) {
	p, n := crashEnv()
	if p != point || n < 1 || crashCount.Add(1) != int64(n) {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not delivered synchronously; never go on
}
