package diskfault

import (
	"path"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// isWrite reports whether op changes the disk (or makes a change durable).
func isWrite(op errorfs.Op) bool {
	switch op.Kind {
	case errorfs.OpCreate, errorfs.OpLink, errorfs.OpRename, errorfs.OpReuseForWrite,
		errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		return true
	}
	return false
}

// WAL reports whether op writes or syncs a write-ahead log of the
// database in dir.
func WAL(dir string, op errorfs.Op) bool {
	switch op.Kind {
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
	default:
		return false
	}
	return path.Dir(op.Path) == path.Clean(dir) && strings.HasSuffix(op.Path, ".log")
}

// Table reports whether op creates, writes or syncs an sstable of the
// database in dir: what a flush or compaction writes, and Pebble retries
// when it fails (store's background.go).
func Table(dir string, op errorfs.Op) bool {
	switch op.Kind {
	case errorfs.OpCreate, errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
	default:
		return false
	}
	return path.Dir(op.Path) == path.Clean(dir) && strings.HasSuffix(op.Path, ".sst")
}

// TableRead reports whether op reads an sstable of the database in dir:
// what a read of the state that misses the memtables and the block cache
// does (a table's footer, index and filter blocks when it is opened, then
// its data blocks), and what a compaction does with its inputs. Pebble
// returns a failed read to the reader (an iterator's or Get's error); a
// failed compaction is retried (store's background.go).
func TableRead(dir string, op errorfs.Op) bool {
	switch op.Kind {
	case errorfs.OpFileRead, errorfs.OpFileReadAt:
	default:
		return false
	}
	return path.Dir(op.Path) == path.Clean(dir) && strings.HasSuffix(op.Path, ".sst")
}

// Metadata reports whether op writes the metadata of the database in dir
// (the package comment says which files): a create, link, rename, write
// or sync of its MANIFEST, marker, OPTIONS, CURRENT or temporary files,
// or a sync of dir itself.
func Metadata(dir string, op errorfs.Op) bool {
	if !isWrite(op) {
		return false
	}
	dir = path.Clean(dir)
	if path.Clean(op.Path) == dir {
		return op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData
	}
	if path.Dir(op.Path) != dir {
		return false
	}
	base := path.Base(op.Path)
	for _, p := range []string{"MANIFEST-", "marker.", "OPTIONS-", "CURRENT", "temporary."} {
		if strings.HasPrefix(base, p) {
			return true
		}
	}
	return false
}

// Fatal reports whether op is a metadata write of the database in dir
// that Pebble cannot go on from, wherever it fails: a create, write or
// sync of its MANIFEST or of a marker file. (Of the other metadata
// writes, a failed OPTIONS write or directory sync at Open is an error of
// Open, and a failed directory sync in a flush is an error of the flush,
// which Pebble retries at once, for as long as it fails.)
func Fatal(dir string, op errorfs.Op) bool {
	if !Metadata(dir, op) || op.Kind == errorfs.OpRename || op.Kind == errorfs.OpLink {
		return false
	}
	base := path.Base(op.Path)
	return path.Dir(op.Path) == path.Clean(dir) && (strings.HasPrefix(base, "MANIFEST-") || strings.HasPrefix(base, "marker."))
}

// OpName names the write operations Metadata and WAL report (errorfs's
// OpKind has no names of its own).
func OpName(k errorfs.OpKind) string {
	switch k {
	case errorfs.OpCreate:
		return "create"
	case errorfs.OpLink:
		return "link"
	case errorfs.OpRename:
		return "rename"
	case errorfs.OpReuseForWrite:
		return "reuse"
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt:
		return "write"
	case errorfs.OpFileRead, errorfs.OpFileReadAt:
		return "read"
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		return "sync"
	}
	return "op " + strconv.Itoa(int(k))
}
