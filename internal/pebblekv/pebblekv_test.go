package pebblekv

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// BE8 keys sort as their numbers; Cat copies; UpperBound is past every
// key with the prefix and before every key without it, carrying over
// trailing 0xff bytes, and is no bound for an empty or all-0xff prefix.
func TestKeys(t *testing.T) {
	nums := []uint64{0, 1, 255, 256, 1 << 32, math.MaxUint64}
	for i := 1; i < len(nums); i++ {
		if bytes.Compare(BE8(nums[i-1]), BE8(nums[i])) >= 0 {
			t.Errorf("BE8(%d) does not sort before BE8(%d)", nums[i-1], nums[i])
		}
	}
	a := []byte("ab")
	k := Cat(a, []byte("c"), nil, BE8(1))
	a[0] = 'x'
	if want := append([]byte("abc"), 0, 0, 0, 0, 0, 0, 0, 1); !bytes.Equal(k, want) {
		t.Errorf("Cat = %x, want %x (and no alias of its parts)", k, want)
	}
	for _, c := range []struct{ p, want []byte }{
		{[]byte("a/"), []byte("a0")},
		{[]byte{'a', 0xff}, []byte{'b'}},
		{[]byte{'a', 0xfe, 0xff, 0xff}, []byte{'a', 0xff}},
		{[]byte{0xff, 0xff}, nil},
		{nil, nil},
	} {
		p := slices.Clone(c.p)
		if got := UpperBound(c.p); !bytes.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("UpperBound(%x) = %x, want %x", c.p, got, c.want)
		}
		if !bytes.Equal(p, c.p) {
			t.Errorf("UpperBound changed its prefix %x to %x", p, c.p)
		}
		if c.want != nil {
			for _, in := range [][]byte{c.p, Cat(c.p, []byte{0xff, 0xff, 0xff})} {
				if bytes.Compare(in, c.want) >= 0 {
					t.Errorf("UpperBound(%x) = %x is not after %x", c.p, c.want, in)
				}
			}
		}
	}
}

// Reads on a real Pebble database: a missing key is no value; values are
// copies that outlive the read; a uint of the wrong length and JSON that
// does not decode are errors naming the key.
func TestReads(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	type rec struct{ N int }
	if err := SetJSON(b, []byte("j"), rec{7}); err != nil {
		t.Fatal(err)
	}
	b.Set([]byte("u"), BE8(42), nil)
	b.Set([]byte("short"), []byte{1, 2}, nil)
	b.Set([]byte("bad"), []byte("{"), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if v, err := Get(db, []byte("none")); v != nil || err != nil {
		t.Errorf("Get of a missing key: %x, %v", v, err)
	}
	v, err := Get(db, []byte("u"))
	if err != nil || !bytes.Equal(v, BE8(42)) {
		t.Errorf("Get: %x, %v", v, err)
	}
	if n, err := GetUint(db, []byte("u")); n != 42 || err != nil {
		t.Errorf("GetUint: %d, %v", n, err)
	}
	if n, err := GetUint(db, []byte("none")); n != 0 || err != nil {
		t.Errorf("GetUint of a missing key: %d, %v", n, err)
	}
	if _, err := GetUint(db, []byte("short")); err == nil || !strings.Contains(err.Error(), `"short": 2 bytes, want 8`) {
		t.Errorf("GetUint of 2 bytes: %v", err)
	}
	var r rec
	if ok, err := GetJSON(db, []byte("j"), &r); !ok || err != nil || r.N != 7 {
		t.Errorf("GetJSON: %v, %v, %+v", ok, err, r)
	}
	r = rec{3}
	if ok, err := GetJSON(db, []byte("none"), &r); ok || err != nil || r.N != 3 {
		t.Errorf("GetJSON of a missing key: %v, %v, %+v", ok, err, r)
	}
	if _, err := GetJSON(db, []byte("bad"), &r); err == nil || !strings.Contains(err.Error(), `decode "bad"`) {
		t.Errorf("GetJSON of bad JSON: %v", err)
	}
	if err := SetJSON(db.NewBatch(), []byte("f"), func() {}); err == nil || !strings.Contains(err.Error(), `encode "f"`) {
		t.Errorf("SetJSON of a func: %v", err)
	}
}
