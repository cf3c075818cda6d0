package consensus

import (
	"bytes"
	"errors"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/store"
)

// failingDirSyncs is a file system whose directory syncs under dir fail
// with EIO, as os.File.Sync reports a device error, while failing is set.
func failingDirSyncs(mem *vfs.MemFS, dir string, failing *atomic.Bool) vfs.FS {
	return errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !failing.Load() || op.Kind != errorfs.OpFileSync || (op.Path != dir && !strings.HasPrefix(op.Path, dir+"/")) {
			return nil
		}
		if fi, err := mem.Stat(op.Path); err != nil || !fi.IsDir() {
			return nil
		}
		return &os.PathError{Op: "sync", Path: op.Path, Err: syscall.EIO}
	}))
}

// TestSnapshotDirSyncFailureHalts: a snapshot taken while the disk fails
// the syncs of the snapshot's directories (Pebble's Checkpoint syncs the
// directory it creates the checkpoint in) halts the node instead of
// failing the snapshot and going on: a failed fsync cannot be retried
// safely, and a node that fails every snapshot for ever looks up while
// its disk is gone. Found by the cluster simulator's dir-sync-error
// fault.
func TestSnapshotDirSyncFailureHalts(t *testing.T) {
	mem := vfs.NewMem()
	var failing atomic.Bool
	disk := failingDirSyncs(mem, "/raft/snapshots", &failing)
	db, fsm := openFSM(t, "/state", store.Options{FS: disk, NoSync: true})
	defer db.Close()
	snaps, err := NewCheckpointStoreFS(disk, "/raft/snapshots", 2, testLogger(t))
	must(t, err)

	err = persistFailing(t, fsm, snaps, &failing)
	if !errors.Is(err, ErrHalted) || fsm.Halted() == nil || !strings.Contains(fsm.Halted().Error(), syscall.EIO.Error()) {
		t.Fatalf("Persist on a disk failing directory syncs: %v, halted %v; want a halt on EIO", err, fsm.Halted())
	}
	noSnapshotKept(t, snaps)
}

// TestSnapshotInstallDirSyncFailureReported: a snapshot installed from the
// leader (raft streams it into the sink and cancels the sink when the
// stream fails) on a disk failing directory syncs tells the store's
// failure hook, which halts the node (consensus.Start), each time; an
// error that is not the disk's does not.
func TestSnapshotInstallDirSyncFailureReported(t *testing.T) {
	// The leader's snapshot: a small tree as a tar stream.
	src := vfs.NewMem()
	must(t, src.MkdirAll("/snap/sub", 0o755))
	f, err := src.Create("/snap/sub/000001.sst", vfs.WriteCategoryUnspecified)
	must(t, err)
	_, err = f.Write([]byte("table"))
	must(t, err)
	must(t, f.Close())
	var stream bytes.Buffer
	_, err = WriteTarFS(&stream, src, "/snap")
	must(t, err)

	mem := vfs.NewMem()
	var failing atomic.Bool
	snaps, err := NewCheckpointStoreFS(failingDirSyncs(mem, "/raft/snapshots", &failing), "/raft/snapshots", 2, testLogger(t))
	must(t, err)
	var reported []error
	snaps.OnDiskFailure(func(err error) { reported = append(reported, err) })
	install := func() error {
		sink, err := snaps.Create(1, 5, 2, raft.Configuration{}, 1, nil)
		must(t, err)
		if _, err := sink.Write(stream.Bytes()); err != nil {
			sink.Cancel()
			return err
		}
		if err := sink.Close(); err != nil {
			return err
		}
		return nil
	}

	failing.Store(true)
	if err := install(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("install on a disk failing directory syncs: %v, want EIO", err)
	}
	if len(reported) != 1 || !errors.Is(reported[0], syscall.EIO) {
		t.Fatalf("failures reported: %v, want the EIO once", reported)
	}
	noSnapshotKept(t, snaps)

	// A stream that is no tar is the leader's problem, not the disk's.
	failing.Store(false)
	sink, err := snaps.Create(1, 6, 2, raft.Configuration{}, 1, nil)
	must(t, err)
	_, werr := sink.Write(bytes.Repeat([]byte("x"), 1024))
	if cerr := sink.Close(); werr == nil && cerr == nil {
		t.Fatal("a stream that is no tar was installed")
	}
	if len(reported) != 1 {
		t.Fatalf("a bad stream was reported as a disk failure: %v", reported[1:])
	}

	// The disk repaired, the same install succeeds.
	if err := install(); err != nil {
		t.Fatalf("install on a working disk: %v", err)
	}
	if metas, err := snaps.List(); err != nil || len(metas) != 1 || path.Base(metas[0].ID) != metas[0].ID {
		t.Fatalf("snapshots after the install: %v, %v", metas, err)
	}
}
