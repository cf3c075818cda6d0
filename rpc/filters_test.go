package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// filterChain is a Backend over a real state DB on the dev genesis whose
// blocks the test builds and applies itself, publishing each to the head
// feed as the node does after a commit.
type filterChain struct {
	t       *testing.T
	db      *store.DB
	senders *chain.SenderCache
	heads   *HeadFeed
	val     *crypto.PrivateKey
	keys    []*crypto.PrivateKey
	nonces  map[common.Address]uint64
	raftIdx uint64
}

func newFilterChain(t *testing.T) *filterChain {
	t.Helper()
	return newFilterChainOn(t, genesis.Dev())
}

// newFilterChainOn is newFilterChain on genesis g (the dev keys still sign).
func newFilterChainOn(t *testing.T, g *genesis.Genesis) *filterChain {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	c := &filterChain{t: t, db: db, heads: NewHeadFeed(4), nonces: map[common.Address]uint64{},
		senders: chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 1024)}
	if c.val, err = genesis.DevKey(genesis.DevValidatorIndex); err != nil {
		t.Fatal(err)
	}
	for i := uint32(0); i < 8; i++ {
		k, err := genesis.DevKey(i)
		if err != nil {
			t.Fatal(err)
		}
		c.keys = append(c.keys, k)
	}
	return c
}

func (c *filterChain) State() *store.DB            { return c.db }
func (c *filterChain) Senders() *chain.SenderCache { return c.senders }
func (c *filterChain) SubmitTx(context.Context, *types.Transaction) error {
	return errors.New("filterChain builds its own blocks")
}
func (c *filterChain) PendingNonce(a common.Address) (uint64, error) { return c.db.Nonce(a) }
func (c *filterChain) PendingTx(common.Hash) (*types.Transaction, common.Address, bool) {
	return nil, common.Address{}, false
}
func (c *filterChain) Syncing() (bool, uint64, uint64) { return false, 0, 0 }
func (c *filterChain) Heads() *HeadFeed                { return c.heads }

func (c *filterChain) addr(i int) common.Address { return c.keys[i].Address() }

// call signs a call of asset's facade operation by account from.
func (c *filterChain) call(from int, asset uint32, method string, args ...any) *types.Transaction {
	c.t.Helper()
	data, err := chain.AssetABI.Pack(method, args...)
	if err != nil {
		c.t.Fatalf("pack %s: %v", method, err)
	}
	key := c.keys[from]
	to := chain.AssetAddress(asset)
	id := big.NewInt(genesis.DevChainID)
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: c.nonces[key.Address()], To: &to, Gas: 100_000, Data: data}), id, key)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nonces[key.Address()]++
	return tx
}

// block builds, applies and publishes a block of txs, all of which must
// succeed.
func (c *filterChain) block(txs ...*types.Transaction) *chain.Block {
	c.t.Helper()
	froms, errs := c.senders.Senders(txs)
	for _, err := range errs {
		if err != nil {
			c.t.Fatal(err)
		}
	}
	tip := c.db.Tip()
	built, err := state.Build(c.db, tip.Parent(), txs, froms, nil, tip.Head.TimeMs+1000, c.val, genesis.DevChainID)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(built.Dropped) != 0 {
		c.t.Fatalf("dropped %+v", built.Dropped)
	}
	c.raftIdx++
	applied, err := c.db.ApplyBlock(built.Block, c.raftIdx, c.senders)
	if err != nil {
		c.t.Fatal(err)
	}
	for i, r := range applied.Receipts {
		if r.Status != types.ReceiptStatusSuccessful {
			c.t.Fatalf("block %d tx %d failed", built.Block.Number(), i)
		}
	}
	c.heads.Publish(built.Block)
	return built.Block
}

