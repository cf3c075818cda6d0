package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
)

// wantRPCError fails unless err is a JSON-RPC error with code whose
// message matches pattern.
func wantRPCError(t *testing.T, what string, err error, code int, pattern string) {
	t.Helper()
	var re gethrpc.Error
	if !errors.As(err, &re) || re.ErrorCode() != code || !regexp.MustCompile(pattern).MatchString(re.Error()) {
		t.Fatalf("%s: %v, want %d matching %s", what, err, code, pattern)
	}
}

// eth_getBlockReceipts and the transactions by position answer what the
// per-transaction methods answer, in go-ethereum's shapes, which
// ethclient decodes; a block or index that does not exist is null, bad
// input a -32602.
func TestBlockReceiptsAndTransactionsByIndex(t *testing.T) {
	c := newFilterChain(t)
	tx0 := c.call(0, 0, "transfer", c.addr(1), big.NewInt(1))
	tx1 := c.call(1, 0, "transferWithReference", c.addr(2), big.NewInt(2), common.Hash{7})
	b := c.block(tx0, tx1)
	c.block() // the block of interest is no longer the head
	_, rc := serveFilters(t, c)
	ec := ethclient.NewClient(rc)
	ctx := context.Background()
	num := hexutil.EncodeUint64(b.Number())

	var byNumber, byHash, each []json.RawMessage
	if err := rc.Call(&byNumber, "eth_getBlockReceipts", num); err != nil {
		t.Fatal(err)
	}
	if err := rc.Call(&byHash, "eth_getBlockReceipts", b.Hash()); err != nil {
		t.Fatal(err)
	}
	for _, tx := range []*types.Transaction{tx0, tx1} {
		var r json.RawMessage
		if err := rc.Call(&r, "eth_getTransactionReceipt", tx.Hash()); err != nil {
			t.Fatal(err)
		}
		each = append(each, r)
	}
	if !reflect.DeepEqual(byNumber, each) || !reflect.DeepEqual(byHash, each) {
		t.Fatalf("block receipts\n%s\n%s\nwant\n%s", byNumber, byHash, each)
	}
	rs, err := ec.BlockReceipts(ctx, gethrpc.BlockNumberOrHashWithHash(b.Hash(), false))
	if err != nil || len(rs) != 2 || rs[1].TxHash != tx1.Hash() || len(rs[1].Logs) == 0 || rs[1].BlockHash != b.Hash() {
		t.Fatalf("ethclient BlockReceipts: %+v, %v", rs, err)
	}
	var latest []json.RawMessage
	if err := rc.Call(&latest, "eth_getBlockReceipts", "latest"); err != nil || len(latest) != 0 {
		t.Fatalf("receipts of the empty head: %s, %v", latest, err)
	}
	var none json.RawMessage
	if err := rc.Call(&none, "eth_getBlockReceipts", "0xffff"); err != nil || string(none) != "null" {
		t.Fatalf("receipts of a future block: %s, %v", none, err)
	}
	wantRPCError(t, "receipts of an unknown hash", rc.Call(&none, "eth_getBlockReceipts", common.Hash{9}), CodeServerError, `^header for hash not found$`)
	wantRPCError(t, "receipts of a malformed block", rc.Call(&none, "eth_getBlockReceipts", "0xzz"), CodeInvalidParams, `invalid argument 0`)
	wantRPCError(t, "receipts without a block", rc.Call(&none, "eth_getBlockReceipts"), CodeInvalidParams, `missing value for required argument 0`)

	for i, tx := range []*types.Transaction{tx0, tx1} {
		var byPos, byTxHash json.RawMessage
		if err := rc.Call(&byPos, "eth_getTransactionByBlockNumberAndIndex", num, hexutil.Uint(i)); err != nil {
			t.Fatal(err)
		}
		if err := rc.Call(&byTxHash, "eth_getTransactionByHash", tx.Hash()); err != nil {
			t.Fatal(err)
		}
		if string(byPos) != string(byTxHash) {
			t.Fatalf("tx %d by position %s, by hash %s", i, byPos, byTxHash)
		}
		got, err := ec.TransactionInBlock(ctx, b.Hash(), uint(i)) // eth_getTransactionByBlockHashAndIndex
		if err != nil || got.Hash() != tx.Hash() {
			t.Fatalf("ethclient TransactionInBlock %d: %v", i, err)
		}
	}
	for _, call := range []struct {
		method string
		args   []any
	}{
		{"eth_getTransactionByBlockNumberAndIndex", []any{num, "0x2"}},
		{"eth_getTransactionByBlockNumberAndIndex", []any{"0xffff", "0x0"}},
		{"eth_getTransactionByBlockHashAndIndex", []any{b.Hash(), "0x2"}},
		{"eth_getTransactionByBlockHashAndIndex", []any{common.Hash{9}, "0x0"}},
		{"eth_getBlockTransactionCountByHash", []any{common.Hash{9}}},
	} {
		if err := rc.Call(&none, call.method, call.args...); err != nil || string(none) != "null" {
			t.Fatalf("%s%v: %s, %v; want null", call.method, call.args, none, err)
		}
	}
	if _, err := ec.TransactionInBlock(ctx, common.Hash{9}, 0); !errors.Is(err, ethereum.NotFound) {
		t.Fatalf("ethclient TransactionInBlock of an unknown block: %v", err)
	}
	if n, err := ec.TransactionCount(ctx, b.Hash()); err != nil || n != 2 {
		t.Fatalf("eth_getBlockTransactionCountByHash: %d, %v", n, err)
	}
	wantRPCError(t, "index not a number", rc.Call(&none, "eth_getTransactionByBlockNumberAndIndex", num, "two"), CodeInvalidParams, `invalid argument 1`)
	wantRPCError(t, "index over 64 bits", rc.Call(&none, "eth_getTransactionByBlockHashAndIndex", b.Hash(), "0x10000000000000000"), CodeInvalidParams, `invalid argument 1`)
	wantRPCError(t, "hash too short", rc.Call(&none, "eth_getTransactionByBlockHashAndIndex", "0x1234", "0x0"), CodeInvalidParams, `invalid argument 0`)
}

