package node

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/gorilla/websocket"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// A batch of sends over a WebSocket to a follower reaches the leader as
// one forwarded message, as an HTTP batch does
// (TestMixedBatchThroughFollowerForwardsOnce), on a connection that holds
// a newHeads subscription: every send is answered with its hash in the
// batch's order, and the block with the transactions is notified on the
// same connection.
func TestWebSocketBatchThroughFollowerForwardsOnce(t *testing.T) {
	nodes := startTestnet(t, 3)
	li := leaderOf(t, nodes)
	leader, follower := nodes[li], nodes[(li+1)%3]
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0x7a, 0xd5}
	var calls []string
	var hashes []common.Hash
	for s := range uint32(3) {
		k, _ := genesis.DevKey(12 + s)
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
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+follower.HTTPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	type message struct {
		ID     json.RawMessage
		Method string
		Result json.RawMessage
		Error  *struct{ Message string }
		Params struct {
			Result struct {
				Number hexutil.Uint64
			}
		}
	}
	if err := conn.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": "sub", "method": "eth_subscribe", "params": []string{"newHeads"}}); err != nil {
		t.Fatal(err)
	}
	var sub message
	if err := conn.ReadJSON(&sub); err != nil || sub.Error != nil {
		t.Fatalf("subscribe: %+v %v", sub.Error, err)
	}
	before := counterValue(t, leader.metrics.forwardBatches)
	if err := conn.WriteMessage(websocket.TextMessage, []byte("["+strings.Join(calls, ",")+"]")); err != nil {
		t.Fatal(err)
	}
	var replies []message
	heads := 0
	for replies == nil {
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if b[0] == '[' {
			if err := json.Unmarshal(b, &replies); err != nil {
				t.Fatal(err)
			}
		} else {
			heads++
		}
	}
	if len(replies) != len(calls) {
		t.Fatalf("%d replies to %d calls", len(replies), len(calls))
	}
	for k, r := range replies {
		if r.Error != nil {
			t.Fatalf("call %d: %s", k, r.Error.Message)
		}
		if string(r.ID) != fmt.Sprint(k) || string(r.Result) != `"`+hashes[k].Hex()+`"` {
			t.Errorf("call %d: id %s result %s, want id %d hash %s", k, r.ID, r.Result, k, hashes[k])
		}
	}
	if forwards := counterValue(t, leader.metrics.forwardBatches) - before; forwards != 1 {
		t.Fatalf("the batch's %d transactions reached the leader in %v forwarded messages, want 1", len(hashes), forwards)
	}
	// The follower's newHeads notifications on the same connection reach
	// the block holding the last transfer.
	ec, _ := dial(t, follower)
	r := waitReceipt(t, ec, hashes[len(hashes)-1])
	if r.Status != 1 {
		t.Fatal("last transfer failed")
	}
	for {
		var m message
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("after %d newHeads notifications: %v", heads, err)
		}
		if m.Method != "eth_subscription" {
			t.Fatalf("unexpected message %+v", m)
		}
		if heads++; uint64(m.Params.Result.Number) >= r.BlockNumber.Uint64() {
			break
		}
	}
}