// serveFilters serves the API over c with small log bounds, and returns
// the server and an HTTP client of it.
func serveFilters(t *testing.T, c *filterChain) (*httptest.Server, *gethrpc.Client) {
	t.Helper()
	limits := DefaultLimits
	limits.MaxLogBlockRange = 8
	limits.MaxLogResults = 4
	limits.MaxFilters = 3
	srv, err := NewServer(c, limits, "test")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	rc, err := gethrpc.Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close(); ts.Close(); srv.Stop() })
	return ts, rc
}

// wantFilterErr checks that err is a JSON-RPC error with code whose
// message contains msg.
func wantFilterErr(t *testing.T, what string, err error, code int, msg string) {
	t.Helper()
	var rerr gethrpc.Error
	if !errors.As(err, &rerr) || rerr.ErrorCode() != code || !strings.Contains(err.Error(), msg) {
		t.Fatalf("%s: got %v, want code %d containing %q", what, err, code, msg)
	}
}

func addrTopic(a common.Address) common.Hash { return common.BytesToHash(a[:]) }

var (
	testHKD      = chain.AssetAddress(1)
	testCNY      = chain.AssetAddress(0)
	transferID   = chain.AssetABI.Events["Transfer"].ID
	paymentRefID = chain.AssetABI.Events["PaymentReference"].ID
)

