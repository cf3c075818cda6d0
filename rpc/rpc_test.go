package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/state"
)

func TestSubmitErrorCodes(t *testing.T) {
	cases := []struct {
		err  error
		code int
		msg  string
	}{
		{fmt.Errorf("%w: x", chain.ErrTxMalformed), CodeInvalidParams, "invalid raw transaction"},
		{fmt.Errorf("%w: transaction size 40000, limit 32768", chain.ErrTxTooLarge), CodeServerError, "oversized data: transaction size 40000, limit 32768"},
		{fmt.Errorf("%w: 800 storage keys, limit 768", chain.ErrAccessListTooLarge), CodeServerError, "access list too large: 800 storage keys, limit 768"},
		{fmt.Errorf("%w: next nonce 3, tx nonce 1", mempool.ErrNonceTooLow), CodeServerError, "nonce too low: next nonce 3"},
		{fmt.Errorf("%w: balance 0", mempool.ErrInsufficientFunds), CodeServerError, "insufficient funds"},
		{fmt.Errorf("%w: 0xab", mempool.ErrKnown), CodeServerError, "already known"},
		{fmt.Errorf("%w: 0xab", mempool.ErrAlreadyApplied), CodeServerError, "already known"},
		{fmt.Errorf("%w: have 1", chain.ErrWrongChain), CodeServerError, "invalid chain id for signer"},
		{chain.ErrHighS, CodeServerError, "invalid sender"},
		{chain.ErrUnprotected, CodeServerError, "unprotected"},
		// The node's disk, not the request: -32603, on which wallets fail over.
		{fmt.Errorf("%w: state db get 00: input/output error", state.ErrStorage), CodeInternal, "state storage failed"},
	}
	for _, c := range cases {
		var rerr *Error
		if !errors.As(ClientError(c.err), &rerr) || rerr.Code != c.code || !strings.Contains(rerr.Msg, c.msg) {
			t.Errorf("%v → %+v, want code %d containing %q", c.err, rerr, c.code, c.msg)
		}
		if strings.Count(rerr.Msg, c.msg) > 1 {
			t.Errorf("%q repeats itself", rerr.Msg)
		}
	}
}

func TestTxJSONParity(t *testing.T) {
	key, _ := crypto.GenerateKey()
	to := common.Address{1}
	id := big.NewInt(1337)
	for i := 0; i < 8; i++ { // both parities occur
		for _, inner := range []types.TxData{
			&types.LegacyTx{Nonce: uint64(i), To: &to, Gas: 21000, GasPrice: new(big.Int)},
			&types.DynamicFeeTx{ChainID: id, Nonce: uint64(i), To: &to, Gas: 21000, GasTipCap: big.NewInt(2), GasFeeCap: big.NewInt(5)},
		} {
			tx, err := chain.SignTx(types.NewTx(inner), id, key)
			if err != nil {
				t.Fatal(err)
			}
			j := newTxJSON(tx, key.Address(), nil, 0)
			v, _, _ := tx.RawSignatureValues()
			want := v.Uint64()
			if tx.Type() == types.LegacyTxType {
				want -= 1337*2 + 35
			}
			if uint64(*j.YParity) != want || want > 1 {
				t.Fatalf("type %d: yParity %d, want %d", tx.Type(), *j.YParity, want)
			}
			if j.BlockHash != nil || j.AccessList == nil || j.ChainID == nil {
				t.Fatal("pending tx JSON fields")
			}
			if tx.Type() == types.DynamicFeeTxType && j.GasPrice.ToInt().Int64() != 2 {
				t.Fatalf("effective gas price %v, want the tip (base fee 0)", j.GasPrice)
			}
		}
	}
}

// haltingChain is a real chain (filterChain) whose node can halt.
type haltingChain struct {
	*filterChain
	mu  sync.Mutex
	err error
}

func (h *haltingChain) Halted() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// zeroArgs is a JSON-RPC parameter list of zero values for a method's
// parameters (the context excepted), with the few types whose zero value
// does not encode as a valid argument replaced by "latest".
func zeroArgs(t *testing.T, m reflect.Method) []any {
	ctxType := reflect.TypeFor[context.Context]()
	var out []any
	for j := 1; j < m.Type.NumIn(); j++ {
		pt := m.Type.In(j)
		switch {
		case pt == ctxType:
			continue
		case pt == reflect.TypeFor[gethrpc.BlockNumberOrHash]() || pt == reflect.TypeFor[gethrpc.BlockNumber]():
			out = append(out, "latest")
			continue
		}
		zero := reflect.Zero(pt)
		if pt.Kind() == reflect.Slice && pt.Elem().Kind() != reflect.Uint8 {
			zero = reflect.MakeSlice(pt, 0, 0) // null would be a missing argument
		}
		enc, err := json.Marshal(zero.Interface())
		if err != nil {
			t.Fatalf("%s: argument %d (%s): %v", m.Name, j, pt, err)
		}
		out = append(out, json.RawMessage(enc))
	}
	return out
}

