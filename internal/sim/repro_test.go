package sim

import (
	"bytes"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/internal/durable"
	"github.com/tally-ledger/tally/wallet"
)

// dumpFS lists every path of fs with its bytes, in path order.
func dumpFS(t *testing.T, fs *vfs.MemFS) string {
	t.Helper()
	var b bytes.Buffer
	var walk func(dir string)
	walk = func(dir string) {
		names, err := listSorted(fs, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			p := fs.PathJoin(dir, n)
			fi, err := fs.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.IsDir() {
				fmt.Fprintf(&b, "%s/\n", p)
				walk(p)
				continue
			}
			data, err := durable.ReadFile(fs, p)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %q\n", p, data)
		}
	}
	walk("/")
	return b.String()
}

func mustWrite(t *testing.T, fs *vfs.MemFS, name string, data []byte, sync bool) {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustSyncDir(t *testing.T, fs *vfs.MemFS, dir string) {
	t.Helper()
	if err := durable.SyncDir(fs, dir); err != nil {
		t.Fatal(err)
	}
}

// crashScene builds a file system with every case a crash meets: synced
// files and entries, a file with an unsynced tail, an unsynced file, a
// file renamed over a synced one without its directory synced, a new
// directory whose own entries are synced but whose entry in its parent is
// not, and a removal not synced.
func crashScene(t *testing.T) *vfs.MemFS {
	fs := vfs.NewCrashableMem()
	if err := fs.MkdirAll("/a", 0o755); err != nil {
		t.Fatal(err)
	}
	mustSyncDir(t, fs, "/")
	mustWrite(t, fs, "/a/synced", bytes.Repeat([]byte("s"), 5000), true)
	mustWrite(t, fs, "/a/old", []byte("old"), true)
	mustWrite(t, fs, "/a/gone", []byte("gone"), true)
	mustSyncDir(t, fs, "/a")
	// An unsynced tail of two blocks on a synced file.
	f, err := fs.OpenReadWrite("/a/synced", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("t"), 6000), 5000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustWrite(t, fs, "/a/unsynced", []byte("unsynced"), false)
	mustWrite(t, fs, "/a/new", []byte("new"), true)
	if err := fs.Rename("/a/new", "/a/old"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove("/a/gone"); err != nil {
		t.Fatal(err)
	}
	if err := fs.MkdirAll("/b/c", 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, fs, "/b/c/log", []byte("log"), true)
	mustSyncDir(t, fs, "/b/c")
	mustSyncDir(t, fs, "/b")
	return fs
}

// TestCrashCloneMatchesPebble checks crashClone against pebble's own
// MemFS.CrashClone: with nothing unsynced kept, and with everything
// kept, both give the same file system; in between, crashClone only
// gives states CrashClone can give (checked on what every path may hold).
func TestCrashCloneMatchesPebble(t *testing.T) {
	for _, keep := range []int{0, 100} {
		want := dumpFS(t, crashScene(t).CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: keep, RNG: rand.New(rand.NewPCG(1, 2))}))
		got, err := crashClone(crashScene(t), rand.New(rand.NewPCG(1, 2)), keep)
		if err != nil {
			t.Fatal(err)
		}
		if g := dumpFS(t, got); g != want {
			t.Errorf("keep %d%%: crashClone gives\n%s\npebble's CrashClone\n%s", keep, g, want)
		}
	}
	// What each path may hold after a crash, whatever is kept.
	s, tail := bytes.Repeat([]byte("s"), 5000), bytes.Repeat([]byte("t"), 6000)
	allowed := map[string][]string{
		"/a/synced":   nil, // checked below: the synced 5000 bytes, then any of the two tail blocks
		"/a/old":      {"old", "new"},
		"/a/gone":     {"gone"},
		"/a/unsynced": {"", "unsynced", "<absent>"},
		"/b/c/log":    {"log", "<absent>"},
	}
	seen := map[string]map[string]bool{}
	for seed := uint64(0); seed < 64; seed++ {
		got, err := crashClone(crashScene(t), rand.New(rand.NewPCG(seed, 7)), 50)
		if err != nil {
			t.Fatal(err)
		}
		for p, ok := range allowed {
			v := "<absent>"
			if data, err := durable.ReadFile(got, p); err == nil {
				v = string(data)
			}
			if seen[p] == nil {
				seen[p] = map[string]bool{}
			}
			seen[p][v] = true
			if p == "/a/synced" {
				if len(v) < len(s) || v[:len(s)] != string(s) {
					t.Fatalf("seed %d: /a/synced lost synced data: %d bytes", seed, len(v))
				}
				// Blocks of 4 KiB: [4096,8192) holds synced s and tail t
				// bytes, [8192,11000) only tail bytes; either may be lost
				// (zeros where the file grows past a lost block).
				full := append(slices.Clone(s), tail...)
				for i := len(s); i < len(v); i++ {
					if v[i] != full[i] && v[i] != 0 {
						t.Fatalf("seed %d: /a/synced byte %d is %q", seed, i, v[i])
					}
				}
				continue
			}
			if !slices.Contains(ok, v) {
				t.Fatalf("seed %d: %s holds %q, want one of %q", seed, p, v, ok)
			}
		}
	}
	// Over 64 crashes every outcome comes up.
	for _, p := range []string{"/a/old", "/a/unsynced", "/b/c/log"} {
		if len(seen[p]) < 2 {
			t.Errorf("%s: only %v came up in 64 crashes", p, seen[p])
		}
	}
}

