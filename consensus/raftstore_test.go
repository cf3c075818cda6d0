package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// testWriter forwards to t.Log until the test ends; raft and pebble
// goroutines may still log during cleanup.
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func newTestWriter(t testing.TB) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testRaftConfig returns a config with timeouts short enough for tests.
func testRaftConfig(t testing.TB, id string) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.Logger = hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Warn, Output: newTestWriter(t)})
	return c
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openTestRaftStore(t testing.TB, dir string) *RaftStore {
	t.Helper()
	s, err := OpenRaftStore(dir, RaftStoreOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testLog(i uint64) *raft.Log {
	return &raft.Log{
		Index:      i,
		Term:       i/10 + 1,
		Type:       raft.LogCommand,
		Data:       fmt.Appendf(nil, "block-%d", i),
		Extensions: []byte{byte(i)},
		AppendedAt: time.Unix(1700000000, int64(i)),
	}
}

func testLogs(lo, hi uint64) []*raft.Log {
	var ls []*raft.Log
	for i := lo; i <= hi; i++ {
		ls = append(ls, testLog(i))
	}
	return ls
}

func logsEqual(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func checkBounds(t testing.TB, s *RaftStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if f != first || l != last {
		t.Fatalf("bounds = (%d, %d), want (%d, %d)", f, l, first, last)
	}
}

// checkPresent asserts exactly the indexes in [lo, hi] that want reports are
// readable and match testLog.
func checkPresent(t testing.TB, s *RaftStore, lo, hi uint64, want func(uint64) bool) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		var got raft.Log
		err := s.GetLog(i, &got)
		switch {
		case want(i) && err != nil:
			t.Fatalf("GetLog(%d): %v", i, err)
		case want(i) && !logsEqual(&got, testLog(i)):
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, testLog(i))
		case !want(i) && !errors.Is(err, raft.ErrLogNotFound):
			t.Fatalf("GetLog(%d) err = %v, want ErrLogNotFound", i, err)
		}
	}
}

