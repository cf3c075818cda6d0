package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/store"
)

// ErrKeyNotFound is returned by RaftStore.Get and RaftStore.GetUint64 for a
// key that was never set. hashicorp/raft does not use errors.Is here: it
// compares err.Error() with "not found" (see raft.NewRaft and
// raft.HasExistingState), exactly as raft-boltdb returns it, so the message
// must not change and must not be wrapped.
var ErrKeyNotFound = errors.New("not found")

// ErrDiskFailed is wrapped by every write of a RaftStore whose disk failed
// a write or a read. Pebble treats a failed write-ahead log write or sync
// as fatal (its commit pipeline is unusable afterwards, and it calls
// Fatalf, which the store turns into this error; store.FatalError), so
// the store refuses every later write until it is closed and opened again
// on a working disk. A failed read (readFailed) fails the store the same
// way: the node halts and leaves Raft, and writes nothing more.
var ErrDiskFailed = errors.New("raftstore: disk failed")

// Key layout of the Raft database. Each key starts with a one-byte prefix so
// the log and the stable store never collide. Log keys are the prefix followed
// by the big-endian index, so Pebble's byte order is index order.
const (
	logPrefix    byte = 0x01
	stablePrefix byte = 0x02

	logKeyLen = 1 + 8
)

// logEncodingV1 is the first byte of every encoded raft.Log value.
const logEncodingV1 byte = 1

// RaftStoreOptions configures OpenRaftStore.
type RaftStoreOptions struct {
	// NoSync disables fsync on commit. A crash may then lose acknowledged
	// log entries or votes, which breaks Raft's safety: tests and benchmarks
	// only.
	NoSync bool
	// Logger receives store events and Pebble's own messages; nil means
	// slog.Default().
	Logger *slog.Logger
	// FS is the file system the store lives on (nil: the operating
	// system's); the cluster simulator passes an in-memory one.
	FS vfs.FS
	// OnDiskFailure, if set, is called once, in the writing (or reading)
	// goroutine, when the disk fails a write or a read (the error wraps
	// ErrDiskFailed); the store refuses every later write. The engine
	// halts the node on it.
	OnDiskFailure func(error)
	// Stalls watches the disk for an operation that hangs (store.Stalls:
	// the process ends; the zero value watches nothing).
	Stalls store.Stalls
}

// RaftStore is the durable raft.LogStore and raft.StableStore of one node:
// a single Pebble database in its own directory, separate from the state
// database so that Raft's fsync-per-append traffic and log truncation do not
// interfere with state compactions.
//
// All methods are safe for concurrent use; hashicorp/raft calls them from the
// main loop, the replication goroutines and the snapshot goroutine at the same
// time. Writes (StoreLog, StoreLogs, DeleteRange, Set, SetUint64) are committed
// with fsync unless RaftStoreOptions.NoSync is set, so once they return nil the
// data survives a crash. FirstIndex and LastIndex are served from memory.
//
// The store never retains slices passed to it, and every slice it returns
// (GetLog's Data and Extensions, Get's value) is a fresh copy owned by the
// caller.
type RaftStore struct {
	db     *pebble.DB
	dir    string
	wo     *pebble.WriteOptions
	logger *slog.Logger

	// writeSem (a one-slot channel, held while full) serialises log writes
	// with the first/last cache updates so that a concurrent StoreLogs and
	// DeleteRange cannot leave the cache disagreeing with the database.
	// Readers only load the atomics. It is a channel rather than a
	// sync.Mutex because it is held across an fsync: in the cluster
	// simulator's synctest bubble a writer waiting on a channel is durably
	// blocked and one waiting on a mutex is not, so with a mutex a slow
	// simulated fsync would stop the bubble's clock for good.
	writeSem chan struct{}
	first    atomic.Uint64
	last     atomic.Uint64

	closeMu sync.Mutex
	closed  atomic.Bool

	// watch stops the background jobs' retries once they failed for good.
	watch *store.Background
	// failed holds the first disk failure; onFailure is told of it once.
	failed    atomic.Pointer[error]
	onFailure func(error)
	// probe writes a synced no-op while the disk is watched
	// (store.Prober).
	probe *store.Prober
}

