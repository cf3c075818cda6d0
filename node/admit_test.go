package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	dto "github.com/prometheus/client_model/go"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// A JSON-RPC batch sent to a follower of a real three-node cluster is
// checked there (decoding, chain id, signature), forwarded to the leader
// whole, and answered call by call with the leader's verdicts; what the
// leader admitted is held by the follower too (its pool and its journal,
// as raw bytes identical to the client's) before the client hears of it,
// and is included.
func TestBatchThroughFollower(t *testing.T) {
	nodes := startTestnet(t, 3)
	li := leaderOf(t, nodes)
	follower := nodes[(li+1)%3]
	_, rc := dial(t, follower)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0x7a, 0xd3}
	transfer := func(k *crypto.PrivateKey, chainID *big.Int, nonce uint64) hexutil.Bytes {
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000}), chainID, k)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tx.MarshalBinary()
		return raw
	}
	var raws []hexutil.Bytes
	want := map[int]string{} // refused calls: the start of the error
	for s := range uint32(4) {
		k, _ := genesis.DevKey(10 + s)
		for n := range uint64(50) {
			raws = append(raws, transfer(k, id, n))
		}
	}
	stranger, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, _ := genesis.DevKey(14)
	for _, c := range []struct {
		raw hexutil.Bytes
		err string
	}{
		{raws[0], "already known"},                             // a duplicate in the same batch, refused by the leader
		{hexutil.Bytes{0x01, 0x02}, "invalid raw transaction"}, // malformed, refused by the follower
		{transfer(k, big.NewInt(999), 0), "invalid chain id for signer"},
		{transfer(stranger, id, 0), "sender is not KYC-verified"}, // the leader's state rules
		{transfer(k, id, 1<<20), "nonce too high"},
	} {
		want[len(raws)] = c.err
		raws = append(raws, c.raw)
	}
	calls := make([]gethrpc.BatchElem, len(raws))
	for i, raw := range raws {
		calls[i] = gethrpc.BatchElem{Method: "eth_sendRawTransaction", Args: []any{raw}, Result: new(common.Hash)}
	}
	if err := rc.BatchCallContext(ctx, calls); err != nil {
		t.Fatal(err)
	}
	journal, err := readPoolJournal(vfs.Default, filepath.Join(follower.cfg.DataDir, PoolJournalFile))
	if err != nil {
		t.Fatal(err)
	}
	var last common.Hash
	for i, c := range calls {
		if msg, refused := want[i]; refused {
			if c.Error == nil || !strings.HasPrefix(c.Error.Error(), msg) {
				t.Errorf("call %d: %v, want %q…", i, c.Error, msg)
			}
			continue
		}
		if c.Error != nil {
			t.Fatalf("call %d: %v", i, c.Error)
		}
		h := *c.Result.(*common.Hash)
		tx, _ := chain.DecodeTx(raws[i])
		if h != tx.Hash() {
			t.Fatalf("call %d: hash %s, want %s", i, h, tx.Hash())
		}
		// Held by the follower before the answer: in its journal (synced),
		// byte for byte as sent, unless already applied.
		found := false
		for _, j := range journal {
			if bytes.Equal(j, raws[i]) {
				found = true
				break
			}
		}
		if applied, _ := follower.db.HasTx(h); !found && !applied {
			t.Errorf("call %d: admitted, but neither in the follower's journal nor applied", i)
		}
		last = h
	}
	ec, _ := dial(t, follower)
	if r := waitReceipt(t, ec, last); r.Status != 1 {
		t.Fatal("last transfer failed")
	}
	for i := range 200 {
		tx, _ := chain.DecodeTx(raws[i])
		if r := waitReceipt(t, ec, tx.Hash()); r.Status != 1 {
			t.Fatalf("transfer %d: status %d", i, r.Status)
		}
	}
}

