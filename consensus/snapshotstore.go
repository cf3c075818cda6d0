package consensus

import (
	"archive/tar"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/internal/durable"
)

// On-disk layout of a CheckpointStore:
//
//	<dir>/<term>-<index>-<unixmillis>/meta.json   raft.SnapshotMeta, Size included
//	<dir>/<term>-<index>-<unixmillis>/data/       the snapshot tree (a Pebble checkpoint)
//	<dir>/<anything>.tmp/                         in progress or being deleted; never listed
//
// A snapshot directory only gets its final name by an atomic rename after its
// data and meta.json have been fsynced, so a listed snapshot is always
// complete; a crash leaves at most a .tmp directory, removed at the next open.
//
// The store works on a vfs.FS (Pebble's): the operating system's in a node,
// an in-memory one that a crash may cut short in the cluster simulator
// (internal/sim). It must be the file system of the state database, whose
// checkpoints it holds (a checkpoint hard-links the database's files).
const (
	tmpSuffix   = ".tmp"
	metaName    = "meta.json"
	dataDirName = "data"

	dirPerm  = 0o755
	filePerm = 0o644
)

// CheckpointStore is a raft.SnapshotStore whose snapshots are directory trees
// rather than byte streams: the FSM writes a Pebble checkpoint straight into
// the sink's DataDir, so taking a snapshot costs hard links instead of a copy
// of the database.
//
// raft still moves snapshots as streams (InstallSnapshot, FSM.Restore), so
// Open serialises data/ as a deterministic tar (see WriteTar) and a sink fed
// through Write extracts such a tar into data/. meta.Size is always exactly the
// number of bytes Open streams: raft sends it in InstallSnapshotRequest and the
// follower rejects the snapshot if the byte count differs. It is computed at
// Close from file sizes alone (no data is read) and re-checked on every Open.
//
// Methods are safe for concurrent use. A snapshot being streamed by Open is
// not deleted by retention until its reader is closed.
type CheckpointStore struct {
	fs     vfs.FS
	dir    string
	retain int
	logger *slog.Logger

	mu      sync.Mutex
	readers map[string]int // snapshot ID -> open Open streams
	// lastMillis is the millisecond of the newest name Create gave or the
	// store found at its opening: a new snapshot's name never goes back
	// below it (Create).
	lastMillis int64

	// hookMu guards onFailure (OnDiskFailure).
	hookMu    sync.Mutex
	onFailure func(error)
}

var _ raft.SnapshotStore = (*CheckpointStore)(nil)

// OnDiskFailure sets what is called, in the goroutine that met it, each
// time the store's disk fails a snapshot with an I/O error (EIO): a
// failed fsync of a snapshot's files or directories above all. On Linux
// a failed fsync cannot be retried safely (a later one that succeeds
// says nothing of the writes the failed one lost; Pebble gives up on one
// too, atomicfs.Marker.Move): the node must halt, so that its operator
// replaces the disk, rather than fail every snapshot, and every install
// of its leader's, for ever while it looks up (consensus.Start halts
// the FSM). Found by the cluster simulator's dir-sync-error fault.
func (s *CheckpointStore) OnDiskFailure(fn func(error)) {
	s.hookMu.Lock()
	s.onFailure = fn
	s.hookMu.Unlock()
}

// failed reports err, a snapshot's failure, to the failure hook if it is
// the disk's (EIO), and returns it.
func (s *CheckpointStore) failed(err error) error {
	if !errors.Is(err, syscall.EIO) {
		return err
	}
	s.hookMu.Lock()
	fn := s.onFailure
	s.hookMu.Unlock()
	if fn != nil {
		fn(err)
	}
	return err
}

// NewCheckpointStore opens (creating if needed) a store in dir, on the
// operating system's file system, that keeps the retain newest snapshots.
// Leftover .tmp directories from a crash are removed. A nil logger means
// slog.Default().
func NewCheckpointStore(dir string, retain int, logger *slog.Logger) (*CheckpointStore, error) {
	return NewCheckpointStoreFS(vfs.Default, dir, retain, logger)
}