// TestCrashCloneDeterministic: one RNG seed gives one file system, although
// pebble's CrashClone, given one seed, does not (it walks Go maps).
func TestCrashCloneDeterministic(t *testing.T) {
	var first string
	for i := 0; i < 20; i++ {
		got, err := crashClone(crashScene(t), rand.New(rand.NewPCG(42, 42)), 50)
		if err != nil {
			t.Fatal(err)
		}
		d := dumpFS(t, got)
		if i == 0 {
			first = d
		} else if d != first {
			t.Fatalf("run %d of one seed gave\n%s\nrun 0 gave\n%s", i, d, first)
		}
	}
}

// TestCrashClonePebbleRecovers opens Pebble on crash clones of a database
// written with synced and unsynced commits: it must open every time and
// hold every synced commit, and any commit it holds whole (the unsynced
// ones may or may not survive; Pebble's log writer may not even have
// written them out).
func TestCrashClonePebbleRecovers(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db, err := pebble.Open("/db", &pebble.Options{FS: fs, Logger: silentLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	// Keys up to k199 are synced (k199's commit syncs the WAL before it);
	// k200..k204 are not.
	const keys, synced = 205, 200
	for i := 0; i < keys; i++ {
		opts := pebble.NoSync
		if i%10 == 9 {
			opts = pebble.Sync
		}
		if err := db.Set([]byte(fmt.Sprintf("k%03d", i)), bytes.Repeat([]byte{byte(i)}, 300), opts); err != nil {
			t.Fatal(err)
		}
	}
	for seed := uint64(0); seed < 8; seed++ {
		clone, err := crashClone(fs, rand.New(rand.NewPCG(seed, 0)), 50)
		if err != nil {
			t.Fatal(err)
		}
		cdb, err := pebble.Open("/db", &pebble.Options{FS: clone, Logger: silentLogger{}})
		if err != nil {
			t.Fatalf("seed %d: pebble does not open the crash clone: %v", seed, err)
		}
		for i := 0; i < keys; i++ {
			v, closer, err := cdb.Get([]byte(fmt.Sprintf("k%03d", i)))
			if i < synced && err != nil {
				t.Fatalf("seed %d: synced key k%03d lost: %v", seed, i, err)
			}
			if err == nil {
				if !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, 300)) {
					t.Fatalf("seed %d: k%03d holds other bytes", seed, i)
				}
				closer.Close()
			}
		}
		cdb.Close()
	}
	db.Close()
}

// silentLogger keeps Pebble's recovery messages out of the test output.
type silentLogger struct{}

func (silentLogger) Infof(string, ...any)  {}
func (silentLogger) Errorf(string, ...any) {}
func (silentLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// TestMergeVotes: votes sent at one instant on one link make one message
// in height order without duplicates, whatever order they were sent in.
func TestMergeVotes(t *testing.T) {
	v := func(h uint64, b byte) *chain.Vote {
		return &chain.Vote{Height: h, Hash: common.Hash{b}, Sig: []byte{b, byte(h)}}
	}
	fresh := []*chain.Vote{v(11, 1)}
	resend := []*chain.Vote{v(9, 1), v(10, 1), v(11, 1)}
	a := mergeVotes(mergeVotes(nil, fresh), resend)
	b := mergeVotes(mergeVotes(nil, resend), fresh)
	want := []*chain.Vote{v(9, 1), v(10, 1), v(11, 1)}
	for name, got := range map[string][]*chain.Vote{"fresh first": a, "resend first": b} {
		if len(got) != len(want) {
			t.Fatalf("%s: %d votes, want %d", name, len(got), len(want))
		}
		for i := range want {
			if got[i].Height != want[i].Height || got[i].Hash != want[i].Hash || !bytes.Equal(got[i].Sig, want[i].Sig) {
				t.Fatalf("%s: vote %d is %+v, want %+v", name, i, got[i], want[i])
			}
		}
	}
	// Two votes for one height with different hashes (a fork seen) are both
	// kept: merging only removes exact duplicates.
	if got := mergeVotes([]*chain.Vote{v(5, 1)}, []*chain.Vote{v(5, 2)}); len(got) != 2 {
		t.Fatalf("votes for two hashes at one height merged into %d", len(got))
	}
}

// callsEnterInOrder checks that wallet calls started at one instant reach
// their node one after the other, in the order they were started: four
// transfers from four accounts, sent to the leader in one step, are in its
// pool in that order (mempool.Pool.All lists senders in the order the pool
// first took them, and the builder proposes them so). Started as bare
// goroutines they raced into the node in the order the runtime ran them
// (the last started first, then the others, or another order when the
// runtime preempted one), so one seed built blocks with their
// transactions in another order from run to run (seeds 14 and 37, settle).
// It runs inside TestSim's bubble (Pebble, see TestSim).
func callsEnterInOrder(t *testing.T) {
	t.Helper()
	s := quietSim(t, 3)
	defer closeSim(t, s)
	// Messages and time only: no client operation and no fault.
	step := checkedStep(t, s, func() {
		if !s.deliverOne(false) {
			s.advance()
		}
		time.Sleep(stepTick)
	})
	untilLeaderAt(t, s, 2, step)
	l := s.leader()
	var want []common.Address
	for _, a := range s.cl.accts[:4] {
		tx, err := wallet.SignTransfer(a.key, s.g.ChainIDBig(), 0, s.cl.accts[7].addr, big.NewInt(1), false)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := tx.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		s.cl.calls.send(raw, "transfer", l.id, func(int, error) {})
		want = append(want, a.addr)
	}
	// The calls run until they wait for the replicas' answers, which
	// only the scheduler delivers.
	time.Sleep(stepTick)
	synctest.Wait()
	var got []common.Address
	for _, tx := range l.pool.All() {
		from, err := types.Sender(s.inv.signer, tx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, from)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the leader's pool took the senders in the order %v, the calls were started in the order %v", got, want)
	}
}
