package node

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// TestNonceGapOverRPC: a wallet whose nonce 0 never reached the node
// (lost with a crashed leader) sends nonces 1 and 2. tally_getPendingStatus
// shows them queued behind missing nonce 0. Once the gap is older than
// mempool.gap-grace, eth_sendRawTransaction of nonce 3 is refused with
// -32000 naming nonce 0; after mempool.gap-expiry the waiting transactions
// are gone, and once the wallet sends nonce 0..3 again all are receipted.
func TestNonceGapOverRPC(t *testing.T) {
	n := startDevNode(t, t.TempDir(), func(c *Config) {
		c.Mempool.GapGrace = Duration(time.Second)
		c.Mempool.GapExpiry = Duration(2 * time.Second)
	})
	ec, rc := dial(t, n)
	ctx := context.Background()
	key, _ := genesis.DevKey(3)
	id := n.ChainID()
	to := common.HexToAddress("0x1234000000000000000000000000000000005678")
	sign := func(nonce uint64) *types.Transaction {
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	status := func() PendingStatus {
		var st PendingStatus
		if err := rc.Call(&st, "tally_getPendingStatus", key.Address()); err != nil {
			t.Fatalf("tally_getPendingStatus: %v", err)
		}
		return st
	}
	for _, nonce := range []uint64{1, 2} {
		if err := ec.SendTransaction(ctx, sign(nonce)); err != nil {
			t.Fatalf("nonce %d: %v", nonce, err)
		}
	}
	st := status()
	if st.MissingNonce == nil || *st.MissingNonce != 0 || len(st.Queued) != 2 || st.Queued[0] != 1 || st.PendingNonce != 0 || st.GapSince == 0 {
		t.Fatalf("status %+v, want nonces 1 and 2 queued behind missing nonce 0", st)
	}

	time.Sleep(1100 * time.Millisecond) // past mempool.gap-grace
	err := ec.SendTransaction(ctx, sign(3))
	var rpcErr gethrpc.Error
	if err == nil || !strings.Contains(err.Error(), "missing nonce 0") || !errors.As(err, &rpcErr) || rpcErr.ErrorCode() != -32000 {
		t.Fatalf("nonce 3 behind a stale gap: %v, want -32000 naming missing nonce 0", err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for st = status(); len(st.Queued) > 0; st = status() {
		if time.Now().After(deadline) {
			t.Fatalf("gapped transactions still queued past mempool.gap-expiry: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.MissingNonce != nil {
		t.Fatalf("status after expiry %+v", st)
	}

	var last *types.Transaction
	for nonce := uint64(0); nonce < 4; nonce++ {
		last = sign(nonce)
		if err := ec.SendTransaction(ctx, last); err != nil {
			t.Fatalf("re-sent nonce %d: %v", nonce, err)
		}
	}
	if r := waitReceipt(t, ec, last.Hash()); r.Status != 1 {
		t.Fatalf("receipt %+v", r)
	}
	if got := status(); got.Nonce != hexutil.Uint64(4) || got.MissingNonce != nil {
		t.Fatalf("status after the re-send %+v", got)
	}
}
