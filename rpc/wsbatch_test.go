package rpc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/gorilla/websocket"

	"github.com/tally-ledger/tally/chain"
)

// wsMessage is any message the server sends on a WebSocket: a batch
// reply, a reply, or a subscription notification.
type wsMessage struct {
	batch  []rawReply
	one    rawReply
	method string
}

// readWS reads the next message from conn.
func readWS(t *testing.T, conn *websocket.Conn) wsMessage {
	t.Helper()
	_, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var m wsMessage
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &m.batch); err != nil {
			t.Fatalf("reply %q: %v", b, err)
		}
		return m
	}
	var n struct {
		Method string `json:"method"`
	}
	if err := json.Unmarshal(b, &m.one); err != nil || json.Unmarshal(b, &n) != nil {
		t.Fatalf("message %q: %v", b, err)
	}
	m.method = n.Method
	return m
}

// A WebSocket batch's sends reach the node (BatchAdmitter) as one group
// per run of consecutive sends, as an HTTP batch's do, on a connection
// that also holds a subscription: a batch of only sends as one group
// (through a follower, one forwarded message), a mixed batch as one group
// per run, a batch sent in many small frames (gorilla fragments a message
// over its write buffer) as well, two batches sent without waiting for
// the first reply (go-ethereum serves them at once) each as its groups,
// and a single call as a group of one. Each reply answers its call, in
// the batch's order, and the subscription's notifications still arrive
// on the connection.
func TestWebSocketBatchAdmittedInGroups(t *testing.T) {
	nonces := map[uint32]uint64{}
	send := func(id int, k uint32) string {
		n := nonces[k]
		nonces[k]++
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":[%q]}`, id, rawHex(t, signedTransfer(t, devKey(t, k), n)))
	}
	chainID := func(id string) string { return fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"method":"eth_chainId"}`, id) }
	for _, c := range []struct {
		name   string
		buffer int // the client's write buffer: smaller messages are fragmented
	}{{"whole frames", 0}, {"fragmented", 64}} {
		t.Run(c.name, func(t *testing.T) {
			// A node of its own: the backend's HeadFeed takes one subscriber.
			clear(nonces)
			b := &followerBackend{testBackend: newTestBackend(t), batched: map[common.Hash]bool{}}
			ts := serve(t, b, RateLimits{})
			url := "ws" + strings.TrimPrefix(ts.URL, "http")
			dialer := websocket.Dialer{WriteBufferSize: c.buffer}
			conn, _, err := dialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":"sub","method":"eth_subscribe","params":["newHeads"]}`)); err != nil {
				t.Fatal(err)
			}
			if m := readWS(t, conn); m.one.Error != nil || string(m.one.ID) != `"sub"` {
				t.Fatalf("subscribe: %+v", m.one)
			}
			// Each batch with the ids of its replies, the groups the node
			// is handed, sent one after the other without waiting.
			only := []string{send(1, 0), send(2, 0), send(3, 1), send(4, 2), send(5, 0)}
			mixed := []string{chainID("a"), send(11, 3), send(12, 3), send(13, 4), chainID("b"), send(14, 5), send(15, 3), chainID("c")}
			batches := []struct {
				calls []string
				ids   string
			}{
				{only, "[1 2 3 4 5]"},
				{mixed, `["a" 11 12 13 "b" 14 15 "c"]`},
			}
			for _, bt := range batches {
				if err := conn.WriteMessage(websocket.TextMessage, []byte(" \n["+strings.Join(bt.calls, ",")+"]")); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string]bool{}
			for range batches {
				m := readWS(t, conn)
				var ids []string
				for _, r := range m.batch {
					if r.Error != nil {
						t.Errorf("call %s: %+v", r.ID, r.Error)
					}
					ids = append(ids, string(r.ID))
				}
				got[fmt.Sprint(ids)] = true
			}
			for _, bt := range batches {
				if !got[bt.ids] {
					t.Errorf("no batch reply with ids %s in order; got %v", bt.ids, got)
				}
			}
			b.mu.Lock()
			sizes := append([]int(nil), b.sizes...)
			b.sizes = nil
			b.mu.Unlock()
			// The two batches are served at once: their groups in any order.
			if count := func(n int) (k int) {
				for _, s := range sizes {
					if s == n {
						k++
					}
				}
				return k
			}; len(sizes) != 3 || count(5) != 1 || count(3) != 1 || count(2) != 1 {
				t.Fatalf("the node was handed groups of %v, want 5, 3 and 2 in any order", sizes)
			}
			if err := conn.WriteMessage(websocket.TextMessage, []byte(send(21, 6))); err != nil {
				t.Fatal(err)
			}
			if m := readWS(t, conn); m.one.Error != nil || string(m.one.ID) != "21" {
				t.Fatalf("single call: %+v", m.one)
			}
			b.mu.Lock()
			sizes = b.sizes
			b.mu.Unlock()
			if fmt.Sprint(sizes) != "[1]" {
				t.Fatalf("a single call reached the node as %v, want [1]", sizes)
			}
			// The subscription still notifies on the same connection.
			b.heads.Publish(chain.NewBlock(chain.NewHeader(common.Hash{}, 1, 1, common.Address{}), nil))
			if m := readWS(t, conn); m.method != "eth_subscription" {
				t.Fatalf("after the batches: %+v, want a newHeads notification", m)
			}
		})
	}
}

