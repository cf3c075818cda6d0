package node

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/internal/durable"
)

// PoolJournalFile is the name, in the data dir, of the pool journal: the
// raw transactions this node holds in its pool, written and synced before
// the node says it holds them (to a client, to a follower that forwarded
// them, to the leader that replicated them). The pool itself lives in
// memory; without the journal, acknowledged transactions not yet in a
// block were lost when every node that held them crashed at once (all
// three SIGKILLed: e2e TestAdmittedTxSurvivesAllDown). At start the node
// re-admits what the journal holds and re-sends it to the leader with the
// rest of its pool.
const PoolJournalFile = "pool.journal"

// journalCompactMin is the size below which the journal is never
// rewritten; above it, it is rewritten with the pool's contents once it
// has grown to twice its size after the last rewrite, so it stays within
// twice the pool's encoded size (itself bounded by mempool.max-total)
// plus this.
const journalCompactMin = 1 << 20

// journalRecordHeader is a record's header: the length of the raw
// transaction and its CRC-32C, both big-endian uint32.
const journalRecordHeader = 8

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

// poolJournal is an append-only file of raw transactions with group
// commit: Append queues a record, Sync makes every record queued so far
// durable with one write and one fsync for whatever queued meanwhile.
type poolJournal struct {
	fs     vfs.FS
	path   string
	noSync bool

	mu       sync.Mutex
	cond     *sync.Cond
	f        vfs.File
	buf      []byte // queued records, not yet written
	queued   uint64 // records queued since open
	synced   uint64 // records durable
	flushing bool
	err      error // a failed write or sync: the journal refuses to vouch for anything after it
	size     int64 // bytes in the file
	base     int64 // size after the last rewrite

	// compactMin is the size below which the journal is never rewritten
	// (journalCompactMin unless set).
	compactMin int64

	// onFail, if set, is called once, on a goroutine of its own, with
	// the error that failed the journal.
	onFail func(error)
}

// openPoolJournal opens (creating it if needed) the journal at path on fs
// and returns the raw transactions it holds, up to the first record that
// is torn or damaged (a crash in the middle of a write; what follows it
// was never synced, so never acknowledged). The caller re-admits them and
// calls rewrite.
func openPoolJournal(fs vfs.FS, path string, noSync bool) (*poolJournal, [][]byte, error) {
	raws, err := readPoolJournal(fs, path)
	if err != nil {
		return nil, nil, err
	}
	f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, nil, fmt.Errorf("pool journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("pool journal: %w", err)
	}
	// The file may be new (a first start, a journal removed), or made by
	// an earlier start whose entry was never synced: the records synced
	// into it survive a power cut only with its directory's entry.
	if !noSync {
		if err := durable.SyncDir(fs, fs.PathDir(path)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("pool journal: %w", err)
		}
	}
	j := &poolJournal{fs: fs, path: path, noSync: noSync, f: f, size: fi.Size(), compactMin: journalCompactMin}
	j.cond = sync.NewCond(&j.mu)
	return j, raws, nil
}

// readPoolJournal reads the intact records of the journal at path (none
// if it does not exist).
func readPoolJournal(fs vfs.FS, path string) ([][]byte, error) {
	f, err := fs.Open(path)
	if oserror.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pool journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out [][]byte
	var hdr [journalRecordHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return out, nil // the end, or a torn header
		}
		n, sum := binary.BigEndian.Uint32(hdr[:4]), binary.BigEndian.Uint32(hdr[4:])
		if n == 0 || n > chain.MaxTxSize {
			return out, nil
		}
		raw := make([]byte, n)
		if _, err := io.ReadFull(r, raw); err != nil || crc32.Checksum(raw, journalCRC) != sum {
			return out, nil
		}
		out = append(out, raw)
	}
}

// appendRecord appends raw's record to b.
func appendRecord(b, raw []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(raw)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(raw, journalCRC))
	return append(b, raw...)
}