var (
	_ raft.LogStore    = (*RaftStore)(nil)
	_ raft.StableStore = (*RaftStore)(nil)
)

// OpenRaftStore opens (creating if needed) the Raft database in dir. dir must
// be dedicated to this store.
func OpenRaftStore(dir string, opts RaftStoreOptions) (_ *RaftStore, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "raftstore")
	po := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             store.PebbleLogger(logger, dir, slog.LevelInfo),
		FS:                 opts.FS,
	}
	// Flushes and compactions that fail for good (Pebble would retry
	// them for ever) fail the store as a failed write does.
	var opened atomic.Pointer[RaftStore]
	watch := store.WatchBackground(po, dir, logger, func(err error) {
		if s := opened.Load(); s != nil {
			s.backgroundFailed(err)
		}
	}, opts.Stalls)
	db, err := openPebble(dir, po)
	if err != nil {
		watch.Release()
		watch.Closed()
		return nil, fmt.Errorf("raftstore: open %s: %w", dir, err)
	}
	s := &RaftStore{db: db, dir: dir, wo: pebble.Sync, logger: logger, writeSem: make(chan struct{}, 1), onFailure: opts.OnDiskFailure, watch: watch}
	opened.Store(s)
	watch.Opened()
	if opts.NoSync {
		s.wo = pebble.NoSync
	}
	first, last, err := s.loadBounds()
	if err != nil {
		watch.Release()
		_ = db.Close()
		watch.Closed()
		return nil, fmt.Errorf("raftstore: open %s: %w", dir, err)
	}
	s.first.Store(first)
	s.last.Store(last)
	if !opts.NoSync {
		s.probe = opts.Stalls.StartProbe(func() { _ = s.write(func() error { return s.db.LogData(nil, s.wo) }) })
	}
	logger.Info("opened raft store", "dir", dir, "first_index", first, "last_index", last, "no_sync", opts.NoSync)
	return s, nil
}

// openPebble opens the Pebble database in dir; a fatal error of Pebble in
// Open's own goroutine (a failed MANIFEST write) is an error.
func openPebble(dir string, opts *pebble.Options) (db *pebble.DB, err error) {
	defer store.RecoverFatal(dir, &err)
	return pebble.Open(dir, opts)
}

// Close closes the database. It is idempotent; no other method may be called
// after (or concurrently with) Close.
func (s *RaftStore) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed.Load() {
		return nil
	}
	s.closed.Store(true)
	s.probe.Stop() // before Close: no method after it
	s.watch.Release()
	err := s.db.Close()
	s.watch.Closed() // after Close, whose own operations it watches
	if err != nil {
		return fmt.Errorf("raftstore: close %s: %w", s.dir, err)
	}
	return nil
}

var errStoreClosed = errors.New("raftstore: store is closed")

func (s *RaftStore) checkOpen() error {
	if s.closed.Load() {
		return errStoreClosed
	}
	return nil
}

// FirstIndex returns the lowest stored log index, or 0 if the log is empty.
func (s *RaftStore) FirstIndex() (uint64, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	return s.first.Load(), nil
}

// LastIndex returns the highest stored log index, or 0 if the log is empty.
func (s *RaftStore) LastIndex() (uint64, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	return s.last.Load(), nil
}

// GetLog reads the entry at index into log, returning raft.ErrLogNotFound if
// there is none. log.Data and log.Extensions are freshly allocated.
func (s *RaftStore) GetLog(index uint64, log *raft.Log) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	k := logKey(index)
	v, closer, err := s.db.Get(k[:])
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return s.readFailed(fmt.Errorf("get log %d: %w", index, err))
	}
	// decodeLog copies v, which is only valid until closer.Close.
	err = decodeLog(v, log)
	_ = closer.Close()
	if err != nil {
		return s.readFailed(fmt.Errorf("get log %d: %w", index, err))
	}
	if log.Index != index {
		return s.readFailed(fmt.Errorf("get log %d: stored entry has index %d", index, log.Index))
	}
	return nil
}

