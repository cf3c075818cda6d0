package consensus

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// writeTree creates files (and, for names ending in "/", directories).
func writeTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			must(t, os.MkdirAll(p, 0o755))
			continue
		}
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, data, 0o644))
	}
}

// readTree returns every file's contents and every directory (as "name/")
// under dir.
func readTree(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			out[rel+"/"] = nil
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			out[rel] = b
			return err
		default:
			return fmt.Errorf("%s: unexpected type %v", rel, d.Type())
		}
		return nil
	})
	must(t, err)
	return out
}

// treesEqual compares trees; want may omit directories implied by its
// files.
func treesEqual(t testing.TB, got, want map[string][]byte) {
	t.Helper()
	want = maps.Clone(want)
	for name := range maps.Clone(want) {
		for d := filepath.Dir(strings.TrimSuffix(name, "/")); d != "."; d = filepath.Dir(d) {
			want[d+"/"] = nil
		}
	}
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("tree names differ:\n got %q\nwant %q", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("%s: contents differ (%d vs %d bytes)", k, len(got[k]), len(v))
		}
	}
}

// sampleTree covers the size corner cases of tar: empty files, exact block
// multiples, names needing USTAR prefix splitting and PAX records, nesting
// and empty directories.
func sampleTree() map[string][]byte {
	rnd := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 1<<20+3)
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	return map[string][]byte{
		"MANIFEST-000001":                  []byte("manifest"),
		"000002.sst":                       big,
		"empty":                            {},
		"block512":                         bytes.Repeat([]byte{1}, 512),
		"block513":                         bytes.Repeat([]byte{2}, 513),
		"sub/dir/nested.log":               []byte("nested"),
		"emptydir/":                        nil,
		strings.Repeat("n", 99):            []byte("99"),
		strings.Repeat("l", 150):           []byte("pax name"),
		strings.Repeat("p", 120) + "/file": []byte("ustar prefix"),
		"unicodé-名前":                       []byte("utf8 name needs pax"),
	}
}

func newTestCheckpointStore(t testing.TB, dir string, retain int) *CheckpointStore {
	t.Helper()
	s, err := NewCheckpointStore(dir, retain, testLogger(t))
	must(t, err)
	return s
}

var testConfig = raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "n1", Address: "n1"}}}

// createLocal makes a snapshot through DataDir, the path the FSM uses.
func createLocal(t testing.TB, s *CheckpointStore, term, index uint64, files map[string][]byte) string {
	t.Helper()
	sink, err := s.Create(1, index, term, testConfig, 1, nil)
	must(t, err)
	dataDir := sink.(*CheckpointSink).DataDir()
	if _, err := os.Lstat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("DataDir exists before the FSM writes it: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(dataDir)); err != nil {
		t.Fatalf("DataDir's parent missing: %v", err)
	}
	must(t, os.Mkdir(dataDir, 0o755))
	writeTree(t, dataDir, files)
	must(t, sink.Close())
	must(t, sink.Close())  // raft closes again after Persist
	must(t, sink.Cancel()) // no-op after Close
	return sink.ID()
}

func openAll(t testing.TB, s *CheckpointStore, id string) (*raft.SnapshotMeta, []byte) {
	t.Helper()
	meta, rc, err := s.Open(id)
	must(t, err)
	b, err := io.ReadAll(rc)
	must(t, err)
	must(t, rc.Close())
	if int64(len(b)) != meta.Size {
		t.Fatalf("Open streamed %d bytes, meta.Size = %d", len(b), meta.Size)
	}
	return meta, b
}

