package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum/rlp"
)

// brokenOpForTest, when a test sets it, runs on a block's writes before the
// conservation check, standing in for an operation that breaks DESIGN.md
// decision 9. Production code never sets it.
var brokenOpForTest func(o *Overlay)

// checkConserved asserts DESIGN.md decision 9 for the writes of one block
// against the state before it, in O(writes): for every asset, the change in
// the sum of balances plus the change in escrow equals the change in minted
// − burned. It reads the pre-block value of each written balance and
// supply key (from the read cache when execution already read it). A
// violation is a broken invariant, not a bad block: the error wraps
// ErrConservation, and the FSM halts on it.
func checkConserved(o *Overlay, number uint64) error {
	if brokenOpForTest != nil {
		brokenOpForTest(o)
	}
	type delta struct{ held, issued big.Int }
	var deltas map[uint32]*delta
	at := func(asset uint32) *delta {
		if deltas == nil {
			deltas = map[uint32]*delta{}
		}
		d := deltas[asset]
		if d == nil {
			d = &delta{}
			deltas[asset] = d
		}
		return d
	}
	var tmp big.Int
	for k, v := range o.writes {
		switch {
		case strings.HasPrefix(k, string(prefixBalance)):
			if len(k) != len(prefixBalance)+4+20 {
				return fmt.Errorf("%w: block %d: balance key %x", ErrConservation, number, k)
			}
			old, err := o.before(k)
			if err != nil {
				return err
			}
			d := at(binary.BigEndian.Uint32([]byte(k[len(prefixBalance):])))
			d.held.Add(&d.held, tmp.SetBytes(v))
			d.held.Sub(&d.held, tmp.SetBytes(old))
		case strings.HasPrefix(k, string(prefixSupply)):
			if len(k) != len(prefixSupply)+4 {
				return fmt.Errorf("%w: block %d: supply key %x", ErrConservation, number, k)
			}
			old, err := o.before(k)
			if err != nil {
				return err
			}
			was, err := decodeSupply(old)
			if err != nil {
				return fmt.Errorf("%w: block %d: supply before: %v", ErrConservation, number, err)
			}
			now, err := decodeSupply(v)
			if err != nil {
				return fmt.Errorf("%w: block %d: supply written: %v", ErrConservation, number, err)
			}
			d := at(binary.BigEndian.Uint32([]byte(k[len(prefixSupply):])))
			d.held.Add(&d.held, now.Escrow)
			d.held.Sub(&d.held, was.Escrow)
			d.issued.Add(&d.issued, now.Minted)
			d.issued.Sub(&d.issued, now.Burned)
			d.issued.Sub(&d.issued, was.Minted)
			d.issued.Add(&d.issued, was.Burned)
		}
	}
	ids := make([]uint32, 0, len(deltas))
	for id := range deltas {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if d := deltas[id]; d.held.Cmp(&d.issued) != 0 {
			return fmt.Errorf("%w: block %d, asset %d: balances + escrow changed by %s, minted − burned by %s", ErrConservation, number, id, &d.held, &d.issued)
		}
	}
	return nil
}

// before returns key's value under the overlay's base (as the block's
// execution read it, when it did).
func (o *Overlay) before(k string) ([]byte, error) {
	if v, ok := o.reads[k]; ok {
		return v, nil
	}
	return o.base.Get([]byte(k))
}

func decodeSupply(v []byte) (Supply, error) {
	s := Supply{Minted: new(big.Int), Burned: new(big.Int), Escrow: new(big.Int)}
	if len(v) == 0 {
		return s, nil
	}
	err := rlp.DecodeBytes(v, &s)
	return s, err
}

// ErrConservation is returned by CheckConservation when an asset's
// balances and escrow do not add up to minted − burned.
var ErrConservation = errors.New("supply not conserved")
