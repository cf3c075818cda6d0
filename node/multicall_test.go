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