// NewCheckpointStoreFS is NewCheckpointStore on the file system fs.
func NewCheckpointStoreFS(fs vfs.FS, dir string, retain int, logger *slog.Logger) (*CheckpointStore, error) {
	if retain < 1 {
		return nil, fmt.Errorf("snapshotstore: retain must be at least 1, got %d", retain)
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &CheckpointStore{
		fs:      fs,
		dir:     dir,
		retain:  retain,
		logger:  logger.With("component", "snapshotstore"),
		readers: make(map[string]int),
	}
	// The directory's entry in its parent is synced too: a snapshot in a
	// directory a crash forgets is lost with the Raft log it replaced.
	if err := durable.MkdirAllPerm(fs, dir, dirPerm); err != nil {
		return nil, fmt.Errorf("snapshotstore: create %s: %w", dir, err)
	}
	names, err := listSorted(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("snapshotstore: read %s: %w", dir, err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, tmpSuffix) {
			p := fs.PathJoin(dir, name)
			s.logger.Warn("removing incomplete snapshot", "path", p)
			if err := fs.RemoveAll(p); err != nil {
				return nil, fmt.Errorf("snapshotstore: remove incomplete snapshot %s: %w", p, err)
			}
		}
	}
	if err := syncDir(fs, dir); err != nil {
		return nil, fmt.Errorf("snapshotstore: open %s: %w", dir, err)
	}
	for _, name := range names {
		if validID(name) {
			s.lastMillis = max(s.lastMillis, int64(idMillis(name)))
		}
	}
	if err := s.reap(); err != nil {
		return nil, err
	}
	return s, nil
}

// Create starts a snapshot. The returned sink is a *CheckpointSink; fill it
// either through DataDir (local snapshot) or through Write (tar stream from
// the leader), never both, then Close or Cancel it. Only version 1 is
// supported (as raft's FileSnapshotStore); meta.Peers is therefore left empty.
func (s *CheckpointStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, _ raft.Transport,
) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("snapshotstore: create snapshot %d-%d: unsupported snapshot version %d", term, index, version)
	}
	// The name must be unique among final and temporary directories, and
	// its millisecond later than every name before it: List orders the
	// snapshots of one term and index by it, and retention keeps the
	// newest. Two snapshots of one index within one millisecond (a
	// follower the leader sends one snapshot again and again) take the
	// next one; had a later Create gone back to a millisecond retention
	// had freed, its snapshot would sort oldest and its own Close would
	// reap it before raft could restore it (cluster simulator seed 839).
	// A clock set back is outrun the same way.
	var id, tmp string
	// mu keeps two Creates of this store from picking one name (vfs.FS
	// has no exclusive mkdir) and guards lastMillis.
	s.mu.Lock()
	ms := max(time.Now().UnixMilli(), s.lastMillis+1)
	for {
		id = fmt.Sprintf("%d-%d-%d", term, index, ms)
		tmp = s.fs.PathJoin(s.dir, id+tmpSuffix)
		free, err := absent(s.fs, s.fs.PathJoin(s.dir, id))
		if err == nil && free {
			free, err = absent(s.fs, tmp)
		}
		if err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("snapshotstore: create snapshot %s: %w", id, err)
		}
		if free {
			if err := s.fs.MkdirAll(tmp, dirPerm); err != nil {
				s.mu.Unlock()
				return nil, fmt.Errorf("snapshotstore: create snapshot %s: %w", id, err)
			}
			break
		}
		ms++
	}
	s.lastMillis = ms
	s.mu.Unlock()
	s.logger.Info("creating snapshot", "id", id, "term", term, "index", index)
	return &CheckpointSink{
		store: s,
		tmp:   tmp,
		meta: raft.SnapshotMeta{
			Version:            version,
			ID:                 id,
			Index:              index,
			Term:               term,
			Configuration:      configuration,
			ConfigurationIndex: configurationIndex,
		},
	}, nil
}

// List returns the complete snapshots, newest first (by term, index, then
// creation time). Each meta's Size is what Open will stream.
func (s *CheckpointStore) List() ([]*raft.SnapshotMeta, error) {
	names, err := listSorted(s.fs, s.dir)
	if err != nil {
		return nil, fmt.Errorf("snapshotstore: list %s: %w", s.dir, err)
	}
	var metas []*raft.SnapshotMeta
	for _, name := range names {
		if strings.HasSuffix(name, tmpSuffix) {
			continue
		}
		if fi, err := lstat(s.fs, s.fs.PathJoin(s.dir, name)); err != nil || !fi.IsDir() {
			continue
		}
		meta, err := s.readMeta(name)
		if err != nil {
			// Not ours or damaged by hand; never hand it to raft.
			s.logger.Warn("ignoring unreadable snapshot", "id", name, "error", err)
			continue
		}
		metas = append(metas, meta)
	}
	slices.SortFunc(metas, func(a, b *raft.SnapshotMeta) int {
		return -cmp.Or(
			cmp.Compare(a.Term, b.Term),
			cmp.Compare(a.Index, b.Index),
			cmp.Compare(idMillis(a.ID), idMillis(b.ID)),
			strings.Compare(a.ID, b.ID),
		)
	})
	return metas, nil
}

