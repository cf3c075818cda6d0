package merchant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	kv "github.com/tally-ledger/tally/internal/pebblekv"
	"github.com/tally-ledger/tally/internal/service"
	"github.com/tally-ledger/tally/state"
)

// The events the notifier reads (abi/Asset.json):
// PaymentReference(bytes32 indexed ref, address indexed from, address indexed to, uint256 amount)
// Refund(bytes32 indexed ref, address indexed merchant, address indexed to, uint256 amount)
var (
	topicPayment = chain.AssetABI.Events["PaymentReference"].ID
	topicRefund  = chain.AssetABI.Events["Refund"].ID
)

// The dispute events (abi/Disputes.json, docs/payments.md): a dispute
// opened on an order's payment, and the three ways one closes.
var (
	topicDisputeOpened    = chain.DisputesABI.Events["DisputeOpened"].ID
	topicDisputeRefunded  = chain.DisputesABI.Events["DisputeRefunded"].ID
	topicDisputeUpheld    = chain.DisputesABI.Events["DisputeUpheld"].ID
	topicDisputeDismissed = chain.DisputesABI.Events["DisputeDismissed"].ID
)

// codeLogLimit is the node's answer to a log query over its result bound
// (rpc: -32005, as hosted providers answer it).
const codeLogLimit = -32005

// Step reads the blocks after the cursor, up to follow.batch of them and
// the head, matches their payments and refunds to the registered orders
// and records the orders, their notifications and the cursor past the
// blocks in one synced batch. It returns how many blocks it read (0 at
// the head).
func (n *Notifier) Step(ctx context.Context) (int, error) {
	next, set, err := n.store.Cursor()
	if err != nil {
		return 0, err
	}
	if !set {
		next = n.cfg.Follow.StartBlock
	}
	var head hexutil.Uint64
	if err := n.client.Call(ctx, &head, "eth_blockNumber"); err != nil {
		return 0, fmt.Errorf("eth_blockNumber: %w", err)
	}
	if next > uint64(head) {
		return 0, nil
	}
	to := min(uint64(head), next+uint64(n.batch)-1)
	logs, err := n.logs(ctx, next, to)
	var de rpc.Error
	if errors.As(err, &de) && de.ErrorCode() == codeLogLimit && n.batch > 1 {
		// Too many logs in the range: read fewer blocks at a time.
		n.batch = max(1, n.batch/2)
		n.log.Warn("the node refused the log range as too large; reading fewer blocks at a time", "from", next, "to", to, "batch", n.batch)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	exp, err := n.expiring(ctx, next, to)
	if err != nil {
		return 0, err
	}
	if err := n.record(logs, exp, to+1); err != nil {
		return 0, err
	}
	if n.batch < n.cfg.Follow.Batch {
		n.batch = min(n.cfg.Follow.Batch, 2*n.batch)
	}
	return int(to - next + 1), nil
}

// logs reads the PaymentReference events to the payees and the Refund
// events from them in blocks from..to, in chain order: under every
// reference, or under refs only.
func (n *Notifier) logs(ctx context.Context, from, to uint64, refs ...common.Hash) ([]types.Log, error) {
	payees := make([]common.Hash, len(n.payees))
	for i, p := range n.payees {
		payees[i] = common.BytesToHash(p[:])
	}
	var refTopic any // null: any reference
	if len(refs) > 0 {
		refTopic = refs
	}
	type query struct {
		address any
		topics  []any
	}
	queries := []query{
		{n.facades, []any{[]common.Hash{topicPayment}, refTopic, nil, payees}}, // to: topic 3
		{n.facades, []any{[]common.Hash{topicRefund}, refTopic, payees}},       // merchant: topic 2
	}
	if len(refs) == 0 {
		// Disputes: those opened against the payees, and every close
		// (a bank's has no merchant topic; apply keeps the payees' own).
		queries = append(queries,
			query{chain.DisputesAddress, []any{[]common.Hash{topicDisputeOpened}, nil, nil, payees}},
			query{chain.DisputesAddress, []any{[]common.Hash{topicDisputeRefunded, topicDisputeUpheld, topicDisputeDismissed}}})
	}
	var all []types.Log
	for _, q := range queries {
		var logs []types.Log
		crit := map[string]any{"fromBlock": hexutil.Uint64(from), "toBlock": hexutil.Uint64(to), "address": q.address, "topics": q.topics}
		if err := n.client.Call(ctx, &logs, "eth_getLogs", crit); err != nil {
			return nil, fmt.Errorf("eth_getLogs %d..%d: %w", from, to, err)
		}
		all = append(all, logs...)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].BlockNumber != all[j].BlockNumber {
			return all[i].BlockNumber < all[j].BlockNumber
		}
		return all[i].Index < all[j].Index
	})
	return all, nil
}