// A mixed JSON-RPC batch (eth_sendRawTransaction calls between calls of
// other methods) sent to a follower reaches the leader as one forwarded
// message for its run of sends, not one per transaction (go-ethereum's
// server dispatches a batch's calls one after another, and each send
// waited for its own round trip to the leader before the next began),
// and every call is answered in the batch's order.
func TestMixedBatchThroughFollowerForwardsOnce(t *testing.T) {
	nodes := startTestnet(t, 3)
	li := leaderOf(t, nodes)
	leader, follower := nodes[li], nodes[(li+1)%3]
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0x7a, 0xd4}
	calls := []string{`{"jsonrpc":"2.0","id":"chain","method":"eth_chainId","params":[]}`}
	var hashes []common.Hash
	for s := range uint32(3) {
		k, _ := genesis.DevKey(15 + s)
		for n := range uint64(10) {
			tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: n, To: &to, Value: big.NewInt(1), Gas: 21000}), id, k)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tx.MarshalBinary()
			calls = append(calls, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":["%s"]}`, len(hashes), hexutil.Encode(raw)))
			hashes = append(hashes, tx.Hash())
		}
	}
	calls = append(calls, `{"jsonrpc":"2.0","id":"head","method":"eth_blockNumber","params":[]}`)
	before := counterValue(t, leader.metrics.forwardBatches)
	resp, err := http.Post("http://"+follower.HTTPAddr(), "application/json", strings.NewReader("["+strings.Join(calls, ",")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	var replies []struct {
		ID     json.RawMessage
		Result json.RawMessage
		Error  *struct{ Message string }
	}
	err = json.NewDecoder(resp.Body).Decode(&replies)
	resp.Body.Close()
	if err != nil || len(replies) != len(calls) {
		t.Fatalf("%d replies to %d calls: %v", len(replies), len(calls), err)
	}
	forwards := counterValue(t, leader.metrics.forwardBatches) - before
	for i, r := range replies {
		if r.Error != nil {
			t.Fatalf("call %d: %s", i, r.Error.Message)
		}
		if k := i - 1; k >= 0 && k < len(hashes) {
			if string(r.ID) != fmt.Sprint(k) || string(r.Result) != `"`+hashes[k].Hex()+`"` {
				t.Errorf("call %d: id %s result %s, want id %d hash %s", i, r.ID, r.Result, k, hashes[k])
			}
		}
	}
	if forwards != 1 {
		t.Fatalf("the batch's %d transactions reached the leader in %v forwarded messages, want 1", len(hashes), forwards)
	}
	ec, _ := dial(t, follower)
	if r := waitReceipt(t, ec, hashes[len(hashes)-1]); r.Status != 1 {
		t.Fatal("last transfer failed")
	}
}

// counterValue reads a Prometheus counter.
func counterValue(t testing.TB, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A follower answers two kinds of batch element itself, as go-ethereum's
// node would, rather than asking the leader: a transaction it has applied
// already ("already known" at once, even with no leader to ask: a wallet
// would otherwise try every node for it), and a second copy of an earlier
// element (answered after the first; the forwarder reads a retried
// batch's "already known" as admitted, so a copy forwarded with it was
// acknowledged as a transaction of its own, which made
// TestBatchThroughFollower fail on a loaded machine).
func TestFollowerAnswersAppliedAndRepeated(t *testing.T) {
	nodes := startTestnet(t, 3)
	li := leaderOf(t, nodes)
	follower := nodes[(li+1)%3]
	ec, rc := dial(t, follower)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id := big.NewInt(genesis.DevChainID)
	k, _ := genesis.DevKey(10)
	to := common.Address{0x7a, 0xd4}
	sign := func(nonce uint64) (hexutil.Bytes, common.Hash) {
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000}), id, k)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tx.MarshalBinary()
		return raw, tx.Hash()
	}
	send := func(raws ...hexutil.Bytes) []gethrpc.BatchElem {
		calls := make([]gethrpc.BatchElem, len(raws))
		for i, raw := range raws {
			calls[i] = gethrpc.BatchElem{Method: "eth_sendRawTransaction", Args: []any{raw}, Result: new(common.Hash)}
		}
		if err := rc.BatchCallContext(ctx, calls); err != nil {
			t.Fatal(err)
		}
		return calls
	}
	verdict := func(c gethrpc.BatchElem) string {
		if c.Error != nil {
			return c.Error.Error()
		}
		return ""
	}

	a, ha := sign(0)
	b, hb := sign(1)
	calls := send(a, a, b, b)
	want := []string{"", "already known", "", "already known"}
	for i, c := range calls {
		if got := verdict(c); !strings.HasPrefix(got, want[i]) || (want[i] == "" && got != "") {
			t.Errorf("call %d: %q, want %q", i, got, want[i])
		}
	}
	waitReceipt(t, ec, ha)
	waitReceipt(t, ec, hb)

	// The other two nodes stop: the follower has no leader to ask.
	for i, n := range nodes {
		if n != follower {
			n.Close()
			nodes[i] = nil
		}
	}
	start := time.Now()
	for i, c := range send(a, b) {
		if got := verdict(c); !strings.HasPrefix(got, "already known") {
			t.Errorf("replay %d with no leader: %q, want \"already known\"", i, got)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the replays were answered after %v: the follower asked for a leader", d)
	}
}
