package sim

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"fmt"
	mrand "math/rand"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/internal/durable"
)

// What makes a seed replay exactly (docs/architecture.md, "How far a seed
// reproduces a run"). hashicorp/raft draws every randomised timeout from
// math/rand's one global source (randomTimeout, util.go), so the order in
// which its goroutines draw decides every node's timers. Goroutines that
// wake at the same simulated instant run in an order the Go runtime picks
// (its timer heap, select, raft's map iterations), so the simulator keeps
// the goroutines it wakes apart in simulated time instead:
//
//   - every scheduler step ends with stepTick of simulated time, so two
//     steps never share an instant, nor do the deterministic timers they
//     start (raft's failure backoffs of 10 ms, 20 ms, ...);
//   - the RPCs a crash cuts fail one stepTick apart (network.resets);
//   - a vote relay starts its resend ticker a seeded fraction of a
//     millisecond after its node (relayJitter), so that its ticks never
//     fall on the instant of another timer started with the node (the
//     builder's heartbeat has the same one-second period);
//   - math/rand's global source is seeded again at every step (seedRaft);
//   - vote messages queued at one instant on one link are merged
//     (mergeVotes);
//   - ready messages are ordered by what they carry, not by which
//     goroutine queued its message first;
//   - the garbage collector runs only between steps, when every goroutine
//     of the bubble is blocked (gcBetweenSteps): a collection during a
//     step parks goroutines in mark assists and preempts them for its
//     stop-the-world, which reorders the runnable ones;
//   - a crash clones the file system with crashClone, whose choices of
//     surviving unsynced writes come from the seed in path order
//     (pebble's CrashClone walks Go maps, whose order the runtime
//     randomises, drawing from the RNG it is given in that order).
//
// The runtime's own draws (map order, select, synctest's timers due at
// one instant) repeat from run to run only in a replay process, started
// with the runtime's random seed fixed and with no collection at all
// (rtseed_test.go): gcBetweenSteps then never collects.

// stepTick is the simulated time every scheduler step takes.
const stepTick = time.Microsecond

// endStep fails the RPCs a crash cut, one instant each, and lets stepTick
// pass, so that the next step happens at an instant of its own.
func (s *Sim) endStep() {
	for s.net.failReset() {
		time.Sleep(stepTick)
	}
	time.Sleep(stepTick)
	s.gc.between()
	s.steps++
	watchStep(s)
	seedRaft(s.cfg.Seed, s.steps)
}

// seedRaft seeds math/rand's global source for the step-th step of the
// run of seed. hashicorp/raft draws its election, heartbeat and commit
// timeouts from it; with GODEBUG randseednop=0 (set by this package's
// tests) seeding it makes them follow the seed. Seeding it again at every
// step keeps a draw that varies (a crashed instance's goroutines draw as
// they wind down, as many times as the runtime lets them) from shifting
// every later one.
func seedRaft(seed uint64, step int) {
	mrand.Seed(int64(seed ^ uint64(step)*0x9e3779b97f4a7c15)) //lint:ignore SA1019 raft reads the global source; seeding it is the point
}

// mergeVotes adds votes to the vote message being queued at the same
// instant on the same link, in height order without duplicates: a relay
// sending its fresh votes and its resends at one instant then sends the
// same message, whichever of its goroutines the runtime ran first.
func mergeVotes(into, votes []*chain.Vote) []*chain.Vote {
	out := append(slices.Clone(into), votes...)
	slices.SortStableFunc(out, func(a, b *chain.Vote) int {
		return cmp.Or(cmp.Compare(a.Height, b.Height), bytes.Compare(a.Hash[:], b.Hash[:]), bytes.Compare(a.Sig, b.Sig))
	})
	return slices.CompactFunc(out, func(a, b *chain.Vote) bool {
		return a.Height == b.Height && a.Hash == b.Hash && bytes.Equal(a.Sig, b.Sig)
	})
}

// gcEvery is how many bytes a run allocates between two collections.
const gcEvery = 64 << 20

// gcBetweenSteps holds the garbage collector off during a run and
// collects between steps once gcEvery bytes were allocated, unless the
// process runs with no collection at all.
type gcBetweenSteps struct {
	restore int // the GC percent before the run
	sample  []metrics.Sample
	last    uint64
}

func newGCBetweenSteps() *gcBetweenSteps {
	g := &gcBetweenSteps{restore: debug.SetGCPercent(-1), sample: []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}}
	runtime.GC()
	g.last = g.allocs()
	return g
}

func (g *gcBetweenSteps) allocs() uint64 {
	metrics.Read(g.sample)
	return g.sample[0].Value.Uint64()
}

// between collects if gcEvery bytes were allocated since the last
// collection. Every goroutine of the bubble is blocked (the step ended in
// time.Sleep, which returns only then), so the collection reorders none.
func (g *gcBetweenSteps) between() {
	if g.restore < 0 {
		// The process runs with its collector off (GOGC=off: a replay
		// process, which holds a run's garbage): it stays off.
		return
	}
	if a := g.allocs(); a-g.last >= gcEvery {
		runtime.GC()
		g.last = g.allocs()
	}
}

