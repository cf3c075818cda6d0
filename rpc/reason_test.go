package rpc

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// reasonChain is a filterChain whose DB keeps the state of the last
// history blocks, in dir, and whose blocks may hold failing transactions.
func reasonChain(t *testing.T, dir string, history uint64) *filterChain {
	t.Helper()
	c := newFilterChain(t) // its own DB is closed at cleanup; this one replaces it
	c.db = openReasonDB(t, dir, history)
	if err := c.db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	return c
}

func openReasonDB(t *testing.T, dir string, history uint64) *store.DB {
	t.Helper()
	db, err := store.Open(dir, store.Options{NoSync: true, HistoryBlocks: history, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// transfer signs a native transfer of value from account from.
func (c *filterChain) transfer(from int, to common.Address, value *big.Int) *types.Transaction {
	c.t.Helper()
	key := c.keys[from]
	id := big.NewInt(genesis.DevChainID)
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: c.nonces[key.Address()], To: &to, Value: value, Gas: 21000}), id, key)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nonces[key.Address()]++
	return tx
}

// blockStatuses builds and applies a block of txs and checks each
// receipt's status.
func (c *filterChain) blockStatuses(statuses []uint64, txs ...*types.Transaction) *chain.Block {
	c.t.Helper()
	froms, _ := c.senders.Senders(txs)
	tip := c.db.Tip()
	built, err := state.Build(c.db, tip.Parent(), txs, froms, nil, tip.Head.TimeMs+1000, c.val, genesis.DevChainID)
	if err != nil || len(built.Dropped) != 0 {
		c.t.Fatalf("build: %v %+v", err, built.Dropped)
	}
	c.raftIdx++
	applied, err := c.db.ApplyBlock(built.Block, c.raftIdx, c.senders)
	if err != nil {
		c.t.Fatal(err)
	}
	for i, r := range applied.Receipts {
		if r.Status != statuses[i] {
			c.t.Fatalf("block %d tx %d: status %d, want %d", built.Block.Number(), i, r.Status, statuses[i])
		}
	}
	c.heads.Publish(built.Block)
	return built.Block
}