// wsFrames encodes msgs as a client sends them (RFC 6455 section 5):
// each message in frames of at most frame payload bytes, each frame
// masked with key, a ping between the fragments of every message that
// has more than one.
func wsFrames(msgs [][]byte, frame int, key [4]byte) []byte {
	var out []byte
	for _, m := range msgs {
		for off := 0; off == 0 || off < len(m); {
			end := min(off+frame, len(m))
			op := byte(1)
			if off > 0 {
				op = 0
				out = append(out, 0x89, 0x80|3, key[0], key[1], key[2], key[3], 'p'^key[0], 'i'^key[1], 'n'^key[2])
			}
			if end == len(m) {
				op |= 0x80
			}
			out = append(out, op)
			switch n := end - off; {
			case n < 126:
				out = append(out, 0x80|byte(n))
			case n < 65536:
				out = append(out, 0x80|126)
				out = binary.BigEndian.AppendUint16(out, uint16(n))
			default:
				out = append(out, 0x80|127)
				out = binary.BigEndian.AppendUint64(out, uint64(n))
			}
			out = append(out, key[:]...)
			for i, x := range m[off:end] {
				out = append(out, x^key[i%4])
			}
			off = end
			if len(m) == 0 {
				break
			}
		}
	}
	return out
}

// FuzzWebSocketBatches checks the batch reader of messageTimeoutConn:
// over any messages a client sends, masked with any key, in frames of
// any size with pings between fragments, and read in pieces of any size,
// it hands onBatch exactly the messages whose first byte other than JSON
// whitespace is '[' and that fit maxMessage, unmasked, whole, in order.
func FuzzWebSocketBatches(f *testing.F) {
	f.Add([]byte(`[{"a":1}]`+"\x00"+`{"b":2}`+"\x00"+" \t[1,2]"), []byte{1, 2, 3, 4}, uint16(3), uint16(5), uint8(40))
	f.Add([]byte("[]\x00\x00["), []byte{0xff, 0, 0x80, 7}, uint16(1), uint16(1), uint8(1))
	f.Fuzz(func(t *testing.T, data, key []byte, frame, piece uint16, max uint8) {
		msgs := bytes.Split(data, []byte{0})
		var k [4]byte
		copy(k[:], key)
		stream := wsFrames(msgs, int(frame)%300+1, k)
		var got [][]byte
		c := &messageTimeoutConn{maxMessage: int(max) + 1, onBatch: func(m []byte) { got = append(got, m) }}
		step := int(piece)%700 + 1
		for pos := 0; pos < len(stream); pos += step {
			c.follow(stream[pos:min(pos+step, len(stream))])
			got, c.batches = append(got, c.batches...), nil
		}
		var want [][]byte
		for _, m := range msgs {
			if firstByte(m) == '[' && len(m) <= c.maxMessage {
				want = append(want, m)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d batches read, want %d", len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i][bytes.IndexByte(want[i], '['):]) {
				t.Fatalf("batch %d: %q, want %q", i, got[i], want[i])
			}
		}
	})
}

