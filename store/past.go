package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
)

// Past state: reads of the state as it was after any of the last N blocks
// (Options.HistoryBlocks, go-ethereum's 128 by default), so that a client
// that pins its reads to the block it just saw (ethers and viem do after
// wait()) gets an answer.
//
// Design: a reverse diff per block. When block H commits, the same Pebble
// batch records, for every state key the block writes, the value the key
// had before H (prefixPast, keyed by state key then height), and the list
// of keys H wrote (prefixPastBlock, what pruning deletes). The value of key
// k after block h is then the recorded prior of the first block above h
// that wrote k, or k's current value if no block since h wrote it: one
// Pebble seek per key. Records of blocks that fall out of the window are
// deleted in the batch of a later block, so the disk holds the writes of
// about N blocks, whatever the chain's length.
//
// Why this and not retained Pebble snapshots: records are written in the
// block's own synced batch, so they are crash consistent and the window
// survives a restart (and travels inside a Raft snapshot's checkpoint); a
// Pebble snapshot is lost on restart and pins every older version of every
// key against compaction. The records are outside the state prefix, so the
// state root, the block hashes and the state digest are identical with and
// without them, and the audit's replay never writes them.

// DefaultHistoryBlocks is how many recent blocks' states are readable by
// default: go-ethereum's 128 (TriesInMemory).
const DefaultHistoryBlocks = 128

// MaxHistoryBlocks bounds Options.HistoryBlocks (state.history-blocks).
const MaxHistoryBlocks = 1 << 20

// pruneBlocksPerCommit bounds how many blocks' records one block's batch
// deletes, so a window shrunk by a restart is caught up over later blocks
// instead of in one huge batch. Normally one block leaves the window per
// block.
const pruneBlocksPerCommit = 16

// ErrStateUnavailable is returned for a height whose state this node no
// longer (or never) kept: below the window, or before the node started
// recording it. The rpc layer answers it in go-ethereum's words,
// "historical state <root> is not available".
var ErrStateUnavailable = errors.New("historical state is not available")

// StateUnavailableError says which state was asked for and which are kept.
type StateUnavailableError struct {
	Number uint64
	// Root is the state root of block Number.
	Root common.Hash
	// Oldest is the lowest height whose state is kept now, Head the head.
	Oldest, Head uint64
	// Window is Options.HistoryBlocks.
	Window uint64
}

func (e *StateUnavailableError) Error() string {
	return fmt.Sprintf("historical state %x is not available: block %d is older than the %d blocks whose state this node keeps (oldest %d, head %d)", e.Root, e.Number, e.Window, e.Oldest, e.Head)
}

func (e *StateUnavailableError) Unwrap() error { return ErrStateUnavailable }

// historyBlocks is the window size in force.
func (d *DB) historyBlocks() uint64 {
	if d.opts.HistoryBlocks == 0 {
		return DefaultHistoryBlocks
	}
	return d.opts.HistoryBlocks
}

// HistoryBlocks is how many recent blocks' states this DB keeps readable
// (the head's included).
func (d *DB) HistoryBlocks() uint64 { return d.historyBlocks() }

// pastKey is the record of key's value before block n.
func pastKey(k []byte, n uint64) []byte {
	out := make([]byte, 0, len(prefixPast)+2+len(k)+8)
	out = append(out, prefixPast...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(k)))
	out = append(out, k...)
	return binary.BigEndian.AppendUint64(out, n)
}

// pastKeyPrefix is what every record of key starts with; the length makes
// it unambiguous (no key's records fall among another's).
func pastKeyPrefix(k []byte) []byte {
	p := pastKey(k, 0)
	return p[:len(p)-8]
}

// oldestAfter is the lowest height readable once block head is applied,
// given the lowest the records covered before (floor).
func (d *DB) oldestAfter(floor, head uint64) uint64 {
	if n := d.historyBlocks(); head+1 > n {
		floor = max(floor, head+1-n)
	}
	return min(floor, head)
}

