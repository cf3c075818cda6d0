package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"
	"golang.org/x/crypto/sha3"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// This file is the state's side of the audit (DESIGN.md, the auditor's
// needs): raw reads of stored blocks, a digest of the whole state read from
// one consistent snapshot, and Replay, which re-executes blocks on a
// scratch database without the node's indexes.

// RawBlock is a stored block and its receipts in their storage encodings
// (chain.Block.Encode and chain.EncodeReceipts). Block is nil when the
// database has no block at Number although its head is above it.
type RawBlock struct {
	Number   uint64
	Block    []byte
	Receipts []byte
	// Reasons are the failure reasons kept with the receipts (reasons.go),
	// in index order: none for a block without a failed transaction or
	// applied before reasons were kept.
	Reasons []state.TxReason
}

// RawBlocks returns the stored encodings of blocks from, from+1, … up to
// the head, at most count of them, stopping early once maxBytes of
// encodings are collected (at least one block is always returned when
// from is at or below the head). A block missing below the head is
// returned with nil encodings: the caller reports it.
func (d *DB) RawBlocks(from uint64, count, maxBytes int) ([]RawBlock, error) {
	head, ok := d.Head()
	if !ok {
		return nil, state.ErrNoGenesis
	}
	var out []RawBlock
	size := 0
	for n := from; n <= head.Number && len(out) < count; n++ {
		if len(out) > 0 && size >= maxBytes {
			break
		}
		b, err := d.get(numKey(prefixBlock, n))
		if err != nil {
			return nil, err
		}
		r, err := d.get(numKey(prefixRcpt, n))
		if err != nil {
			return nil, err
		}
		reasons, err := d.blockReasons(n)
		if err != nil {
			return nil, err
		}
		out = append(out, RawBlock{Number: n, Block: b, Receipts: r, Reasons: reasons})
		size += len(b) + len(r)
		for _, x := range reasons {
			size += 4 + len(x.Reason)
		}
		if n == ^uint64(0) {
			break
		}
	}
	return out, nil
}

// StateDigest commits to every key and value under the state prefix at
// one height: what an auditor compares its replayed state with.
type StateDigest struct {
	// Height and StateRoot are the head the state belongs to.
	Height    uint64
	StateRoot common.Hash
	// Keys is the number of state keys.
	Keys uint64
	// Digest is keccak256 over every state key in order: uvarint len ‖ key
	// ‖ uvarint len ‖ value (the encoding the state root uses for writes).
	Digest common.Hash
}

// StateDigest computes the digest of the head state from one consistent
// Pebble snapshot, so a node applying blocks meanwhile does not tear it.
func (d *DB) StateDigest() (StateDigest, error) {
	d.mu.RLock()
	snap := d.pdb.NewSnapshot()
	d.mu.RUnlock()
	defer snap.Close()
	var out StateDigest
	hv, closer, err := snap.Get(keyHead)
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return out, state.ErrNoGenesis
		}
		return out, fmt.Errorf("state digest: read head: %w", err)
	}
	var h Head
	err = rlp.DecodeBytes(hv, &h)
	closer.Close()
	if err != nil {
		return out, fmt.Errorf("state digest: decode head: %w", err)
	}
	out.Height, out.StateRoot = h.Number, h.StateRoot
	out.Keys, out.Digest, err = digestState(snap)
	return out, err
}

// digestState hashes every state key of r in order.
func digestState(r pebble.Reader) (uint64, common.Hash, error) {
	hasher := sha3.NewLegacyKeccak256()
	var n uint64
	var lenBuf [2 * binary.MaxVarintLen64]byte
	err := iterateState(r, func(k, v []byte) error {
		n++
		hasher.Write(binary.AppendUvarint(lenBuf[:0], uint64(len(k))))
		hasher.Write(k)
		hasher.Write(binary.AppendUvarint(lenBuf[:0], uint64(len(v))))
		hasher.Write(v)
		return nil
	})
	var h common.Hash
	hasher.Sum(h[:0])
	return n, h, err
}

// iterateState calls fn with every state key and value of r in key order.
// The slices are valid only during the call.
func iterateState(r pebble.Reader, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefixState, UpperBound: upperBound(prefixState)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("iterate state: %w", err)
	}
	return nil
}