// Open returns the snapshot's meta and a tar stream of its data/ directory,
// exactly meta.Size bytes long. The snapshot is protected from retention until
// the reader is closed; the caller must close it.
func (s *CheckpointStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if !validID(id) {
		return nil, nil, fmt.Errorf("snapshotstore: open snapshot %q: invalid id", id)
	}
	// Hold mu from the existence check to the reference so that a
	// concurrent reap cannot remove the snapshot in between.
	s.mu.Lock()
	meta, err := s.readMeta(id)
	if err != nil {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("snapshotstore: open snapshot %s: %w", id, err)
	}
	s.readers[id]++
	s.mu.Unlock()

	dataDir := s.fs.PathJoin(s.dir, id, dataDirName)
	entries, size, err := tarPlan(s.fs, dataDir)
	if err == nil && size != meta.Size {
		err = fmt.Errorf("data is %d tar bytes but meta.json says %d; snapshot changed on disk", size, meta.Size)
	}
	if err != nil {
		s.release(id)
		return nil, nil, fmt.Errorf("snapshotstore: open snapshot %s: %w", id, err)
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := writeTarPlan(pw, s.fs, dataDir, entries)
		pw.CloseWithError(err) // nil -> EOF for the reader
	}()
	return meta, &snapshotReader{pr: pr, done: done, release: func() { s.release(id) }}, nil
}

// DataDir returns the directory holding complete snapshot id's tree (a
// Pebble checkpoint of the state database), to be read in place and never
// written.
func (s *CheckpointStore) DataDir(id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("snapshotstore: snapshot %q: invalid id", id)
	}
	if _, err := s.readMeta(id); err != nil {
		return "", fmt.Errorf("snapshotstore: snapshot %s: %w", id, err)
	}
	return s.fs.PathJoin(s.dir, id, dataDirName), nil
}

// release drops one Open reference and applies retention deferred by it.
func (s *CheckpointStore) release(id string) {
	s.mu.Lock()
	if s.readers[id]--; s.readers[id] <= 0 {
		delete(s.readers, id)
	}
	s.mu.Unlock()
	if err := s.reap(); err != nil {
		s.logger.Error("snapshot retention failed", "error", err)
	}
}

// reap deletes complete snapshots beyond the retain newest, skipping those
// with open readers. Each victim is first renamed to a .tmp name under mu (so
// Open and List stop seeing it atomically, and a crash mid-delete is cleaned
// at the next open), then removed outside the lock.
func (s *CheckpointStore) reap() error {
	metas, err := s.List()
	if err != nil {
		return err
	}
	if len(metas) <= s.retain {
		return nil
	}
	var doomed []string
	s.mu.Lock()
	for _, m := range metas[s.retain:] {
		if s.readers[m.ID] > 0 {
			continue
		}
		from := s.fs.PathJoin(s.dir, m.ID)
		to := from + ".reap" + tmpSuffix
		if err := s.fs.Rename(from, to); err != nil {
			if oserror.IsNotExist(err) {
				continue // reaped concurrently
			}
			s.mu.Unlock()
			return fmt.Errorf("snapshotstore: reap snapshot %s: %w", m.ID, err)
		}
		doomed = append(doomed, to)
		s.logger.Info("reaping snapshot", "id", m.ID)
	}
	s.mu.Unlock()
	for _, p := range doomed {
		if err := s.fs.RemoveAll(p); err != nil {
			return fmt.Errorf("snapshotstore: reap %s: %w", p, err)
		}
	}
	return nil
}

func (s *CheckpointStore) readMeta(id string) (*raft.SnapshotMeta, error) {
	b, err := durable.ReadFile(s.fs, s.fs.PathJoin(s.dir, id, metaName))
	if err != nil {
		return nil, err
	}
	var meta raft.SnapshotMeta
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, fmt.Errorf("decode %s: %w", metaName, err)
	}
	if meta.ID != id {
		return nil, fmt.Errorf("%s names snapshot %q", metaName, meta.ID)
	}
	return &meta, nil
}