// loadPastFloor reads the lowest recorded height of a freshly loaded head.
// A data dir written before past state was recorded has only its head.
func (d *DB) loadPastFloor(head uint64) error {
	v, err := d.get(keyPastFloor)
	if err != nil {
		return err
	}
	floor := head
	if len(v) == 8 {
		floor = binary.BigEndian.Uint64(v)
	} else if v != nil {
		return fmt.Errorf("state db: past state floor is %d bytes", len(v))
	}
	d.pastFloor.Store(d.oldestAfter(floor, head))
	return nil
}

// writePast adds to batch the records of block n, which writes o on the
// current head state (the DB's state before n), and deletes the records
// of blocks that leave the window. It publishes the new floor before the
// batch commits, so a reader that read a record the batch deletes finds
// its height gone when it checks afterwards (PastState.Get).
func (d *DB) writePast(batch *pebble.Batch, n uint64, res *state.Result) error {
	o := res.Writes
	floor := d.pastFloor.Load()
	if d.historyBlocks() > 1 && o.Len() > 0 {
		keys := o.SortedKeys()
		list := make([][]byte, len(keys))
		for i, k := range keys {
			if len(k) > math.MaxUint16 {
				return fmt.Errorf("past state of block %d: state key of %d bytes", n, len(k)) // pastKey's length is 16 bits; no state key comes near
			}
			prior, ok := res.Prior(k)
			if !ok {
				var err error
				if prior, err = d.get([]byte(k)); err != nil {
					return fmt.Errorf("past state of block %d: %w", n, err)
				}
			}
			if err := batch.Set(pastKey([]byte(k), n), prior, nil); err != nil {
				return err
			}
			list[i] = []byte(k)
		}
		enc, err := rlp.EncodeToBytes(list)
		if err != nil {
			return err
		}
		if err := batch.Set(numKey(prefixPastBlock, n), enc, nil); err != nil {
			return err
		}
	}
	newFloor := d.oldestAfter(floor, n)
	if err := d.prunePast(batch, newFloor); err != nil {
		return fmt.Errorf("prune past state at block %d: %w", n, err)
	}
	d.pastFloor.Store(newFloor)
	return batch.Set(keyPastFloor, u64(newFloor), nil)
}

// prunePast deletes the records of up to pruneBlocksPerCommit blocks at or
// below floor (records of block j serve heights below j only).
func (d *DB) prunePast(batch *pebble.Batch, floor uint64) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefixPastBlock, UpperBound: numKey(prefixPastBlock, floor+1)})
	if err != nil {
		return err
	}
	pruned := 0
	for it.First(); it.Valid() && pruned < pruneBlocksPerCommit; it.Next() {
		k := it.Key()
		if len(k) != len(prefixPastBlock)+8 {
			it.Close()
			return fmt.Errorf("past state index key %x is malformed", k)
		}
		j := binary.BigEndian.Uint64(k[len(prefixPastBlock):])
		var keys [][]byte
		if err := rlp.DecodeBytes(it.Value(), &keys); err != nil {
			it.Close()
			return fmt.Errorf("past state index of block %d: %w", j, err)
		}
		for _, sk := range keys {
			if err := batch.Delete(pastKey(sk, j), nil); err != nil {
				it.Close()
				return err
			}
		}
		if err := batch.Delete(append([]byte(nil), k...), nil); err != nil {
			it.Close()
			return err
		}
		pruned++
	}
	return it.Close()
}

// OldestState is the lowest height whose state StateAt serves.
func (d *DB) OldestState() uint64 { return d.pastFloor.Load() }

// PastState is the state as it was right after block Number: a Reader that
// eth_call executes over as over the head state. It stays correct while
// blocks are applied; a read made after its height left the window fails
// with ErrStateUnavailable instead of returning a newer value.
type PastState struct {
	d      *DB
	Number uint64
	// TimeMs is block Number's time.
	TimeMs uint64
}

// StateAt returns the state after block n, which must be applied and
// within the last HistoryBlocks blocks. A height above the head wraps
// ErrNotFound; one below the window is a *StateUnavailableError.
func (d *DB) StateAt(n uint64) (*PastState, error) {
	head, err := d.visibleHead()
	if err != nil {
		return nil, err
	}
	if n > head.Number {
		return nil, fmt.Errorf("state at block %d (head %d): %w", n, head.Number, ErrNotFound)
	}
	return d.stateAt(n, head)
}

