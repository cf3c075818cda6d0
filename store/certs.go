package store

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
)

// CertificateAt is a certificate together with the block carrying it.
type CertificateAt struct {
	*chain.Certificate
	// Block is the height of the block that carries the certificate.
	Block uint64
}

// ValidatorsAt returns the validator set in force at height n (the one
// that proposes and certifies block n), sorted. The state keeps every
// version with the height it took effect at.
func (d *DB) ValidatorsAt(n uint64) ([]common.Address, error) {
	raw, err := d.lastAtOrBelow(prefixValidatorHistory, n)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("validators at height %d: %w", n, ErrNotFound)
	}
	var list []common.Address
	if err := rlp.DecodeBytes(raw, &list); err != nil {
		return nil, fmt.Errorf("validators at height %d: %w", n, err)
	}
	return list, nil
}

// ValidatorSetChanges returns the heights in (0, upTo] at which the
// validator set changed, with the set from then on.
func (d *DB) ValidatorSetChanges(upTo uint64) (heights []uint64, sets [][]common.Address, err error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: numKey(prefixValidatorHistory, 1), UpperBound: numKey(prefixValidatorHistory, upTo+1)})
	if err != nil {
		return nil, nil, err
	}
	for it.First(); it.Valid(); it.Next() {
		var list []common.Address
		if err := rlp.DecodeBytes(it.Value(), &list); err != nil {
			it.Close()
			return nil, nil, fmt.Errorf("validator history: %w", err)
		}
		heights = append(heights, binary.BigEndian.Uint64(it.Key()[len(prefixValidatorHistory):]))
		sets = append(sets, list)
	}
	return heights, sets, it.Close()
}

// lastAtOrBelow returns the value of the greatest key prefix+height with
// height <= n, or nil.
func (d *DB) lastAtOrBelow(prefix []byte, n uint64) ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: numKey(prefix, n+1)})
	if err != nil {
		return nil, fmt.Errorf("%w: state db read %x at %d: %w", state.ErrStorage, prefix, n, err)
	}
	var raw []byte
	if it.Last() {
		raw = append([]byte{}, it.Value()...)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("%w: state db read %x at %d: %w", state.ErrStorage, prefix, n, err)
	}
	return raw, nil
}

// Certificate returns the certificate for block n, or ErrNotFound while no
// applied block carries one.
func (d *DB) Certificate(n uint64) (*CertificateAt, error) {
	v, err := d.get(numKey(prefixCert, n))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("certificate for block %d: %w", n, ErrNotFound)
	}
	carrier := binary.BigEndian.Uint64(v)
	if !d.applied(carrier) {
		// The carrier's batch is published, its head not yet moved.
		return nil, fmt.Errorf("certificate for block %d: %w", n, ErrNotFound)
	}
	b, err := d.BlockByNumber(carrier)
	if err != nil {
		return nil, fmt.Errorf("certificate for block %d: carrier %d: %w", n, carrier, err)
	}
	for _, c := range b.Certs {
		if c.Height == n {
			return &CertificateAt{Certificate: c, Block: carrier}, nil
		}
	}
	return nil, fmt.Errorf("certificate for block %d: index points to block %d, which does not carry it", n, carrier)
}

// Certified reports whether an applied block carries a certificate for block n.
func (d *DB) Certified(n uint64) (bool, error) {
	v, err := d.get(numKey(prefixCert, n))
	return v != nil && d.applied(binary.BigEndian.Uint64(v)), err
}

// LastCertified returns the highest certified height (0 and false if none).
func (d *DB) LastCertified() (uint64, bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefixCert, UpperBound: upperBound(prefixCert)})
	if err != nil {
		return 0, false, err
	}
	// The newest entries may be in a block whose batch is published before
	// the head moves (visibility_test.go): not certified yet.
	var n uint64
	ok := it.Last()
	for ok && !d.applied(binary.BigEndian.Uint64(it.Value())) {
		ok = it.Prev()
	}
	if ok {
		n = binary.BigEndian.Uint64(it.Key()[len(prefixCert):])
	}
	return n, ok, it.Close()
}

// CheckCertificate checks a certificate against this node's applied chain
// at head (CheckCert, the rule CheckBlock applies): a vote collector or
// a builder refuses what fails it. A quorum certifying a block this node
// does not have returns ErrDiverged or ErrBehind.
func (d *DB) CheckCertificate(c *chain.Certificate, head uint64) error {
	return state.CheckCert(c, d.View(head), d.chainID)
}
