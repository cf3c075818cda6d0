package store

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
)

// Readers of the data dir's own records, the ones tallyd trusts when it
// opens a data dir or serves from it without re-deriving them from the
// blocks: the audit checks them against the blocks it replayed.

// HistoryNode returns the stored node (level, index) of the history tree
// (see HistoryProof); ok is false when it is not stored.
func (d *DB) HistoryNode(level uint, index uint64) (h common.Hash, ok bool, err error) {
	v, err := d.get(historyNodeKey(level, index))
	if err != nil || v == nil {
		return h, false, err
	}
	if len(v) != common.HashLength {
		return h, false, fmt.Errorf("history node (level %d, index %d): %d bytes", level, index, len(v))
	}
	return common.BytesToHash(v), true, nil
}

// CertificateIndex calls fn for each entry of the certificate index, in
// increasing certified height: block certified is certified by a
// certificate that block carrier carries.
func (d *DB) CertificateIndex(fn func(certified, carrier uint64) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefixCert, UpperBound: upperBound(prefixCert)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(prefixCert)+8 || len(v) != 8 {
			it.Close()
			return fmt.Errorf("certificate index entry %x → %x is malformed", k, v)
		}
		if err := fn(binary.BigEndian.Uint64(k[len(prefixCert):]), binary.BigEndian.Uint64(v)); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}