// eth_getStorageAt reads 32 zero bytes, as go-ethereum reads a slot never
// written, with go-ethereum's key and block checks.
func TestGetStorageAt(t *testing.T) {
	c := newFilterChain(t)
	c.block()
	_, rc := serveFilters(t, c)
	ec := ethclient.NewClient(rc)
	zero := make([]byte, 32)
	for _, a := range []common.Address{c.addr(0), chain.AssetAddress(0), {}} {
		got, err := ec.StorageAt(context.Background(), a, common.Hash{1}, nil)
		if err != nil || !reflect.DeepEqual(got, zero) {
			t.Fatalf("storage of %s: %x, %v", a, got, err)
		}
	}
	var out hexutil.Bytes
	for _, key := range []string{"0x0", "0", "0X1", "abc", "0x" + strings.Repeat("ff", 32)} {
		for _, block := range []any{"latest", "0x1", map[string]any{"blockNumber": "0x1"}} {
			if err := rc.Call(&out, "eth_getStorageAt", c.addr(0), key, block); err != nil || !reflect.DeepEqual([]byte(out), zero) {
				t.Fatalf("key %q at %v: %x, %v", key, block, out, err)
			}
		}
	}
	wantRPCError(t, "key over 32 bytes", rc.Call(&out, "eth_getStorageAt", c.addr(0), "0x"+strings.Repeat("00", 33), "latest"),
		CodeInvalidParams, `^storage key too long \(want at most 32 bytes\): "0x0{66}"$`)
	wantRPCError(t, "key not hex", rc.Call(&out, "eth_getStorageAt", c.addr(0), "0xzz", "latest"),
		CodeInvalidParams, `^invalid hex in storage key: "0xzz"$`)
	wantRPCError(t, "key not a string", rc.Call(&out, "eth_getStorageAt", c.addr(0), 5, "latest"), CodeInvalidParams, `invalid argument 1`)
	wantRPCError(t, "bad address", rc.Call(&out, "eth_getStorageAt", "0x12", "0x0", "latest"), CodeInvalidParams, `invalid argument 0`)
	// The block is read as eth_getBalance reads it: the same answers.
	for _, block := range []any{"0xffff", map[string]any{"blockHash": common.Hash{9}}} {
		var bal hexutil.Big
		balErr := rc.Call(&bal, "eth_getBalance", c.addr(0), block)
		var want gethrpc.Error
		if !errors.As(balErr, &want) {
			t.Fatalf("eth_getBalance at %v: %v, want an error", block, balErr)
		}
		wantRPCError(t, "storage at a block eth_getBalance refuses", rc.Call(&out, "eth_getStorageAt", c.addr(0), "0x0", block),
			want.ErrorCode(), "^"+regexp.QuoteMeta(want.Error())+"$")
	}
}

