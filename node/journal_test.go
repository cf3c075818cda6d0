package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/store"
)

func journalRaws(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Repeat([]byte{byte(i + 1)}, size+i)
	}
	return out
}

func openTestJournal(t *testing.T, path string) (*poolJournal, [][]byte) {
	t.Helper()
	j, raws, err := openPoolJournal(vfs.Default, path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, raws
}

// What Sync returned for is read back after a reopen, in order; what was
// only queued is not.
func TestPoolJournalSyncedRecordsReadBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), PoolJournalFile)
	j, got := openTestJournal(t, path)
	if len(got) != 0 {
		t.Fatalf("a new journal holds %d records", len(got))
	}
	raws := journalRaws(5, 100)
	for _, r := range raws[:3] {
		j.Append(r)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	j.Append(raws[3]) // queued, never synced: the node never vouched for it
	j.Close()
	_, got = openTestJournal(t, path)
	if !slices.EqualFunc(got, raws[:3], bytes.Equal) {
		t.Fatalf("read back %d records, want the 3 synced ones", len(got))
	}
}

// A crash in the middle of a write leaves a torn or damaged last record:
// reading stops before it and keeps everything before it.
func TestPoolJournalTornTail(t *testing.T) {
	raws := journalRaws(3, 50)
	var whole []byte
	for _, r := range raws {
		whole = appendRecord(whole, r)
	}
	last := len(whole) - (journalRecordHeader + len(raws[2]))
	badCRC := slices.Clone(whole)
	badCRC[last+5] ^= 0xff
	badLen := slices.Clone(whole)
	badLen[last] = 0xff // a length over chain.MaxTxSize
	zeroLen := slices.Clone(whole)
	copy(zeroLen[last:], []byte{0, 0, 0, 0})
	for _, tc := range []struct {
		name string
		data []byte
		want int
	}{
		{"intact", whole, 3},
		{"torn payload", whole[:len(whole)-1], 2},
		{"torn header", whole[:last+3], 2},
		{"bad checksum", badCRC, 2},
		{"length over the limit", badLen, 2},
		{"zero length", zeroLen, 2},
		{"empty", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), PoolJournalFile)
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readPoolJournal(vfs.Default, path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, raws[:tc.want], bytes.Equal) {
				t.Fatalf("read %d records, want the first %d", len(got), tc.want)
			}
		})
	}
}

// Concurrent admissions each get their record durable from Sync, sharing
// writes.
func TestPoolJournalConcurrentSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), PoolJournalFile)
	j, _ := openTestJournal(t, path)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				j.Append([]byte(fmt.Sprintf("writer %d record %d", w, i)))
				if err := j.Sync(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := readPoolJournal(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*each {
		t.Fatalf("%d records, want %d", len(got), writers*each)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r)] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct records, want %d", len(seen), writers*each)
	}
}

// A rewrite keeps what the pool holds and what was queued but not yet
// written; a record whose transaction left the pool is gone.
func TestPoolJournalRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), PoolJournalFile)
	j, _ := openTestJournal(t, path)
	raws := journalRaws(4, 64)
	for _, r := range raws[:3] {
		j.Append(r)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	j.Append(raws[3]) // queued while the pool already held it
	// raws[0] was applied: the pool holds raws[1..3].
	if err := j.rewrite(func() [][]byte { return raws[1:] }); err != nil {
		t.Fatal(err)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := readPoolJournal(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	// raws[3] twice: in the pool at the rewrite and queued before it.
	want := [][]byte{raws[1], raws[2], raws[3], raws[3]}
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("after the rewrite: %d records, want %d", len(got), len(want))
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
}

// The journal is rewritten only past journalCompactMin and twice its size
// after the last rewrite.
func TestPoolJournalNeedsRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), PoolJournalFile)
	j, _ := openTestJournal(t, path)
	big := bytes.Repeat([]byte{7}, 30_000)
	fill := func(bytes int) {
		for written := 0; written < bytes; written += len(big) + journalRecordHeader {
			j.Append(big)
		}
		if err := j.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	fill(journalCompactMin / 2)
	if j.needsRewrite() {
		t.Fatal("rewrite wanted below journalCompactMin")
	}
	fill(journalCompactMin / 2)
	if !j.needsRewrite() {
		t.Fatal("no rewrite wanted past journalCompactMin")
	}
	// The pool still holds 200 of them: the rewritten journal is ~6 MB,
	// and the next rewrite waits until it doubles.
	pool := slices.Repeat([][]byte{big}, 200)
	if err := j.rewrite(func() [][]byte { return pool }); err != nil {
		t.Fatal(err)
	}
	if j.needsRewrite() {
		t.Fatal("rewrite wanted right after a rewrite")
	}
	fill(len(pool) * len(big) / 2)
	if j.needsRewrite() {
		t.Fatal("rewrite wanted before the journal doubled")
	}
	fill(len(pool) * len(big) / 2)
	if !j.needsRewrite() {
		t.Fatal("no rewrite wanted once the journal doubled")
	}
}