func TestCheckpointStoreRoundTrip(t *testing.T) {
	files := sampleTree()
	s1 := newTestCheckpointStore(t, t.TempDir(), 2)
	id := createLocal(t, s1, 3, 42, files)

	metas, err := s1.List()
	must(t, err)
	if len(metas) != 1 || metas[0].ID != id || metas[0].Index != 42 || metas[0].Term != 3 ||
		metas[0].Version != 1 || metas[0].ConfigurationIndex != 1 || len(metas[0].Configuration.Servers) != 1 {
		t.Fatalf("List = %+v", metas)
	}
	meta, stream := openAll(t, s1, id)
	if metas[0].Size != meta.Size {
		t.Fatalf("List Size %d != Open Size %d", metas[0].Size, meta.Size)
	}

	// Byte-identical to WriteTar of the source tree: the format is
	// deterministic and independent of mtimes.
	src := t.TempDir()
	writeTree(t, src, files)
	must(t, os.Chtimes(filepath.Join(src, "empty"), time.Now(), time.Unix(12345, 0)))
	var direct bytes.Buffer
	n, err := WriteTar(&direct, src)
	must(t, err)
	if n != int64(direct.Len()) || !bytes.Equal(direct.Bytes(), stream) {
		t.Fatalf("WriteTar (%d bytes, n=%d) differs from Open stream (%d bytes)", direct.Len(), n, len(stream))
	}

	out := filepath.Join(t.TempDir(), "out")
	must(t, ExtractTar(bytes.NewReader(stream), out))
	treesEqual(t, readTree(t, out), files)

	// Install path: raft copies the leader's stream into a fresh sink, in
	// arbitrary chunk sizes.
	s2 := newTestCheckpointStore(t, t.TempDir(), 2)
	sink, err := s2.Create(1, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, nil)
	must(t, err)
	rnd := rand.New(rand.NewPCG(3, 4))
	for rest := stream; len(rest) > 0; {
		k := min(len(rest), 1+rnd.IntN(70000))
		if _, err := sink.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	must(t, sink.Close())
	meta2, stream2 := openAll(t, s2, sink.ID())
	if meta2.Size != meta.Size || !bytes.Equal(stream, stream2) {
		t.Fatalf("installed snapshot streams %d bytes, original %d", meta2.Size, meta.Size)
	}
	treesEqual(t, readTree(t, filepath.Join(s2.dir, sink.ID(), dataDirName)), files)
}

func TestCheckpointStoreEmptySnapshot(t *testing.T) {
	s := newTestCheckpointStore(t, t.TempDir(), 1)
	sink, err := s.Create(1, 1, 1, testConfig, 1, nil)
	must(t, err)
	must(t, sink.Close()) // neither DataDir nor Write
	meta, b := openAll(t, s, sink.ID())
	if meta.Size != 1024 {
		t.Fatalf("empty snapshot Size = %d, want 1024 (end marker)", meta.Size)
	}
	must(t, ExtractTar(bytes.NewReader(b), t.TempDir()))
}

func TestCheckpointStoreCancel(t *testing.T) {
	dir := t.TempDir()
	s := newTestCheckpointStore(t, dir, 2)

	sink, err := s.Create(1, 5, 1, testConfig, 1, nil)
	must(t, err)
	writeTree(t, sink.(*CheckpointSink).DataDir(), map[string][]byte{"a": []byte("x")})
	must(t, sink.Cancel())
	must(t, sink.Cancel())

	// Cancel in the middle of a received stream.
	var buf bytes.Buffer
	src := t.TempDir()
	writeTree(t, src, sampleTree())
	_, err = WriteTar(&buf, src)
	must(t, err)
	sink, err = s.Create(1, 6, 1, testConfig, 1, nil)
	must(t, err)
	_, err = sink.Write(buf.Bytes()[:buf.Len()/2])
	must(t, err)
	must(t, sink.Cancel())
	if err := sink.Close(); err == nil {
		t.Fatal("Close after Cancel succeeded")
	}

	if metas, err := s.List(); err != nil || len(metas) != 0 {
		t.Fatalf("List after cancel = %v, %v", metas, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("cancel left %v", ents)
	}
}

func TestCheckpointStoreBadInput(t *testing.T) {
	dir := t.TempDir()
	s := newTestCheckpointStore(t, dir, 2)

	// Garbage stream: Close fails and nothing is listed.
	sink, err := s.Create(1, 5, 1, testConfig, 1, nil)
	must(t, err)
	_, _ = sink.Write(bytes.Repeat([]byte("garbage!"), 200))
	if err := sink.Close(); err == nil {
		t.Fatal("Close of a garbage stream succeeded")
	}

	// DataDir and Write are exclusive.
	sink, err = s.Create(1, 6, 1, testConfig, 1, nil)
	must(t, err)
	_ = sink.(*CheckpointSink).DataDir()
	if _, err := sink.Write([]byte("x")); err == nil {
		t.Fatal("Write after DataDir succeeded")
	}
	must(t, sink.Cancel())

	// A symlink in the tree is refused at Close: it could not be streamed.
	sink, err = s.Create(1, 7, 1, testConfig, 1, nil)
	must(t, err)
	dd := sink.(*CheckpointSink).DataDir()
	must(t, os.Mkdir(dd, 0o755))
	must(t, os.Symlink("/etc/passwd", filepath.Join(dd, "link")))
	if err := sink.Close(); err == nil {
		t.Fatal("Close with a symlink succeeded")
	}

	if _, err := s.Create(0, 8, 1, testConfig, 1, nil); err == nil {
		t.Fatal("Create accepted snapshot version 0")
	}
	for _, id := range []string{"../x", "1-2", "1-2-3.tmp", "", "a-b-c"} {
		if _, _, err := s.Open(id); err == nil {
			t.Fatalf("Open(%q) succeeded", id)
		}
	}
	if metas, err := s.List(); err != nil || len(metas) != 0 {
		t.Fatalf("List = %v, %v", metas, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("failed snapshots left %v", ents)
	}

	// Tampering after Close breaks the Size invariant; Open must refuse
	// rather than stream a byte count the follower would reject.
	id := createLocal(t, s, 1, 9, map[string][]byte{"f": []byte("abc")})
	// (A change within the same 512-byte block keeps the stream length, so
	// the invariant holds; grow the file past a block boundary.)
	must(t, os.WriteFile(filepath.Join(dir, id, dataDirName, "f"), make([]byte, 600), 0o644))
	if _, _, err := s.Open(id); err == nil {
		t.Fatal("Open of a modified snapshot succeeded")
	}
}

func TestCheckpointStoreRetain(t *testing.T) {
	dir := t.TempDir()
	s := newTestCheckpointStore(t, dir, 2)
	var ids []string
	for i := uint64(1); i <= 4; i++ {
		ids = append(ids, createLocal(t, s, 1, i*10, map[string][]byte{"i": {byte(i)}}))
	}
	// A higher term beats a higher index.
	ids = append(ids, createLocal(t, s, 2, 5, map[string][]byte{"i": {5}}))
	metas, err := s.List()
	must(t, err)
	if len(metas) != 2 || metas[0].ID != ids[4] || metas[1].ID != ids[3] {
		t.Fatalf("List = %v, want [%s %s]", metaIDs(metas), ids[4], ids[3])
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("dir holds %d entries, want 2", len(ents))
	}
}

func metaIDs(ms []*raft.SnapshotMeta) []string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

// TestCheckpointStoreRetainWaitsForReaders: a snapshot being streamed to a
// follower must survive retention until its reader is closed.
func TestCheckpointStoreRetainWaitsForReaders(t *testing.T) {
	dir := t.TempDir()
	s := newTestCheckpointStore(t, dir, 1)
	old := createLocal(t, s, 1, 1, sampleTree())
	meta, rc, err := s.Open(old)
	must(t, err)
	head := make([]byte, 100)
	_, err = io.ReadFull(rc, head)
	must(t, err)

	newer := createLocal(t, s, 1, 2, map[string][]byte{"x": nil})
	if metas, _ := s.List(); len(metas) != 2 {
		t.Fatalf("snapshot with an open reader was reaped: %v", metaIDs(metas))
	}
	rest, err := io.ReadAll(rc)
	must(t, err)
	if int64(len(head)+len(rest)) != meta.Size {
		t.Fatalf("streamed %d bytes, want %d", len(head)+len(rest), meta.Size)
	}
	must(t, rc.Close())
	must(t, rc.Close())
	metas, _ := s.List()
	if len(metas) != 1 || metas[0].ID != newer {
		t.Fatalf("after close List = %v, want [%s]", metaIDs(metas), newer)
	}

	// A reader closed early stops the stream without error.
	_, rc, err = s.Open(newer)
	must(t, err)
	must(t, rc.Close())
}

func TestCheckpointStoreCleansTmpAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := newTestCheckpointStore(t, dir, 3)
	keep := createLocal(t, s, 1, 1, map[string][]byte{"a": []byte("a")})
	writeTree(t, dir, map[string][]byte{
		"1-2-3.tmp/data/half.sst":      []byte("partial"),
		"1-2-3.tmp/meta.json":          []byte("{}"),
		"1-1-1.reap.tmp/data/old.sst":  []byte("old"),
		"2-5-9.tmp/":                   nil,
		"not-a-snapshot.tmp/file.json": []byte("x"),
	})
	if metas, _ := s.List(); len(metas) != 1 {
		t.Fatalf("List shows in-progress snapshots: %v", metaIDs(metas))
	}
	newTestCheckpointStore(t, dir, 3)
	ents, err := os.ReadDir(dir)
	must(t, err)
	if len(ents) != 1 || ents[0].Name() != keep {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("after reopen dir holds %v, want [%s]", names, keep)
	}
}

// TestCheckpointStorePebbleCheckpoint uses the real producer: a Pebble
// checkpoint written into DataDir, restored on the other side.
func TestCheckpointStorePebbleCheckpoint(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: testPebbleLogger(t)})
	must(t, err)
	defer db.Close()
	for i := range 1000 {
		must(t, db.Set(fmt.Appendf(nil, "key-%04d", i), fmt.Appendf(nil, "val-%d", i), pebble.NoSync))
	}
	must(t, db.Flush())
	must(t, db.Set([]byte("in-wal"), []byte("yes"), pebble.Sync))

	s := newTestCheckpointStore(t, t.TempDir(), 1)
	sink, err := s.Create(1, 10, 2, testConfig, 1, nil)
	must(t, err)
	must(t, db.Checkpoint(sink.(*CheckpointSink).DataDir(), pebble.WithFlushedWAL()))
	must(t, sink.Close())

	_, stream := openAll(t, s, sink.ID())
	out := filepath.Join(t.TempDir(), "restored")
	must(t, ExtractTar(bytes.NewReader(stream), out))
	db2, err := pebble.Open(out, &pebble.Options{Logger: testPebbleLogger(t)})
	must(t, err)
	defer db2.Close()
	for _, k := range []string{"key-0000", "key-0999", "in-wal"} {
		v, closer, err := db2.Get([]byte(k))
		if err != nil {
			t.Fatalf("restored db: get %s: %v", k, err)
		}
		_ = closer.Close()
		_ = v
	}
}