// stop gives the collector back its setting.
func (g *gcBetweenSteps) stop() { debug.SetGCPercent(g.restore) }

// sortReady orders ready messages by link, kind and content, then by the
// order they were queued in: the choice the RNG makes among them then does
// not depend on which goroutine queued its message first when several
// queued at one instant.
func sortReady(ready []*message) {
	slices.SortStableFunc(ready, func(a, b *message) int {
		return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to), cmp.Compare(a.kind, b.kind),
			cmp.Compare(msgKey(a), msgKey(b)))
	})
}

// msgKey summarises what a message carries, for sortReady.
func msgKey(m *message) string {
	if m.resp != nil {
		switch r := m.resp.Response.(type) {
		case *raft.AppendEntriesResponse:
			return fmt.Sprintf("%d %d %t %t", r.Term, r.LastLog, r.Success, r.NoRetryBackoff)
		case *raft.RequestVoteResponse:
			return fmt.Sprintf("%d %t", r.Term, r.Granted)
		case *raft.RequestPreVoteResponse:
			return fmt.Sprintf("%d %t", r.Term, r.Granted)
		case *raft.InstallSnapshotResponse:
			return fmt.Sprintf("%d %t", r.Term, r.Success)
		case []string: // a batch's verdicts (forward.go)
			return strings.Join(r, "|")
		}
		return fmt.Sprintf("%v", m.resp.Error)
	}
	switch c := m.cmd.(type) {
	case *raft.AppendEntriesRequest:
		last := uint64(0)
		if n := len(c.Entries); n > 0 {
			last = c.Entries[n-1].Index
		}
		return fmt.Sprintf("%d %d %d %d %d", c.Term, c.PrevLogEntry, last, len(c.Entries), c.LeaderCommitIndex)
	case *raft.RequestVoteRequest:
		return fmt.Sprintf("%d %d %d %t", c.Term, c.LastLogIndex, c.LastLogTerm, c.LeadershipTransfer)
	case *raft.InstallSnapshotRequest:
		return fmt.Sprintf("%d %d %d %d", c.Term, c.LastLogIndex, c.LastLogTerm, c.Size)
	case *raft.RequestPreVoteRequest:
		return fmt.Sprintf("%d %d %d", c.Term, c.LastLogIndex, c.LastLogTerm)
	case *batchReq: // forward.go
		h := sha256.New()
		for _, raw := range c.raws {
			h.Write(raw)
		}
		return fmt.Sprintf("%s %x", c.proto, h.Sum(nil))
	}
	var b bytes.Buffer
	for _, v := range m.votes {
		fmt.Fprintf(&b, "%d:%x ", v.Height, v.Hash[:4])
	}
	return b.String()
}

// relayJitter is how long node id's vote relay waits, at its epoch-th
// start, before it starts its resend ticker: under a millisecond, drawn
// from the seed.
func relayJitter(seed uint64, id, epoch int) time.Duration {
	r := rand.New(rand.NewPCG(seed, 0x5e1a<<32|uint64(id)<<16|uint64(epoch)))
	return time.Duration(1 + r.Int64N(int64(time.Millisecond)))
}

// crashRNG is the RNG of the crash injected as the n-th fault of a run:
// apart from the scheduler's, so that how many draws a crash takes never
// shifts the scheduler's later choices.
func (s *Sim) crashRNG() *rand.Rand {
	s.crashes++
	return rand.New(rand.NewPCG(s.cfg.Seed, 0xc4a5<<32|uint64(s.crashes)))
}

// crashBlock is the granularity at which unsynced file data survives a
// crash, as in pebble's MemFS.CrashClone.
const crashBlock = 4096

