package pebblekv

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// BE8 is v as 8 big-endian bytes: keys that sort as the numbers do.
func BE8(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// Cat concatenates parts into a new key (it never aliases a part).
func Cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// UpperBound is the smallest key after every key with prefix p (an
// iterator's UpperBound); nil, no bound, when p is empty or all 0xff.
func UpperBound(p []byte) []byte {
	u := append([]byte(nil), p...)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] < 0xff {
			u[i]++
			return u[:i+1]
		}
	}
	return nil
}

// Get returns a copy of key's value, or nil (and no error) when r does
// not hold key.
func Get(r pebble.Reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", key, err)
	}
	defer closer.Close()
	return append([]byte{}, v...), nil
}

// GetUint returns key's value as a BE8 number, 0 when r does not hold
// key; a value of another length is an error.
func GetUint(r pebble.Reader, key []byte) (uint64, error) {
	v, err := Get(r, key)
	if err != nil || v == nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%q: %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// GetJSON decodes key's JSON value into v; false (and v untouched) when r
// does not hold key.
func GetJSON(r pebble.Reader, key []byte, v any) (bool, error) {
	data, err := Get(r, key)
	if err != nil || data == nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %q: %w", key, err)
	}
	return true, nil
}

// SetJSON sets key to v encoded as JSON in b.
func SetJSON(b *pebble.Batch, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return b.Set(key, data, nil)
}