// tarOf builds a tar from headers; a regular file's body is its name.
func tarOf(t testing.TB, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		var body []byte
		if h.Typeflag == tar.TypeReg {
			body = []byte(h.Name)
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		must(t, tw.WriteHeader(h))
		_, err := tw.Write(body)
		must(t, err)
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// sparseBombTar is a GNU PAX 1.0 sparse entry: 2.5 KiB of stream claiming
// a 1 TiB file of zeros. archive/tar's writer refuses GNU.sparse records, so
// the PAX header is an ordinary entry whose typeflag is patched to 'x'.
func sparseBombTar(t testing.TB) []byte {
	t.Helper()
	var recs []byte
	for _, kv := range [][2]string{
		{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", "bomb"}, {"GNU.sparse.realsize", "1099511627776"},
	} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + 1
		for len(fmt.Sprint(n))+len(rec) != n {
			n++
		}
		recs = fmt.Appendf(recs, "%d%s", n, rec)
	}
	sparseMap := make([]byte, 512)
	copy(sparseMap, "1\n0\n0\n")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct {
		name string
		body []byte
	}{{"PaxHeaders/bomb", recs}, {"GNUSparseFile.0/bomb", sparseMap}} {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Format: tar.FormatUSTAR}))
		_, err := tw.Write(e.body)
		must(t, err)
	}
	must(t, tw.Close())
	b := buf.Bytes()
	b[156] = tar.TypeXHeader
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b[:512] {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	// Check the reader really expands it, so the test guards something.
	hdr, err := tar.NewReader(bytes.NewReader(b)).Next()
	must(t, err)
	if hdr.Size != 1<<40 || hdr.Typeflag != tar.TypeReg {
		t.Fatalf("sparse entry decoded as size %d type %q", hdr.Size, hdr.Typeflag)
	}
	return b
}

