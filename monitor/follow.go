package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	kv "github.com/tally-ledger/tally/internal/pebblekv"
	"github.com/tally-ledger/tally/internal/service"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/store"
	"github.com/tally-ledger/tally/wallet"
)

// Source is where the monitor reads the chain: any node's JSON-RPC
// (NodeSource), or in tests a data dir.
type Source interface {
	// Head is the height of the newest block.
	Head(ctx context.Context) (uint64, error)
	// RawBlocks returns stored blocks from, from+1, … (at least one when
	// from is at or below the head, at most count).
	RawBlocks(ctx context.Context, from uint64, count int) ([]store.RawBlock, error)
}

// NodeSource reads blocks with tally_getRawBlocks, the auditor's method:
// the blocks and receipts exactly as the node stored them, which the
// monitor checks against their headers.
type NodeSource struct{ C *wallet.Client }

// Head implements Source.
func (n NodeSource) Head(ctx context.Context) (uint64, error) {
	var h hexutil.Uint64
	if err := n.C.Call(ctx, &h, "eth_blockNumber"); err != nil {
		return 0, fmt.Errorf("eth_blockNumber: %w", err)
	}
	return uint64(h), nil
}

// RawBlocks implements Source.
func (n NodeSource) RawBlocks(ctx context.Context, from uint64, count int) ([]store.RawBlock, error) {
	var raws []rpc.RawBlock
	if err := n.C.Call(ctx, &raws, "tally_getRawBlocks", hexutil.Uint64(from), hexutil.Uint64(min(count, rpc.MaxRawBlocks))); err != nil {
		return nil, fmt.Errorf("tally_getRawBlocks %d: %w", from, err)
	}
	out := make([]store.RawBlock, len(raws))
	for i, r := range raws {
		out[i] = r.Stored()
	}
	return out, nil
}

// Step judges the blocks after the cursor, up to follow.batch of them and
// the head, and records them with their alerts and the cursor past them in
// one synced batch. It returns how many blocks it judged (0 at the head).
func (m *Monitor) Step(ctx context.Context) (int, error) {
	cur, err := m.store.Cursor()
	if err != nil {
		return 0, err
	}
	if !cur.Set {
		if cur, err = m.anchor(ctx); err != nil {
			return 0, err
		}
	}
	head, err := m.src.Head(ctx)
	if err != nil {
		return 0, err
	}
	m.metrics.head.Set(float64(head))
	if cur.Next > head {
		return 0, nil
	}
	raws, err := m.src.RawBlocks(ctx, cur.Next, min(m.cfg.Follow.Batch, int(head-cur.Next+1)))
	if err != nil {
		return 0, err
	}
	if len(raws) == 0 {
		return 0, fmt.Errorf("block %d: the node returned no block below its head %d", cur.Next, head)
	}
	acts := make([]*Activity, 0, len(raws))
	prev := cur.Prev
	for i, raw := range raws {
		if raw.Number != cur.Next+uint64(i) {
			return 0, fmt.Errorf("block %d: %w: the node returned block %d in its place", cur.Next+uint64(i), ErrChain, raw.Number)
		}
		act, err := decodeActivity(raw, prev, m.senders)
		if err != nil {
			return 0, err
		}
		acts = append(acts, act)
		prev = act.Hash
	}
	created, err := m.record(acts)
	if err != nil {
		return 0, err
	}
	transfers := 0
	for _, a := range acts {
		transfers += len(a.Transfers)
	}
	m.metrics.blocks.Add(float64(len(acts)))
	m.metrics.transfers.Add(float64(transfers))
	m.metrics.height.Set(float64(acts[len(acts)-1].Number))
	for _, a := range created {
		m.metrics.alerts.WithLabelValues(a.Rule, string(a.Severity)).Inc()
		m.log.Info("alert", "id", a.ID, "rule", a.Rule, "severity", a.Severity, "account", a.Account, "detail", a.Detail)
	}
	if len(created) > 0 {
		service.Kick(m.kickWebhook)
	}
	return len(acts), nil
}

// anchor is the cursor of a fresh store: follow.start-block, after the
// hash of its parent (read from the node: the monitor trusts the node it
// starts from for the blocks before it follows).
func (m *Monitor) anchor(ctx context.Context) (Cursor, error) {
	c := Cursor{Next: m.cfg.Follow.StartBlock, Set: true}
	if c.Next == 0 {
		return c, nil
	}
	raws, err := m.src.RawBlocks(ctx, c.Next-1, 1)
	if err != nil {
		return c, err
	}
	if len(raws) == 0 {
		return c, fmt.Errorf("follow.start-block %d: the node has no block %d yet", c.Next, c.Next-1)
	}
	act, err := decodeActivity(raws[0], common.Hash{}, m.senders)
	if err != nil {
		return c, fmt.Errorf("follow.start-block %d: %w", c.Next, err)
	}
	c.Prev = act.Hash
	return c, nil
}

