package node

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tally-ledger/tally/internal/durable"
)

// TestJournalCreatedAtStartSurvivesCrash: a record synced to a pool
// journal that this start created (a first start, or a journal removed)
// survives a power cut (vfs.CrashClone keeps exactly what was synced).
// openPoolJournal created the file (OpenReadWrite) without syncing the
// data directory, so its entry, and every record synced into it, was lost
// until a rewrite synced the directory; it now syncs the directory.
func TestJournalCreatedAtStartSurvivesCrash(t *testing.T) {
	mem := vfs.NewCrashableMem()
	if err := durable.MkdirAll(mem, "/data"); err != nil {
		t.Fatal(err)
	}
	j, _, err := openPoolJournal(mem, "/data/pool.journal", false)
	if err != nil {
		t.Fatal(err)
	}
	j.Append([]byte("tx"))
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	raws, err := readPoolJournal(mem.CrashClone(vfs.CrashCloneCfg{}), "/data/pool.journal")
	if err != nil || len(raws) != 1 {
		t.Fatalf("after a power cut: %d records (%v), want the one synced", len(raws), err)
	}
}