// record applies logs and expiries to their orders and writes the
// orders, their notifications and the cursor next in one synced batch.
func (n *Notifier) record(logs []types.Log, exp []expiring, next uint64) error {
	s := n.store
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewIndexedBatch()
	defer b.Close()
	queued, err := n.apply(b, logs, exp)
	if err != nil {
		return err
	}
	if err := b.Set(keyCursor, kv.BE8(next), nil); err != nil {
		return err
	}
	if err := n.commit(b, queued); err != nil {
		return fmt.Errorf("record blocks up to %d: %w", next-1, err)
	}
	n.metrics.height.Set(float64(next - 1))
	return nil
}

// commit commits b, synced; queued says it holds notifications.
func (n *Notifier) commit(b *pebble.Batch, queued bool) error {
	if err := b.Commit(pebble.Sync); err != nil {
		if queued {
			n.outbox.Recount() //nolint:errcheck // best effort: the batch's deliveries are gone
		}
		return err
	}
	if queued {
		service.Kick(n.kickWebhook)
	}
	return nil
}

// apply matches logs (in chain order) to their orders in b, with the
// expiries exp (in block order) before the logs of their blocks, and
// queues their notifications; it says whether it queued any. The caller
// holds the store's lock.
func (n *Notifier) apply(b *pebble.Batch, logs []types.Log, exp []expiring) (bool, error) {
	queued := false
	expireTo := func(block uint64) error {
		for len(exp) > 0 && exp[0].block <= block {
			ok, err := n.expire(b, exp[0])
			if err != nil {
				return err
			}
			queued, exp = queued || ok, exp[1:]
		}
		return nil
	}
	for i := range logs {
		l := &logs[i]
		if err := expireTo(l.BlockNumber); err != nil {
			return false, err
		}
		if l.Address == chain.DisputesAddress {
			ok, err := n.applyDispute(b, l)
			if err != nil {
				return false, err
			}
			queued = queued || ok
			continue
		}
		if len(l.Topics) != 4 || len(l.Data) != 32 {
			return false, fmt.Errorf("block %d log %d: %d topics and %d bytes of data: not an asset's payment event", l.BlockNumber, l.Index, len(l.Topics), len(l.Data))
		}
		refund := l.Topics[0] == topicRefund
		ref := l.Topics[1]
		o, err := readOrder(b, ref)
		if errors.Is(err, ErrNotFound) {
			n.metrics.unmatched.Inc()
			continue
		}
		if err != nil {
			return false, err
		}
		// A payment is the order's when it pays the order's payee in the
		// order's asset; a refund when the order's payee makes it.
		payee := common.BytesToAddress(l.Topics[3][:])
		payer := common.BytesToAddress(l.Topics[2][:])
		if refund {
			payee, payer = payer, payee
		}
		if payee != o.Payee || l.Address != o.AssetAddress {
			n.metrics.unmatched.Inc()
			continue
		}
		amount := new(big.Int).SetBytes(l.Data)
		minor := n.assets[o.Asset].MinorUnits
		m := Movement{Tx: l.TxHash, LogIndex: l.Index, Block: l.BlockNumber, Payer: payer, Amount: amount.String(),
			Text: units(amount, o.Decimals, minor, o.Asset)}
		event := o.apply(m, refund, n.cfg.Orders.MaxMovements, minor)
		if err := putOrder(b, o); err != nil {
			return false, err
		}
		kind := "payment"
		if refund {
			kind = "refund"
		}
		note := Notification{ID: fmt.Sprintf("%s-%s-%d", kind, l.TxHash.Hex(), l.Index), Event: event, Order: o}
		if refund {
			note.Refund = &m
		} else {
			note.Payment = &m
		}
		n.log.Info("order event", "order", o.Order, "event", event, "status", o.Status, "amount", m.Text, "tx", m.Tx)
		ok, err := n.notify(b, &note)
		if err != nil {
			return false, err
		}
		queued = queued || ok
	}
	if err := expireTo(^uint64(0)); err != nil {
		return false, err
	}
	return queued, nil
}

// notify queues note in b (counted; nothing without webhook.url).
func (n *Notifier) notify(b *pebble.Batch, note *Notification) (bool, error) {
	n.metrics.events.WithLabelValues(note.Event).Inc()
	if n.outbox == nil {
		return false, nil
	}
	body, err := json.Marshal(note)
	if err != nil {
		return false, err
	}
	return n.outbox.Enqueue(b, note.ID, note.Event, body)
}

