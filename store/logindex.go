package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// Log index: which blocks hold logs of an address or with a topic at a
// position, so that eth_getLogs reads the receipts of the blocks that can
// match instead of every block of its range. Keys are outside the state
// prefix 's' (the state root does not commit to them: they are derived from
// the receipts, which the receipt root commits to) and written in the
// block's commit batch, so the index never disagrees with the receipts.
//
//	'L' kind value(32) number(uint64 BE) → empty
//	    kind 0: the log's address, left-padded to 32 bytes
//	    kind 1..4: the log's topic at position 0..3
//	'L' 0xff number(uint64 BE) → empty: block number has at least one log
//
// Within one (kind, value) the keys sort by block number, so a block range
// is one contiguous key range.
var prefixLog = []byte("L")

// Index kinds (the byte after prefixLog).
const (
	logKindAddress byte = 0
	logKindTopic0  byte = 1 // topic position i is logKindTopic0 + i
	logKindHasLogs byte = 0xff
)

// MaxLogTopics is the number of topic positions a log has at most and a
// query may constrain (LOG0..LOG4 in Ethereum).
const MaxLogTopics = 4

// logValueKeyLen is the length of a (prefix, kind, value) key prefix.
const logValueKeyLen = 1 + 1 + 32

// ErrTooManyLogs is returned (wrapped with the count) by FilterLogs when more
// logs match than the query's MaxResults.
var ErrTooManyLogs = errors.New("too many logs")

// logValueKey returns the (prefix, kind, value) part of an index key.
func logValueKey(kind byte, value common.Hash) []byte {
	k := make([]byte, 0, logValueKeyLen+8)
	k = append(k, prefixLog...)
	k = append(k, kind)
	return append(k, value[:]...)
}

func logHasLogsKey(number uint64) []byte {
	return binary.BigEndian.AppendUint64(append(append(make([]byte, 0, 10), prefixLog...), logKindHasLogs), number)
}

// addressValue is an address as an index value: left-padded to 32 bytes,
// as it would be as an indexed event argument.
func addressValue(a common.Address) common.Hash { return common.BytesToHash(a[:]) }

// indexLogs writes into batch the log index entries of block number: one
// key per distinct (kind, value) among its logs, and the has-logs key if it
// has any. A block without logs writes nothing, so plain transfers cost the
// index nothing.
func indexLogs(batch *pebble.Batch, number uint64, receipts []*types.Receipt) {
	seen := make(map[[logValueKeyLen]byte]bool)
	add := func(kind byte, value common.Hash) {
		k := [logValueKeyLen]byte(logValueKey(kind, value))
		if seen[k] {
			return
		}
		seen[k] = true
		batch.Set(binary.BigEndian.AppendUint64(k[:], number), nil, nil)
	}
	for _, r := range receipts {
		for _, l := range r.Logs {
			add(logKindAddress, addressValue(l.Address))
			// Topics past MaxLogTopics cannot be asked for; Tally's
			// system contracts never emit them.
			for i, t := range l.Topics[:min(len(l.Topics), MaxLogTopics)] {
				add(logKindTopic0+byte(i), t)
			}
		}
	}
	if len(seen) > 0 {
		batch.Set(logHasLogsKey(number), nil, nil)
	}
}

// LogQuery selects logs as eth_getLogs does.
type LogQuery struct {
	// FromBlock and ToBlock bound the block range, both included.
	FromBlock, ToBlock uint64
	// Addresses: a log matches if emitted by any of them; empty matches any.
	Addresses []common.Address
	// Topics: a log matches if, at every position i < len(Topics), its
	// topic i is one of Topics[i]; an empty Topics[i] matches any topic,
	// but the log must still have a topic at position i.
	Topics [][]common.Hash
	// MaxResults bounds the logs returned; 0 is unbounded.
	MaxResults int
}

// Matches reports whether l satisfies q: Ethereum's filter semantics
// (go-ethereum's filterLogs) plus q's block range.
func (q *LogQuery) Matches(l *types.Log) bool {
	if l.BlockNumber < q.FromBlock || l.BlockNumber > q.ToBlock {
		return false
	}
	if len(q.Addresses) > 0 && !slices.Contains(q.Addresses, l.Address) {
		return false
	}
	if len(q.Topics) > len(l.Topics) {
		return false
	}
	for i, want := range q.Topics {
		if len(want) > 0 && !slices.Contains(want, l.Topics[i]) {
			return false
		}
	}
	return true
}

func (q *LogQuery) check() error {
	if q.FromBlock > q.ToBlock {
		return fmt.Errorf("log query: fromBlock %d is after toBlock %d", q.FromBlock, q.ToBlock)
	}
	if len(q.Topics) > MaxLogTopics {
		return fmt.Errorf("log query: %d topic positions, logs have at most %d", len(q.Topics), MaxLogTopics)
	}
	return nil
}