// LatestState returns the state after the last applied block, pinned to
// that block.
func (d *DB) LatestState() (*PastState, error) {
	head, err := d.visibleHead()
	if err != nil {
		return nil, err
	}
	return d.stateAt(head.Number, head)
}

func (d *DB) stateAt(n uint64, head Head) (*PastState, error) {
	p := &PastState{d: d, Number: n, TimeMs: head.TimeMs}
	if n != head.Number {
		b, err := d.BlockByNumber(n)
		if err != nil {
			return nil, err
		}
		if p.TimeMs, err = chain.TimeMs(b.Header); err != nil {
			return nil, fmt.Errorf("stored block %d: %w", n, err)
		}
		if err := d.checkPast(n, b.Header.Root); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// visibleHead is the head readers are served: Tip, which moves once the
// block's batch is durable. Pebble shows the batch a moment earlier (while
// its fsync completes), and the blocks, receipts and transaction locations
// it holds are hidden until then too (DB.applied), so a receipt and the
// state at "latest" always agree. A past-state read that meets the records
// of that block still answers for this head (PastState.Get).
func (d *DB) visibleHead() (Head, error) {
	h, ok := d.Head()
	if !ok {
		return h, state.ErrNoGenesis
	}
	return h, nil
}

// checkPast fails unless the state after block n is still recorded.
func (d *DB) checkPast(n uint64, root common.Hash) error {
	floor := d.pastFloor.Load()
	if n >= floor {
		return nil
	}
	head, _ := d.Head()
	if root == (common.Hash{}) {
		if b, err := d.BlockByNumber(n); err == nil {
			root = b.Header.Root
		}
	}
	return &StateUnavailableError{Number: n, Root: root, Oldest: floor, Head: head.Number, Window: d.historyBlocks()}
}

// Get reads key as it was after block p.Number.
func (p *PastState) Get(key []byte) ([]byte, error) {
	d := p.d
	if d.historyBlocks() == 1 {
		return d.get(key) // nothing recorded: the head state, as it is now
	}
	// The current value first, the records second: a block committed in
	// between records the value read here as its prior, so the seek below
	// finds it (or an earlier record), and no record means no block since
	// p.Number wrote the key.
	cur, err := d.get(key)
	if err != nil {
		return nil, err
	}
	prior, found, err := d.pastValue(key, p.Number)
	if err != nil {
		return nil, err
	}
	// A block that pruned a record read above moved the floor past
	// p.Number before it committed.
	if err := d.checkPast(p.Number, common.Hash{}); err != nil {
		return nil, err
	}
	if found {
		return prior, nil
	}
	return cur, nil
}

// pastValue returns the prior recorded by the first block above n that
// wrote key; found is false if none did.
func (d *DB) pastValue(key []byte, n uint64) (v []byte, found bool, err error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: pastKey(key, n+1), UpperBound: upperBound(pastKeyPrefix(key))})
	if err != nil {
		return nil, false, err
	}
	if it.First() {
		found = true
		if len(it.Value()) > 0 {
			v = append([]byte(nil), it.Value()...)
		}
	}
	if err := it.Close(); err != nil {
		return nil, false, fmt.Errorf("past state of %x at block %d: %w", key, n, err)
	}
	return v, found, nil
}

// Context is the block context eth_call runs in on this state: the next
// height, at block Number's time (as DB.HeadContext on the head).
func (p *PastState) Context() state.BlockContext {
	return state.BlockContext{Number: p.Number + 1, TimeMs: p.TimeMs}
}

// Nonce returns a's next nonce after block p.Number.
func (p *PastState) Nonce(a common.Address) (uint64, error) { return state.ReadNonce(p, a) }

// Balance returns a's balance of asset after block p.Number.
func (p *PastState) Balance(asset uint32, a common.Address) (*big.Int, error) {
	return state.ReadBalance(p, asset, a)
}

// Rules returns the rules in force after block p.Number.
func (p *PastState) Rules() (*state.Rules, error) { return state.LoadRules(p) }