// applyDispute applies a dispute event: one opened on an order's payment
// (its merchant the order's payee, in the order's asset, under its
// reference) is recorded on the order, with its id in d/; a close of a
// dispute so recorded updates it, and an upheld one counts as refunded
// (the bank's forced transfer back to the payer, which the asset's
// payment record counts so). Other disputes are not the notifier's.
func (n *Notifier) applyDispute(b *pebble.Batch, l *types.Log) (bool, error) {
	bad := func() error {
		return fmt.Errorf("block %d log %d: %d topics and %d bytes of data: not a dispute event", l.BlockNumber, l.Index, len(l.Topics), len(l.Data))
	}
	if len(l.Topics) < 3 {
		return false, bad()
	}
	id := l.Topics[1]
	note := Notification{ID: fmt.Sprintf("dispute-%s-%d", l.TxHash.Hex(), l.Index)}
	var o *Order
	var d *Dispute
	switch l.Topics[0] {
	case topicDisputeOpened:
		// data: asset, ref, amount, reason, txHash
		if len(l.Topics) != 4 || len(l.Data) != 5*32 {
			return false, bad()
		}
		ref := common.BytesToHash(l.Data[32:64])
		var err error
		o, err = readOrder(b, ref)
		if errors.Is(err, ErrNotFound) {
			n.metrics.unmatched.Inc()
			return false, nil
		}
		if err != nil {
			return false, err
		}
		merchant := common.BytesToAddress(l.Topics[3][:])
		asset := common.BytesToAddress(l.Data[:32])
		if merchant != o.Payee || asset != o.AssetAddress {
			n.metrics.unmatched.Inc()
			return false, nil
		}
		amount := new(big.Int).SetBytes(l.Data[64:96])
		reason := uint8(new(big.Int).SetBytes(l.Data[96:128]).Uint64())
		o.Disputes = append(o.Disputes, Dispute{ID: new(big.Int).SetBytes(id[:]).String(), Payer: common.BytesToAddress(l.Topics[2][:]),
			Amount: amount.String(), Text: units(amount, o.Decimals, n.assets[o.Asset].MinorUnits, o.Asset), Reason: state.DisputeReasonNames[reason],
			Payment: common.BytesToHash(l.Data[128:160]), Status: state.DisputeStatusNames[state.DisputeOpen], Opened: l.TxHash})
		d = &o.Disputes[len(o.Disputes)-1]
		if err := b.Set(disputeKey(id), o.Reference[:], nil); err != nil {
			return false, err
		}
		note.Event = EventDisputed
	default:
		ref, err := kv.Get(b, disputeKey(id))
		if err != nil || ref == nil {
			return false, err // not a dispute on an order
		}
		if o, err = readOrder(b, common.BytesToHash(ref)); err != nil {
			return false, err
		}
		for i := range o.Disputes {
			if o.Disputes[i].ID == new(big.Int).SetBytes(id[:]).String() {
				d = &o.Disputes[i]
			}
		}
		if d == nil {
			return false, fmt.Errorf("dispute %s of order %q: not on the order", new(big.Int).SetBytes(id[:]), o.Order)
		}
		switch l.Topics[0] {
		case topicDisputeRefunded:
			d.Status = state.DisputeStatusNames[state.DisputeRefunded]
		case topicDisputeDismissed:
			d.Status = state.DisputeStatusNames[state.DisputeDismissed]
		case topicDisputeUpheld:
			if len(l.Data) < 32 {
				return false, bad()
			}
			d.Status = state.DisputeStatusNames[state.DisputeUpheld]
			upheld := new(big.Int).SetBytes(l.Data[:32])
			o.Refunded = new(big.Int).Add(amountOf(o.Refunded), upheld).String()
			o.NetText = units(new(big.Int).Sub(amountOf(o.Paid), amountOf(o.Refunded)), o.Decimals, n.assets[o.Asset].MinorUnits, o.Asset)
			o.Status = o.status()
		}
		d.Closed = l.TxHash
		note.Event = EventDisputeClosed
	}
	if err := putOrder(b, o); err != nil {
		return false, err
	}
	note.Order, note.Dispute = o, d
	n.log.Info("order event", "order", o.Order, "event", note.Event, "dispute", d.ID, "status", d.Status, "tx", l.TxHash)
	return n.notify(b, &note)
}

func disputeKey(id common.Hash) []byte { return append(append([]byte{}, prefixDispute...), id[:]...) }