// StoreLog stores one entry; see StoreLogs.
func (s *RaftStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores the entries in one atomic batch with a single fsync. An
// entry at an existing index is overwritten. Gaps in the index sequence are
// allowed (raft leaves one after a user snapshot restore).
func (s *RaftStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	lo, hi := uint64(math.MaxUint64), uint64(0)
	b := s.db.NewBatch()
	defer b.Close()
	var buf []byte
	for _, l := range logs {
		if l.Index == 0 {
			return fmt.Errorf("raftstore: store logs %d-%d: index 0 is reserved", logs[0].Index, logs[len(logs)-1].Index)
		}
		lo, hi = min(lo, l.Index), max(hi, l.Index)
		k := logKey(l.Index)
		buf = appendLog(buf[:0], l)
		// Batch.Set copies key and value.
		if err := b.Set(k[:], buf, nil); err != nil {
			return fmt.Errorf("raftstore: store logs %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
		}
	}
	s.writeSem <- struct{}{}
	defer func() { <-s.writeSem }()
	if err := s.write(func() error { return b.Commit(s.wo) }); err != nil {
		return fmt.Errorf("raftstore: store logs %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	if f := s.first.Load(); f == 0 || lo < f {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
	return nil
}

// DeleteRange deletes the entries with lo <= index <= hi using a single
// Pebble range tombstone.
func (s *RaftStore) DeleteRange(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	start := logKey(lo)
	var end []byte
	if hi == math.MaxUint64 {
		end = []byte{logPrefix + 1}
	} else {
		e := logKey(hi + 1)
		end = e[:]
	}
	s.writeSem <- struct{}{}
	defer func() { <-s.writeSem }()
	if err := s.write(func() error { return s.db.DeleteRange(start[:], end, s.wo) }); err != nil {
		return fmt.Errorf("raftstore: delete logs %d-%d: %w", lo, hi, err)
	}
	// Re-read the bounds rather than deriving them, so holes and ranges that
	// do not touch either end are handled exactly. Truncation is rare
	// (compaction, conflicting suffix) and costs two seeks.
	first, last, err := s.loadBounds()
	if err != nil {
		return s.readFailed(fmt.Errorf("delete logs %d-%d: reload bounds: %w", lo, hi, err))
	}
	s.first.Store(first)
	s.last.Store(last)
	return nil
}

// StartFlush asks for a flush of the memtable, as a memtable filling up
// (4 MiB of entries) does, without waiting for it: the entries written
// so far are then read from sstables, and from the disk once the block
// cache does not hold them. The cluster simulator flushes this way
// (Engine.StartRaftLogFlush) so that a failing disk meets the log's
// reads in a run's few megabytes. A disk that fails the write-ahead log's
// rotation fails the store (write).
func (s *RaftStore) StartFlush() error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := s.write(func() error { _, err := s.db.AsyncFlush(); return err }); err != nil {
		return fmt.Errorf("raftstore: flush: %w", err)
	}
	return nil
}

// loadBounds reads the first and last log index from disk.
func (s *RaftStore) loadBounds() (first, last uint64, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{logPrefix},
		UpperBound: []byte{logPrefix + 1},
	})
	if err != nil {
		return 0, 0, err
	}
	if it.First() {
		if first, err = parseLogKey(it.Key()); err != nil {
			_ = it.Close()
			return 0, 0, err
		}
		if !it.Last() {
			_ = it.Close()
			return 0, 0, fmt.Errorf("log has a first key but no last key: %w", it.Error())
		}
		if last, err = parseLogKey(it.Key()); err != nil {
			_ = it.Close()
			return 0, 0, err
		}
	}
	if err := it.Close(); err != nil {
		return 0, 0, err
	}
	return first, last, nil
}

// keyCurrentTerm is hashicorp/raft's stable-store key of the current term.
var keyCurrentTerm = []byte("CurrentTerm")

// Set stores val under key. Neither slice is retained.
//
// When the disk fails (at this write or before), Set refuses every key but
// raft's current term, which it drops: hashicorp/raft panics when it
// cannot store the term (Raft.setCurrentTerm), and that panic, in a raft
// goroutine, would end the process before the node halts and leaves Raft
// (the cluster simulator found it: the term was the write that met the
// failing disk). Dropping it is what a crash just before the write does:
// the term alone promises nothing to another node (votes and log entries
// do, and their writes fail), so the node comes back with the last term
// it stored, as after a power cut.
func (s *RaftStore) Set(key, val []byte) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	err := s.write(func() error { return s.db.Set(stableKey(key), val, s.wo) })
	if errors.Is(err, ErrDiskFailed) && bytes.Equal(key, keyCurrentTerm) {
		s.logger.Warn("raft log disk failed: current term not stored", "term", val)
		return nil
	}
	if err != nil {
		return fmt.Errorf("raftstore: set %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of the value stored under key, or (nil, ErrKeyNotFound).
func (s *RaftStore) Get(key []byte) ([]byte, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, s.readFailed(fmt.Errorf("get %q: %w", key, err))
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	_ = closer.Close()
	return out, nil
}

// SetUint64 stores val under key as 8 big-endian bytes.
func (s *RaftStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value stored by SetUint64, or (0, ErrKeyNotFound).
func (s *RaftStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftstore: get uint64 %q: value has %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func logKey(index uint64) [logKeyLen]byte {
	var k [logKeyLen]byte
	k[0] = logPrefix
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func parseLogKey(k []byte) (uint64, error) {
	if len(k) != logKeyLen || k[0] != logPrefix {
		return 0, fmt.Errorf("malformed log key %x", k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

func stableKey(key []byte) []byte {
	k := make([]byte, 0, 1+len(key))
	return append(append(k, stablePrefix), key...)
}

// Log value layout, version 1 (all integers are unsigned varints unless noted):
//
//	version byte (=1)
//	index, term
//	type byte
//	len(data), data
//	len(extensions), extensions
//	appendedAt: signed varint of unix nanoseconds, 0 for the zero time.
//
// A new layout gets a new version byte; decodeLog rejects unknown versions
// rather than guessing.

// appendLog appends the encoding of l to dst.
func appendLog(dst []byte, l *raft.Log) []byte {
	dst = append(dst, logEncodingV1)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	var ns int64
	if !l.AppendedAt.IsZero() {
		ns = l.AppendedAt.UnixNano()
	}
	return binary.AppendVarint(dst, ns)
}

var errLogEncoding = errors.New("malformed log encoding")

// decodeLog decodes b into l. It fails on truncated input, trailing bytes and
// unknown versions. l's byte slices are copies; b is not retained.
func decodeLog(b []byte, l *raft.Log) error {
	d := logDecoder{b: b}
	if v := d.byte(); d.err == nil && v != logEncodingV1 {
		return fmt.Errorf("%w: unknown version %d", errLogEncoding, v)
	}
	index := d.uvarint()
	term := d.uvarint()
	typ := d.byte()
	data := d.bytes()
	ext := d.bytes()
	ns := d.varint()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errLogEncoding, len(d.b))
	}
	if d.err != nil {
		return d.err
	}
	// One allocation for both payloads; full slice expressions keep an
	// append to Data from overwriting Extensions.
	var payload []byte
	if n := len(data) + len(ext); n > 0 {
		payload = make([]byte, n)
		copy(payload, data)
		copy(payload[len(data):], ext)
	}
	*l = raft.Log{Index: index, Term: term, Type: raft.LogType(typ)}
	if len(data) > 0 {
		l.Data = payload[:len(data):len(data)]
	}
	if len(ext) > 0 {
		l.Extensions = payload[len(data):]
	}
	if ns != 0 {
		l.AppendedAt = time.Unix(0, ns)
	}
	return nil
}

// logDecoder reads fields, remembering the first error so callers can check
// once at the end.
type logDecoder struct {
	b   []byte
	err error
}

func (d *logDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or invalid %s", errLogEncoding, what)
	}
	d.b = nil
}

func (d *logDecoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *logDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *logDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a length-prefixed field aliasing d.b.
func (d *logDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// backgroundFailed fails the store when its background jobs failed for
// good (store.WatchBackground): every later write is refused, as after a
// failed write, and onFailure is told once.
func (s *RaftStore) backgroundFailed(cause error) {
	s.fail(fmt.Errorf("%w: %w", ErrDiskFailed, cause))
}

// fail records err (wrapping ErrDiskFailed) as the store's failure and
// tells onFailure, if it is the first; it returns the first failure.
func (s *RaftStore) fail(err error) error {
	if !s.failed.CompareAndSwap(nil, &err) {
		return *s.failed.Load()
	}
	s.logger.Error("raft log disk failed: refusing every further write", "err", err, "dir", s.dir)
	if s.onFailure != nil {
		s.onFailure(err)
	}
	return err
}

// failure is err, an error hashicorp/raft returned from a call that read
// the store, or the store's failure if it failed: raft formats its
// stores' errors with %v (api.go:479, "failed to read current term"),
// which drops the disk error from the chain (errors.Is(err, ErrDiskFailed)
// and the disk's own error), while the store's failure carries both and
// names the same read.
func (s *RaftStore) failure(err error) error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return err
}

// readFailed handles a failed read of the log or the stable store (cause
// names the read): Pebble returned an error other than not-found (the
// disk's EIO: `pebble: backing file NNNNNN error: …`), or the entry it
// returned does not decode. The store fails as on a failed write, since a
// log the node cannot read is one it can neither serve to the cluster nor
// apply: the failure hook halts the node, whose engine leaves Raft
// (Engine.raftLogFailed), and every later write is refused.
//
// The error then goes back to raft, except where hashicorp/raft v1.8.0
// panics on it (raftPanicsOn): there the reading goroutine ends
// (runtime.Goexit) and raft never sees the error, since its panic would
// end the process with raft's message instead of the node's halt.
// docs/architecture.md ("Disk failures") has the table of what raft does
// at each read. Ending the reader there is safe: processLogs runs in
// raft's main goroutine (every goroutine raft starts is counted by its
// goFunc with a deferred Done, so Raft.Shutdown still returns), it holds
// no lock, and the deferred calls run (a leader's loop stops its
// replication and answers its pending futures with ErrLeadershipLost; a
// follower's deferred AppendEntries response refuses the entries, whose
// Success is not yet set); NewRaft runs in a goroutine of the engine's
// own for this (newRaft). Elsewhere raft's own handling is kept: ending a
// replication goroutine inside pipelineSend would leave its decoder
// waiting for ever, and Raft.Shutdown with it.
func (s *RaftStore) readFailed(cause error) error {
	err := fmt.Errorf("%w: read: %w", ErrDiskFailed, cause)
	s.fail(err)
	if fn := raftCaller(); raftPanicsOn[fn] {
		s.logger.Error("raft log read failed: ending raft's reader, which would panic", "err", err, "reader", fn, "dir", s.dir)
		runtime.Goexit()
	}
	return err
}

// raftPanicsOn is where hashicorp/raft v1.8.0 panics on an error of
// GetLog: the entries a node applies (raft.go:1331), NewRaft's scan for
// configuration entries (api.go:615), a bootstrap of a live node
// (raft.go:277, which the engine never asks for).
var raftPanicsOn = map[string]bool{
	"github.com/hashicorp/raft.(*Raft).processLogs":   true,
	"github.com/hashicorp/raft.NewRaft":               true,
	"github.com/hashicorp/raft.(*Raft).liveBootstrap": true,
}

// raftCaller is the innermost hashicorp/raft function on the calling
// goroutine's stack ("" if none): the one that called the store.
func raftCaller() string {
	pcs := make([]uintptr, 16)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, "github.com/hashicorp/raft.") {
			return f.Function
		}
		if !more {
			return ""
		}
	}
}

// write runs one Pebble write. Pebble reports a failed write-ahead log
// write or sync by calling Fatalf (store.PebbleLogger panics with a
// *store.FatalError); write turns that into an error wrapping ErrDiskFailed,
// remembers it, tells onFailure once, and from then on refuses to write.
func (s *RaftStore) write(f func() error) (err error) {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		fatal, ok := r.(*store.FatalError)
		if !ok {
			panic(r)
		}
		err = s.fail(fmt.Errorf("%w: %w", ErrDiskFailed, fatal))
	}()
	return f()
}