func TestRaftStoreConformance(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *RaftStore, dir string)
	}{
		{"empty", func(t *testing.T, s *RaftStore, _ string) {
			checkBounds(t, s, 0, 0)
			var l raft.Log
			if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("GetLog on empty store: %v", err)
			}
			if err := s.DeleteRange(1, 10); err != nil {
				t.Fatal(err)
			}
			checkBounds(t, s, 0, 0)
		}},
		{"store and get", func(t *testing.T, s *RaftStore, _ string) {
			in := &raft.Log{Index: 7, Term: 3, Type: raft.LogConfiguration, Data: []byte("cfg"), Extensions: []byte("ext"), AppendedAt: time.Now()}
			if err := s.StoreLog(in); err != nil {
				t.Fatal(err)
			}
			checkBounds(t, s, 7, 7)
			var out raft.Log
			if err := s.GetLog(7, &out); err != nil {
				t.Fatal(err)
			}
			if !logsEqual(in, &out) {
				t.Fatalf("got %+v, want %+v", out, in)
			}
		}},
		{"zero fields", func(t *testing.T, s *RaftStore, _ string) {
			in := &raft.Log{Index: 1}
			if err := s.StoreLog(in); err != nil {
				t.Fatal(err)
			}
			out := raft.Log{Data: []byte("stale")}
			if err := s.GetLog(1, &out); err != nil {
				t.Fatal(err)
			}
			if !logsEqual(in, &out) || !out.AppendedAt.IsZero() || out.Data != nil {
				t.Fatalf("got %+v, want %+v", out, in)
			}
		}},
		{"batch", func(t *testing.T, s *RaftStore, _ string) {
			if err := s.StoreLogs(testLogs(1, 50)); err != nil {
				t.Fatal(err)
			}
			checkBounds(t, s, 1, 50)
			checkPresent(t, s, 1, 51, func(i uint64) bool { return i <= 50 })
		}},
		{"index 0 rejected", func(t *testing.T, s *RaftStore, _ string) {
			if err := s.StoreLogs([]*raft.Log{testLog(1), {Index: 0}}); err == nil {
				t.Fatal("stored index 0")
			}
			checkBounds(t, s, 0, 0)
		}},
		{"delete prefix", func(t *testing.T, s *RaftStore, _ string) {
			must(t, s.StoreLogs(testLogs(1, 20)))
			must(t, s.DeleteRange(1, 5))
			checkBounds(t, s, 6, 20)
			checkPresent(t, s, 1, 20, func(i uint64) bool { return i >= 6 })
		}},
		{"delete suffix", func(t *testing.T, s *RaftStore, _ string) {
			must(t, s.StoreLogs(testLogs(1, 20)))
			must(t, s.DeleteRange(15, 20))
			checkBounds(t, s, 1, 14)
			// Raft's conflict resolution: replace the suffix.
			must(t, s.StoreLogs(testLogs(15, 17)))
			checkBounds(t, s, 1, 17)
			checkPresent(t, s, 1, 20, func(i uint64) bool { return i <= 17 })
		}},
		{"delete middle leaves hole", func(t *testing.T, s *RaftStore, _ string) {
			must(t, s.StoreLogs(testLogs(1, 20)))
			must(t, s.DeleteRange(5, 9))
			checkBounds(t, s, 1, 20)
			checkPresent(t, s, 1, 20, func(i uint64) bool { return i < 5 || i > 9 })
		}},
		{"delete all then append with gap", func(t *testing.T, s *RaftStore, _ string) {
			must(t, s.StoreLogs(testLogs(1, 20)))
			must(t, s.DeleteRange(0, ^uint64(0)))
			checkBounds(t, s, 0, 0)
			must(t, s.StoreLogs(testLogs(100, 101)))
			checkBounds(t, s, 100, 101)
		}},
		{"overwrite", func(t *testing.T, s *RaftStore, _ string) {
			must(t, s.StoreLogs(testLogs(1, 3)))
			must(t, s.StoreLog(&raft.Log{Index: 2, Term: 99, Data: []byte("new")}))
			var l raft.Log
			must(t, s.GetLog(2, &l))
			if l.Term != 99 || string(l.Data) != "new" {
				t.Fatalf("overwrite not visible: %+v", l)
			}
			checkBounds(t, s, 1, 3)
		}},
		{"returned slices are copies", func(t *testing.T, s *RaftStore, _ string) {
			in := testLog(1)
			must(t, s.StoreLog(in))
			in.Data[0] = 'X' // the store must not retain the caller's slice
			var a raft.Log
			must(t, s.GetLog(1, &a))
			a.Data[1] = 'Y'
			a.Data = append(a.Data, "zzz"...)
			var b raft.Log
			must(t, s.GetLog(1, &b))
			if !logsEqual(&b, testLog(1)) || !bytes.Equal(a.Extensions, testLog(1).Extensions) {
				t.Fatalf("stored entry changed through returned slice: %+v", b)
			}
			must(t, s.Set([]byte("k"), []byte("v")))
			v, err := s.Get([]byte("k"))
			must(t, err)
			v[0] = 'w'
			v2, _ := s.Get([]byte("k"))
			if string(v2) != "v" {
				t.Fatalf("stable value changed through returned slice: %q", v2)
			}
		}},
		{"stable store", func(t *testing.T, s *RaftStore, _ string) {
			must(t, s.Set([]byte("LastVoteCand"), []byte("node-1")))
			must(t, s.Set([]byte("empty"), nil))
			must(t, s.SetUint64([]byte("CurrentTerm"), 42))
			must(t, s.SetUint64([]byte("CurrentTerm"), 43))
			if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-1" {
				t.Fatalf("Get = %q, %v", v, err)
			}
			if v, err := s.Get([]byte("empty")); err != nil || v == nil || len(v) != 0 {
				t.Fatalf("Get(empty) = %#v, %v", v, err)
			}
			if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 43 {
				t.Fatalf("GetUint64 = %d, %v", v, err)
			}
			if _, err := s.GetUint64([]byte("LastVoteCand")); err == nil {
				t.Fatal("GetUint64 of a 6-byte value succeeded")
			}
			// Log and stable keys must not collide.
			checkBounds(t, s, 0, 0)
		}},
		{"missing keys", func(t *testing.T, s *RaftStore, _ string) {
			// raft compares err.Error() with "not found" (api.go, raft.go).
			v, err := s.Get([]byte("nope"))
			if v != nil || err == nil || err.Error() != "not found" || !errors.Is(err, ErrKeyNotFound) {
				t.Fatalf("Get(missing) = %v, %v", v, err)
			}
			u, err := s.GetUint64([]byte("nope"))
			if u != 0 || err == nil || err.Error() != "not found" {
				t.Fatalf("GetUint64(missing) = %v, %v", u, err)
			}
			has, err := raft.HasExistingState(s, s, raft.NewInmemSnapshotStore())
			if err != nil || has {
				t.Fatalf("HasExistingState on empty store = %v, %v", has, err)
			}
		}},
		{"reopen persists", func(t *testing.T, s *RaftStore, dir string) {
			must(t, s.StoreLogs(testLogs(1, 30)))
			must(t, s.DeleteRange(1, 10))
			must(t, s.SetUint64([]byte("CurrentTerm"), 7))
			must(t, s.Set([]byte("LastVoteCand"), []byte("n2")))
			must(t, s.Close())
			must(t, s.Close()) // idempotent
			if _, err := s.LastIndex(); err == nil {
				t.Fatal("LastIndex after Close succeeded")
			}
			s2 := openTestRaftStore(t, dir)
			checkBounds(t, s2, 11, 30)
			checkPresent(t, s2, 1, 31, func(i uint64) bool { return i >= 11 && i <= 30 })
			if v, err := s2.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
				t.Fatalf("term after reopen = %d, %v", v, err)
			}
			if v, err := s2.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
				t.Fatalf("vote after reopen = %q, %v", v, err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.run(t, openTestRaftStore(t, dir), dir)
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRaftStoreConcurrent exercises the cached bounds under the race
// detector: readers run while entries are appended and compacted.
func TestRaftStoreConcurrent(t *testing.T) {
	s := openTestRaftStore(t, t.TempDir())
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				if first > last {
					t.Errorf("first %d > last %d", first, last)
					return
				}
				var l raft.Log
				if err := s.GetLog(last, &l); err != nil && !errors.Is(err, raft.ErrLogNotFound) {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := uint64(1); i <= 200; i += 10 {
		must(t, s.StoreLogs(testLogs(i, i+9)))
		if i > 50 {
			must(t, s.DeleteRange(1, i-40))
		}
	}
	stop.Store(true)
	wg.Wait()
	checkBounds(t, s, 152, 200) // last loop: i=191 deletes 1..151
}

func TestLogEncoding(t *testing.T) {
	cases := []*raft.Log{
		{},
		{Index: 1, Term: 1},
		testLog(12345),
		{Index: ^uint64(0), Term: ^uint64(0), Type: raft.LogType(255), Data: bytes.Repeat([]byte{0xAB}, 1000), AppendedAt: time.Unix(-5, 3)},
		{Index: 3, Extensions: []byte("only-ext")},
	}
	for i, in := range cases {
		enc := appendLog(nil, in)
		var out raft.Log
		if err := decodeLog(enc, &out); err != nil {
			t.Fatalf("case %d: decode: %v", i, err)
		}
		if !logsEqual(in, &out) {
			t.Fatalf("case %d: got %+v, want %+v", i, out, in)
		}
		for n := range enc {
			if err := decodeLog(enc[:n], &out); err == nil {
				t.Fatalf("case %d: decoding %d of %d bytes succeeded", i, n, len(enc))
			}
		}
		if err := decodeLog(append(bytes.Clone(enc), 0), &out); err == nil {
			t.Fatalf("case %d: trailing byte accepted", i)
		}
	}
	bad := appendLog(nil, testLog(1))
	bad[0] = 2
	if err := decodeLog(bad, new(raft.Log)); !errors.Is(err, errLogEncoding) {
		t.Fatalf("unknown version: %v", err)
	}
}

func FuzzDecodeLog(f *testing.F) {
	f.Add(appendLog(nil, testLog(1)))
	f.Add(appendLog(nil, &raft.Log{}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{1, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := decodeLog(b, &l); err != nil {
			return
		}
		// Anything accepted must survive a re-encode unchanged.
		var l2 raft.Log
		if err := decodeLog(appendLog(nil, &l), &l2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !logsEqual(&l, &l2) {
			t.Fatalf("round trip changed %+v to %+v", l, l2)
		}
	})
}

// countingFSM counts applied commands.
type countingFSM struct{ n atomic.Uint64 }

func (f *countingFSM) Apply(*raft.Log) any { return f.n.Add(1) }

func (f *countingFSM) Snapshot() (raft.FSMSnapshot, error) {
	return countSnapshot(f.n.Load()), nil
}

func (f *countingFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var n uint64
	if _, err := fmt.Fscan(rc, &n); err != nil {
		return err
	}
	f.n.Store(n)
	return nil
}

type countSnapshot uint64

func (c countSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := fmt.Fprint(sink, uint64(c)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

// TestRaftStoreWithRaft runs a real single-node cluster on the store, then
// restarts it on the same directory.
func TestRaftStoreWithRaft(t *testing.T) {
	dir := t.TempDir()
	start := func(store *RaftStore, fsm raft.FSM) (*raft.Raft, raft.ServerAddress) {
		addr, trans := raft.NewInmemTransport("")
		r, err := raft.NewRaft(testRaftConfig(t, "n1"), fsm, store, store, raft.NewInmemSnapshotStore(), trans)
		if err != nil {
			t.Fatal(err)
		}
		return r, addr
	}

	store, err := OpenRaftStore(dir, RaftStoreOptions{Logger: testLogger(t)})
	must(t, err)
	fsm := &countingFSM{}
	r, addr := start(store, fsm)
	must(t, r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: addr}}}).Error())
	waitFor(t, 5*time.Second, "leadership", func() bool { return r.State() == raft.Leader })

	var last raft.ApplyFuture
	for i := range 100 {
		last = r.Apply(fmt.Appendf(nil, "cmd-%d", i), 5*time.Second)
	}
	must(t, last.Error())
	if got := fsm.n.Load(); got != 100 {
		t.Fatalf("fsm applied %d, want 100", got)
	}
	term := r.CurrentTerm()
	must(t, r.Shutdown().Error())
	must(t, store.Close())

	store = openTestRaftStore(t, dir)
	lastIdx, err := store.LastIndex()
	must(t, err)
	if lastIdx < 100 {
		t.Fatalf("LastIndex after reopen = %d, want >= 100", lastIdx)
	}
	if got, err := store.GetUint64([]byte("CurrentTerm")); err != nil || got != term || term == 0 {
		t.Fatalf("persisted term = %d, %v; want %d", got, err, term)
	}

	// Raft restarts from the store alone: no bootstrap, same log.
	fsm2 := &countingFSM{}
	r2, _ := start(store, fsm2)
	t.Cleanup(func() { _ = r2.Shutdown().Error() })
	waitFor(t, 5*time.Second, "leadership after restart", func() bool { return r2.State() == raft.Leader })
	must(t, r2.Apply([]byte("after-restart"), 5*time.Second).Error())
	if got := fsm2.n.Load(); got != 101 {
		t.Fatalf("fsm after restart applied %d, want 101 (100 replayed + 1)", got)
	}
	if r2.CurrentTerm() <= term {
		t.Fatalf("term did not advance across restart: %d <= %d", r2.CurrentTerm(), term)
	}
}

// BenchmarkStoreLogs64KiB measures one durable append of a 64 KiB block,
// which bounds single-block commit latency.
func BenchmarkStoreLogs64KiB(b *testing.B) {
	s := openTestRaftStore(b, b.TempDir())
	payload := bytes.Repeat([]byte{0x5A}, 64<<10)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	var i uint64
	for b.Loop() {
		i++
		if err := s.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: payload}}); err != nil {
			b.Fatal(err)
		}
	}
}