func reg(name string) *tar.Header { return &tar.Header{Typeflag: tar.TypeReg, Name: name} }

// checkConfined asserts parent holds only dest and that dest holds only
// regular files and directories.
func checkConfined(t testing.TB, parent, dest string) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	must(t, err)
	for _, e := range ents {
		if e.Name() != filepath.Base(dest) && e.Name() != "outside" {
			t.Fatalf("extraction wrote %s outside its directory", e.Name())
		}
	}
	if b, err := os.ReadFile(filepath.Join(parent, "outside", "keep")); err != nil || string(b) != "keep" {
		t.Fatalf("file outside dest was modified: %q, %v", b, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(parent, "outside")); len(ents) != 1 {
		t.Fatalf("extraction wrote into a sibling directory: %v", ents)
	}
	_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !d.Type().IsRegular() {
			t.Fatalf("extraction created %s of type %v", p, d.Type())
		}
		return nil
	})
}

func newExtractSandbox(t testing.TB) (parent, dest string) {
	parent = t.TempDir()
	writeTree(t, parent, map[string][]byte{"outside/keep": []byte("keep")})
	return parent, filepath.Join(parent, "dest")
}

func TestExtractTarRejects(t *testing.T) {
	tests := []struct {
		name  string
		tar   func(t testing.TB) []byte
		setup func(t testing.TB, parent, dest string)
	}{
		{"dotdot", func(t testing.TB) []byte { return tarOf(t, reg("../evil")) }, nil},
		{"dotdot into sibling", func(t testing.TB) []byte { return tarOf(t, reg("../outside/evil")) }, nil},
		{"nested dotdot", func(t testing.TB) []byte { return tarOf(t, reg("a/../../evil")) }, nil},
		{"dotdot staying inside", func(t testing.TB) []byte { return tarOf(t, reg("a/../b")) }, nil},
		{"dotdot dir", func(t testing.TB) []byte {
			return tarOf(t, &tar.Header{Typeflag: tar.TypeDir, Name: "../evil/", Mode: 0o755})
		}, nil},
		{"absolute", func(t testing.TB) []byte { return tarOf(t, reg("/tmp/evil")) }, nil},
		{"absolute into sibling", func(t testing.TB) []byte { return tarOf(t, reg("/outside/evil")) }, nil},
		{"empty name", func(t testing.TB) []byte { return tarOf(t, reg("")) }, nil},
		{"dot file", func(t testing.TB) []byte { return tarOf(t, reg(".")) }, nil},
		{"symlink", func(t testing.TB) []byte {
			return tarOf(t, &tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "../outside"})
		}, nil},
		{"symlink then write through it", func(t testing.TB) []byte {
			return tarOf(t, &tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "/tmp"}, reg("link/evil"))
		}, nil},
		{"hard link", func(t testing.TB) []byte {
			return tarOf(t, &tar.Header{Typeflag: tar.TypeLink, Name: "hl", Linkname: "../outside/keep"})
		}, nil},
		{"char device", func(t testing.TB) []byte {
			return tarOf(t, &tar.Header{Typeflag: tar.TypeChar, Name: "dev", Devmajor: 1, Devminor: 3})
		}, nil},
		{"fifo", func(t testing.TB) []byte { return tarOf(t, &tar.Header{Typeflag: tar.TypeFifo, Name: "fifo"}) }, nil},
		{"pax sparse bomb", sparseBombTar, nil},
		{"duplicate file", func(t testing.TB) []byte { return tarOf(t, reg("a"), reg("a")) }, nil},
		{"pre-existing symlink in dest", func(t testing.TB) []byte { return tarOf(t, reg("link/evil")) },
			func(t testing.TB, parent, dest string) {
				must(t, os.MkdirAll(dest, 0o755))
				must(t, os.Symlink(filepath.Join(parent, "outside"), filepath.Join(dest, "link")))
			}},
		{"truncated", func(t testing.TB) []byte {
			b := tarOf(t, reg(strings.Repeat("x", 2000)))
			return b[:700]
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent, dest := newExtractSandbox(t)
			if tc.setup != nil {
				tc.setup(t, parent, dest)
			}
			if err := ExtractTar(bytes.NewReader(tc.tar(t)), dest); err == nil {
				t.Fatal("ExtractTar succeeded")
			}
			if tc.setup == nil {
				checkConfined(t, parent, dest)
			} else if _, err := os.Stat(filepath.Join(parent, "outside", "evil")); err == nil {
				t.Fatal("wrote through a symlink")
			}
		})
	}
}