// The same batch sent twice on one WebSocket without waiting (go-ethereum
// serves both at once, and each has its plan): every transaction is
// answered with its hash exactly once over the two replies and "already
// known" the other time, as go-ethereum's one-by-one dispatch answers it,
// whichever batch reaches it first.
func TestWebSocketSameBatchTwice(t *testing.T) {
	b := &followerBackend{testBackend: newTestBackend(t), batched: map[common.Hash]bool{}}
	ts := serve(t, b, RateLimits{})
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var raws []string
	hashes := map[string]int{}
	for n := range uint64(6) {
		tx := signedTransfer(t, devKey(t, uint32(n%2)), n/2)
		raws = append(raws, rawHex(t, tx))
		hashes[`"`+tx.Hash().Hex()+`"`] = 0
	}
	body := []byte(sendBatchBody(raws))
	for range 2 {
		if err := conn.WriteMessage(websocket.TextMessage, body); err != nil {
			t.Fatal(err)
		}
	}
	known := 0
	for range 2 {
		m := readWS(t, conn)
		if len(m.batch) != len(raws) {
			t.Fatalf("%d replies to %d calls", len(m.batch), len(raws))
		}
		for i, r := range m.batch {
			switch {
			case r.Error != nil && r.Error.Code == CodeServerError && r.Error.Message == "already known":
				known++
			case r.Error == nil:
				if _, ok := hashes[string(r.Result)]; !ok {
					t.Fatalf("call %d: result %s is no transaction's hash", i, r.Result)
				}
				hashes[string(r.Result)]++
			default:
				t.Fatalf("call %d: %+v", i, r.Error)
			}
		}
	}
	for h, n := range hashes {
		if n != 1 {
			t.Errorf("transaction %s answered with its hash %d times, want once", h, n)
		}
	}
	if known != len(raws) {
		t.Errorf("%d answered already known, want %d", known, len(raws))
	}
}

// A WebSocket connection's open plans stay within maxWSPlans and
// maxBytes: to open one past either bound the oldest plans holding no
// admitted verdict are closed, a plan holding one (its batch cut short
// by go-ethereum mid-run) is never closed, and a batch that does not fit
// is not planned.
func TestWSPlansBounded(t *testing.T) {
	plan := func(size int, midRun bool) *sendPlan {
		p := &sendPlan{calls: []plannedSend{{raw: make([]byte, size), run: 1}, {raw: []byte{1}, run: 1}}}
		p.calls[0].done = midRun
		return p
	}
	open := func(w *wsPlans) (n int) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.plans)
	}
	t.Run("count", func(t *testing.T) {
		w := &wsPlans{maxBytes: 1 << 20}
		var plans []*sendPlan
		for i := range maxWSPlans {
			plans = append(plans, plan(10, i == 0))
			w.add(plans[i])
		}
		last := plan(10, false)
		w.add(last)
		if open(w) != maxWSPlans || w.plans[0] != plans[0] || w.plans[1] != plans[2] || w.plans[maxWSPlans-1] != last {
			t.Fatalf("%d open; want %d: the mid-run plan kept, the oldest other closed, the new one open", open(w), maxWSPlans)
		}
		for i := range w.plans {
			w.plans[i].calls[0].done = true
		}
		w.add(plan(10, false))
		if open(w) != maxWSPlans || w.plans[maxWSPlans-1] != last {
			t.Fatalf("a plan opened over %d mid-run plans", maxWSPlans)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		w := &wsPlans{maxBytes: 100}
		if w.add(plan(100, false)); open(w) != 0 {
			t.Fatal("a plan over maxBytes opened")
		}
		a, b := plan(50, false), plan(50, true)
		w.add(a)
		w.add(b)
		if open(w) != 1 || w.plans[0] != b || w.bytes != 51 {
			t.Fatalf("%d open (%d bytes), want the second alone (51 bytes)", open(w), w.bytes)
		}
		if w.add(plan(49, false)); open(w) != 1 {
			t.Fatal("a plan opened past maxBytes beside a mid-run plan")
		}
		// Once its calls are answered, a plan's bytes are free again.
		b.next = len(b.calls)
		w.add(plan(90, false))
		if open(w) != 1 || w.bytes != 91 {
			t.Fatalf("%d open (%d bytes) after the mid-run plan finished, want 1 (91 bytes)", open(w), w.bytes)
		}
	})
}
