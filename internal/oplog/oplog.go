package oplog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
)

// Entry is one action.
type Entry struct {
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
	// Operator is the identity the operator authenticated as (the name of
	// its token), or the service itself for what it did on its own.
	Operator string `json:"operator"`
	// Action names what was done; Target the record it names.
	Action string `json:"action"`
	Target string `json:"target"`
	// Detail is the action's argument; Reason the operator's reason.
	Detail string `json:"detail,omitempty"`
	Reason string `json:"reason"`
	// Result is what the service did: "done", or "refused: <why>" for an
	// action the records' rules refused (nothing else changed then).
	Result string      `json:"result"`
	Prev   common.Hash `json:"prev"`
	Hash   common.Hash `json:"hash"`
}

// ResultDone is the Result of an action that took effect.
const ResultDone = "done"

// Head is the log's last entry.
type Head struct {
	Seq  uint64      `json:"seq"`
	Hash common.Hash `json:"hash"`
}

// Log is one log's place in a database.
type Log struct {
	// Prefix keys the entries (Prefix ‖ seq, 8 bytes big-endian);
	// HeadKey holds the head (seq ‖ hash).
	Prefix, HeadKey []byte
	// Domain separates the log's hashes from every other hash.
	Domain string
	// Name names the log in errors ("operator log").
	Name string
}

// Key is the key of entry seq.
func (l Log) Key(seq uint64) []byte {
	k := append([]byte{}, l.Prefix...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// Sum is an entry's hash: SHA-256 over the domain and the entry's JSON
// with Hash zeroed (encoding/json writes struct fields in a fixed order,
// so the bytes are a function of the fields).
func (l Log) Sum(e *Entry) (common.Hash, error) {
	c := *e
	c.Hash = common.Hash{}
	data, err := json.Marshal(&c)
	if err != nil {
		return common.Hash{}, err
	}
	return sha256.Sum256(append([]byte(l.Domain+"\x00"), data...)), nil
}

// Head reads the head (zero when the log is empty).
func (l Log) Head(r pebble.Reader) (Head, error) {
	v, closer, err := r.Get(l.HeadKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("%s head: %w", l.Name, err)
	}
	defer closer.Close()
	if len(v) != 40 {
		return Head{}, fmt.Errorf("%s head: %d bytes, want 40", l.Name, len(v))
	}
	return Head{Seq: binary.BigEndian.Uint64(v[:8]), Hash: common.BytesToHash(v[8:])}, nil
}

// Append adds e to b as the next entry after the head r holds, filling
// Seq, Prev and Hash. The caller serialises appends and commits b: the
// entry is written in the same batch as the change it records, so neither
// exists without the other.
func (l Log) Append(r pebble.Reader, b *pebble.Batch, e *Entry) error {
	h, err := l.Head(r)
	if err != nil {
		return err
	}
	e.Seq, e.Prev = h.Seq+1, h.Hash
	if e.Hash, err = l.Sum(e); err != nil {
		return fmt.Errorf("%s entry %d: %w", l.Name, e.Seq, err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%s entry %d: %w", l.Name, e.Seq, err)
	}
	if err := b.Set(l.Key(e.Seq), data, nil); err != nil {
		return err
	}
	return b.Set(l.HeadKey, append(binary.BigEndian.AppendUint64(nil, e.Seq), e.Hash[:]...), nil)
}

// Read returns the entries from seq from on (at most limit; all with
// limit 0, as a verification needs), in order. An entry stored under
// another seq than it says (moved or forged) is returned with Seq
// 2^64-1, so Verify reports it.
func (l Log) Read(r pebble.Reader, from uint64, limit int) ([]*Entry, error) {
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	upper := append([]byte{}, l.Prefix...)
	upper[len(upper)-1]++
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: l.Key(from), UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*Entry
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		var e Entry
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return nil, fmt.Errorf("%s: entry at key %x: %w", l.Name, it.Key(), err)
		}
		if k := it.Key(); len(k) != len(l.Prefix)+8 || !bytes.Equal(k, l.Key(e.Seq)) {
			e.Seq = ^uint64(0)
		}
		out = append(out, &e)
	}
	return out, it.Error()
}

// Verify checks a whole log read from its first entry: seqs 1, 2, …
// without gaps, each entry's hash, each Prev equal to the previous hash,
// and the last entry equal to head. It returns the first break, naming
// the entry.
func (l Log) Verify(entries []*Entry, head Head) error {
	var prev common.Hash
	for i, e := range entries {
		want := uint64(i) + 1
		if e.Seq != want {
			return fmt.Errorf("%s broken at entry %d: found seq %d (an entry was deleted, inserted or moved)", l.Name, want, e.Seq)
		}
		if e.Prev != prev {
			return fmt.Errorf("%s broken at entry %d: prev %s, but entry %d hashes to %s (an entry was deleted or edited)", l.Name, want, e.Prev, want-1, prev)
		}
		h, err := l.Sum(e)
		if err != nil {
			return err
		}
		if h != e.Hash {
			return fmt.Errorf("%s broken at entry %d: its fields hash to %s, not the recorded %s (the entry was edited)", l.Name, want, h, e.Hash)
		}
		prev = h
	}
	if head.Seq != uint64(len(entries)) || head.Hash != prev {
		return fmt.Errorf("%s broken at its end: the head records entry %d with hash %s, the log ends at entry %d with %s (entries were deleted or appended outside the service)",
			l.Name, head.Seq, head.Hash, len(entries), prev)
	}
	return nil
}