func TestExtractTarAccepts(t *testing.T) {
	parent, dest := newExtractSandbox(t)
	b := tarOf(t,
		reg("./dot-prefixed"),
		reg("implicit/parent/file"),
		&tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o700},
		&tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o700}, // repeated dir is fine
	)
	must(t, ExtractTar(bytes.NewReader(b), dest))
	checkConfined(t, parent, dest)
	treesEqual(t, readTree(t, dest), map[string][]byte{
		"dot-prefixed":         []byte("./dot-prefixed"),
		"implicit/":            nil,
		"implicit/parent/":     nil,
		"implicit/parent/file": []byte("implicit/parent/file"),
		"d/":                   nil,
	})
}

func FuzzExtractTar(f *testing.F) {
	src := f.TempDir()
	writeTree(f, src, map[string][]byte{"a": []byte("a"), "d/b": []byte("bb"), "e/": nil})
	var good bytes.Buffer
	if _, err := WriteTar(&good, src); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(tarOf(f, reg("../evil")))
	f.Add(tarOf(f, reg("/abs")))
	f.Add(tarOf(f, &tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: ".."}, reg("l/x")))
	f.Add(tarOf(f, reg(strings.Repeat("x/", 60)+"f")))
	f.Add([]byte{})
	f.Add(sparseBombTar(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		parent, dest := newExtractSandbox(t)
		_ = ExtractTar(bytes.NewReader(b), dest)
		checkConfined(t, parent, dest)
	})
}

