package node

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// TestMulticallOnNode: on a running node Multicall3 answers eth_call (an
// aggregate3 of balanceOf and decimals, as viem sends it) and a signed
// transaction to it is refused at admission, saying it is read-only, and
// changes nothing.
func TestMulticallOnNode(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	ec, _ := dial(t, n)
	ctx := context.Background()
	key, _ := genesis.DevKey(0)
	balanceOf, _ := chain.AssetABI.Pack("balanceOf", key.Address())
	decimals, _ := chain.AssetABI.Pack("decimals")
	type call3 struct {
		Target       common.Address
		AllowFailure bool
		CallData     []byte
	}
	data, err := chain.Multicall3ABI.Pack("aggregate3", []call3{{chain.AssetAddress(0), false, balanceOf}, {chain.AssetAddress(1), false, decimals}})
	if err != nil {
		t.Fatal(err)
	}
	to := chain.MulticallAddress
	out, err := ec.CallContract(ctx, ethereum.CallMsg{To: &to, Data: data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chain.Multicall3ABI.Unpack("aggregate3", out)
	if err != nil {
		t.Fatal(err)
	}
	rs := vals[0].([]struct {
		Success    bool   `json:"success"`
		ReturnData []byte `json:"returnData"`
	})
	if len(rs) != 2 || !rs[0].Success || new(big.Int).SetBytes(rs[0].ReturnData).Cmp(genesis.DevBalance) != 0 || new(big.Int).SetBytes(rs[1].ReturnData).Int64() != 2 {
		t.Fatalf("aggregate3 = %+v", rs)
	}

	id, _ := ec.ChainID(ctx)
	nonce, _ := ec.PendingNonceAt(ctx, key.Address())
	for _, tx := range []*types.DynamicFeeTx{
		{ChainID: id, Nonce: nonce, To: &to, Gas: 100_000, Data: data},
		{ChainID: id, Nonce: nonce, To: &to, Gas: 21000, Value: big.NewInt(1)},
	} {
		signed, err := chain.SignTx(types.NewTx(tx), id, key)
		if err != nil {
			t.Fatal(err)
		}
		err = ec.SendTransaction(ctx, signed)
		var rerr gethrpc.Error
		if !errors.As(err, &rerr) || rerr.ErrorCode() != -32000 || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("transaction to Multicall3: %v, want -32000 read-only", err)
		}
	}
	if after, _ := ec.PendingNonceAt(ctx, key.Address()); after != nonce {
		t.Fatalf("pending nonce %d after refusals, was %d", after, nonce)
	}
}

// TestPastStateAcrossRestart: ethers and viem read at the block of the
// receipt they just got; after a restart of the node those reads (and
// older ones in the window) still answer, with the values of their block.
func TestPastStateAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	n := startDevNode(t, dir)
	ec, _ := dial(t, n)
	ctx := context.Background()
	key, _ := genesis.DevKey(0)
	id, _ := ec.ChainID(ctx)
	to := common.HexToAddress("0x00000000000000000000000000000000000a11ce")
	var blocks []*big.Int
	for nonce := uint64(0); nonce < 2; nonce++ {
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Value: big.NewInt(1000), Gas: 21000}), id, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := ec.SendTransaction(ctx, tx); err != nil {
			t.Fatal(err)
		}
		r := waitReceipt(t, ec, tx.Hash())
		blocks = append(blocks, r.BlockNumber)
		if bal, err := ec.BalanceAt(ctx, to, r.BlockNumber); err != nil || bal.Int64() != int64(1000*(nonce+1)) {
			t.Fatalf("balance at the receipt's block %v = %v, %v", r.BlockNumber, bal, err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startDevNode(t, dir)
	ec, _ = dial(t, n)
	before := new(big.Int).Sub(blocks[0], big.NewInt(1))
	for _, c := range []struct {
		at   *big.Int
		want int64
	}{{before, 0}, {blocks[0], 1000}, {blocks[1], 2000}} {
		bal, err := ec.BalanceAt(ctx, to, c.at)
		if err != nil || bal.Int64() != c.want {
			t.Errorf("after restart, balance at %v = %v, %v; want %d", c.at, bal, err, c.want)
		}
	}
	if nonce, err := ec.NonceAt(ctx, key.Address(), blocks[0]); err != nil || nonce != 1 {
		t.Errorf("after restart, nonce at %v = %d, %v; want 1", blocks[0], nonce, err)
	}
}