// FilterLogs returns the logs matching q, in chain order (block, then log
// index). The index narrows the search to the blocks that hold a matching
// address and a matching topic at every constrained position; those
// blocks' receipts are then filtered exactly. More than q.MaxResults
// matches return an error wrapping ErrTooManyLogs, so a caller never
// builds an unbounded answer. The logs may be shared with other callers:
// do not modify them.
func (d *DB) FilterLogs(ctx context.Context, q LogQuery) ([]*types.Log, error) {
	logs, _, err := d.filterLogs(ctx, q, false)
	return logs, err
}

// FilterLogsPage is FilterLogs for a caller that pages through a range
// (a polled filter): instead of failing when more than q.MaxResults logs
// match, it stops after the first block that brings the count to
// q.MaxResults or more, and returns the last block it searched (q.ToBlock
// when it searched them all). Blocks are never split, so a page holds less
// than q.MaxResults plus one block's logs.
func (d *DB) FilterLogsPage(ctx context.Context, q LogQuery) (logs []*types.Log, through uint64, err error) {
	return d.filterLogs(ctx, q, true)
}

func (d *DB) filterLogs(ctx context.Context, q LogQuery, page bool) ([]*types.Log, uint64, error) {
	if err := q.check(); err != nil {
		return nil, 0, err
	}
	blocks, err := d.logBlocks(ctx, &q)
	if err != nil {
		return nil, 0, err
	}
	out := []*types.Log{}
	for _, n := range blocks {
		if err := ctx.Err(); err != nil {
			return nil, 0, fmt.Errorf("log query blocks %d..%d: %w", q.FromBlock, q.ToBlock, err)
		}
		b, err := d.BlockByNumber(n)
		if err != nil {
			return nil, 0, fmt.Errorf("log query: %w", err)
		}
		rs, err := d.Receipts(b)
		if err != nil {
			return nil, 0, fmt.Errorf("log query: %w", err)
		}
		for _, r := range rs {
			for _, l := range r.Logs {
				if q.Matches(l) {
					out = append(out, l)
				}
			}
		}
		if q.MaxResults <= 0 {
			continue
		}
		if page && len(out) >= q.MaxResults {
			return out, n, nil
		}
		if !page && len(out) > q.MaxResults {
			return nil, 0, fmt.Errorf("%w: %d logs match in blocks %d..%d alone, over the limit of %d (query range %d..%d)",
				ErrTooManyLogs, len(out), q.FromBlock, n, q.MaxResults, q.FromBlock, q.ToBlock)
		}
	}
	return out, q.ToBlock, nil
}

// logBlocks returns, ascending, the blocks in q's range that the index says
// may hold a matching log: those with a log of one of q's addresses and,
// for every constrained topic position, a log with one of its topics there
// (a superset: the address and the topics may be on different logs). An
// unconstrained query gets every block that has logs.
func (d *DB) logBlocks(ctx context.Context, q *LogQuery) ([]uint64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefixLog, UpperBound: upperBound(prefixLog)})
	if err != nil {
		return nil, fmt.Errorf("log index: %w", err)
	}
	blocks, err := logCandidates(ctx, it, q)
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("log index: %w", cerr)
	}
	return blocks, err
}

func logCandidates(ctx context.Context, it *pebble.Iterator, q *LogQuery) ([]uint64, error) {
	var (
		result      []uint64
		constrained bool
	)
	narrow := func(kind byte, values []common.Hash) error {
		var union []uint64
		for _, v := range values {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("log index: %w", err)
			}
			union = mergeUnion(union, scanLogIndex(it, logValueKey(kind, v), q.FromBlock, q.ToBlock))
		}
		if !constrained {
			result, constrained = union, true
		} else {
			result = intersect(result, union)
		}
		return nil
	}
	if len(q.Addresses) > 0 {
		values := make([]common.Hash, len(q.Addresses))
		for i, a := range q.Addresses {
			values[i] = addressValue(a)
		}
		if err := narrow(logKindAddress, values); err != nil {
			return nil, err
		}
	}
	for i, pos := range q.Topics {
		if len(result) == 0 && constrained {
			break // nothing can match any more
		}
		if len(pos) == 0 {
			continue // wildcard: the exact filter checks the log has topic i
		}
		if err := narrow(logKindTopic0+byte(i), pos); err != nil {
			return nil, err
		}
	}
	if !constrained {
		result = scanLogIndex(it, append(append([]byte(nil), prefixLog...), logKindHasLogs), q.FromBlock, q.ToBlock)
	}
	return result, it.Error()
}

// scanLogIndex returns, ascending, the block numbers of the index keys
// prefix+number with from <= number <= to.
func scanLogIndex(it *pebble.Iterator, prefix []byte, from, to uint64) []uint64 {
	var out []uint64
	for valid := it.SeekGE(binary.BigEndian.AppendUint64(slices.Clip(prefix), from)); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
			break
		}
		n := binary.BigEndian.Uint64(k[len(prefix):])
		if n > to {
			break
		}
		out = append(out, n)
	}
	return out
}

// mergeUnion merges two ascending lists without duplicates.
func mergeUnion(a, b []uint64) []uint64 {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]uint64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// intersect returns the elements common to two ascending lists.
func intersect(a, b []uint64) []uint64 {
	out := a[:0:0]
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
