package audit

import (
	"math/big"
	"runtime"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

func indexHash(n uint64) common.Hash { return common.BigToHash(new(big.Int).SetUint64(n*7919 + 1)) }

// TestChainIndex: hashes come back for every height (recent ones from
// memory, older ones from the scratch database, across flushes), nothing
// outside [first, next) is found, truncate forgets a tail, and carriers
// come back in height order with the last carrier of a height.
func TestChainIndex(t *testing.T) {
	const first, n = 1000, 3*RecentHashes + 17
	x, err := openChainIndex(t.TempDir(), first, indexHash(first))
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()
	for h := uint64(first + 1); h < first+n; h++ {
		if err := x.addHash(indexHash(h)); err != nil {
			t.Fatal(err)
		}
	}
	if x.count() != n || x.last() != indexHash(first+n-1) {
		t.Fatalf("count %d, last %s", x.count(), x.last())
	}
	for _, h := range []uint64{first, first + 1, first + RecentHashes, first + n - RecentHashes - 1, first + n - RecentHashes, first + n - 1} {
		got, ok, err := x.hashAt(h)
		if err != nil || !ok || got != indexHash(h) {
			t.Fatalf("hash of %d: %s %v %v, want %s", h, got, ok, err, indexHash(h))
		}
	}
	for _, h := range []uint64{0, first - 1, first + n, first + n + 5} {
		if _, ok, err := x.hashAt(h); ok || err != nil {
			t.Fatalf("hash of %d outside the index: %v %v", h, ok, err)
		}
	}
	next := uint64(first)
	if err := x.hashes(first, func(h uint64, got common.Hash) {
		if h != next || got != indexHash(h) {
			t.Fatalf("hashes: %d %s, want %d", h, got, next)
		}
		next++
	}); err != nil || next != first+n {
		t.Fatalf("hashes ended at %d: %v", next, err)
	}
	// Truncate, then add other hashes for the same heights.
	x.truncate(first + 1)
	if _, ok, _ := x.hashAt(first + 1); ok {
		t.Fatal("a truncated height is found")
	}
	other := common.Hash{0xee}
	if err := x.addHash(other); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := x.hashAt(first + 1); got != other || x.last() != other {
		t.Fatalf("after truncate: %s", got)
	}

	for _, c := range [][2]uint64{{5, 9}, {2, 3}, {5, 11}, {7, 8}} {
		if err := x.setCarrier(c[0], c[1]); err != nil {
			t.Fatal(err)
		}
	}
	it, err := x.carriers()
	if err != nil {
		t.Fatal(err)
	}
	var got [][2]uint64
	for ; it.ok; it.next() {
		got = append(got, [2]uint64{it.certified, it.carrier})
	}
	if err := it.close(); err != nil {
		t.Fatal(err)
	}
	if want := [][2]uint64{{2, 3}, {5, 11}, {7, 8}}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("carriers %v, want %v", got, want)
	}
}

// TestChainIndexBoundedMemory: the index's Go heap does not grow with the
// chain (the audit of a chain of any length runs in bounded memory): from
// 100k to 500k blocks, each with a certificate carried, it grows by far
// less than the 400k hashes and carriers would take in memory (~25 MiB in
// a slice and a map).
func TestChainIndexBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1M index entries")
	}
	x, err := openChainIndex(t.TempDir(), 0, indexHash(0))
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()
	add := func(to uint64) {
		for h := x.next; h < to; h++ {
			if err := x.addHash(indexHash(h)); err != nil {
				t.Fatal(err)
			}
			if err := x.setCarrier(h-1, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	add(100_000)
	before := heap()
	add(500_000)
	after := heap()
	if grew := int64(after) - int64(before); grew > 6<<20 {
		t.Fatalf("the heap grew by %d bytes from 100k to 500k blocks", grew)
	}
	if h, ok, err := x.hashAt(123_456); err != nil || !ok || h != indexHash(123_456) {
		t.Fatalf("hash of 123456: %s %v %v", h, ok, err)
	}
}

// TestChainIndexEvents: a business event recorded in the index is found
// by its kind and id with its height, under no other kind or id, and the
// index's Go heap does not grow with the events: 200,000 withdrawals'
// claims and closes and as many bank references' mints, which maps held
// in memory before (about 25 MB for these), grow it by less than 6 MiB.
func TestChainIndexEvents(t *testing.T) {
	x, err := openChainIndex(t.TempDir(), 0, indexHash(0))
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()
	ref := func(i uint64) []byte { h := indexHash(i); return h[:] }
	record := func(from, to uint64) {
		for i := from; i < to; i++ {
			for _, e := range []struct {
				kind eventKind
				id   []byte
			}{{eventClaimed, withdrawalKey(i)}, {eventClosed, withdrawalKey(i)}, {eventMinted, ref(i)}} {
				if err := x.setEvent(e.kind, e.id, i+1); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	record(0, 20_000)
	before := heap()
	record(20_000, 200_000)
	if grew := int64(heap()) - int64(before); grew > 6<<20 {
		t.Fatalf("the heap grew by %d bytes for 180,000 more withdrawals and mints", grew)
	}
	for _, i := range []uint64{0, 19_999, 123_456, 199_999} {
		if at, ok, err := x.event(eventClosed, withdrawalKey(i)); err != nil || !ok || at != i+1 {
			t.Fatalf("withdrawal %d closed: %d %v %v, want height %d", i, at, ok, err, i+1)
		}
		if at, ok, err := x.event(eventMinted, ref(i)); err != nil || !ok || at != i+1 {
			t.Fatalf("reference %d minted: %d %v %v", i, at, ok, err)
		}
		if _, ok, err := x.event(eventReturned, withdrawalKey(i)); err != nil || ok {
			t.Fatalf("withdrawal %d returned: %v %v, want none", i, ok, err)
		}
	}
	if _, ok, err := x.event(eventClaimed, withdrawalKey(200_000)); err != nil || ok {
		t.Fatalf("an unrecorded withdrawal found: %v %v", ok, err)
	}
}