// validID accepts only names Create produces, so Open cannot be pointed
// outside the store.
func validID(id string) bool {
	parts := strings.Split(id, "-")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 64); err != nil {
			return false
		}
	}
	return true
}

func idMillis(id string) uint64 {
	i := strings.LastIndexByte(id, '-')
	ms, _ := strconv.ParseUint(id[i+1:], 10, 64)
	return ms
}

// snapshotReader is the stream Open returns. Close stops the tar writer,
// waits for it and releases the snapshot.
type snapshotReader struct {
	pr      *io.PipeReader
	done    chan struct{}
	release func()
	once    sync.Once
}

func (r *snapshotReader) Read(p []byte) (int, error) { return r.pr.Read(p) }

func (r *snapshotReader) Close() error {
	r.once.Do(func() {
		_ = r.pr.Close()
		<-r.done
		r.release()
	})
	return nil
}

// CheckpointSink is the raft.SnapshotSink returned by CheckpointStore.Create.
// It is filled in exactly one of two ways:
//
//   - Local snapshot: the FSM writes a tree (a Pebble checkpoint) at
//     DataDir() and calls Close.
//   - Installed snapshot: raft copies the leader's tar stream into Write;
//     entries are extracted into data/ as they arrive and Close waits for
//     the extractor.
//
// Close makes the snapshot durable and visible; Cancel discards it. A sink is
// meant to be used by one goroutine; its methods are nonetheless serialised.
type CheckpointSink struct {
	store *CheckpointStore
	tmp   string // <dir>/<id>.tmp
	meta  raft.SnapshotMeta

	mu       sync.Mutex
	mode     sinkMode
	done     bool  // Close or Cancel called
	closeErr error // result of the first Close, returned by later ones
	canceled bool
	pw       *io.PipeWriter
	extractC chan error
}

type sinkMode int

const (
	sinkUnused sinkMode = iota
	sinkDir
	sinkStream
)

var _ raft.SnapshotSink = (*CheckpointSink)(nil)

// ID returns the snapshot ID, usable with Open once Close succeeded.
func (k *CheckpointSink) ID() string { return k.meta.ID }

// DataDir returns the path where the FSM must create the snapshot tree. The
// directory does not exist yet (pebble's Checkpoint insists on creating its
// target); its parent does. If nothing is created there, Close records an
// empty snapshot. Mixing DataDir with Write makes Close fail.
func (k *CheckpointSink) DataDir() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.mode == sinkUnused {
		k.mode = sinkDir
	}
	return k.store.fs.PathJoin(k.tmp, dataDirName)
}

// Write receives part of a tar stream (the format Open produces) and extracts
// it into data/ concurrently. Bytes after the tar end marker are discarded.
func (k *CheckpointSink) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done {
		return 0, fmt.Errorf("snapshotstore: write snapshot %s: sink is closed", k.meta.ID)
	}
	switch k.mode {
	case sinkDir:
		return 0, fmt.Errorf("snapshotstore: write snapshot %s: DataDir already in use", k.meta.ID)
	case sinkUnused:
		k.mode = sinkStream
		pr, pw := io.Pipe()
		k.pw = pw
		k.extractC = make(chan error, 1)
		dataDir := k.store.fs.PathJoin(k.tmp, dataDirName)
		go func() {
			err := k.store.failed(ExtractTarFS(pr, k.store.fs, dataDir))
			if err == nil {
				// Keep Write from blocking on trailing padding.
				_, err = io.Copy(io.Discard, pr)
			}
			if err != nil {
				pr.CloseWithError(err) // fail the pending and later Writes
			}
			k.extractC <- err
		}()
	}
	n, err := k.pw.Write(p)
	if err != nil {
		return n, fmt.Errorf("snapshotstore: write snapshot %s: %w", k.meta.ID, err)
	}
	return n, nil
}