// kvFSM is a tiny FSM whose state ("k=v" commands) is snapshotted as a file
// inside a CheckpointSink's DataDir, mimicking the Pebble checkpoint flow.
type kvFSM struct {
	mu       sync.Mutex
	state    map[string]string
	restores int
}

func newKVFSM() *kvFSM { return &kvFSM{state: map[string]string{}} }

func (f *kvFSM) Apply(l *raft.Log) any {
	k, v, _ := strings.Cut(string(l.Data), "=")
	f.mu.Lock()
	f.state[k] = v
	f.mu.Unlock()
	return nil
}

func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(f.state)
	return kvSnapshot(b), err
}

func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	dir, err := os.MkdirTemp("", "kvfsm-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := ExtractTar(rc, dir); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return err
	}
	state := map[string]string{}
	if err := json.Unmarshal(b, &state); err != nil {
		return err
	}
	f.mu.Lock()
	f.state, f.restores = state, f.restores+1
	f.mu.Unlock()
	return nil
}

func (f *kvFSM) snapshotState() (map[string]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.state), f.restores
}

type kvSnapshot []byte

func (s kvSnapshot) Persist(sink raft.SnapshotSink) error {
	cs, ok := sink.(*CheckpointSink)
	if !ok {
		_ = sink.Cancel()
		return fmt.Errorf("unexpected sink %T", sink)
	}
	dir := cs.DataDir()
	if err := os.Mkdir(dir, 0o755); err != nil {
		_ = sink.Cancel()
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), s, 0o644); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (kvSnapshot) Release() {}