func TestGetLogs(t *testing.T) {
	c := newFilterChain(t)
	ref := common.Hash{0x0f}
	oneCNY := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	b1 := c.block(
		c.call(0, 1, "transfer", c.addr(1), big.NewInt(100)),
		c.call(2, 0, "transferWithReference", c.addr(3), oneCNY, [32]byte(ref)),
	)
	c.block()
	c.block(
		c.call(1, 1, "transfer", c.addr(4), big.NewInt(10)),
		c.call(0, 1, "transfer", c.addr(4), big.NewInt(20)),
	)
	for range 7 {
		c.block()
	}
	if h, _ := c.db.Head(); h.Number != 10 {
		t.Fatalf("head %d", h.Number)
	}
	_, rc := serveFilters(t, c)
	ec := ethclient.NewClient(rc)
	ctx := context.Background()

	// Through go-ethereum's own client, which writes the criteria its way.
	for _, tc := range []struct {
		name string
		q    ethereum.FilterQuery
		want []string // "block:from→to" of Transfer logs, or event ids
	}{
		{"address", ethereum.FilterQuery{FromBlock: big.NewInt(0), ToBlock: big.NewInt(7), Addresses: []common.Address{testHKD}},
			[]string{"1:0→1", "3:1→4", "3:0→4"}},
		{"topics AND", ethereum.FilterQuery{FromBlock: big.NewInt(0), ToBlock: big.NewInt(7), Topics: [][]common.Hash{{transferID}, {addrTopic(c.addr(0))}}},
			[]string{"1:0→1", "3:0→4"}},
		{"range", ethereum.FilterQuery{FromBlock: big.NewInt(3), ToBlock: big.NewInt(3)},
			[]string{"3:1→4", "3:0→4"}},
		{"latest", ethereum.FilterQuery{FromBlock: big.NewInt(3)}, []string{"3:1→4", "3:0→4"}},
		{"block hash", ethereum.FilterQuery{BlockHash: ptr(b1.Hash()), Addresses: []common.Address{testCNY}},
			[]string{"1:2→3", "1:PaymentReference"}},
		{"no match", ethereum.FilterQuery{FromBlock: big.NewInt(0), ToBlock: big.NewInt(7), Addresses: []common.Address{{0x55}}}, []string{}},
	} {
		logs, err := ec.FilterLogs(ctx, tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := make([]string, len(logs))
		for i, l := range logs {
			got[i] = describeLog(c, l)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Fatalf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	logs, err := ec.FilterLogs(ctx, ethereum.FilterQuery{BlockHash: ptr(b1.Hash()), Topics: [][]common.Hash{{paymentRefID}}})
	if err != nil || len(logs) != 1 {
		t.Fatalf("payment log: %v %v", logs, err)
	}
	if l := logs[0]; l.BlockHash != b1.Hash() || l.BlockNumber != 1 || l.TxHash != b1.Txs[1].Hash() || l.TxIndex != 1 || l.Index != 2 ||
		l.Address != testCNY || l.Topics[1] != ref || new(big.Int).SetBytes(l.Data).Cmp(oneCNY) != 0 {
		t.Fatalf("payment log fields %+v", l)
	}

	// The JSON shapes go-ethereum accepts.
	raw := func(crit string) (json.RawMessage, error) {
		var out json.RawMessage
		err := rc.CallContext(ctx, &out, "eth_getLogs", json.RawMessage(crit))
		return out, err
	}
	count := func(what, crit string, want int) {
		t.Helper()
		out, err := raw(crit)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var logs []types.Log
		if err := json.Unmarshal(out, &logs); err != nil || len(logs) != want {
			t.Fatalf("%s: %s, want %d logs (%v)", what, out, want, err)
		}
	}
	hkd, a4 := testHKD.Hex(), addrTopic(c.addr(4)).Hex()
	count("single address string", `{"fromBlock":"0x0","toBlock":"0x7","address":"`+hkd+`"}`, 3)
	count("address array", `{"fromBlock":"0x0","toBlock":"0x7","address":["`+hkd+`","`+testCNY.Hex()+`"],"topics":[["`+transferID.Hex()+`"]]}`, 4)
	count("null positions", `{"fromBlock":"0x0","toBlock":"0x7","address":"`+hkd+`","topics":[null,null,"`+a4+`"]}`, 2)
	count("null alternative is a wildcard", `{"fromBlock":"0x0","toBlock":"0x7","address":"`+hkd+`","topics":[null,null,["`+a4+`",null]]}`, 3)
	count("null address and topics", `{"fromBlock":"0x3","toBlock":"0x3","address":null,"topics":null}`, 2)
	count("fewer topics than positions", `{"fromBlock":"0x0","toBlock":"0x7","topics":[null,null,null,null]}`, 1)
	count("earliest", `{"fromBlock":"earliest","toBlock":"0x1"}`, 3)
	if out, err := raw(`{"fromBlock":"0x9"}`); err != nil || string(out) != "[]" {
		t.Fatalf("empty answer %s %v, want []", out, err)
	}

	for _, tc := range []struct {
		name, crit string
		code       int
		msg        string
	}{
		{"range too big", `{"fromBlock":"0x0","toBlock":"0x9"}`, CodeInvalidParams, "exceed maximum block range: 10 blocks requested (0..9), at most 8"},
		{"latest range too big", `{"fromBlock":"0x1"}`, CodeInvalidParams, "exceed maximum block range"},
		{"from after to", `{"fromBlock":"0x3","toBlock":"0x1"}`, CodeInvalidParams, "invalid block range params: fromBlock 3 is after toBlock 1"},
		{"from past the head", `{"fromBlock":"0x64"}`, CodeInvalidParams, "invalid block range params: fromBlock 100 is after toBlock 10 (head 10)"},
		{"to past the head", `{"fromBlock":"0x9","toBlock":"0xb"}`, CodeInvalidParams, "block range extends beyond current head block: toBlock 11, head 10"},
		{"too many results", `{"fromBlock":"0x0","toBlock":"0x7"}`, codeLogLimit, "query returned more than 4 results"},
		{"five topics", `{"topics":[null,null,null,null,null]}`, CodeInvalidParams, "exceed max topics"},
		{"short address", `{"address":"0x1234"}`, CodeInvalidParams, "invalid address"},
		{"non-string address", `{"address":[1]}`, CodeInvalidParams, "non-string address at index 0"},
		{"bad topic", `{"topics":[7]}`, CodeInvalidParams, "invalid topic(s) at position 0"},
		{"short topic", `{"topics":["0x01"]}`, CodeInvalidParams, "invalid topic at position 0"},
		{"hash and range", `{"blockHash":"` + b1.Hash().Hex() + `","fromBlock":"0x1"}`, CodeInvalidParams, "cannot specify both BlockHash and FromBlock/ToBlock"},
		{"unknown block hash", `{"blockHash":"` + common.Hash{0xbb}.Hex() + `"}`, CodeServerError, "unknown block"},
		{"bad tag", `{"fromBlock":"soon"}`, CodeInvalidParams, "invalid argument 0"},
		{"too many addresses", `{"address":[` + strings.Repeat(`"`+hkd+`",`, maxFilterValues) + `"` + hkd + `"]}`, CodeInvalidParams, "exceed max addresses or topics per search position: 1001 addresses"},
	} {
		_, err := raw(tc.crit)
		wantFilterErr(t, tc.name, err, tc.code, tc.msg)
	}
}

func ptr[T any](v T) *T { return &v }

// describeLog names a log for expectations: "block:from→to" for a
// Transfer between test accounts, else "block:EventName".
func describeLog(c *filterChain, l types.Log) string {
	idx := func(h common.Hash) string {
		for i := range c.keys {
			if addrTopic(c.addr(i)) == h {
				return string(rune('0' + i))
			}
		}
		return "?"
	}
	n := fmt.Sprint(l.BlockNumber)
	if l.Topics[0] == transferID {
		return n + ":" + idx(l.Topics[1]) + "→" + idx(l.Topics[2])
	}
	for _, ev := range chain.AssetABI.Events {
		if ev.ID == l.Topics[0] {
			return n + ":" + ev.Name
		}
	}
	return n + ":?"
}

func TestLogFilter(t *testing.T) {
	c := newFilterChain(t)
	c.block(c.call(0, 1, "transfer", c.addr(1), big.NewInt(1)))
	_, rc := serveFilters(t, c)
	ctx := context.Background()
	newFilter := func(crit string) string {
		t.Helper()
		var id string
		if err := rc.CallContext(ctx, &id, "eth_newFilter", json.RawMessage(crit)); err != nil {
			t.Fatal(err)
		}
		return id
	}
	changes := func(id string) []types.Log {
		t.Helper()
		var logs []types.Log
		if err := rc.CallContext(ctx, &logs, "eth_getFilterChanges", id); err != nil {
			t.Fatal(err)
		}
		return logs
	}
	hkdFilter := newFilter(`{"address":"` + testHKD.Hex() + `"}`)
	if got := changes(hkdFilter); len(got) != 0 {
		t.Fatalf("a new filter reports %d logs of blocks applied before it", len(got))
	}

	b2 := c.block(
		c.call(1, 1, "transfer", c.addr(2), big.NewInt(1)),
		c.call(1, 0, "transfer", c.addr(2), big.NewInt(1)), // CNY: not for this filter
	)
	got := changes(hkdFilter)
	if len(got) != 1 || got[0].BlockNumber != 2 || got[0].Address != testHKD || got[0].TxHash != b2.Txs[0].Hash() {
		t.Fatalf("changes after block 2: %+v", got)
	}
	if got := changes(hkdFilter); len(got) != 0 {
		t.Fatalf("second poll repeats %d logs", len(got))
	}

	// A poll stops at the block that reaches max results (4); the next
	// poll continues from there: nothing lost, nothing repeated.
	for range 3 {
		c.block(c.call(2, 1, "transfer", c.addr(3), big.NewInt(1)), c.call(3, 1, "transfer", c.addr(4), big.NewInt(1)))
	}
	first, second := changes(hkdFilter), changes(hkdFilter)
	if len(first) != 4 || first[0].BlockNumber != 3 || first[3].BlockNumber != 4 || len(second) != 2 || second[0].BlockNumber != 5 {
		t.Fatalf("paged polls: %d logs then %d", len(first), len(second))
	}

	// eth_getFilterLogs answers the whole criteria range, as eth_getLogs.
	fromOne := newFilter(`{"fromBlock":"0x1","toBlock":"0x2","address":"` + testHKD.Hex() + `"}`)
	var all []types.Log
	if err := rc.CallContext(ctx, &all, "eth_getFilterLogs", fromOne); err != nil || len(all) != 2 || all[0].BlockNumber != 1 || all[1].BlockNumber != 2 {
		t.Fatalf("filter logs %+v %v", all, err)
	}
	// Its changes stop at its toBlock.
	c.block(c.call(0, 1, "transfer", c.addr(1), big.NewInt(1)))
	if got := changes(fromOne); len(got) != 0 {
		t.Fatalf("filter ending at block 2 reports %+v", got)
	}

	// Bounds and ids.
	var id string
	if err := rc.CallContext(ctx, &id, "eth_newBlockFilter"); err != nil {
		t.Fatalf("third filter: %v", err)
	}
	wantFilterErr(t, "fourth filter", rc.CallContext(ctx, &id, "eth_newBlockFilter"), codeLogLimit, "too many installed filters (at most 3)")
	var ok bool
	if err := rc.CallContext(ctx, &ok, "eth_uninstallFilter", fromOne); err != nil || !ok {
		t.Fatalf("uninstall: %v %v", ok, err)
	}
	if err := rc.CallContext(ctx, &ok, "eth_uninstallFilter", fromOne); err != nil || ok {
		t.Fatalf("second uninstall: %v %v", ok, err)
	}
	var out json.RawMessage
	wantFilterErr(t, "uninstalled", rc.CallContext(ctx, &out, "eth_getFilterChanges", fromOne), CodeServerError, "filter not found")
	wantFilterErr(t, "unknown id", rc.CallContext(ctx, &out, "eth_getFilterChanges", "0xdeadbeef"), CodeServerError, "filter not found")
	wantFilterErr(t, "unknown id logs", rc.CallContext(ctx, &out, "eth_getFilterLogs", "0xdeadbeef"), CodeServerError, "filter not found")
	wantFilterErr(t, "filter range", rc.CallContext(ctx, &id, "eth_newFilter", json.RawMessage(`{"fromBlock":"0x5","toBlock":"0x4"}`)), CodeInvalidParams, "invalid block range params")
	wantFilterErr(t, "filter by hash", rc.CallContext(ctx, &id, "eth_newFilter", json.RawMessage(`{"blockHash":"`+b2.Hash().Hex()+`"}`)), CodeInvalidParams, "blockHash cannot be used")
}

func TestBlockFilter(t *testing.T) {
	c := newFilterChain(t)
	_, rc := serveFilters(t, c)
	ctx := context.Background()
	var id string
	if err := rc.CallContext(ctx, &id, "eth_newBlockFilter"); err != nil {
		t.Fatal(err)
	}
	var blocks []*chain.Block
	for range 10 {
		blocks = append(blocks, c.block())
	}
	// Ten blocks since install: a poll gives at most MaxLogBlockRange (8).
	var hashes []common.Hash
	for _, want := range []int{8, 2, 0} {
		var got []common.Hash
		if err := rc.CallContext(ctx, &got, "eth_getFilterChanges", id); err != nil || len(got) != want {
			t.Fatalf("poll: %d hashes %v, want %d", len(got), err, want)
		}
		hashes = append(hashes, got...)
	}
	for i, b := range blocks {
		if hashes[i] != b.Hash() {
			t.Fatalf("hash %d: %s, want block %d's %s", i, hashes[i], b.Number(), b.Hash())
		}
	}
	var logs json.RawMessage
	wantFilterErr(t, "logs of a block filter", rc.CallContext(ctx, &logs, "eth_getFilterLogs", id), CodeServerError, "filter not found")
}

func TestFilterTimeout(t *testing.T) {
	c := newFilterChain(t)
	limits := DefaultLimits
	limits.MaxFilters = 2
	api := NewFilterAPI(c, limits)
	now := time.Unix(1_000_000, 0)
	api.now = func() time.Time { return now }
	ctx := context.Background()

	polled, err := api.NewBlockFilter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idle, err := api.NewFilter(ctx, FilterCriteria{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.NewBlockFilter(ctx); err == nil {
		t.Fatal("a third filter was installed over MaxFilters 2")
	}
	// Polling keeps a filter alive past the timeout; the idle one expires.
	for range 3 {
		now = now.Add(3 * time.Minute)
		if _, err := api.GetFilterChanges(ctx, polled); err != nil {
			t.Fatalf("polled filter: %v", err)
		}
	}
	if _, err := api.GetFilterChanges(ctx, idle); err == nil || err.Error() != "filter not found" {
		t.Fatalf("idle filter after 9 minutes: %v", err)
	}
	// An expired filter frees its slot even if never looked up again.
	now = now.Add(time.Minute)
	idle2, err := api.NewFilter(ctx, FilterCriteria{})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(DefaultLimits.FilterTimeout + time.Second)
	if _, err := api.NewBlockFilter(ctx); err != nil {
		t.Fatalf("slots of expired filters not reclaimed: %v", err)
	}
	if ok1, _ := api.UninstallFilter(idle2); ok1 {
		t.Fatal("expired filters still installed")
	}
	if ok2, _ := api.UninstallFilter(polled); ok2 {
		t.Fatal("expired filters still installed")
	}
}

func TestLogsSubscription(t *testing.T) {
	c := newFilterChain(t)
	ts, _ := serveFilters(t, c)
	ec, err := ethclient.Dial("ws" + strings.TrimPrefix(ts.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan types.Log, 16)
	merchant := c.addr(5)
	sub, err := ec.SubscribeFilterLogs(ctx, ethereum.FilterQuery{
		Addresses: []common.Address{testCNY},
		Topics:    [][]common.Hash{{paymentRefID}, nil, nil, {addrTopic(merchant)}},
	}, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	order := common.Hash{0x42, 0x0d}
	amount := big.NewInt(12_345)
	b1 := c.block(
		c.call(0, 0, "transfer", merchant, amount),                                // Transfer only
		c.call(1, 1, "transferWithReference", merchant, amount, [32]byte(order)),  // HKD: other address
		c.call(2, 0, "transferWithReference", c.addr(6), amount, [32]byte(order)), // another merchant
		c.call(3, 0, "transferWithReference", merchant, amount, [32]byte(order)),  // the payment
	)
	b2 := c.block(c.call(4, 0, "transferWithReference", merchant, big.NewInt(7), [32]byte{0x07}))

	var got []types.Log
	for len(got) < 2 {
		select {
		case l := <-ch:
			got = append(got, l)
		case err := <-sub.Err():
			t.Fatalf("subscription ended: %v", err)
		case <-ctx.Done():
			t.Fatalf("received %d logs, want 2", len(got))
		}
	}
	p := got[0]
	if p.BlockHash != b1.Hash() || p.TxHash != b1.Txs[3].Hash() || p.TxIndex != 3 || p.Address != testCNY ||
		p.Topics[0] != paymentRefID || p.Topics[1] != order || p.Topics[2] != addrTopic(c.addr(3)) || p.Topics[3] != addrTopic(merchant) {
		t.Fatalf("payment notification %+v", p)
	}
	vals, err := chain.AssetABI.Unpack("PaymentReference", p.Data)
	if err != nil || len(vals) != 1 || vals[0].(*big.Int).Cmp(amount) != 0 {
		t.Fatalf("payment amount %v %v", vals, err)
	}
	if got[1].BlockNumber != b2.Number() || got[1].Topics[1] != (common.Hash{0x07}) {
		t.Fatalf("second notification %+v: a log of block 1 that does not match was sent", got[1])
	}

	// Over HTTP there is no subscription.
	_, rc := serveFilters(t, c)
	var id string
	if err := rc.CallContext(ctx, &id, "eth_subscribe", "logs", map[string]any{}); err == nil {
		t.Fatal("logs subscription over HTTP")
	}
}