// TestHaltedAnswersEveryEthMethod enumerates every method of every
// receiver registered under "eth" and calls it on a halted node, over
// HTTP (single and batch) and WebSocket: each answers CodeHalted with
// "node halted", while net_*, web3_* and tally_* keep answering.
func TestHaltedAnswersEveryEthMethod(t *testing.T) {
	c := &haltingChain{filterChain: newFilterChain(t)}
	srv, err := NewServer(c, DefaultLimits, "test")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Stop()
	hc, err := gethrpc.Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	wc, err := gethrpc.Dial("ws" + strings.TrimPrefix(ts.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	var n hexutil.Uint64
	if err := hc.Call(&n, "eth_blockNumber"); err != nil {
		t.Fatalf("before the halt: %v", err)
	}
	c.mu.Lock()
	c.err = errors.New("node halted: apply raft index 9: node diverged from a certified block")
	c.mu.Unlock()

	isHalted := func(err error) bool {
		var re gethrpc.Error
		return errors.As(err, &re) && re.ErrorCode() == CodeHalted && strings.HasPrefix(re.Error(), "node halted")
	}
	subType := reflect.TypeFor[*gethrpc.Subscription]()
	checked := 0
	for _, svc := range ethServices(c, DefaultLimits, nil, nil) {
		typ := reflect.TypeOf(svc)
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			name := strings.ToLower(m.Name[:1]) + m.Name[1:]
			args := zeroArgs(t, m)
			if m.Type.NumOut() > 0 && m.Type.Out(0) == subType {
				_, err := wc.Subscribe(context.Background(), "eth", make(chan any), append([]any{name}, args...)...)
				if !isHalted(err) {
					t.Errorf("eth_subscribe(%q) on a halted node: %v", name, err)
				}
				checked++
				continue
			}
			for _, cl := range []struct {
				transport string
				c         *gethrpc.Client
			}{{"http", hc}, {"ws", wc}} {
				var res json.RawMessage
				if err := cl.c.Call(&res, "eth_"+name, args...); !isHalted(err) {
					t.Errorf("eth_%s over %s on a halted node: %s, %v", name, cl.transport, res, err)
				}
			}
			checked++
		}
	}
	t.Logf("%d eth methods answer node halted", checked)
	if checked < 25 {
		t.Fatalf("only %d eth methods found", checked)
	}
	// The wallet-facing tally_* reads are refused too.
	for _, call := range []struct {
		method string
		args   []any
	}{{"tally_assets", nil}, {"tally_getAccount", []any{common.Address{1}}}, {"tally_getSupply", []any{"CNY"}},
		{"tally_getAccountHistory", []any{common.Address{1}, nil, nil}},
		{"tally_decodeTransaction", []any{common.Hash{1}}}, {"tally_getRecentTransactions", nil},
		{"tally_findByReference", []any{"ORDER-1", nil, nil}}, {"tally_getValidators", nil}, {"tally_getProposals", []any{nil, nil}}} {
		var res json.RawMessage
		if err := hc.Call(&res, call.method, call.args...); !isHalted(err) {
			t.Errorf("%s on a halted node: %s, %v", call.method, res, err)
		}
	}
	// A batch mixing namespaces: only eth_* is refused.
	var num, version, cert json.RawMessage
	batch := []gethrpc.BatchElem{
		{Method: "eth_blockNumber", Result: &num},
		{Method: "net_version", Result: &version},
		{Method: "tally_getCertificate", Args: []any{hexutil.Uint64(0)}, Result: &cert},
	}
	if err := hc.BatchCall(batch); err != nil {
		t.Fatal(err)
	}
	if !isHalted(batch[0].Error) || batch[1].Error != nil || batch[2].Error != nil {
		t.Fatalf("batch: %v, %v, %v", batch[0].Error, batch[1].Error, batch[2].Error)
	}
	if string(version) != `"1337"` || string(cert) != "null" {
		t.Fatalf("batch results %s %s", version, cert)
	}
}