// FuzzReadPoolJournal: any file content reads without a panic, as records
// that re-encode to a prefix of it.
func FuzzReadPoolJournal(f *testing.F) {
	var whole []byte
	for _, r := range journalRaws(3, 10) {
		whole = appendRecord(whole, r)
	}
	f.Add(whole)
	f.Add(whole[:len(whole)-3])
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), PoolJournalFile)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readPoolJournal(vfs.Default, path)
		if err != nil {
			t.Fatal(err)
		}
		var enc []byte
		for _, r := range got {
			enc = appendRecord(enc, r)
		}
		if !bytes.HasPrefix(data, enc) {
			t.Fatalf("records read do not re-encode to a prefix of the file")
		}
	})
}

// BenchmarkPoolJournalSync is the cost the journal adds to an admission:
// queue a batch of transfers' records (110 bytes each, a signed EIP-1559
// transfer's size) and sync them, one batch per op.
func BenchmarkPoolJournalSync(b *testing.B) {
	for _, batch := range []int{1, 100, 500} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			j, _, err := openPoolJournal(vfs.Default, filepath.Join(b.TempDir(), PoolJournalFile), false)
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			raw := bytes.Repeat([]byte{0xab}, 110)
			b.SetBytes(int64(batch * (len(raw) + journalRecordHeader)))
			for b.Loop() {
				for range batch {
					j.Append(raw)
				}
				if err := j.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPoolRestoredFromJournal: a stopped node whose journal holds a
// transaction it never applied (it acknowledged it, then crashed) includes
// it after it restarts; the journal's records of applied transactions are
// skipped, and the journal is rewritten with the pool alone.
func TestPoolRestoredFromJournal(t *testing.T) {
	dir := t.TempDir()
	id := big.NewInt(genesis.DevChainID)
	key, err := genesis.DevKey(0)
	if err != nil {
		t.Fatal(err)
	}
	to := common.Address{0xfe}
	sign := func(nonce uint64) *types.Transaction {
		tx, err := chain.SignTx(types.NewTx(&types.LegacyTx{Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}), id, key)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	n := startDevNode(t, dir)
	ec, _ := dial(t, n)
	first := sign(0)
	if err := ec.SendTransaction(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	waitReceipt(t, ec, first.Hash())
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	// What a crash right after acknowledging nonce 1 leaves: its record,
	// synced, behind the applied one's.
	lost := sign(1)
	raw, _ := lost.MarshalBinary()
	f, err := os.OpenFile(filepath.Join(dir, PoolJournalFile), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(appendRecord(nil, raw)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	n = startDevNode(t, dir)
	ec, _ = dial(t, n)
	if r := waitReceipt(t, ec, lost.Hash()); r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("restored transaction: status %d", r.Status)
	}
	// Rewritten at start: the applied transfer's record is gone.
	got, err := readPoolJournal(vfs.Default, filepath.Join(dir, PoolJournalFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if bytes.Equal(r, func() []byte { b, _ := first.MarshalBinary(); return b }()) {
			t.Fatal("the journal still holds the transfer applied before the restart")
		}
	}
}

// On a crashable file system (the cluster simulator's), a power cut keeps
// what Sync returned for, before and after a rewrite, and loses what was
// only queued or written without a sync.
func TestPoolJournalCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	const path = "/" + PoolJournalFile
	j, got, err := openPoolJournal(fs, path, false)
	if err != nil || len(got) != 0 {
		t.Fatalf("open: %d records, %v", len(got), err)
	}
	raws := journalRaws(4, 60)
	j.Append(raws[0])
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := j.rewrite(func() [][]byte { return raws[:2] }); err != nil {
		t.Fatal(err)
	}
	j.Append(raws[2])
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	j.Append(raws[3]) // never synced
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
	got, err = readPoolJournal(crashed, path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, raws[:3], bytes.Equal) {
		t.Fatalf("after the crash %d records, want the 3 synced ones", len(got))
	}
	j.Close()
}

// A rewrite whose temporary file was renamed over the journal but whose
// directory sync failed has left the node's handle on the replaced file:
// what Sync vouches for afterwards must be in the journal the next start
// reads, or Sync must fail (the node then answers no admission).
func TestPoolJournalRewriteDirSyncFails(t *testing.T) {
	mem := vfs.NewCrashableMem()
	var failing atomic.Bool
	fs := diskfault.Inject(mem, func(op errorfs.Op) bool {
		return failing.Load() && op.Kind == errorfs.OpFileSync && path.Clean(op.Path) == "/"
	})
	const file = "/" + PoolJournalFile
	j, _, err := openPoolJournal(fs, file, false)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	raws := journalRaws(3, 60)
	j.Append(raws[0])
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	if err := j.rewrite(func() [][]byte { return raws[:2] }); err == nil {
		t.Fatal("rewrite: no error from a failed directory sync")
	}
	j.Append(raws[2])
	serr := j.Sync()
	got, err := readPoolJournal(mem, file)
	if err != nil {
		t.Fatal(err)
	}
	if serr == nil && !slices.ContainsFunc(got, func(r []byte) bool { return bytes.Equal(r, raws[2]) }) {
		t.Fatalf("Sync vouched for a record the journal does not hold (%d records read back)", len(got))
	}
	if serr == nil {
		t.Fatal("Sync succeeded after a rewrite whose directory sync failed")
	}
	if !strings.Contains(serr.Error(), "pool journal") {
		t.Fatalf("Sync: %v, want the journal's failure", serr)
	}
}

// TestJournalFailureReported: the first failed journal write fails the
// admission that waited for it and every later one, and is reported
// once through OnJournalFailure (the node halts on it: a leader that
// kept the lead would refuse every transaction forwarded to it).
func TestJournalFailureReported(t *testing.T) {
	mem := vfs.NewMem()
	db, err := store.Open("/state", store.Options{FS: mem})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	fs := diskfault.Inject(mem, func(op errorfs.Op) bool {
		return failing.Load() && path.Base(op.Path) == PoolJournalFile && op.Kind == errorfs.OpFileSync
	})
	a := testAdmissionOn(t, &admitAll{}, "self", true, nil, []peer.ID{"other"}, db, fs, "/"+PoolJournalFile, mempool.Config{MaxPerAccount: 16, MaxTotal: 1024})
	reports := make(chan error, 4)
	a.cfg.OnJournalFailure = func(err error) { reports <- err }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Submit(ctx, devTransfer(t, 0)); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	for nonce := uint64(1); nonce <= 2; nonce++ {
		if err := a.Submit(ctx, devTransfer(t, nonce)); err == nil || !strings.Contains(err.Error(), "pool journal") {
			t.Fatalf("admission %d on a failed journal: %v, want the journal's error", nonce, err)
		}
	}
	select {
	case err := <-reports:
		if !errors.Is(err, errorfs.ErrInjected) || !strings.Contains(err.Error(), PoolJournalFile) {
			t.Fatalf("reported %v, want the journal's failure", err)
		}
	case <-ctx.Done():
		t.Fatal("the journal's failure was not reported")
	}
	failing.Store(false) // a disk that answers again: the journal stays failed
	if err := a.Submit(ctx, devTransfer(t, 3)); err == nil {
		t.Fatal("admitted after the journal failed")
	}
	select {
	case err := <-reports:
		t.Fatalf("reported twice: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
}
