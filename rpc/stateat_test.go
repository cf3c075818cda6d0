package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/ethclient"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/rpc/rpctest"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// pinnedChain is a chain whose block 2 pays 5 wei to payee (and block 3
// another 7 through the native facade), served over
// the real JSON-RPC server, with go-ethereum's clients on it.
type pinnedChain struct {
	c     *chaintest.Chain
	payee common.Address
	raw   *gethrpc.Client
	eth   *ethclient.Client
}

func newPinnedChain(t *testing.T, history uint64) *pinnedChain {
	t.Helper()
	c := chaintest.New(t)
	if history != 0 {
		c.Close()
		db, err := store.Open(c.Dir, store.Options{NoSync: true, HistoryBlocks: history})
		if err != nil {
			t.Fatal(err)
		}
		c.DB = db
	}
	p := &pinnedChain{c: c, payee: chaintest.Addr(7)}                          // a funded, verified dev account
	c.Apply()                                                                  // 1
	c.Apply(c.Tx(0, p.payee, big.NewInt(5), nil))                              // 2
	c.Apply(c.Asset(1, state.NativeAsset, "transfer", p.payee, big.NewInt(7))) // 3
	url := rpctest.Serve(t, rpctest.NewBackend(c.DB, c.Senders), rpc.DefaultLimits).URL
	var err error
	if p.raw, err = gethrpc.Dial(url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.raw.Close)
	p.eth = ethclient.NewClient(p.raw)
	return p
}

func (p *pinnedChain) hash(t *testing.T, n uint64) common.Hash {
	b, err := p.c.DB.BlockByNumber(n)
	if err != nil {
		t.Fatal(err)
	}
	return b.Hash()
}

// TestStateReadsAtPastBlocks reads around the block that changed a
// balance, as ethers and viem do after wait(): by number, by hash and
// with EIP-1898 objects, through go-ethereum's own client.
func TestStateReadsAtPastBlocks(t *testing.T) {
	p := newPinnedChain(t, 0)
	ctx := context.Background()
	for n, extra := range map[uint64]int64{0: 0, 1: 0, 2: 5, 3: 12} {
		w := new(big.Int).Add(genesis.DevBalance, big.NewInt(extra))
		bal, err := p.eth.BalanceAt(ctx, p.payee, new(big.Int).SetUint64(n))
		if err != nil || bal.Cmp(w) != 0 {
			t.Errorf("eth_getBalance at %d = %v, %v; want %d", n, bal, err, w)
		}
		bal, err = p.eth.BalanceAtHash(ctx, p.payee, p.hash(t, n))
		if err != nil || bal.Cmp(w) != 0 {
			t.Errorf("eth_getBalance at hash of %d = %v, %v; want %d", n, bal, err, w)
		}
		// eth_call of the native facade's balanceOf at that block.
		data, _ := chain.AssetABI.Pack("balanceOf", p.payee)
		to := chain.AssetAddress(state.NativeAsset)
		out, err := p.eth.CallContract(ctx, ethereum.CallMsg{To: &to, Data: data}, new(big.Int).SetUint64(n))
		if err != nil || new(big.Int).SetBytes(out).Cmp(w) != 0 {
			t.Errorf("eth_call balanceOf at %d = %x, %v; want %d", n, out, err, w)
		}
		out, err = p.eth.CallContractAtHash(ctx, ethereum.CallMsg{To: &to, Data: data}, p.hash(t, n))
		if err != nil || new(big.Int).SetBytes(out).Cmp(w) != 0 {
			t.Errorf("eth_call balanceOf at hash of %d = %x, %v; want %d", n, out, err, w)
		}
	}
	sender := chaintest.Addr(0)
	for n, w := range map[uint64]uint64{1: 0, 2: 1, 3: 1} {
		nonce, err := p.eth.NonceAt(ctx, sender, new(big.Int).SetUint64(n))
		if err != nil || nonce != w {
			t.Errorf("eth_getTransactionCount at %d = %d, %v; want %d", n, nonce, err, w)
		}
	}
	// EIP-1898 objects, and the other methods taking a block.
	h1 := p.hash(t, 1)
	overspend := map[string]any{"from": p.payee, "to": sender, "value": (*hexutil.Big)(new(big.Int).Add(genesis.DevBalance, big.NewInt(3)))}
	for _, param := range []any{
		map[string]any{"blockHash": h1},
		map[string]any{"blockHash": h1, "requireCanonical": true},
		map[string]any{"blockNumber": "0x1"},
		"0x1",
	} {
		var bal hexutil.Big
		if err := p.raw.Call(&bal, "eth_getBalance", p.payee, param); err != nil || bal.ToInt().Cmp(genesis.DevBalance) != 0 {
			t.Errorf("eth_getBalance(%v) = %v, %v; want %v", param, &bal, err, genesis.DevBalance)
		}
		var code hexutil.Bytes
		if err := p.raw.Call(&code, "eth_getCode", chain.AssetAddress(state.NativeAsset), param); err != nil || len(code) == 0 {
			t.Errorf("eth_getCode(facade, %v) = %x, %v; want code", param, code, err)
		}
		// Sending DevBalance+3 from the payee fails at block 1 and passes
		// at 2: eth_estimateGas runs on the state asked for.
		if err := p.raw.Call(new(hexutil.Uint64), "eth_estimateGas", overspend, param); err == nil {
			t.Errorf("eth_estimateGas of more than the payee held at %v succeeded", param)
		}
	}
	var gas hexutil.Uint64
	if err := p.raw.Call(&gas, "eth_estimateGas", overspend, "0x2"); err != nil || gas != 21000 {
		t.Errorf("eth_estimateGas at 2 = %d, %v; want 21000", gas, err)
	}
}

