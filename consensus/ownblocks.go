package consensus

import (
	"sync"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/store"
)

// ownBlocks keeps the executions this node's builder computed for the
// blocks it proposed and has not seen applied, so that the FSM applies
// them without executing them a second time (issue 17: the leader executed
// each block twice, to build it and to apply it). DESIGN.md: every node
// re-executes every block it did not build; a block it built is still
// checked in full (links, seal, every signature, every root), only its
// execution is reused.
//
// An entry is keyed by the block's hash and names the parent (hash and
// state root) it was built on; the state database uses it only when the
// head is that parent (store.DB.ApplyBuilt), and only if it reproduces the
// header's commitments. An entry is taken by the apply of its block; any
// other apply (a block this builder did not propose, or a skipped entry),
// a restored snapshot, the end of leadership and a reset of the builder's
// speculative chain drop them all. It holds at most max entries (the
// builder's MaxInflight): the oldest goes first.
type ownBlocks struct {
	mu   sync.Mutex
	max  int
	list []*store.Executed
}

func newOwnBlocks(n int) *ownBlocks { return &ownBlocks{max: max(n, 1)} }

// offer keeps ex; the builder calls it before proposing the block.
func (o *ownBlocks) offer(ex *store.Executed) {
	if o == nil || ex == nil || ex.Result == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.list) >= o.max {
		o.list[0] = nil
		o.list = o.list[1:]
	}
	o.list = append(o.list, ex)
}

// take returns the execution kept for the block with hash h and forgets
// it, or nil. A block with no entry is another proposer's (or another
// build's): every entry is dropped, since none is built on the chain
// that is being applied.
func (o *ownBlocks) take(h common.Hash) *store.Executed {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, ex := range o.list {
		if ex.Hash == h {
			o.list = append(o.list[:i:i], o.list[i+1:]...)
			return ex
		}
	}
	o.list = nil
	return nil
}

// drop forgets every entry.
func (o *ownBlocks) drop() {
	if o == nil {
		return
	}
	o.mu.Lock()
	o.list = nil
	o.mu.Unlock()
}

// len is the number of entries kept.
func (o *ownBlocks) len() int {
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.list)
}
