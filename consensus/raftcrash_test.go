package consensus

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// TestRaftStoreWritesSurviveCrash: every write of the Raft store that
// returned nil is on disk after a power cut at any point, and nothing a
// later write removed comes back, whatever share of the unsynced data
// the crash keeps (Pebble's crash clone of its in-memory file system,
// what the cluster simulator crashes nodes with). hashicorp/raft relies
// on it: a follower answers an append, and a leader counts its own copy
// towards the commit, once StoreLogs returned; it truncates a conflicting
// suffix with DeleteRange before storing the leader's entries, compacts
// the head of the log after a snapshot, and stores its term and vote
// before it answers a vote request. The cached first and last indexes
// must match the disk after the restart.
func TestRaftStoreWritesSurviveCrash(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 47))
	fs := vfs.NewCrashableMem()
	s, err := OpenRaftStore("/raft", RaftStoreOptions{FS: fs, Logger: testLogger(t)})
	must(t, err)
	defer s.Close()

	logs := map[uint64]uint64{} // index → term of what the store holds
	stable := map[string]uint64{}
	var first, last, term uint64 = 0, 0, 1
	store := func(from uint64, n int) {
		var batch []*raft.Log
		for i := range uint64(n) {
			idx := from + i
			batch = append(batch, &raft.Log{Index: idx, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "%d@%d", idx, term)})
		}
		must(t, s.StoreLogs(batch))
		for _, l := range batch {
			logs[l.Index] = l.Term
		}
		if first == 0 {
			first = from
		}
		last = max(last, from+uint64(n)-1)
	}
	deleteRange := func(lo, hi uint64) {
		must(t, s.DeleteRange(lo, hi))
		for i := lo; i <= hi; i++ {
			delete(logs, i)
		}
	}
	ops := []struct {
		name string
		run  func()
	}{
		{"append", func() { store(last+1, 1+rng.IntN(5)) }},
		{"truncate a conflicting suffix and append", func() {
			if last-first < 2 {
				store(last+1, 1)
				return
			}
			from := last - uint64(rng.IntN(3))
			deleteRange(from, last)
			last = from - 1
			term++
			store(from, 1+rng.IntN(4))
		}},
		{"compact after a snapshot", func() {
			if last-first < 4 {
				store(last+1, 2)
				return
			}
			to := first + uint64(rng.IntN(int(last-first)/2))
			deleteRange(first, to)
			first = to + 1
		}},
		{"term and vote", func() {
			term++
			must(t, s.SetUint64([]byte("CurrentTerm"), term))
			must(t, s.SetUint64([]byte("LastVoteTerm"), term))
			stable["CurrentTerm"], stable["LastVoteTerm"] = term, term
		}},
	}
	for step := range 60 {
		op := ops[rng.IntN(len(ops))]
		op.run()
		keep := []int{0, 50, 100}[step%3]
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: keep, RNG: rng})
		checkRaftStoreCrashed(t, fmt.Sprintf("step %d (%s, %d%% of unsynced data kept)", step, op.name, keep), crashed, logs, stable, first, last)
	}
}

// checkRaftStoreCrashed opens the Raft store on crashed and compares it
// with the writes acknowledged before the crash.
func checkRaftStoreCrashed(t *testing.T, at string, crashed vfs.FS, logs map[uint64]uint64, stable map[string]uint64, first, last uint64) {
	t.Helper()
	s, err := OpenRaftStore("/raft", RaftStoreOptions{FS: crashed, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("%s: reopen: %v", at, err)
	}
	defer s.Close()
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	if f != first || l != last {
		t.Fatalf("%s: log %d..%d after the crash, acknowledged %d..%d", at, f, l, first, last)
	}
	for i := max(first, 1) - 1; i <= last+1; i++ {
		var got raft.Log
		err := s.GetLog(i, &got)
		want, ok := logs[i]
		switch {
		case !ok && !errors.Is(err, raft.ErrLogNotFound):
			t.Fatalf("%s: index %d, deleted or never written, reads %+v, %v", at, i, got, err)
		case ok && err != nil:
			t.Fatalf("%s: acknowledged index %d lost: %v", at, i, err)
		case ok && (got.Term != want || string(got.Data) != fmt.Sprintf("%d@%d", i, want)):
			t.Fatalf("%s: index %d holds term %d %q, acknowledged term %d", at, i, got.Term, got.Data, want)
		}
	}
	for k, want := range stable {
		if v, err := s.GetUint64([]byte(k)); err != nil || v != want {
			t.Fatalf("%s: %s = %d, %v after the crash, acknowledged %d", at, k, v, err, want)
		}
	}
}