// Close finishes the snapshot: it waits for extraction (Write path), fsyncs
// data/, writes meta.json with the exact tar Size, atomically renames the
// directory into place and applies retention. On error the partial snapshot
// is removed and nothing becomes listed.
//
// Close is idempotent: by convention FSMSnapshot.Persist closes the sink and
// raft closes it again afterwards; later calls return the first result.
func (k *CheckpointSink) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.canceled {
		return fmt.Errorf("snapshotstore: close snapshot %s: sink was canceled", k.meta.ID)
	}
	if k.done {
		return k.closeErr
	}
	k.done = true
	if err := k.store.failed(k.finish()); err != nil {
		_ = k.store.fs.RemoveAll(k.tmp)
		k.closeErr = fmt.Errorf("snapshotstore: close snapshot %s: %w", k.meta.ID, err)
		return k.closeErr
	}
	k.store.logger.Info("snapshot complete", "id", k.meta.ID, "size", k.meta.Size)
	if err := k.store.reap(); err != nil {
		// The new snapshot is durable; failing retention must not fail it.
		k.store.logger.Error("snapshot retention failed", "error", err)
	}
	return nil
}

func (k *CheckpointSink) finish() error {
	if k.mode == sinkStream {
		_ = k.pw.Close()
		if err := <-k.extractC; err != nil {
			return fmt.Errorf("extract: %w", err)
		}
	}
	fs := k.store.fs
	dataDir := fs.PathJoin(k.tmp, dataDirName)
	fi, err := lstat(fs, dataDir)
	switch {
	case oserror.IsNotExist(err):
		if err := fs.MkdirAll(dataDir, dirPerm); err != nil {
			return err
		}
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dataDir)
	}
	if err := syncTree(fs, dataDir); err != nil {
		return err
	}
	_, size, err := tarPlan(fs, dataDir)
	if err != nil {
		return err
	}
	k.meta.Size = size
	b, err := json.Marshal(&k.meta)
	if err != nil {
		return err
	}
	if err := writeFileSync(fs, fs.PathJoin(k.tmp, metaName), b); err != nil {
		return err
	}
	if err := syncDir(fs, k.tmp); err != nil {
		return err
	}
	if err := fs.Rename(k.tmp, fs.PathJoin(k.store.dir, k.meta.ID)); err != nil {
		return err
	}
	return syncDir(fs, k.store.dir)
}

// Cancel discards the snapshot. It is a no-op after Close.
func (k *CheckpointSink) Cancel() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done {
		return nil
	}
	k.done, k.canceled = true, true
	if k.mode == sinkStream {
		_ = k.pw.CloseWithError(errors.New("snapshot canceled"))
		<-k.extractC
	}
	if err := k.store.fs.RemoveAll(k.tmp); err != nil {
		return fmt.Errorf("snapshotstore: cancel snapshot %s: %w", k.meta.ID, err)
	}
	k.store.logger.Info("snapshot canceled", "id", k.meta.ID)
	return nil
}

// WriteTar writes the tree under dir (on the operating system's file
// system) to w as an uncompressed tar and returns the bytes written. Output
// is a function of names and file contents only: entries in lexical path
// order, fixed modes (0755 dirs, 0644 files), zero owners and a zero (1970)
// mtime, so equal trees give equal bytes and the size is predictable from
// file sizes. dir itself is not an entry. Only regular files and directories
// are allowed; anything else is an error.
func WriteTar(w io.Writer, dir string) (int64, error) {
	return WriteTarFS(w, vfs.Default, dir)
}

// WriteTarFS is WriteTar of a tree on the file system fs.
func WriteTarFS(w io.Writer, fs vfs.FS, dir string) (int64, error) {
	entries, _, err := tarPlan(fs, dir)
	if err != nil {
		return 0, fmt.Errorf("snapshotstore: write tar of %s: %w", dir, err)
	}
	n, err := writeTarPlan(w, fs, dir, entries)
	if err != nil {
		return n, fmt.Errorf("snapshotstore: write tar of %s: %w", dir, err)
	}
	return n, nil
}