type testNode struct {
	raft  *raft.Raft
	fsm   *kvFSM
	logs  *RaftStore
	snaps *CheckpointStore
	addr  raft.ServerAddress
	trans *raft.InmemTransport
}

func startTestNode(t *testing.T, id string) *testNode {
	t.Helper()
	dir := t.TempDir()
	logs := openTestRaftStore(t, filepath.Join(dir, "raft"))
	snaps := newTestCheckpointStore(t, filepath.Join(dir, "snapshots"), 2)
	addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	conf := testRaftConfig(t, id)
	// With two voters the leader needs n2 for its lease, and n2's main
	// loop answers no heartbeats while it installs and restores the
	// snapshot (fsyncs included); 50ms leases flake under -race.
	conf.HeartbeatTimeout = 500 * time.Millisecond
	conf.ElectionTimeout = 500 * time.Millisecond
	conf.LeaderLeaseTimeout = 500 * time.Millisecond
	conf.TrailingLogs = 5
	conf.SnapshotThreshold = 1 << 20 // snapshots only on demand
	conf.SnapshotInterval = time.Hour
	fsm := newKVFSM()
	r, err := raft.NewRaft(conf, fsm, logs, logs, snaps, trans)
	must(t, err)
	// Registered after the stores, so it runs before their Close.
	t.Cleanup(func() { _ = r.Shutdown().Error() })
	return &testNode{raft: r, fsm: fsm, logs: logs, snaps: snaps, addr: addr, trans: trans}
}

// TestCheckpointStoreInstallSnapshot: a follower that joins after the
// leader compacted its log must catch up through InstallSnapshot, which
// exercises Open (leader), Write/Close (follower) and Open+Restore again
// (follower FSM), including the exact-Size check.
func TestCheckpointStoreInstallSnapshot(t *testing.T) {
	n1 := startTestNode(t, "n1")
	must(t, n1.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: n1.addr}}}).Error())
	waitFor(t, 5*time.Second, "n1 leadership", func() bool { return n1.raft.State() == raft.Leader })

	apply := func(from, to int) {
		var f raft.ApplyFuture
		for i := from; i < to; i++ {
			f = n1.raft.Apply(fmt.Appendf(nil, "k%d=v%d", i%37, i), 5*time.Second)
		}
		must(t, f.Error())
	}
	apply(0, 100)
	must(t, n1.raft.Snapshot().Error())
	apply(100, 110) // entries after the snapshot are replicated from the log
	first, _ := n1.logs.FirstIndex()
	if first <= 1 {
		t.Fatalf("leader log not compacted: first index %d", first)
	}

	n2 := startTestNode(t, "n2")
	n1.trans.Connect(n2.addr, n2.trans)
	n2.trans.Connect(n1.addr, n1.trans)
	must(t, n1.raft.AddVoter("n2", n2.addr, 0, 5*time.Second).Error())
	apply(110, 120)

	want, _ := n1.fsm.snapshotState()
	waitFor(t, 5*time.Second, "n2 to catch up", func() bool {
		got, _ := n2.fsm.snapshotState()
		return maps.Equal(got, want)
	})
	if _, restores := n2.fsm.snapshotState(); restores == 0 {
		t.Fatal("n2 caught up without InstallSnapshot")
	}
	metas, err := n2.snaps.List()
	must(t, err)
	if len(metas) == 0 {
		t.Fatal("n2 holds no installed snapshot")
	}
	leaderMetas, _ := n1.snaps.List()
	if metas[0].Index != leaderMetas[0].Index || metas[0].Size != leaderMetas[0].Size {
		t.Fatalf("installed snapshot %+v differs from leader's %+v", metas[0], leaderMetas[0])
	}
}