// IterateState calls fn with every state key and value of the head, in key
// order, from one snapshot. The slices are valid only during the call.
func (d *DB) IterateState(fn func(k, v []byte) error) error {
	d.mu.RLock()
	snap := d.pdb.NewSnapshot()
	d.mu.RUnlock()
	defer snap.Close()
	return iterateState(snap, fn)
}

// AssetSupply is one asset's line of the conservation check (DESIGN.md
// decision 9): the issuance record and the sum of every balance.
type AssetSupply struct {
	ID     uint32
	Symbol string
	state.Supply
	// Balances is the sum of every account's balance of the asset.
	Balances *big.Int
}

// Conserved reports whether balances + escrow = minted − burned.
func (a AssetSupply) Conserved() bool {
	held := new(big.Int).Add(a.Balances, a.Escrow)
	return held.Cmp(new(big.Int).Sub(a.Minted, a.Burned)) == 0
}

// SupplyTable returns every asset's issuance record and balance sum on the
// head state (the audit's supply table). A balance of an asset the rules
// do not know is an error wrapping ErrConservation.
func (d *DB) SupplyTable() ([]AssetSupply, error) {
	rules, err := d.Rules()
	if err != nil {
		return nil, err
	}
	out := make([]AssetSupply, len(rules.Assets))
	for i, a := range rules.Assets {
		s, err := d.Supply(uint32(i))
		if err != nil {
			return nil, err
		}
		out[i] = AssetSupply{ID: uint32(i), Symbol: a.Symbol, Supply: s, Balances: new(big.Int)}
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefixBalance, UpperBound: upperBound(prefixBalance)})
	if err != nil {
		return nil, err
	}
	var v big.Int
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(prefixBalance):]
		if len(k) != 24 {
			it.Close()
			return nil, fmt.Errorf("%w: balance key %x malformed", state.ErrConservation, it.Key())
		}
		id := binary.BigEndian.Uint32(k)
		if int(id) >= len(out) {
			it.Close()
			return nil, fmt.Errorf("%w: balance of unknown asset %d", state.ErrConservation, id)
		}
		out[id].Balances.Add(out[id].Balances, v.SetBytes(it.Value()))
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("supply table: %w", err)
	}
	return out, nil
}

// Replay re-executes blocks on a scratch state database: the auditor's
// replay. It keeps only the state (no blocks, receipts or indexes) and
// commits without fsync. It trusts nothing it is given: Execute runs
// whatever transactions a block holds, leaving out (and reporting) those
// that cannot be included, and Commit stores whatever Execute produced, so
// an audit carries on past a bad block. Not safe for concurrent use.
type Replay struct {
	db *DB
	// Validator set history (heights ascending), kept in memory: every
	// block asks for its set.
	valHeights []uint64
	valSets    [][]common.Address
}

// NewReplay initialises a scratch database in dir (which must not hold
// one) with the state of block 0 of g, and returns it with block 0.
func NewReplay(dir string, g *genesis.Genesis) (*Replay, *chain.Block, error) {
	b, writes, err := state.GenesisBlock(g)
	if err != nil {
		return nil, nil, err
	}
	r, err := openReplay(dir)
	if err != nil {
		return nil, nil, err
	}
	res := &state.Result{Writes: writes}
	if err := r.Commit(res); err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, b, nil
}

// NewReplayFrom initialises a scratch database in dir with every state key
// of src (a trusted checkpoint, opened read-only), so blocks after its
// head can be replayed.
func NewReplayFrom(dir string, src *DB) (*Replay, error) {
	r, err := openReplay(dir)
	if err != nil {
		return nil, err
	}
	batch := r.db.pdb.NewBatch()
	err = src.IterateState(func(k, v []byte) error {
		if err := batch.Set(k, v, nil); err != nil {
			return err
		}
		if batch.Len() < 16<<20 {
			return nil
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			return err
		}
		batch.Close()
		batch = r.db.pdb.NewBatch()
		return nil
	})
	if err == nil {
		err = batch.Commit(pebble.NoSync)
	}
	batch.Close()
	if err == nil {
		err = r.loadValidatorHistory()
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("replay from checkpoint %s: %w", src.Dir(), err)
	}
	return r, nil
}

