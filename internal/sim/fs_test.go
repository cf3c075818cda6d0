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

// TestSlowDiskTakesSimulatedTime shows that a slow disk makes the Raft
// log's appends take simulated time, and that it does not deadlock the
// bubble while other goroutines read the store and contend for its locks
// (a goroutine waiting on a sync.Mutex is not durably blocked).
func TestSlowDiskTakesSimulatedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sn := &simNode{fs: vfs.NewCrashableMem()}
		if err := sn.fs.MkdirAll(raftDir, 0o700); err != nil {
			t.Fatal(err)
		}
		store, err := consensus.OpenRaftStore(raftDir+"/log", consensus.RaftStoreOptions{FS: sn.disk(raftDir), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		const by = 250 * time.Millisecond
		appendOne := func(i uint64) time.Duration {
			start := time.Now()
			if err := store.StoreLog(&raft.Log{Index: i, Term: 1, Data: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
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
	})
}
