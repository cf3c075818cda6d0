package consensus

import (
	"testing"
	"testing/synctest"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCheckpointStoreSameIndexInOneMillisecond: a follower that the leader
// sends the same snapshot again and again (hashicorp/raft re-sends it while
// the follower rejects the entries after it) installs several snapshots of
// one term and index within one millisecond. Each must be the newest of the
// store once closed, so that retention never removes the snapshot raft is
// about to restore: Create used to take the first free name from the
// current millisecond on, and once retention had freed an earlier name it
// took it again, which then sorted oldest and was reaped by its own Close
// (cluster simulator seed 839: "open 3-16-…/meta.json: file does not
// exist" on every install). The bubble's clock stands still, as a fast
// disk's does within a millisecond; a store opened again must go on after
// the names it finds.
func TestCheckpointStoreSameIndexInOneMillisecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := vfs.NewMem()
		open := func() *CheckpointStore {
			s, err := NewCheckpointStoreFS(fs, "snapshots", 2, testLogger(t))
			must(t, err)
			return s
		}
		s := open()
		for i := range 8 {
			if i == 5 {
				s = open() // a restart within the same millisecond
			}
			sink, err := s.Create(1, 16, 3, testConfig, 1, nil)
			must(t, err)
			must(t, sink.Close())
			metas, err := s.List()
			must(t, err)
			if len(metas) == 0 || metas[0].ID != sink.ID() {
				t.Fatalf("install %d: snapshot %s closed, List = %v: it is not the newest", i, sink.ID(), metaIDs(metas))
			}
			_, rc, err := s.Open(sink.ID())
			if err != nil {
				t.Fatalf("install %d: Open of the snapshot just closed: %v", i, err)
			}
			must(t, rc.Close())
		}
	})
}
