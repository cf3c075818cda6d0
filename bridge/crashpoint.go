package bridge

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// CrashAtEnv names the environment variable that arms a crash point, for
// tests only (docs/bridge.md, operations): when the bridge first reaches
// the named point it kills itself with SIGKILL, a real crash with no
// cleanup. Unset, nothing happens.
const CrashAtEnv = "TALLY_BRIDGE_CRASH_AT"

// crashEnvPoints maps the values of CrashAtEnv to the crash points the
// in-package tests stop at (the crashAfter* constants).
var crashEnvPoints = map[string]string{
	"after-persist":        crashAfterDepositsRecorded,
	"after-submit":         crashAfterMintSent,
	"after-order":          crashAfterOrderSent,
	"after-close-submit":   crashAfterCloseSent,
	"after-reverse-record": crashAfterReverseRecorded,
	"after-reverse-submit": crashAfterReverseSent,
}

// crashEnv reads CrashAtEnv once: the crash point it arms ("" for none)
// and whether its value is one of crashEnvPoints.
var crashEnv = sync.OnceValues(func() (string, bool) {
	v := os.Getenv(CrashAtEnv)
	if v == "" {
		return "", true
	}
	p, ok := crashEnvPoints[v]
	return p, ok
})

// checkCrashEnv refuses an unknown CrashAtEnv value.
func checkCrashEnv() error {
	if _, ok := crashEnv(); !ok {
		names := make([]string, 0, len(crashEnvPoints))
		for n := range crashEnvPoints {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("%s=%q: not a crash point (%s)", CrashAtEnv, os.Getenv(CrashAtEnv), strings.Join(names, ", "))
	}
	return nil
}

// crashPoint kills the process with SIGKILL if CrashAtEnv names point.
// Tests only.
func crashPoint(point string) {
	if p, _ := crashEnv(); p == "" || p != point {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not delivered synchronously; never go on
}