// eth_createAccessList answers go-ethereum's shape (what gethclient
// decodes): the list it was given less the sender and recipient, the gas
// the transaction uses, a revert as "error", and a failure before
// execution as go-ethereum's "failed to apply transaction" error.
func TestCreateAccessList(t *testing.T) {
	c := newFilterChain(t)
	c.block()
	_, rc := serveFilters(t, c)
	type result struct { // gethclient.CreateAccessList's
		Accesslist *types.AccessList `json:"accessList"`
		Error      string            `json:"error,omitempty"`
		GasUsed    hexutil.Uint64    `json:"gasUsed"`
	}
	from, to, other := c.addr(0), common.Address{0xc0}, common.Address{0xee}
	var r result
	if err := rc.Call(&r, "eth_createAccessList", map[string]any{"from": from, "to": to, "value": "0x1"}); err != nil {
		t.Fatal(err)
	}
	if r.Accesslist == nil || len(*r.Accesslist) != 0 || r.Error != "" || r.GasUsed != 21000 {
		t.Fatalf("transfer: %+v", r)
	}
	given := types.AccessList{{Address: to, StorageKeys: []common.Hash{}}, {Address: other, StorageKeys: []common.Hash{{1}}}, {Address: from, StorageKeys: []common.Hash{}}}
	if err := rc.Call(&r, "eth_createAccessList", map[string]any{"from": from, "to": to, "accessList": given}, "latest"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*r.Accesslist, given[1:2]) {
		t.Fatalf("given list: %+v, want %+v", *r.Accesslist, given[1:2])
	}
	over, _ := chain.AssetABI.Pack("transfer", to, new(big.Int).Lsh(big.NewInt(1), 200))
	if err := rc.Call(&r, "eth_createAccessList", map[string]any{"from": from, "to": chain.AssetAddress(0), "data": hexutil.Bytes(over)}); err != nil {
		t.Fatal(err)
	}
	if r.GasUsed != chain.GasPerSystemCall || !strings.HasPrefix(r.Error, "execution reverted: insufficient balance") {
		t.Fatalf("reverting call: %+v", r)
	}
	wantRPCError(t, "unfunded transfer", rc.Call(&r, "eth_createAccessList", map[string]any{"from": from, "to": to, "value": "0x" + strings.Repeat("f", 60)}),
		CodeServerError, `^failed to apply transaction: 0x[0-9a-f]{64} err: insufficient funds for gas \* price \+ value: address `+from.Hex()+` have \d+ want \d+$`)
	wantRPCError(t, "gas below a transfer's", rc.Call(&r, "eth_createAccessList", map[string]any{"from": from, "to": to, "gas": "0x100"}),
		CodeServerError, `^failed to apply transaction: 0x[0-9a-f]{64} err: intrinsic gas too low: have 256, want 21000$`)
	tooMany := make(types.AccessList, chain.MaxAccessListEntries+1)
	for i := range tooMany {
		tooMany[i].StorageKeys = []common.Hash{}
	}
	wantRPCError(t, "access list too large", rc.Call(&r, "eth_createAccessList", map[string]any{"from": from, "to": to, "accessList": tooMany}),
		CodeInvalidParams, `^accessList: access list too large: 65 addresses, limit 64$`)
	wantRPCError(t, "no arguments", rc.Call(&r, "eth_createAccessList"), CodeInvalidParams, `missing value for required argument 0`)
	wantRPCError(t, "contract creation", rc.Call(&r, "eth_createAccessList", map[string]any{"from": from}), CodeServerError, `contract creation`)
}

// eth_feeHistory takes the block count as go-ethereum's
// math.HexOrDecimal64 does: hex or decimal, string or number.
func TestFeeHistoryBlockCount(t *testing.T) {
	c := newFilterChain(t)
	for range 5 {
		c.block()
	}
	_, rc := serveFilters(t, c)
	for _, count := range []any{"0x3", "3", 3} {
		var res struct {
			OldestBlock   hexutil.Big   `json:"oldestBlock"`
			BaseFeePerGas []hexutil.Big `json:"baseFeePerGas"`
		}
		if err := rc.Call(&res, "eth_feeHistory", count, "latest", []float64{50}); err != nil {
			t.Fatalf("count %v: %v", count, err)
		}
		if res.OldestBlock.ToInt().Int64() != 3 || len(res.BaseFeePerGas) != 4 {
			t.Fatalf("count %v: %+v", count, res)
		}
	}
	var res json.RawMessage
	for _, bad := range []any{"three", "-1", "0x", 1.5} {
		wantRPCError(t, "count "+string(mustJSON(bad)), rc.Call(&res, "eth_feeHistory", bad, "latest", []float64{}), CodeInvalidParams, `invalid argument 0`)
	}
	wantRPCError(t, "count 0", rc.Call(&res, "eth_feeHistory", "0", "latest", []float64{}), CodeInvalidParams, `blockCount must be > 0`)
	if _, err := ethclient.NewClient(rc).FeeHistory(context.Background(), 2, nil, []float64{}); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