// TestGetTransactionReason serves failure reasons over HTTP: kept ones by
// tally_getTransactionReason and as the receipts' tallyReason field (which
// go-ethereum's client decodes past), null for a success or an unknown
// hash; a reason missing from a block applied before reasons were kept is
// recomputed while the parent state is kept (through the heavy-read
// gate), null after; malformed hashes are invalid params.
func TestGetTransactionReason(t *testing.T) {
	dir := t.TempDir()
	c := reasonChain(t, dir, 2)
	fresh := common.HexToAddress("0x00000000000000000000000000000000000fe5a3") // tier 0: at most 1000 CNY
	cny := func(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }
	overLimit := fmt.Sprintf("balance of %s would be 1001.00 CNY, over the maximum 1000.00 CNY of tier 0", fresh)
	insufficient := fmt.Sprintf("insufficient balance: %s has 1000000000000.00 HKD, needs 1000000000000.01 HKD", c.addr(2))

	b1 := c.blockStatuses([]uint64{0, 1, 0, 0},
		c.transfer(0, fresh, cny(1001)),
		c.transfer(0, fresh, cny(1)),
		c.call(2, 1, "transfer", c.addr(0), big.NewInt(100000000000001)),
		c.transfer(0, fresh, cny(1001)))
	oldGone := b1.Txs[3] // its reason is removed below; block 0's state leaves the window
	c.blockStatuses([]uint64{1}, c.transfer(0, fresh, cny(1)))
	b3 := c.blockStatuses([]uint64{0}, c.transfer(0, fresh, cny(999)))
	oldKept := b3.Txs[0] // its reason is removed below; block 2's state is kept

	// As if blocks 1 and 3 had been applied before reasons were kept.
	if err := c.db.Close(); err != nil {
		t.Fatal(err)
	}
	pdb, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range [][2]uint64{{1, 3}, {3, 0}} {
		key := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64([]byte("E"), k[0]), uint32(k[1]))
		_, closer, err := pdb.Get(key)
		if err != nil {
			t.Fatalf("reason of block %d tx %d not stored under %x: %v", k[0], k[1], key, err)
		}
		closer.Close()
		if err := pdb.Delete(key, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := pdb.Close(); err != nil {
		t.Fatal(err)
	}
	c.db = openReasonDB(t, dir, 2)

	limits := DefaultLimits
	limits.MaxHeavyReads, limits.HeavyReadWait = 1, 100*time.Millisecond
	s := serveBounded(t, c, limits)
	cl := clientFrom(t, s, "127.0.7.1", false)
	reason := func(h common.Hash) *string {
		t.Helper()
		var r *string
		if err := cl.Call(&r, "tally_getTransactionReason", h); err != nil {
			t.Fatalf("tally_getTransactionReason(%s): %v", h, err)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		h    common.Hash
		want string // "" for null
	}{
		{"over the recipient's tier limit", b1.Txs[0].Hash(), overLimit},
		{"success", b1.Txs[1].Hash(), ""},
		{"insufficient balance", b1.Txs[2].Hash(), insufficient},
		{"not kept, parent state gone", oldGone.Hash(), ""},
		{"recomputed from the parent state", oldKept.Hash(), fmt.Sprintf("balance of %s would be 1001.00 CNY, over the maximum 1000.00 CNY of tier 0", fresh)},
		{"unknown", common.Hash{1}, ""},
	} {
		got := reason(tc.h)
		if (got == nil) != (tc.want == "") || (got != nil && *got != tc.want) {
			t.Errorf("%s: reason %v, want %q", tc.name, strOrNil(got), tc.want)
		}
	}

	// Receipts carry the kept reason; go-ethereum's client decodes them.
	var raw map[string]any
	if err := cl.Call(&raw, "eth_getTransactionReceipt", b1.Txs[0].Hash()); err != nil {
		t.Fatal(err)
	}
	if raw[receiptReasonField] != overLimit {
		t.Errorf("failed receipt's %s = %v, want %q", receiptReasonField, raw[receiptReasonField], overLimit)
	}
	for _, h := range []common.Hash{b1.Txs[1].Hash(), oldGone.Hash(), oldKept.Hash()} {
		raw = nil
		if err := cl.Call(&raw, "eth_getTransactionReceipt", h); err != nil {
			t.Fatal(err)
		}
		if v, ok := raw[receiptReasonField]; ok {
			t.Errorf("receipt of %s has %s %v: a success or a reason not kept", h, receiptReasonField, v)
		}
	}
	var block []map[string]any
	if err := cl.Call(&block, "eth_getBlockReceipts", "0x1"); err != nil {
		t.Fatal(err)
	}
	if len(block) != 4 || block[0][receiptReasonField] != overLimit || block[1][receiptReasonField] != nil ||
		block[2][receiptReasonField] != insufficient || block[3][receiptReasonField] != nil {
		t.Errorf("block 1's receipts' reasons: %+v", block)
	}
	rc, err := ethclient.NewClient(cl).TransactionReceipt(context.Background(), b1.Txs[0].Hash())
	if err != nil || rc.Status != types.ReceiptStatusFailed || rc.TxHash != b1.Txs[0].Hash() {
		t.Fatalf("ethclient on a receipt with %s: %+v %v", receiptReasonField, rc, err)
	}

	// Recomputing is a heavy read: with the only slot taken it waits and
	// is refused; a kept reason is one key read and is served.
	g := s.srv.heavy
	g.mu.Lock()
	g.take(netip.Prefix{})
	g.mu.Unlock()
	var r *string
	err = cl.Call(&r, "tally_getTransactionReason", oldKept.Hash())
	var rerr gethrpc.Error
	if !errors.As(err, &rerr) || rerr.ErrorCode() != CodeLimitExceeded {
		t.Errorf("recompute with no heavy-read slot: %v %v, want -32005", strOrNil(r), err)
	}
	if got := reason(b1.Txs[0].Hash()); got == nil || *got != overLimit {
		t.Errorf("kept reason with no heavy-read slot: %v", strOrNil(got))
	}
	g.release(netip.Prefix{})

	// Bad input: invalid params, nothing else.
	for _, bad := range []struct {
		params []any
		msg    string
	}{
		{[]any{"0x1234"}, "invalid argument 0: hex string has length 4, want 64 for common.Hash"},
		{[]any{"not a hash"}, "invalid argument 0"},
		{[]any{42}, "invalid argument 0"},
		{nil, "missing value for required argument 0"},
	} {
		var res json.RawMessage
		err := cl.Call(&res, "tally_getTransactionReason", bad.params...)
		if !errors.As(err, &rerr) || rerr.ErrorCode() != CodeInvalidParams || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("tally_getTransactionReason(%v): %s %v, want -32602 containing %q", bad.params, res, err, bad.msg)
		}
	}
}

func strOrNil(s *string) string {
	if s == nil {
		return "null"
	}
	return fmt.Sprintf("%q", *s)
}

// quietPebble keeps a test's direct Pebble open out of the test output.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