// Append queues raw; it is durable once a later Sync returns nil.
func (j *poolJournal) Append(raw []byte) {
	j.mu.Lock()
	j.buf = appendRecord(j.buf, raw)
	j.queued++
	j.mu.Unlock()
}

// Sync returns once every record queued before it is written and synced.
// One caller at a time writes everything queued so far; the others wait
// for it, so concurrent admissions share an fsync.
func (j *poolJournal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	target := j.queued
	for j.synced < target {
		switch {
		case j.err != nil:
			return j.err
		case j.flushing:
			j.cond.Wait()
			continue
		}
		j.flushing = true
		buf, upto, f, at := j.buf, j.queued, j.f, j.size
		j.buf = nil
		j.mu.Unlock()
		_, err := f.WriteAt(buf, at)
		if err == nil && !j.noSync {
			err = f.Sync()
		}
		j.mu.Lock()
		j.flushing = false
		if err != nil {
			j.fail(err)
		} else {
			j.synced, j.size = upto, j.size+int64(len(buf))
		}
		j.cond.Broadcast()
	}
	return nil
}

// needsRewrite reports whether the journal has grown enough to be
// rewritten.
func (j *poolJournal) needsRewrite() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err == nil && j.size >= j.compactMin && j.size >= 2*j.base
}

// rewrite replaces the file with the records of pending() (the pool's
// transactions, read while no record can be queued), through a synced
// temporary file renamed over it. Records queued but not yet written stay
// queued and go to the new file: their transactions were added to the
// pool before they were queued, so pending() holds them too, and a
// duplicate is refused as known when re-admitted. Transactions whose
// records are dropped have left the pool (applied, or expired).
func (j *poolJournal) rewrite(pending func() [][]byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.flushing {
		j.cond.Wait()
	}
	if j.err != nil {
		return j.err
	}
	var b []byte
	for _, raw := range pending() {
		b = appendRecord(b, raw)
	}
	tmp := j.path + ".tmp"
	if err := writeSynced(j.fs, tmp, b, j.noSync); err != nil {
		return fmt.Errorf("pool journal rewrite: %w", err)
	}
	// From the rename on, j.f may name a file the path no longer does, and
	// a failed directory sync leaves unknown which of the two the next
	// start reads (a retried fsync may report success for what it lost):
	// the journal fails, and vouches for nothing after it.
	if err := j.fs.Rename(tmp, j.path); err != nil {
		return j.fail(fmt.Errorf("rewrite: %w", err))
	}
	if !j.noSync {
		if err := durable.SyncDir(j.fs, j.fs.PathDir(j.path)); err != nil {
			return j.fail(fmt.Errorf("rewrite: %w", err))
		}
	}
	f, err := j.fs.OpenReadWrite(j.path, vfs.WriteCategoryUnspecified)
	if err != nil {
		// The old handle points at the replaced file: nothing written
		// through it would be read back.
		return j.fail(fmt.Errorf("reopen after rewrite: %w", err))
	}
	j.f.Close()
	j.f, j.size, j.base = f, int64(len(b)), int64(len(b))
	return nil
}

// fail fails the journal with err, the first time (j.mu held), and
// returns the journal's error.
func (j *poolJournal) fail(err error) error {
	if j.err == nil {
		j.err = fmt.Errorf("pool journal %s: %w", j.path, err)
		if j.onFail != nil {
			go j.onFail(j.err)
		}
	}
	return j.err
}

// Close closes the file; records queued and not synced are dropped (no
// one was told they were held).
func (j *poolJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.flushing {
		j.cond.Wait()
	}
	return j.f.Close()
}

// writeSynced writes b to a new file at path on fs and syncs it.
func writeSynced(fs vfs.FS, path string, b []byte, noSync bool) error {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// journalCheck is how often the node checks whether the pool journal
// needs a rewrite.
const journalCheck = time.Second