// record judges acts and writes everything they change with the cursor
// past the last one: one batch, synced. It returns the alerts created.
func (m *Monitor) record(acts []*Activity) ([]*Alert, error) {
	s := m.store
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewIndexedBatch()
	defer b.Close()
	v := &batchView{b: b, profiles: map[common.Address]*Profile{}}
	var created []*Alert
	for _, act := range acts {
		fs, err := m.engine.judge(v, act)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			a, isNew, err := m.raise(b, f, act)
			if err != nil {
				return nil, fmt.Errorf("block %d: %w", act.Number, err)
			}
			if isNew {
				created = append(created, a)
				if err := m.enqueue(b, a, EventCreated); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := v.flush(); err != nil {
		return nil, err
	}
	last := acts[len(acts)-1]
	if err := putCursor(b, Cursor{Next: last.Number + 1, Prev: last.Hash}); err != nil {
		return nil, err
	}
	crashPoint(crashBeforeCommit)
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("record blocks %d-%d: %w", acts[0].Number, last.Number, err)
	}
	return created, nil
}

// raise turns a firing into a new alert, or adds it to the account's
// unresolved alert of the same rule (so one account cannot fill the queue
// with one rule's firings).
func (m *Monitor) raise(b *pebble.Batch, f firing, act *Activity) (*Alert, bool, error) {
	ok := openKey(f.account, f.rule)
	idv, err := kv.GetUint(b, ok)
	if err != nil {
		return nil, false, err
	}
	if idv != 0 {
		a, err := readAlert(b, idv)
		if err != nil {
			return nil, false, err
		}
		old := *a
		a.Firings++
		a.LastHeight = act.Number
		a.Detail, a.Numbers = f.detail, f.numbers
		if rank(f.severity) > rank(a.Severity) {
			a.Severity = f.severity
		}
		for _, h := range f.txs {
			if len(a.Txs) < m.cfg.Queue.MaxTxs && !slices.Contains(a.Txs, h) {
				a.Txs = append(a.Txs, h)
			}
		}
		return a, false, putAlert(b, &old, a)
	}
	seq, err := kv.GetUint(b, keyAlertSeq)
	if err != nil {
		return nil, false, err
	}
	txs := f.txs
	if len(txs) > m.cfg.Queue.MaxTxs {
		txs = txs[len(txs)-m.cfg.Queue.MaxTxs:]
	}
	a := &Alert{ID: seq + 1, Rule: f.rule, Severity: f.severity, Account: f.account, Asset: f.asset, Detail: f.detail, Numbers: f.numbers,
		Txs: txs, Height: act.Number, At: msTime(act.TimeMs), Firings: 1, LastHeight: act.Number, Status: StatusOpen}
	if err := b.Set(keyAlertSeq, kv.BE8(a.ID), nil); err != nil {
		return nil, false, err
	}
	return a, true, putAlert(b, nil, a)
}

func rank(s Severity) int { return slices.Index(Severities, s) }

// batchView is the engine's accounts over the follower's indexed batch:
// profiles are read once, changed in memory and written at flush.
type batchView struct {
	b        *pebble.Batch
	profiles map[common.Address]*Profile
	order    []common.Address
}

func (v *batchView) profile(a common.Address) (*Profile, error) {
	if p, ok := v.profiles[a]; ok {
		return p, nil
	}
	p := &Profile{}
	if _, err := kv.GetJSON(v.b, profileKey(a), p); err != nil {
		return nil, fmt.Errorf("profile of %s: %w", a, err)
	}
	v.profiles[a] = p
	v.order = append(v.order, a)
	return p, nil
}

func (v *batchView) paid(from, to common.Address, at uint64) (bool, error) {
	k := payeeKey(from, to)
	val, err := kv.Get(v.b, k)
	if err != nil || val != nil {
		return val != nil, err
	}
	return false, v.b.Set(k, kv.BE8(at), nil)
}

func (v *batchView) flush() error {
	for _, a := range v.order {
		data, err := json.Marshal(v.profiles[a])
		if err != nil {
			return fmt.Errorf("profile of %s: %w", a, err)
		}
		if err := v.b.Set(profileKey(a), data, nil); err != nil {
			return err
		}
	}
	return nil
}

// Profile reads an account's profile (nil when the monitor never saw it).
func (s *Store) Profile(a common.Address) (*Profile, error) {
	var p Profile
	ok, err := kv.GetJSON(s.db, profileKey(a), &p)
	if err != nil || !ok {
		return nil, err
	}
	return &p, nil
}
