package wallettest

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// makeEntry writes an entry of the cache root as a test process leaves it:
// its binaries (size bytes in all) and its used stamp, last used idle ago.
func makeEntry(t *testing.T, root, name string, size int, idle time.Duration, now time.Time) string {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	at := now.Add(-idle)
	for file, data := range map[string][]byte{"tallyd": make([]byte, size), usedName: nil} {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func names(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		out = append(out, filepath.Base(d))
	}
	slices.Sort(out)
	return out
}

func left(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestPruneCache(t *testing.T) {
	now := time.Now()
	lim := cacheLimits{MaxAge: 24 * time.Hour, MinIdle: 15 * time.Minute, MaxBytes: 2500}
	for _, c := range []struct {
		name    string
		entries map[string]time.Duration // name → idle, 1000 bytes each
		max     int64
		removed []string
	}{
		{"within bounds", map[string]time.Duration{"a": time.Hour, "b": time.Minute}, 2500, nil},
		{"too old", map[string]time.Duration{"old": 25 * time.Hour, "new": time.Minute}, 1 << 30, []string{"old"}},
		{"too large: longest unused first, down to the bound",
			map[string]time.Duration{"a": 3 * time.Hour, "b": 2 * time.Hour, "c": time.Hour, "d": 5 * time.Minute}, 2500, []string{"a", "b"}},
		{"too large: entries used within CacheMinIdle stay",
			map[string]time.Duration{"a": 3 * time.Hour, "b": 10 * time.Minute, "c": time.Minute}, 500, []string{"a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for name, idle := range c.entries {
				makeEntry(t, root, name, 1000, idle, now)
			}
			l := lim
			l.MaxBytes = c.max
			removed, err := pruneCache(root, now, l)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(removed); !slices.Equal(got, c.removed) {
				t.Fatalf("removed %v, want %v", got, c.removed)
			}
			for _, name := range left(t, root) {
				if slices.Contains(c.removed, name) {
					t.Fatalf("%s still there", name)
				}
			}
			if got, want := len(left(t, root)), len(c.entries)-len(c.removed); got != want {
				t.Fatalf("%d entries left, want %d", got, want)
			}
		})
	}
}

// An entry an older checkout's test process wrote has no used stamp and no
// lock: its binaries' times are its use.
func TestPruneCacheEntryWithoutStamp(t *testing.T) {
	now := time.Now()
	root := t.TempDir()
	for name, idle := range map[string]time.Duration{"old": 30 * time.Hour, "recent": time.Hour} {
		dir := filepath.Join(root, name)
		os.MkdirAll(dir, 0o755)
		bin := filepath.Join(dir, "tally")
		os.WriteFile(bin, make([]byte, 10), 0o755)
		os.Chtimes(bin, now.Add(-idle), now.Add(-idle))
	}
	removed, err := pruneCache(root, now, defaultCacheLimits)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(removed); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("removed %v, want [old]", got)
	}
}

// TestHoldEntryHelper is not a test: run by TestPruneCacheSparesEntryOfOtherProcess
// as another test process, it holds the entry WALLETTEST_HOLD until its
// standard input closes.
func TestHoldEntryHelper(t *testing.T) {
	dir := os.Getenv("WALLETTEST_HOLD")
	if dir == "" {
		t.Skip("only run as a helper process")
	}
	f, err := holdEntry(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	os.Stdout.WriteString("held\n")
	bufio.NewReader(os.Stdin).ReadString('\n')
}

// An entry another test process holds is never removed, however old its
// stamp, and goes once that process has exited.
func TestPruneCacheSparesEntryOfOtherProcess(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "busy")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldEntryHelper$")
	cmd.Env = append(os.Environ(), "WALLETTEST_HOLD="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "held") {
		t.Fatalf("helper process: %q %v", line, err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, usedName), old, old); err != nil {
		t.Fatal(err)
	}
	if removed, err := pruneCache(root, time.Now(), defaultCacheLimits); err != nil || len(removed) != 0 {
		t.Fatalf("pruned an entry another process holds: %v %v", removed, err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v", err)
	}
	removed, err := pruneCache(root, time.Now(), defaultCacheLimits)
	if err != nil || len(removed) != 1 {
		t.Fatalf("the entry after its process exited: removed %v, %v", removed, err)
	}
}

// A process that opened an entry's lock file while a pruner removed the
// entry makes the entry again, and holds the new one.
func TestHoldEntryWhilePruned(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir()) // as /proc/self/fd shows it
	if err != nil {
		t.Fatal(err)
	}
	dir := makeEntry(t, root, "e", 10, 48*time.Hour, time.Now())
	lockPath := filepath.Join(dir, lockName)
	pruner, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := flock(pruner, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	type result struct {
		f   *os.File
		err error
	}
	got := make(chan result, 1)
	go func() {
		f, err := holdEntry(dir)
		got <- result{f, err}
	}()
	// Wait until the holder has the old lock file open (and so waits for
	// the pruner's lock), then remove the entry as the pruner does.
	for deadline := time.Now().Add(10 * time.Second); openCount(t, lockPath) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the holder never opened the lock file")
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	pruner.Close()
	var r result
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("holdEntry did not return after the pruner let go")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.f.Close()
	heldInfo, _ := r.f.Stat()
	nowInfo, err := os.Stat(lockPath)
	if err != nil || !os.SameFile(heldInfo, nowInfo) {
		t.Fatalf("the holder holds a lock file that is not the entry's (%v)", err)
	}
	if removed, err := pruneCache(root, time.Now().Add(72*time.Hour), defaultCacheLimits); err != nil || len(removed) != 0 {
		t.Fatalf("pruned the entry made again and held: %v %v", removed, err)
	}
}

// openCount counts this process's descriptors open on path.
func openCount(t *testing.T, path string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}

// While one process prunes, another does not.
func TestPruneCacheOnePrunerAtATime(t *testing.T) {
	root := t.TempDir()
	makeEntry(t, root, "old", 10, 48*time.Hour, time.Now())
	other, err := os.OpenFile(filepath.Join(root, pruneLockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := flock(other, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if removed, err := pruneCache(root, time.Now(), defaultCacheLimits); err != nil || len(removed) != 0 {
		t.Fatalf("pruned beside another pruner: %v %v", removed, err)
	}
	other.Close()
	if removed, err := pruneCache(root, time.Now(), defaultCacheLimits); err != nil || len(removed) != 1 {
		t.Fatalf("after the other pruner: removed %v, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(root, "old")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old entry: %v", err)
	}
}
