package consensus

import (
	"math/big"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/store"
)

// TestStartOnStalledDiskEnds: a node started on a disk that stalls (the
// service manager starts it again 5 s after its watch ended the process,
// and the device still does not answer) must end again within the bound
// (store.max-sync-duration), so that it logs its ALARM and the service
// manager keeps trying. Every sync of the Raft directory's disk is held
// from the start: the stall must be reported, whichever sync of the start
// meets it first.
//
// Start syncs the Raft directory's ancestors (durable.MkdirAll) before
// the Raft store opens its watched file system; on cfg.FS as it is, the
// start hung there for as long as the disk stalled, and nothing reported
// it. It now runs through store.Stalls.Watch.
func TestStartOnStalledDiskEnds(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	holding := new(atomic.Bool)
	holding.Store(true)
	release := make(chan struct{})
	fs := diskfault.Hold(vfs.NewMem(), func(op errorfs.Op) bool {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			return holding.Load()
		}
		return false
	}, release)
	const bound = store.MinMaxSyncDuration
	stalls := make(chan *store.StallError, 4)
	id := raft.ServerID("n0")
	_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	senders := chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 16)
	type started struct {
		eng *Engine
		err error
	}
	done := make(chan started, 1)
	go func() {
		eng, err := Start(Config{Dir: "/data/raft", FS: fs, Snapshots: raft.NewInmemSnapshotStore(), LocalID: id, Transport: trans,
			Bootstrap: []raft.Server{{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)}}, Key: val, Logger: testLogger(t),
			Stalls: store.Stalls{MaxSyncDuration: bound, OnStall: func(e *store.StallError) { stalls <- e }}},
			e.db, mempool.New(mempool.DefaultConfig, e.db, senders), senders)
		done <- started{eng, err}
	}()
	var problem string
	select {
	case <-stalls:
	case s := <-done:
		problem = "Start returned while every sync was held"
		if s.eng != nil {
			defer s.eng.Shutdown()
		}
	case <-time.After(bound + 5*time.Second):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		where := "elsewhere"
		if strings.Contains(string(buf), "durable.MkdirAll") {
			where = "in durable.MkdirAll, on the unwatched file system"
		}
		problem = "no stall reported within " + (bound + 5*time.Second).String() + " of a start on a stalled disk: Start hangs " + where
	}
	holding.Store(false)
	close(release)
	if problem == "" {
		s := <-done
		if s.eng != nil {
			defer s.eng.Shutdown()
		}
	} else if s, ok := <-done; ok && s.eng != nil && !strings.HasPrefix(problem, "Start returned") {
		defer s.eng.Shutdown()
	}
	if problem != "" {
		t.Fatal(problem)
	}
}
