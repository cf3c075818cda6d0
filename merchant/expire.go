package merchant

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	kv "github.com/tally-ledger/tally/internal/pebblekv"
)

// Expiry is when an order expired unpaid, by the chain's clock: the
// first block whose timestamp is at or past the request's expiry.
type Expiry struct {
	Block uint64    `json:"block"`
	Time  time.Time `json:"time"`
}

// The expiry rule, by the chain's clock so that it is the same on every
// run and after a crash: an order expires at the first block (read after
// its registration) whose timestamp is at or past its expiry. A payment
// in an earlier block is on time; one in that block or later is late (it
// is still the order's, notified as usual after order.expired). An order
// that nothing was paid to by then is notified as order.expired, once,
// with the delivery id expired-<reference>-<block>. The leader makes an
// empty block every second while idle (builder.heartbeat), so the chain's
// clock moves without traffic.

// expirySecond is the first block timestamp (Unix seconds) at or past t.
func expirySecond(t time.Time) uint64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return uint64(max(s, 0))
}

// expiryKey is the x/ index entry of an order: x/<expiry second 8><ref>.
func expiryKey(o *Order) []byte {
	return kv.Cat(prefixExpiry, kv.BE8(expirySecond(o.Expires)), o.Reference[:])
}

// expiring is an order whose expiry falls in the blocks being read.
type expiring struct {
	key   []byte
	ref   common.Hash
	block uint64 // the first block at or past the expiry
	time  uint64 // its timestamp
}

// expiring finds the indexed orders whose expiry second is at or before
// block to's timestamp, each with the first block of next..to at or past
// it (a binary search over the headers; the blocks before next are before
// it, or the order expired then). It asks the node nothing while no order
// waits to expire.
func (n *Notifier) expiring(ctx context.Context, next, to uint64) ([]expiring, error) {
	it, err := n.store.db.NewIter(&pebble.IterOptions{LowerBound: prefixExpiry, UpperBound: kv.UpperBound(prefixExpiry)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.First() {
		return nil, it.Error()
	}
	times := map[uint64]uint64{}
	blockTime := func(h uint64) (uint64, error) {
		if t, ok := times[h]; ok {
			return t, nil
		}
		var hdr struct {
			Time *hexutil.Uint64 `json:"timestamp"`
		}
		if err := n.client.Call(ctx, &hdr, "eth_getBlockByNumber", hexutil.Uint64(h), false); err != nil {
			return 0, fmt.Errorf("eth_getBlockByNumber %d: %w", h, err)
		}
		if hdr.Time == nil {
			return 0, fmt.Errorf("eth_getBlockByNumber %d: no such block", h)
		}
		times[h] = uint64(*hdr.Time)
		return times[h], nil
	}
	last, err := blockTime(to)
	if err != nil {
		return nil, err
	}
	var out []expiring
	for ; it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefixExpiry)+8+32 {
			return nil, fmt.Errorf("expiry index key %x: %d bytes", k, len(k))
		}
		sec := binary.BigEndian.Uint64(k[len(prefixExpiry):])
		if sec > last {
			break // the index is in expiry order
		}
		// The first block of next..to whose time is at or past sec.
		lo, hi := next, to
		for lo < hi {
			mid := lo + (hi-lo)/2
			t, err := blockTime(mid)
			if err != nil {
				return nil, err
			}
			if t >= sec {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		t, err := blockTime(lo)
		if err != nil {
			return nil, err
		}
		out = append(out, expiring{key: append([]byte{}, k...), ref: common.BytesToHash(k[len(prefixExpiry)+8:]), block: lo, time: t})
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].block < out[j].block })
	return out, nil
}

// expire applies an order's expiry in b: its index entry goes; an order
// still unpaid is marked expired and notified. An order deleted meanwhile
// (no index entry) is left alone. The caller holds the store's lock.
func (n *Notifier) expire(b *pebble.Batch, x expiring) (bool, error) {
	if v, err := kv.Get(b, x.key); err != nil || v == nil {
		return false, err
	}
	if err := b.Delete(x.key, nil); err != nil {
		return false, err
	}
	o, err := readOrder(b, x.ref)
	if err != nil {
		return false, err
	}
	if amountOf(o.Paid).Sign() != 0 {
		return false, nil // paid on time
	}
	o.Status = StatusExpired
	o.ExpiredAt = &Expiry{Block: x.block, Time: time.Unix(int64(x.time), 0).UTC()}
	if err := putOrder(b, o); err != nil {
		return false, err
	}
	note := Notification{ID: fmt.Sprintf("expired-%s-%d", o.Reference.Hex(), x.block), Event: EventExpired, Order: o, Expiry: o.ExpiredAt}
	n.log.Info("order event", "order", o.Order, "event", note.Event, "block", x.block)
	return n.notify(b, &note)
}
