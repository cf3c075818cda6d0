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
)

// The events the notifier reads (abi/Asset.json):
// PaymentReference(bytes32 indexed ref, address indexed from, address indexed to, uint256 amount)
// Refund(bytes32 indexed ref, address indexed merchant, address indexed to, uint256 amount)
var (
	topicPayment = chain.AssetABI.Events["PaymentReference"].ID
	topicRefund  = chain.AssetABI.Events["Refund"].ID
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
	if err := n.record(logs, to+1); err != nil {
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
	var all []types.Log
	for _, q := range [][]any{
		{[]common.Hash{topicPayment}, refTopic, nil, payees}, // to: topic 3
		{[]common.Hash{topicRefund}, refTopic, payees},       // merchant: topic 2
	} {
		var logs []types.Log
		crit := map[string]any{"fromBlock": hexutil.Uint64(from), "toBlock": hexutil.Uint64(to), "address": n.facades, "topics": q}
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

// record applies logs to their orders and writes the orders, their
// notifications and the cursor next in one synced batch.
func (n *Notifier) record(logs []types.Log, next uint64) error {
	s := n.store
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewIndexedBatch()
	defer b.Close()
	queued, err := n.apply(b, logs)
	if err != nil {
		return err
	}
	if err := b.Set(keyCursor, be8(next), nil); err != nil {
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
		kick(n.kickWebhook)
	}
	return nil
}

// apply matches logs (in chain order) to their orders in b and queues
// their notifications; it says whether it queued any. The caller holds
// the store's lock.
func (n *Notifier) apply(b *pebble.Batch, logs []types.Log) (bool, error) {
	queued := false
	for i := range logs {
		l := &logs[i]
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
		n.metrics.events.WithLabelValues(event).Inc()
		n.log.Info("order event", "order", o.Order, "event", event, "status", o.Status, "amount", m.Text, "tx", m.Tx)
		if n.outbox != nil {
			body, err := json.Marshal(&note)
			if err != nil {
				return false, err
			}
			ok, err := n.outbox.Enqueue(b, note.ID, event, body)
			if err != nil {
				return false, err
			}
			queued = queued || ok
		}
	}
	return queued, nil
}
