package store

import (
	"errors"

	"github.com/ethereum/go-ethereum/common"
	"github.com/tally-ledger/tally/state"
)

// dbView is the applied chain as a ChainView: the FSM's.
type dbView struct {
	d    *DB
	head uint64
}

// View returns the applied chain with head at height head as a ChainView.
func (d *DB) View(head uint64) state.ChainView { return dbView{d: d, head: head} }

func (v dbView) HeadNumber() uint64               { return v.head }
func (v dbView) Certified(n uint64) (bool, error) { return v.d.Certified(n) }

// ValidatorsAt reads the set after the applied head from memory (the set
// the state keeps loaded, which is the history's last entry) and any
// other from the history.
func (v dbView) ValidatorsAt(n uint64) ([]common.Address, error) {
	if tip := v.d.tip.Load(); tip != nil && n == v.head+1 && tip.Head.Number == v.head {
		if set := v.d.Validators(); set != nil {
			return set, nil
		}
	}
	return v.d.ValidatorsAt(n)
}
func (v dbView) HashAt(n uint64) (common.Hash, bool, error) {
	if n > v.head {
		return common.Hash{}, false, nil
	}
	b, err := v.d.BlockByNumber(n)
	if errors.Is(err, ErrNotFound) {
		return common.Hash{}, false, nil
	}
	if err != nil {
		return common.Hash{}, false, err
	}
	return b.Hash(), true, nil
}
