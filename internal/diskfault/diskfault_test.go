package diskfault

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

func TestKinds(t *testing.T) {
	for _, c := range []struct {
		kind             errorfs.OpKind
		path             string
		wal, meta, fatal bool
	}{
		{errorfs.OpFileWrite, "/state/000002.log", true, false, false},
		{errorfs.OpFileSync, "/state/000002.log", true, false, false},
		{errorfs.OpFileRead, "/state/000002.log", false, false, false},
		{errorfs.OpFileWrite, "/raft/log/000002.log", false, false, false}, // another database's
		{errorfs.OpFileWrite, "/state/MANIFEST-000001", false, true, true},
		{errorfs.OpFileSync, "/state/MANIFEST-000001", false, true, true},
		{errorfs.OpFileWrite, "/raft/log/MANIFEST-000001", false, false, false},
		{errorfs.OpFileReadAt, "/state/MANIFEST-000001", false, false, false},
		{errorfs.OpCreate, "/state/marker.manifest.000002.MANIFEST-000005", false, true, true},
		{errorfs.OpRename, "/state/temporary.000003.dbtmp", false, true, false},
		{errorfs.OpFileWrite, "/state/OPTIONS-000003", false, true, false},
		{errorfs.OpFileSync, "/state", false, true, false}, // the directory
		{errorfs.OpRemove, "/state/MANIFEST-000001", false, false, false},
		{errorfs.OpFileWrite, "/state/000005.sst", false, false, false},
	} {
		if got := WAL("/state", errorfs.Op{Kind: c.kind, Path: c.path}); got != c.wal {
			t.Errorf("WAL(%v %s) = %v", c.kind, c.path, got)
		}
		if got := Metadata("/state", errorfs.Op{Kind: c.kind, Path: c.path}); got != c.meta {
			t.Errorf("Metadata(%v %s) = %v", c.kind, c.path, got)
		}
		if got := Fatal("/state", errorfs.Op{Kind: c.kind, Path: c.path}); got != c.fatal {
			t.Errorf("Fatal(%v %s) = %v", c.kind, c.path, got)
		}
	}
}

func TestTableOps(t *testing.T) {
	for _, c := range []struct {
		kind        errorfs.OpKind
		path        string
		table, read bool
	}{
		{errorfs.OpCreate, "/state/000005.sst", true, false},
		{errorfs.OpFileWrite, "/state/000005.sst", true, false},
		{errorfs.OpFileSync, "/state/000005.sst", true, false},
		{errorfs.OpFileReadAt, "/state/000005.sst", false, true},
		{errorfs.OpFileRead, "/state/000005.sst", false, true},
		{errorfs.OpFileReadAt, "/raft/log/000005.sst", false, false}, // another database's
		{errorfs.OpFileReadAt, "/state/000002.log", false, false},
		{errorfs.OpFileReadAt, "/state/MANIFEST-000001", false, false},
		{errorfs.OpRemove, "/state/000005.sst", false, false},
	} {
		op := errorfs.Op{Kind: c.kind, Path: c.path}
		if got := Table("/state", op); got != c.table {
			t.Errorf("Table(%v %s) = %v", c.kind, c.path, got)
		}
		if got := TableRead("/state", op); got != c.read {
			t.Errorf("TableRead(%v %s) = %v", c.kind, c.path, got)
		}
	}
}