// walkTree calls fn for every entry under dir (dir itself excluded), with
// its slash-separated name relative to dir, in lexical order of each
// directory's names, a directory before its contents (fs.WalkDir's order).
// Symbolic links are reported as such, not followed.
func walkTree(fs vfs.FS, dir string, fn func(name string, fi os.FileInfo) error) error {
	var walk func(rel string) error
	walk = func(rel string) error {
		names, err := listSorted(fs, fs.PathJoin(dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		for _, n := range names {
			name := path.Join(rel, n)
			fi, err := lstat(fs, fs.PathJoin(dir, filepath.FromSlash(name)))
			if err != nil {
				return err
			}
			if err := fn(name, fi); err != nil {
				return err
			}
			if fi.IsDir() {
				if err := walk(name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	fi, err := lstat(fs, dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return walk("")
}

// tarPlan lists the headers WriteTar will emit for dir and the exact size of
// the resulting stream, without reading file contents.
func tarPlan(fs vfs.FS, dir string) ([]*tar.Header, int64, error) {
	var hdrs []*tar.Header
	var size int64
	err := walkTree(fs, dir, func(name string, fi os.FileInfo) error {
		hdr := &tar.Header{ModTime: time.Unix(0, 0)}
		switch {
		case fi.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", dirPerm
		case fi.Mode().IsRegular():
			hdr.Typeflag, hdr.Name, hdr.Mode, hdr.Size = tar.TypeReg, name, filePerm, fi.Size()
		default:
			return fmt.Errorf("%s: unsupported file type %v", name, fi.Mode().Type())
		}
		// A header's encoding does not depend on earlier entries, so
		// measuring it with a throwaway writer gives the exact length.
		var c countingWriter
		if err := tar.NewWriter(&c).WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		size += c.n + blockPad(hdr.Size)
		hdrs = append(hdrs, hdr)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return hdrs, size + 2*tarBlock, nil // end-of-archive marker
}

const tarBlock = 512

func blockPad(n int64) int64 { return (n + tarBlock - 1) / tarBlock * tarBlock }

// writeTarPlan streams the entries of a plan. A file whose size changed since
// planning is an error, so the stream never silently disagrees with the
// planned size.
func writeTarPlan(w io.Writer, fs vfs.FS, dir string, hdrs []*tar.Header) (int64, error) {
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	for _, hdr := range hdrs {
		if err := tw.WriteHeader(hdr); err != nil {
			return cw.n, fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := copyFileExact(tw, fs, dir, hdr); err != nil {
			return cw.n, err
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

func copyFileExact(tw *tar.Writer, fs vfs.FS, dir string, hdr *tar.Header) error {
	p := fs.PathJoin(dir, filepath.FromSlash(hdr.Name))
	fi, err := lstat(fs, p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() != hdr.Size {
		return fmt.Errorf("%s: changed while being archived", hdr.Name)
	}
	f, err := fs.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() != hdr.Size {
		return fmt.Errorf("%s: changed while being archived", hdr.Name)
	}
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("%s: %w", hdr.Name, err)
	}
	return nil
}

// ExtractTar extracts a tar stream into dir (created if missing) on the
// operating system's file system and fsyncs what it wrote, so the tree is
// durable when it returns nil. It accepts only regular files and directories
// with relative, "..-free" names, refuses to overwrite an existing file and
// to go through a symbolic link found in dir, so nothing outside dir is ever
// touched. On error dir may hold a partial tree; the caller removes it.
func ExtractTar(r io.Reader, dir string) error {
	return ExtractTarFS(r, vfs.Default, dir)
}

// ExtractTarFS is ExtractTar into a directory of the file system fs. dir's
// own entry in its parent is synced too, so that the tree is reachable after
// a crash.
func ExtractTarFS(r io.Reader, fs vfs.FS, dir string) error {
	if err := durable.MkdirAllPerm(fs, dir, dirPerm); err != nil {
		return fmt.Errorf("snapshotstore: extract tar: %w", err)
	}
	dirs := map[string]struct{}{".": {}}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("snapshotstore: extract tar into %s: %w", dir, err)
		}
		name, err := tarEntryName(hdr)
		if err != nil {
			return fmt.Errorf("snapshotstore: extract tar into %s: %w", dir, err)
		}
		// archive/tar expands GNU sparse entries (PAX flavour, typeflag
		// still '0') to their logical size: a few bytes of stream could
		// demand terabytes of zeros on disk. WriteTar never emits them.
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return fmt.Errorf("snapshotstore: extract tar into %s: %s: sparse entries are not supported", dir, hdr.Name)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := mkdirInside(fs, dir, name); err != nil {
				return fmt.Errorf("snapshotstore: extract tar into %s: %w", dir, err)
			}
			addDirs(dirs, name)
		case tar.TypeReg:
			parent := path.Dir(name)
			if err := mkdirInside(fs, dir, parent); err != nil {
				return fmt.Errorf("snapshotstore: extract tar into %s: %w", dir, err)
			}
			addDirs(dirs, parent)
			if err := extractFile(fs, fs.PathJoin(dir, filepath.FromSlash(name)), tr); err != nil {
				return fmt.Errorf("snapshotstore: extract tar into %s: %s: %w", dir, name, err)
			}
		default:
			return fmt.Errorf("snapshotstore: extract tar into %s: %s: unsupported entry type %q", dir, hdr.Name, hdr.Typeflag)
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := syncDir(fs, fs.PathJoin(dir, filepath.FromSlash(d))); err != nil {
			return fmt.Errorf("snapshotstore: extract tar into %s: sync %s: %w", dir, d, err)
		}
	}
	return nil
}

// mkdirInside creates the directory name (slash-separated, relative, checked
// by tarEntryName) and its missing parents inside dir, refusing to pass
// through anything that is not a directory (a symbolic link planted in dir
// could lead outside it).
func mkdirInside(fs vfs.FS, dir, name string) error {
	p := dir
	for _, elem := range strings.Split(name, "/") {
		if elem == "." {
			continue
		}
		p = fs.PathJoin(p, elem)
		fi, err := lstat(fs, p)
		switch {
		case oserror.IsNotExist(err):
			if err := fs.MkdirAll(p, dirPerm); err != nil {
				return err
			}
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("%s: not a directory", name)
		}
	}
	return nil
}

// addDirs records d and its ancestors: MkdirAll may have created any of
// them, and each new directory entry needs its parent fsynced.
func addDirs(dirs map[string]struct{}, d string) {
	for ; d != "."; d = path.Dir(d) {
		if _, ok := dirs[d]; ok {
			return
		}
		dirs[d] = struct{}{}
	}
}

// tarEntryName validates a tar entry name and returns it in clean,
// slash-separated, relative form.
func tarEntryName(hdr *tar.Header) (string, error) {
	raw := hdr.Name
	name := strings.TrimSuffix(raw, "/")
	if name == "" || strings.ContainsRune(name, 0) || strings.HasPrefix(name, "/") || strings.Contains(name, `\`) {
		return "", fmt.Errorf("refusing entry name %q", raw)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("refusing entry name %q: contains a parent-directory element", raw)
		}
	}
	name = path.Clean(name)
	if name == "." || !filepath.IsLocal(filepath.FromSlash(name)) {
		return "", fmt.Errorf("refusing entry name %q", raw)
	}
	return name, nil
}

// extractFile creates the file p, which must not exist, from r and syncs it.
func extractFile(fs vfs.FS, p string, r io.Reader) error {
	if _, err := lstat(fs, p); err == nil {
		return fmt.Errorf("%s: %w", p, oserror.ErrExist)
	} else if !oserror.IsNotExist(err) {
		return err
	}
	f, err := fs.Create(p, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

type countingWriter struct {
	w io.Writer // nil: count only
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.w == nil {
		c.n += int64(len(p))
		return len(p), nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// syncTree fsyncs every file and directory under dir, dir included.
func syncTree(fs vfs.FS, dir string) error {
	if err := walkTree(fs, dir, func(name string, fi os.FileInfo) error {
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: unsupported file type %v", name, fi.Mode().Type())
		}
		return syncFile(fs, fs.PathJoin(dir, filepath.FromSlash(name)), fi.IsDir())
	}); err != nil {
		return err
	}
	return syncDir(fs, dir)
}

// syncDir fsyncs a directory, so renames and creations in it are durable.
func syncDir(fs vfs.FS, dir string) error { return syncFile(fs, dir, true) }

// syncFile fsyncs the file or directory p.
func syncFile(fs vfs.FS, p string, isDir bool) error {
	var f vfs.File
	var err error
	if isDir {
		f, err = fs.OpenDir(p)
	} else {
		f, err = fs.Open(p)
	}
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func writeFileSync(fs vfs.FS, name string, b []byte) error {
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// listSorted lists dir's names in lexical order.
func listSorted(fs vfs.FS, dir string) ([]string, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// lstat is fs.Stat without following a final symbolic link. vfs.FS has no
// Lstat; of the file systems the store runs on only the operating system's
// has symbolic links, and the store refuses them (a snapshot cannot stream
// one, and one planted where a snapshot is extracted could lead outside).
func lstat(fs vfs.FS, name string) (os.FileInfo, error) {
	if vfs.Root(fs) == vfs.Default {
		return os.Lstat(name)
	}
	return fs.Stat(name)
}

// absent reports whether nothing is at name.
func absent(fs vfs.FS, name string) (bool, error) {
	_, err := lstat(fs, name)
	if oserror.IsNotExist(err) {
		return true, nil
	}
	return false, err
}
