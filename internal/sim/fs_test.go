package sim

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/consensus"
)

// The slow-disk checks run inside TestSim's bubble, like every simulated
// run: Pebble keeps objects holding channels and wait groups in
// process-wide pools, which must never cross from one bubble to another.

// slowDiskTakesSimulatedTime shows that a slow disk makes the Raft log's
// appends take simulated time, and that it does not deadlock the bubble
// while other goroutines append and read concurrently and contend for the
// store's locks (a goroutine waiting on a sync.Mutex is not durably
// blocked: with the store's write lock a mutex, this deadlocked).
func slowDiskTakesSimulatedTime(t *testing.T) {
	t.Helper()
	sn := &simNode{fs: vfs.NewCrashableMem()}
	if err := sn.fs.MkdirAll(raftDir, 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := consensus.OpenRaftStore(raftDir+"/log", consensus.RaftStoreOptions{FS: sn.disk(&instance{fs: sn.fs}, raftDir), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const by = 250 * time.Millisecond
	appendOne := func(i uint64) time.Duration {
		start := time.Now()
		if err := store.StoreLog(&raft.Log{Index: i, Term: 1, Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Error(err)
		}
		return time.Since(start)
	}
	if d := appendOne(1); d != 0 {
		t.Fatalf("append on a healthy disk took %s of simulated time", d)
	}
	sn.slow.set(by, time.Now().Add(time.Second))
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			var l raft.Log
			for i := 0; i < 50; i++ {
				_ = store.GetLog(1, &l)
				_, _ = store.LastIndex()
				time.Sleep(time.Millisecond)
			}
		})
	}
	for i := uint64(2); i <= 4; i++ {
		wg.Go(func() {
			if d := appendOne(i); d < by {
				t.Errorf("append %d on a slow disk took %s, want at least %s", i, d, by)
			}
		})
	}
	wg.Wait()
	if n := sn.slow.syncs.Load(); n < 1 {
		t.Errorf("%d syncs delayed", n)
	}
	time.Sleep(time.Second)
	if d := appendOne(5); d != 0 {
		t.Errorf("append after the slow spell took %s", d)
	}
}

// slowFollowerFallsBehind runs a cluster without faults in which one
// follower's disk turns slow: the chain goes on at the pace of the
// healthy majority, the slow follower applies blocks later and falls
// behind, and once its disk is well again it catches up.
func slowFollowerFallsBehind(t *testing.T) {
	t.Helper()
	s := quietSim(t, 7)
	defer closeSim(t, s)
	step := checkedStep(t, s, func() {
		if err := s.event(); err != nil {
			t.Fatal(err)
		}
		s.step++
	})
	untilLeaderAt(t, s, 3, step)
	l := s.leader()
	var f, healthy *simNode // a follower with a slow disk, and one without
	for _, sn := range s.nodes {
		if sn != l && sn.up && sn.engine.Raft.State() == raft.Follower {
			if f == nil {
				f = sn
			} else if healthy == nil {
				healthy = sn
			}
		}
	}
	if healthy == nil {
		t.Fatal("fewer than two followers")
	}
	const slowFor = 10 * time.Second
	f.slow.set(400*time.Millisecond, time.Now().Add(slowFor))
	start, h0 := time.Now(), s.inv.height
	lag := func(sn *simNode) uint64 {
		lh, _ := l.db.Head()
		h, _ := sn.db.Head()
		return lh.Number - min(lh.Number, h.Number)
	}
	var maxLag, healthyLag uint64
	for time.Since(start) < slowFor {
		step()
		maxLag, healthyLag = max(maxLag, lag(f)), max(healthyLag, lag(healthy))
	}
	if s.inv.height < h0+5 {
		t.Errorf("the chain grew from %d to %d in %s with one slow follower", h0, s.inv.height, slowFor)
	}
	if maxLag < 3 || maxLag < 2*healthyLag {
		t.Errorf("the slow follower n%d trailed the leader by at most %d blocks, the healthy one by %d", f.id, maxLag, healthyLag)
	}
	for deadline := time.Now().Add(20 * time.Second); ; step() {
		lh, _ := l.db.Head()
		if fh, _ := f.db.Head(); fh.Number >= lh.Number {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the follower did not catch up in 20 s after its disk was well again")
		}
	}
	t.Logf("slow follower n%d: %d slow syncs, trailed by up to %d blocks (the healthy one by %d) while the chain grew %d → %d, then caught up", f.id, f.slow.syncs.Load(), maxLag, healthyLag, h0, s.inv.height)
}

// raftLogFlushOnStalledDisk (run in TestSim's bubble): the raft-read-error
// fault does not flush a Raft log whose disk stalls. The flush rotates
// the write-ahead log holding Pebble's commit mutex and waits for the old
// log's sync, which the stall holds; a write made meanwhile waits on
// that mutex, not durably blocked, so the bubble's clock never reaches
// the stall's end and the run hangs until the watchdog fails it (seed 684
// of the default weights, and seed 162 of them with add-validator and
// remove-validator tripled: a raft-read-error on a node whose Raft log
// had stalled 3 s before, its stall probe the writer). The writes wait
// for the stall's end instead.
func raftLogFlushOnStalledDisk(t *testing.T) {
	t.Helper()
	sn := &simNode{fs: vfs.NewCrashableMem(), log: slog.New(slog.DiscardHandler)}
	inst := &instance{fs: sn.fs}
	sn.inst.Store(inst)
	if err := sn.fs.MkdirAll(raftDir, 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := consensus.OpenRaftStore(raftDir+"/log", consensus.RaftStoreOptions{FS: sn.disk(inst, raftDir), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const stall = time.Second
	start := time.Now()
	sn.stall.which.Store(1 << 1) // the Raft log
	sn.stall.until.Store(start.Add(stall).UnixNano())
	appended := make(chan error, 2)
	go func() { appended <- store.StoreLog(&raft.Log{Index: 1, Term: 1, Data: []byte("1")}) }()
	synctest.Wait() // the append waits for its sync, which the stall holds
	go func() {
		// raft storing its term (as the store's stall probe writes,
		// outside the log's write semaphore), once the flush below is
		// under way.
		time.Sleep(time.Millisecond)
		appended <- store.SetUint64([]byte("CurrentTerm"), 2)
	}()
	sn.flushRaftLog(store.StartFlush)
	for range 2 {
		if err := <-appended; err != nil {
			t.Fatalf("write on a stalled Raft log: %v", err)
		}
	}
	if d := time.Since(start); d < stall {
		t.Errorf("the writes took %s of simulated time on a Raft log stalled for %s", d, stall)
	}
	if sn.stall.held.Load() == 0 {
		t.Error("no sync was held back: the check checked nothing")
	}
}

// gatedStandbyDoesNotBlockLoss (run in TestSim's bubble): a node that
// grants no vote (consensus.voteGate) keeps the lost-directory faults
// away (mayLoseOne) only while a configuration has it as a voter. A
// standby node never added, restarted while cut off from every node,
// joins granting no vote until it caught up (consensus.JoinUnknown),
// which outside every configuration it never does: it used to keep them
// away for the rest of the run. A genesis validator started fresh after
// its Raft directory was lost, not caught up yet, still does. A standby
// down does not either: the majority mayLoseOne asks for is of voters.
func gatedStandbyDoesNotBlockLoss(t *testing.T) {
	t.Helper()
	gc := newGCBetweenSteps()
	defer gc.stop()
	s, err := newSim(Config{Seed: 1, Standby: 1, Faults: map[Fault]int{FaultRaftDirLost: 1, FaultRestart: 1}})
	if err != nil {
		t.Fatal(err)
	}
	s.gc = gc
	defer watch.sim.CompareAndSwap(s, nil)
	defer func() {
		if err := s.close(); err != nil {
			t.Error(err)
		}
	}()
	// run moves messages and time until done, for at most a minute.
	run := func(what string, done func() bool) {
		t.Helper()
		for end := time.Now().Add(time.Minute); !done(); s.endStep() {
			if time.Now().After(end) {
				t.Fatalf("no %s within a minute", what)
			}
			synctest.Wait()
			if !s.deliverOne(false) {
				s.advance()
			}
		}
	}
	standby, follower := s.nodes[3], (*simNode)(nil)
	run("leader with a block applied on every validator", func() bool {
		l := s.leader()
		if l == nil {
			return false
		}
		for _, sn := range s.nodes[:3] {
			if head, _ := sn.db.Head(); head.RaftIndex == 0 {
				return false
			}
			if sn != l {
				follower = sn
			}
		}
		return true
	})
	if _, ok := s.mayLoseOne(); !ok {
		t.Fatal("every node up and voting, and no directory may be lost")
	}
	// The standby restarted while cut off from every node.
	s.net.setCut([]int{standby.id}, []int{0, 1, 2}, true)
	s.powerCut(standby, s.rng)
	if err := standby.start(s.net); err != nil {
		t.Fatalf("restart the standby node: %v", err)
	}
	s.net.healAll()
	run("step", func() bool { return true })
	if standby.engine.Voting() || s.configuredVoters()[standby.id] {
		t.Fatalf("the standby node restarted cut off: votes %v, a voter of a configuration %v; want a gated vote outside every configuration", standby.engine.Voting(), s.configuredVoters()[standby.id])
	}
	if _, ok := s.mayLoseOne(); !ok {
		t.Error("a standby node outside every configuration, granting no vote, keeps the lost-directory faults away")
	}
	// The standby down: the three voters are up, and one of them may lose
	// its directory (the majority is counted over the voters, not over
	// every node).
	s.powerCut(standby, s.rng)
	if _, ok := s.mayLoseOne(); !ok {
		t.Error("a standby node outside every configuration, down, keeps the lost-directory faults away")
	}
	// A follower started fresh on a lost Raft directory, granting no vote
	// until it caught up: it blocks them.
	s.powerCut(follower, s.rng)
	if err := follower.fs.RemoveAll(raftDir); err != nil {
		t.Fatal(err)
	}
	follower.freshRaft = true
	if err := follower.start(s.net); err != nil {
		t.Fatalf("start n%d fresh: %v", follower.id, err)
	}
	if follower.engine.Voting() || !s.configuredVoters()[follower.id] {
		t.Fatalf("n%d started fresh: votes %v, a voter of a configuration %v; want a gated vote in a configuration", follower.id, follower.engine.Voting(), s.configuredVoters()[follower.id])
	}
	if _, ok := s.mayLoseOne(); ok {
		t.Errorf("n%d, a voter granting no vote until it caught up, does not keep the lost-directory faults away", follower.id)
	}
}