// crashClone returns the file system a node finds after a power cut at
// this moment: everything synced, and each unsynced directory entry and
// each unsynced 4 KiB block of file data with probability keepPercent,
// exactly the states pebble's MemFS.CrashClone produces. Unlike
// CrashClone it makes its choices in path order, so that one RNG gives
// one file system. fs must be quiet (no goroutine writing to it); its
// directories end up synced (it is the crashed instance's, no longer
// read by anyone that matters).
//
// It needs each node's synced state, which only CrashClone (with nothing
// unsynced kept) shows: views[k] is such a clone taken once every
// directory less than k deep was synced, so that in views[k] a path of
// depth k resolves to the node the path names now, with that node's own
// synced state, while views[0] holds the directory entries as synced
// before the crash.
func crashClone(fs *vfs.MemFS, rng *rand.Rand, keepPercent int) (*vfs.MemFS, error) {
	var dirs [][]string // dirs[d]: the directories d deep
	var walk func(dir string, d int) error
	walk = func(dir string, d int) error {
		for len(dirs) <= d {
			dirs = append(dirs, nil)
		}
		dirs[d] = append(dirs[d], dir)
		names, err := fs.List(dir)
		if err != nil {
			return err
		}
		slices.Sort(names)
		for _, name := range names {
			p := fs.PathJoin(dir, name)
			fi, err := fs.Stat(p)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				if err := walk(p, d+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("/", 0); err != nil {
		return nil, fmt.Errorf("crash clone: %w", err)
	}
	views := []*vfs.MemFS{fs.CrashClone(vfs.CrashCloneCfg{})}
	for k := 1; k <= len(dirs); k++ {
		for _, dir := range dirs[k-1] {
			if err := durable.SyncDir(fs, dir); err != nil {
				return nil, fmt.Errorf("crash clone: %w", err)
			}
		}
		views = append(views, fs.CrashClone(vfs.CrashCloneCfg{}))
	}
	c := &cloner{cur: fs, views: views, out: vfs.NewCrashableMem(), rng: rng, keep: keepPercent}
	if err := c.dir("/", 0); err != nil {
		return nil, fmt.Errorf("crash clone: %w", err)
	}
	return c.out, nil
}

type cloner struct {
	cur   *vfs.MemFS   // the file system as it is
	views []*vfs.MemFS // see crashClone
	out   *vfs.MemFS
	rng   *rand.Rand
	keep  int
}

func (c *cloner) draw() bool { return c.keep > 0 && c.rng.IntN(100) < c.keep }

// dir fills out's directory p (which exists in cur, k deep): the entries
// synced in it, and each entry not synced with probability keep; an entry
// whose synced node is the node it names now (the usual case) keeps that
// node, with its own unsynced data kept by chance.
func (c *cloner) dir(p string, k int) error {
	synced, err := listSorted(c.views[k], p)
	if err != nil {
		return err
	}
	current, err := listSorted(c.cur, p)
	if err != nil {
		return err
	}
	names := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(synced), current...))))
	for _, name := range names {
		q := c.cur.PathJoin(p, name)
		_, inS := slices.BinarySearch(synced, name)
		_, inC := slices.BinarySearch(current, name)
		keepNew := inC && c.draw()
		switch {
		case inC && (keepNew || (inS && sameTree(c.views[k], c.views[k+1], q))):
			if err := c.node(q, k+1); err != nil {
				return err
			}
		case inS:
			if err := copyTree(c.views[k], c.out, q); err != nil {
				return err
			}
		}
	}
	return durable.SyncDir(c.out, p)
}

// node copies the node that q (k deep) names now: a directory through
// dir, a file as its synced data with each 4 KiB block of what it holds
// now kept with probability keep.
func (c *cloner) node(q string, k int) error {
	fi, err := c.cur.Stat(q)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if err := c.out.MkdirAll(q, 0o755); err != nil {
			return err
		}
		return c.dir(q, k)
	}
	data, err := durable.ReadFile(c.views[k], q)
	if err != nil {
		return err
	}
	now, err := durable.ReadFile(c.cur, q)
	if err != nil {
		return err
	}
	for i := 0; i < len(now); i += crashBlock {
		if !c.draw() {
			continue
		}
		block := now[i:min(i+crashBlock, len(now))]
		if grow := i + len(block) - len(data); grow > 0 {
			data = append(data, make([]byte, grow)...)
		}
		copy(data[i:], block)
	}
	return durable.WriteSynced(c.out, q, data, 0o600)
}

// sameTree reports whether q holds the same names and bytes in a and b.
func sameTree(a, b *vfs.MemFS, q string) bool {
	fa, err := a.Stat(q)
	if err != nil {
		return false
	}
	fb, err := b.Stat(q)
	if err != nil || fa.IsDir() != fb.IsDir() {
		return false
	}
	if !fa.IsDir() {
		da, err1 := durable.ReadFile(a, q)
		db, err2 := durable.ReadFile(b, q)
		return err1 == nil && err2 == nil && bytes.Equal(da, db)
	}
	na, err1 := listSorted(a, q)
	nb, err2 := listSorted(b, q)
	if err1 != nil || err2 != nil || !slices.Equal(na, nb) {
		return false
	}
	for _, n := range na {
		if !sameTree(a, b, a.PathJoin(q, n)) {
			return false
		}
	}
	return true
}

// copyTree copies q from src into dst, synced.
func copyTree(src, dst *vfs.MemFS, q string) error {
	fi, err := src.Stat(q)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		data, err := durable.ReadFile(src, q)
		if err != nil {
			return err
		}
		return durable.WriteSynced(dst, q, data, 0o600)
	}
	if err := dst.MkdirAll(q, 0o755); err != nil {
		return err
	}
	names, err := listSorted(src, q)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := copyTree(src, dst, src.PathJoin(q, n)); err != nil {
			return err
		}
	}
	return durable.SyncDir(dst, q)
}

func listSorted(fs *vfs.MemFS, dir string) ([]string, error) {
	names, err := fs.List(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}