// TestStateReadsRefused: a block this node does not have, and a state
// older than the window, in go-ethereum's words.
func TestStateReadsRefused(t *testing.T) {
	p := newPinnedChain(t, 2) // heads 2 and 3 only
	root1 := func() common.Hash {
		b, _ := p.c.DB.BlockByNumber(1)
		return b.Header.Root
	}()
	cases := []struct {
		method string
		params []any
		msg    string
	}{
		{"eth_getBalance", []any{p.payee, "0x9"}, "header not found"},
		{"eth_getBalance", []any{p.payee, map[string]any{"blockHash": common.Hash{1}}}, "header for hash not found"},
		{"eth_getBalance", []any{p.payee, "0x1"}, fmt.Sprintf("historical state %x is not available", root1)},
		{"eth_getBalance", []any{p.payee, map[string]any{"blockHash": p.hash(t, 1)}}, fmt.Sprintf("historical state %x is not available", root1)},
		{"eth_getTransactionCount", []any{p.payee, "earliest"}, "historical state"},
		{"eth_getCode", []any{p.payee, "0x1"}, "historical state"},
		{"eth_call", []any{map[string]any{"to": p.payee}, "0x1"}, "historical state"},
		{"eth_estimateGas", []any{map[string]any{"to": p.payee}, "0x1"}, "historical state"},
		{"eth_call", []any{map[string]any{"to": p.payee}, "0x4"}, "header not found"},
	}
	for _, c := range cases {
		var out any
		err := p.raw.Call(&out, c.method, c.params...)
		var rerr gethrpc.Error
		if !errors.As(err, &rerr) || rerr.ErrorCode() != rpc.CodeServerError || !strings.HasPrefix(err.Error(), c.msg) {
			t.Errorf("%s%v = %v, %v; want -32000 %q", c.method, c.params, out, err, c.msg)
		}
	}
	// The window itself is served.
	for _, n := range []int64{2, 3} {
		if _, err := p.eth.BalanceAt(context.Background(), p.payee, big.NewInt(n)); err != nil {
			t.Errorf("eth_getBalance at %d in the window: %v", n, err)
		}
	}
}
