package node

import (
	"context"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// BenchmarkRPCRoundTrip measures one eth_blockNumber call over HTTP.
func BenchmarkRPCRoundTrip(b *testing.B) {
	rc := benchNode(b)
	ctx := context.Background()
	var head hexutil.Uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := rc.CallContext(ctx, &head, "eth_blockNumber"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendRawTransactionBatch measures admission through RPC: batches
// of 100 pre-signed transfers (decode, parallel sender recovery, mempool).
func BenchmarkSendRawTransactionBatch(b *testing.B) {
	rc := benchNode(b)
	const batch = 100
	id := big.NewInt(genesis.DevChainID)
	raws := make([]hexutil.Bytes, b.N*batch)
	keys := make([]*chainKey, genesis.DevAccounts)
	for i := range keys {
		k, _ := genesis.DevKey(uint32(i))
		keys[i] = &chainKey{k: k}
	}
	to := common.Address{0xbe}
	for i := range raws {
		ck := keys[i%len(keys)]
		tx, err := chain.SignTx(types.NewTx(&types.LegacyTx{Nonce: ck.nonce, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}), id, ck.k)
		if err != nil {
			b.Fatal(err)
		}
		ck.nonce++
		raws[i], _ = tx.MarshalBinary()
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		elems := make([]gethrpc.BatchElem, batch)
		for j := range elems {
			elems[j] = gethrpc.BatchElem{Method: "eth_sendRawTransaction", Args: []any{raws[i*batch+j]}, Result: new(common.Hash)}
		}
		if err := rc.BatchCallContext(ctx, elems); err != nil {
			b.Fatal(err)
		}
		for _, e := range elems {
			if e.Error != nil {
				b.Fatal(e.Error)
			}
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "txs/s")
}

type chainKey struct {
	k     *crypto.PrivateKey
	nonce uint64
}

// benchNode starts a dev node for a benchmark and dials it.
func benchNode(b *testing.B) *gethrpc.Client {
	_, rc := dial(b, startDevNode(b, b.TempDir()))
	return rc
}
