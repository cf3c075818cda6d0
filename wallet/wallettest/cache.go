package wallettest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// The binary cache is <user cache dir>/tally-test: one entry directory per
// test package and checkout, holding that package's built commands (about
// 60 MB each, so a checkout's test run leaves some 600 MB). Checkouts come
// and go (every clean-clone CI run is a new one), so the cache prunes
// itself: each test process that builds a command first removes entries no
// test process holds that were last used more than CacheMaxAge ago, then,
// while the cache is larger than CacheMaxBytes, the longest unused of
// those idle for at least CacheMinIdle.
//
// Test processes of several checkouts share the cache, so an entry in use
// is never removed: a process holds a shared flock(2) on its entry's lock
// file for as long as it lives (the kernel drops it when the process
// exits, however it exits), and the pruner removes an entry only under an
// exclusive lock it got without waiting. A process that opened the lock
// file of an entry just removed sees that its locked file is no longer the
// one at the path, and makes the entry again. One pruner runs at a time
// (pruneLockName); the others skip pruning.
const (
	// CacheMaxAge removes an entry no process has used for this long.
	CacheMaxAge = 24 * time.Hour
	// CacheMaxBytes bounds the cache's size, as far as entries idle for
	// CacheMinIdle can be removed to meet it.
	CacheMaxBytes = 3 << 30
	// CacheMinIdle protects entries used recently from the size bound,
	// also from test processes of older checkouts, which take no lock
	// (their binaries' modification times count as their use).
	CacheMinIdle = 15 * time.Minute
)

const (
	lockName      = ".lock"  // in an entry: held shared while in use
	usedName      = ".used"  // in an entry: its modification time is the last use
	pruneLockName = ".prune" // in the cache: held by the one pruner
)

// cacheLimits are the pruning bounds; tests use small ones.
type cacheLimits struct {
	MaxAge, MinIdle time.Duration
	MaxBytes        int64
}

var defaultCacheLimits = cacheLimits{MaxAge: CacheMaxAge, MinIdle: CacheMinIdle, MaxBytes: CacheMaxBytes}

// held is this process's entry, held until the process exits: a package
// variable, so that the file's finalizer never closes it (and drops the
// lock) while the process still runs the entry's binaries.
var held struct {
	once sync.Once
	dir  string
	f    *os.File
	err  error
}

// binDir returns the directory this test process builds its commands in:
// its entry of the binary cache, held for the process's lifetime, keyed by
// the working directory (a test package of one checkout; go test runs
// packages in parallel, and each must write its own files). It prunes the
// cache on its first call.
func binDir() (string, error) {
	held.once.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			held.err = err
			return
		}
		root := filepath.Join(cache, "tally-test")
		wd, err := os.Getwd()
		if err != nil {
			held.err = err
			return
		}
		sum := sha256.Sum256([]byte(wd))
		dir := filepath.Join(root, hex.EncodeToString(sum[:8]))
		if held.f, held.err = holdEntry(dir); held.err != nil {
			return
		}
		held.dir = dir
		removed, err := pruneCache(root, time.Now(), defaultCacheLimits)
		if err != nil {
			fmt.Fprintf(os.Stderr, "wallettest: pruning the binary cache %s: %v\n", root, err)
		}
		if len(removed) > 0 {
			fmt.Fprintf(os.Stderr, "wallettest: removed %d unused entries of the binary cache %s\n", len(removed), root)
		}
	})
	return held.dir, held.err
}

// holdEntry makes the entry directory dir and holds it shared until the
// returned file is closed (for a test process: until it exits), and marks
// it used now.
func holdEntry(dir string) (*os.File, error) {
	for attempt := 1; ; attempt++ {
		f, err := tryHoldEntry(dir)
		if errors.Is(err, errEntryGone) && attempt < 20 {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := touch(filepath.Join(dir, usedName), time.Now()); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
}

// errEntryGone: a pruner removed the entry while it was being taken.
var errEntryGone = errors.New("cache entry removed meanwhile")

func tryHoldEntry(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %v", errEntryGone, err)
	}
	if err != nil {
		return nil, err
	}
	if err := flock(f, syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pruner may have removed the entry between the open and the lock.
	held, err1 := f.Stat()
	now, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, fmt.Errorf("%w: %s", errEntryGone, dir)
	}
	return f, nil
}

// pruneCache removes the entries of the cache root that lim says go and no
// process holds, and returns their paths. It does nothing while another
// process prunes.
func pruneCache(root string, now time.Time, lim cacheLimits) ([]string, error) {
	pl, err := lockExclusive(filepath.Join(root, pruneLockName))
	if pl == nil || err != nil {
		return nil, err // nil, nil: another process prunes
	}
	defer pl.Close()
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	type entry struct {
		dir  string
		used time.Time
		size int64
	}
	var all []entry
	var total int64
	for _, de := range ents {
		if !de.IsDir() {
			continue
		}
		dir := filepath.Join(root, de.Name())
		used, size := entryUse(dir)
		all = append(all, entry{dir, used, size})
		total += size
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	var removed []string
	for _, e := range all {
		idle := now.Sub(e.used)
		if idle < lim.MaxAge && (total <= lim.MaxBytes || idle < lim.MinIdle) {
			continue
		}
		ok, err := removeIdle(e.dir, func(used time.Time) bool {
			idle := now.Sub(used)
			return idle >= lim.MaxAge || (total > lim.MaxBytes && idle >= lim.MinIdle)
		})
		if err != nil {
			return removed, err
		}
		if ok {
			removed = append(removed, e.dir)
			total -= e.size
		}
	}
	return removed, nil
}

// removeIdle removes the entry dir if no process holds it and stillIdle
// agrees with its last use, read again under the lock.
func removeIdle(dir string, stillIdle func(used time.Time) bool) (bool, error) {
	f, err := lockExclusive(filepath.Join(dir, lockName))
	if f == nil || err != nil {
		return false, err // nil, nil: in use
	}
	defer f.Close()
	if used, _ := entryUse(dir); !stillIdle(used) {
		return false, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, fmt.Errorf("remove cache entry %s: %w", dir, err)
	}
	return true, nil
}

// entryUse is when the entry dir was last used, the newest modification
// time of its files (its used stamp, or a binary a test process of an
// older checkout linked), and the size of its files. The lock file does
// not count: the pruner may create it.
func entryUse(dir string) (time.Time, int64) {
	var used time.Time
	var size int64
	ents, _ := os.ReadDir(dir)
	for _, de := range ents {
		info, err := de.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		size += info.Size()
		if de.Name() != lockName && info.ModTime().After(used) {
			used = info.ModTime()
		}
	}
	return used, size
}

// touch sets path's modification time, creating it if need be.
func touch(path string, t time.Time) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return os.Chtimes(path, t, t)
}

// lockExclusive opens (or creates) the lock file path and locks it
// exclusively without waiting: nil and no error if another open file
// holds a lock on it. Closing the file unlocks it.
func lockExclusive(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// flock is flock(2), retried when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
