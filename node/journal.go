package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
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
	path   string
	noSync bool

	mu       sync.Mutex
	cond     *sync.Cond
	f        *os.File
	buf      []byte // queued records, not yet written
	queued   uint64 // records queued since open
	synced   uint64 // records durable
	flushing bool
	err      error // a failed write or sync: the journal refuses to vouch for anything after it
	size     int64 // bytes in the file
	base     int64 // size after the last rewrite
}

// openPoolJournal opens (creating it if needed) the journal at path and
// returns the raw transactions it holds, up to the first record that is
// torn or damaged (a crash in the middle of a write; what follows it was
// never synced, so never acknowledged). The caller re-admits them and
// calls rewrite.
func openPoolJournal(path string, noSync bool) (*poolJournal, [][]byte, error) {
	raws, err := readPoolJournal(path)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("pool journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("pool journal: %w", err)
	}
	j := &poolJournal{path: path, noSync: noSync, f: f, size: fi.Size()}
	j.cond = sync.NewCond(&j.mu)
	return j, raws, nil
}

// readPoolJournal reads the intact records of the journal at path (none
// if it does not exist).
func readPoolJournal(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
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
		buf, upto, f := j.buf, j.queued, j.f
		j.buf = nil
		j.mu.Unlock()
		_, err := f.Write(buf)
		if err == nil && !j.noSync {
			err = f.Sync()
		}
		j.mu.Lock()
		j.flushing = false
		if err != nil {
			j.err = fmt.Errorf("pool journal %s: %w", j.path, err)
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
	return j.err == nil && j.size >= journalCompactMin && j.size >= 2*j.base
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
	if err := writeSynced(tmp, b, j.noSync); err != nil {
		return fmt.Errorf("pool journal rewrite: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("pool journal rewrite: %w", err)
	}
	if !j.noSync {
		if err := syncDir(filepath.Dir(j.path)); err != nil {
			return fmt.Errorf("pool journal rewrite: %w", err)
		}
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		// The old handle points at the replaced file: nothing written
		// through it would be read back.
		j.err = fmt.Errorf("pool journal %s: reopen after rewrite: %w", j.path, err)
		return j.err
	}
	j.f.Close()
	j.f, j.size, j.base = f, int64(len(b)), int64(len(b))
	return nil
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

// writeSynced writes b to a new file at path and syncs it.
func writeSynced(path string, b []byte, noSync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
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

// syncDir syncs a directory, so a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// journalCheck is how often the node checks whether the pool journal
// needs a rewrite.
const journalCheck = time.Second

// journalTx queues tx in the pool journal.
func (n *Node) journalTx(tx *types.Transaction) {
	raw, err := tx.MarshalBinary()
	if err != nil {
		return // a transaction the pool admitted always encodes
	}
	n.journal.Append(raw)
}

// syncAndReplicate waits until tx, queued in the journal, is synced and
// another validator holds it; the two run together, so the fsync hides
// behind the replication's round trip.
func (n *Node) syncAndReplicate(ctx context.Context, tx *types.Transaction) error {
	synced := make(chan error, 1)
	go func() { synced <- n.journal.Sync() }()
	rerr := n.replicate(ctx, tx)
	if err := <-synced; err != nil {
		return err
	}
	return rerr
}

// poolRaws returns the encodings of every transaction in the pool.
func (n *Node) poolRaws() [][]byte {
	txs := n.pool.All()
	out := make([][]byte, 0, len(txs))
	for _, tx := range txs {
		if raw, err := tx.MarshalBinary(); err == nil {
			out = append(out, raw)
		}
	}
	return out
}

// restorePool opens the pool journal and re-admits what it holds (as
// relayed transactions: they were acknowledged, and fill gaps in any
// order); those applied meanwhile or no longer valid are dropped. The
// journal is then rewritten with the pool's contents. The node re-sends
// its pool to the leader as soon as it sees one (membershipLoop).
func (n *Node) restorePool() error {
	j, raws, err := openPoolJournal(filepath.Join(n.cfg.DataDir, PoolJournalFile), n.cfg.Raft.NoSync)
	if err != nil {
		return err
	}
	n.journal = j
	// Most records are of transactions applied since: they are skipped by
	// hash before any sender is recovered, and the senders of the rest are
	// recovered on all cores at once.
	start := time.Now()
	var txs []*types.Transaction
	applied := 0
	for _, raw := range raws {
		tx, err := chain.DecodeTx(raw)
		if err != nil {
			continue
		}
		if done, err := n.db.HasTx(tx.Hash()); err != nil {
			return fmt.Errorf("pool journal: %w", err)
		} else if done {
			applied++
			continue
		}
		txs = append(txs, tx)
	}
	if len(txs) > 1 {
		n.senders.Senders(txs)
	}
	restored := 0
	for _, tx := range txs {
		if _, err := n.pool.AddRelayed(tx); err == nil {
			restored++
		}
	}
	if len(raws) > 0 {
		n.log.Info("pool restored from its journal", "records", len(raws), "applied", applied, "restored", restored, "took", time.Since(start).Round(time.Millisecond))
	}
	if err := j.rewrite(n.poolRaws); err != nil {
		return err
	}
	return nil
}

// compactJournal rewrites the pool journal once it has grown enough.
func (n *Node) compactJournal() {
	if !n.journal.needsRewrite() {
		return
	}
	if err := n.journal.rewrite(n.poolRaws); err != nil {
		n.log.Error("pool journal rewrite failed", "err", err)
	}
}