func openReplay(dir string) (*Replay, error) {
	db, err := Open(dir, Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	if _, ok := db.Head(); ok {
		db.Close()
		return nil, fmt.Errorf("replay: %s already holds a database", dir)
	}
	return &Replay{db: db}, nil
}

// Close closes the scratch database (the caller removes its directory).
func (r *Replay) Close() error { return r.db.Close() }

// DB gives read access to the replayed state (Rules, Supply, Withdrawal,
// BankRefUsed, SupplyTable, StateDigest, IterateState). Its head is not
// maintained: only the state is.
func (r *Replay) DB() *DB { return r.db }

// StateDigest is the digest of the replayed state (Height and StateRoot
// are zero: the replay keeps no head).
func (r *Replay) StateDigest() (StateDigest, error) {
	var out StateDigest
	var err error
	out.Keys, out.Digest, err = digestState(r.db.pdb)
	return out, err
}

// Execute re-executes b with its senders on the replayed state
// (state.Reexecute). An error is a failure of the scratch database itself.
func (r *Replay) Execute(b *chain.Block, senders []common.Address, senderErrs []error) (*state.Reexecution, error) {
	return state.Reexecute(r.db, b, senders, senderErrs)
}

// Commit stores res's writes (no fsync): the state the next block runs on.
func (r *Replay) Commit(res *state.Result) error {
	batch := r.db.pdb.NewBatch()
	defer batch.Close()
	if err := r.db.writeState(batch, res.Writes); err != nil {
		return err
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("replay commit: %w", err)
	}
	if r.valHeights == nil || res.Writes.ValidatorHistoryChanged() {
		return r.loadValidatorHistory()
	}
	return nil
}

func (r *Replay) loadValidatorHistory() error {
	heights, sets, err := r.db.ValidatorSetChanges(^uint64(0) - 1)
	if err != nil {
		return err
	}
	first, err := r.db.ValidatorsAt(0)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	r.valHeights = append([]uint64{0}, heights...)
	r.valSets = append([][]common.Address{first}, sets...)
	return nil
}

// ValidatorsAt returns the replayed validator set in force at height n
// (sorted; do not modify). It is nil before any set is known.
func (r *Replay) ValidatorsAt(n uint64) []common.Address {
	i := sort.Search(len(r.valHeights), func(i int) bool { return r.valHeights[i] > n })
	if i == 0 {
		return nil
	}
	return r.valSets[i-1]
}

// StateDiff is the first state key at which two states differ.
type StateDiff struct {
	Key []byte
	// Replayed and Stored are the key's values; nil when absent.
	Replayed, Stored []byte
}

var errDiffFound = errors.New("difference found")

// FirstDifference compares the replayed state with other's head state key
// by key and returns the first difference; ok is false when they are equal.
func (r *Replay) FirstDifference(other *DB) (diff StateDiff, ok bool, err error) {
	it, err := r.db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefixState, UpperBound: upperBound(prefixState)})
	if err != nil {
		return diff, false, err
	}
	defer it.Close()
	it.First()
	err = other.IterateState(func(k, v []byte) error {
		switch {
		case it.Valid() && bytes.Compare(it.Key(), k) < 0:
			diff = StateDiff{Key: bytes.Clone(it.Key()), Replayed: bytes.Clone(it.Value())}
		case !it.Valid() || bytes.Compare(it.Key(), k) > 0:
			diff = StateDiff{Key: bytes.Clone(k), Stored: bytes.Clone(v)}
		case !bytes.Equal(it.Value(), v):
			diff = StateDiff{Key: bytes.Clone(k), Replayed: bytes.Clone(it.Value()), Stored: bytes.Clone(v)}
		default:
			it.Next()
			return nil
		}
		return errDiffFound
	})
	switch {
	case errors.Is(err, errDiffFound):
		return diff, true, nil
	case err != nil:
		return diff, false, err
	case it.Valid():
		return StateDiff{Key: bytes.Clone(it.Key()), Replayed: bytes.Clone(it.Value())}, true, nil
	}
	return diff, false, nil
}
