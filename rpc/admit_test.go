package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/gorilla/websocket"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// rawReply is one reply of a batch, kept as the server wrote it.
type rawReply struct {
	Version string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// postRaw posts body and decodes the reply: a batch reply into replies, a
// single error object into one.
func postRaw(t *testing.T, url, body string) (status int, replies []rawReply) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if b := bytes.TrimSpace(buf.Bytes()); len(b) > 0 && b[0] == '{' {
		var one rawReply
		if err := json.Unmarshal(b, &one); err != nil {
			t.Fatalf("reply %q: %v", b, err)
		}
		return resp.StatusCode, []rawReply{one}
	}
	if err := json.Unmarshal(buf.Bytes(), &replies); err != nil {
		t.Fatalf("reply %q: %v", buf.Bytes(), err)
	}
	return resp.StatusCode, replies
}

// sendBatchBody is a batch of eth_sendRawTransaction calls of raws (ids
// 1..n), followed by extra calls as they are.
func sendBatchBody(raws []string, extra ...string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, raw := range raws {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":[%q]}`, i+1, raw)
	}
	for _, e := range extra {
		b.WriteString("," + e)
	}
	b.WriteByte(']')
	return b.String()
}

// withSignature returns tx signed over by sig (r ‖ s ‖ v), whatever it is.
func withSignature(t *testing.T, tx *types.Transaction, r, s *big.Int, v byte) string {
	t.Helper()
	sig := make([]byte, 65)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:64])
	sig[64] = v
	signed, err := tx.WithSignature(chain.NewSigner(big.NewInt(genesis.DevChainID)), sig)
	if err != nil {
		t.Fatal(err)
	}
	return rawHex(t, signed)
}

// The admission pipeline answers each eth_sendRawTransaction call as
// go-ethereum's server answers the same calls one after another: every
// call's reply (id, result or error code and text) and what is left in
// the pool are compared with those of go-ethereum's own server
// dispatching each call to the per-call path (referenceServer), on a
// fresh node each, for the same transactions sent as a batch of only
// sends (the pipeline's batch path), as a mixed batch (sends between
// other calls: their runs admitted as groups), as a batch whose sends
// alternate with other calls, as single calls in order, and as a batch
// and as single calls over WebSocket. A batch over http.max-batch-items
// is refused whole, as go-ethereum refuses it.
func TestSendBatchVerdicts(t *testing.T) {
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0xbe, 0xef}
	k0, k1, k2 := devKey(t, 0), devKey(t, 1), devKey(t, 2)
	ok0, ok1 := signedTransfer(t, k0, 0), signedTransfer(t, k0, 1)
	otherChain, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: big.NewInt(999), To: &to, Value: big.NewInt(1), Gas: 21000}), big.NewInt(999), k1)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: 0, To: &to, Value: big.NewInt(1), Gas: 21000})
	halfN := new(big.Int).Rsh(secp256k1N, 1)
	// A KYC'd sender's transfer of more than it holds.
	tooMuch, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &to, Value: new(big.Int).Lsh(big.NewInt(1), 200), Gas: 21000}), id, k2)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		code int
		msg  string // the message starts with it ("" : admitted)
	}
	const chainIDCall = `{"jsonrpc":"2.0","id":"chain","method":"eth_chainId","params":[]}`
	// What another call between sends reads: the sender's pending nonce,
	// which moves with every transaction admitted before it.
	nonceCall := fmt.Sprintf(`{"jsonrpc":"2.0","id":"nonce","method":"eth_getTransactionCount","params":["%s","pending"]}`, k0.Address())
	for _, c := range []struct {
		name string
		raws []string
		want []want
	}{
		{"admitted in order", []string{rawHex(t, ok0), rawHex(t, ok1)}, []want{{}, {}}},
		{"malformed", []string{rawHex(t, ok0), "0x1234", "0x"}, []want{{}, {CodeInvalidParams, "invalid raw transaction: malformed transaction"}, {CodeInvalidParams, "invalid raw transaction: malformed transaction: empty"}}},
		{"empty string", []string{"", rawHex(t, ok0)}, []want{{CodeInvalidParams, "invalid raw transaction: malformed transaction: empty"}, {}}},
		{"wrong chain id", []string{rawHex(t, otherChain), rawHex(t, ok0)}, []want{{CodeServerError, "invalid chain id for signer: wrong chain id"}, {}}},
		{"bad signature", []string{withSignature(t, unsigned, new(big.Int), big.NewInt(1), 0), rawHex(t, ok0)}, []want{{CodeServerError, "invalid sender"}, {}}},
		{"high S", []string{withSignature(t, unsigned, big.NewInt(7), new(big.Int).Add(halfN, big.NewInt(1)), 0)}, []want{{CodeServerError, "invalid sender: signature S value is not low-S"}}},
		{"duplicate in the batch", []string{rawHex(t, ok0), rawHex(t, ok0), rawHex(t, ok1)}, []want{{}, {CodeServerError, "already known"}, {}}},
		{"nonce gap", []string{rawHex(t, ok1), rawHex(t, signedTransfer(t, k0, 1<<20))}, []want{{}, {CodeServerError, "nonce too high"}}},
		{"insufficient funds", []string{rawHex(t, tooMuch)}, []want{{CodeServerError, "insufficient funds"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var sends []string
			for i, raw := range c.raws {
				sends = append(sends, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":[%q]}`, i+1, raw))
			}
			alternating := []string{nonceCall}
			for _, send := range sends {
				alternating = append(alternating, send, nonceCall)
			}
			bodies := map[string][]string{
				"batch":       sends,
				"mixed":       append(append([]string{chainIDCall, nonceCall}, sends...), nonceCall, chainIDCall),
				"alternating": alternating,
			}
			for _, path := range []string{"batch", "mixed", "alternating", "single calls", "websocket batch", "websocket calls"} {
				calls := bodies[path]
				if calls == nil {
					calls = sends
				}
				fast, slow := newTestBackend(t), newTestBackend(t)
				ts, ref := serve(t, fast, RateLimits{}), referenceServer(t, slow)
				var got, wantReplies []rawReply
				switch path {
				case "single calls":
					for _, call := range calls {
						got = append(got, postRaw1(t, ts.URL, call))
						wantReplies = append(wantReplies, postRaw1(t, ref.URL, call))
					}
				case "websocket batch", "websocket calls":
					got = wsExchange(t, ts.URL, calls, path == "websocket batch")
					wantReplies = wsExchange(t, ref.URL, calls, path == "websocket batch")
				default:
					body := "[" + strings.Join(calls, ",") + "]"
					var status int
					status, got = postRaw(t, ts.URL, body)
					_, wantReplies = postRaw(t, ref.URL, body)
					if status != http.StatusOK {
						t.Fatalf("%s: status %d", path, status)
					}
				}
				if len(got) != len(calls) || len(wantReplies) != len(calls) {
					t.Fatalf("%s: %d replies, go-ethereum's path %d, to %d calls", path, len(got), len(wantReplies), len(calls))
				}
				k := 0 // the send calls' index in c.raws
				for i, r := range got {
					ref := wantReplies[i]
					if string(r.ID) != string(ref.ID) || r.Version != "2.0" || (r.Error == nil) != (ref.Error == nil) ||
						(r.Error != nil && *r.Error != *ref.Error) || string(r.Result) != string(ref.Result) {
						t.Errorf("%s, call %d: pipeline %s %+v %s, go-ethereum's path %s %+v %s", path, i, r.ID, r.Error, r.Result, ref.ID, ref.Error, ref.Result)
					}
					if r.ID[0] == '"' {
						continue // not a send
					}
					w := c.want[k]
					k++
					if w.msg == "" {
						if r.Error != nil || r.Result == nil {
							t.Errorf("%s, call %d: %+v, want a hash", path, i, r.Error)
						}
					} else if r.Error == nil || r.Error.Code != w.code || !strings.HasPrefix(r.Error.Message, w.msg) {
						t.Errorf("%s, call %d: %+v, want %d %q…", path, i, r.Error, w.code, w.msg)
					}
				}
				// What each path left in the pool is the same.
				for _, raw := range c.raws {
					b, err := hexutil.Decode(raw)
					if err != nil {
						continue
					}
					tx, err := chain.DecodeTx(b)
					if err != nil {
						continue
					}
					_, _, inFast := fast.pool.Get(tx.Hash())
					_, _, inSlow := slow.pool.Get(tx.Hash())
					if inFast != inSlow {
						t.Errorf("%s: tx %s pooled %v by the pipeline, %v by go-ethereum's path", path, tx.Hash(), inFast, inSlow)
					}
				}
			}
		})
	}

	t.Run("halted node", func(t *testing.T) {
		b := &haltedBackend{testBackend: newTestBackend(t)}
		ts := serve(t, b, RateLimits{})
		start := b.senders.Recovered()
		_, got := postRaw(t, ts.URL, sendBatchBody([]string{rawHex(t, ok0), "0x1234"}))
		for i, r := range got {
			if r.Error == nil || r.Error.Code != CodeHalted || r.Error.Message != "node halted: diverged" {
				t.Errorf("call %d: %+v, want -32000 node halted: diverged", i, r.Error)
			}
		}
		if q, _ := b.pool.Stats(); q != 0 || b.senders.Recovered() != start {
			t.Fatalf("a halted node admitted %d transactions and recovered %d senders", q, b.senders.Recovered()-start)
		}
	})

	t.Run("over the batch length limit", func(t *testing.T) {
		b := newTestBackend(t)
		limits := DefaultLimits
		limits.MaxBatchItems = 2
		srv, err := NewServer(b, limits, "test")
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		t.Cleanup(func() { ts.Close(); srv.Stop() })
		var calls []string
		for i, raw := range []string{rawHex(t, ok0), rawHex(t, ok1), rawHex(t, signedTransfer(t, k1, 0))} {
			calls = append(calls, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":[%q]}`, i+1, raw))
		}
		_, got := postRaw(t, ts.URL, "["+strings.Join(calls, ",")+"]")
		// Over WebSocket too (the connection's batches are planned).
		for path, got := range map[string][]rawReply{"http": got, "websocket": wsExchange(t, ts.URL, calls, true)} {
			if len(got) != 1 || got[0].Error == nil || got[0].Error.Code != CodeInvalidRequest || got[0].Error.Message != "batch too large" {
				t.Fatalf("%s: replies %+v, want one -32600 batch too large", path, got)
			}
		}
		if q, _ := b.pool.Stats(); q != 0 {
			t.Fatalf("%d transactions admitted from a batch over the limit", q)
		}
	})
}

// A mixed batch's eth_sendRawTransaction calls reach the node
// (BatchAdmitter) as one group per run of consecutive sends, not one
// call each (a follower forwards each group as one message); a single
// call is a group of one; the replies come back in the batch's order.
func TestMixedBatchAdmittedInGroups(t *testing.T) {
	b := &followerBackend{testBackend: newTestBackend(t), batched: map[common.Hash]bool{}}
	ts := serve(t, b, RateLimits{})
	send := func(id int, k uint32, nonce uint64) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":[%q]}`, id, rawHex(t, signedTransfer(t, devKey(t, k), nonce)))
	}
	chainID := func(id string) string { return fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"method":"eth_chainId"}`, id) }
	body := "[" + strings.Join([]string{chainID("a"), send(1, 0, 0), send(2, 0, 1), send(3, 1, 0), chainID("b"),
		send(4, 2, 0), send(5, 0, 2), chainID("c")}, ",") + "]"
	status, got := postRaw(t, ts.URL, body)
	if status != http.StatusOK || len(got) != 8 {
		t.Fatalf("status %d, %d replies", status, len(got))
	}
	for i, wantID := range []string{`"a"`, "1", "2", "3", `"b"`, "4", "5", `"c"`} {
		if string(got[i].ID) != wantID || got[i].Error != nil {
			t.Errorf("reply %d: id %s, error %+v; want id %s answered", i, got[i].ID, got[i].Error, wantID)
		}
	}
	if fmt.Sprint(b.sizes) != "[3 2]" {
		t.Fatalf("the node was handed groups of %v, want [3 2]", b.sizes)
	}
	b.sizes = nil
	if r := postRaw1(t, ts.URL, send(6, 3, 0)); r.Error != nil {
		t.Fatalf("single call: %+v", r.Error)
	}
	if fmt.Sprint(b.sizes) != "[1]" {
		t.Fatalf("a single call reached the node as %v, want [1]", b.sizes)
	}
}

// referenceServer is go-ethereum's server with the eth_* API and no
// admission pipeline: it dispatches each eth_sendRawTransaction call to
// SendRawTransaction, which submits the transaction to b alone, in the
// order go-ethereum reaches the calls. It is what the pipeline's answers
// are compared with.
func referenceServer(t *testing.T, b Backend) *httptest.Server {
	t.Helper()
	srv := gethrpc.NewServer()
	if err := srv.RegisterName("eth", NewEthAPI(b)); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			srv.WebsocketHandler([]string{"*"}).ServeHTTP(w, r)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { ts.Close(); srv.Stop() })
	return ts
}

// postRaw1 posts one call and returns its reply.
func postRaw1(t *testing.T, url, call string) rawReply {
	t.Helper()
	_, replies := postRaw(t, url, call)
	if len(replies) != 1 {
		t.Fatalf("%d replies to one call", len(replies))
	}
	return replies[0]
}

// wsExchange sends calls over a WebSocket to the server at url: as one
// batch message, or as one message each, each sent once the previous one
// is answered. It returns the replies in the calls' order.
func wsExchange(t *testing.T, url string, calls []string, batch bool) []rawReply {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var out []rawReply
	if batch {
		if err := conn.WriteMessage(websocket.TextMessage, []byte("["+strings.Join(calls, ",")+"]")); err != nil {
			t.Fatal(err)
		}
		if err := conn.ReadJSON(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, call := range calls {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(call)); err != nil {
			t.Fatal(err)
		}
		var r rawReply
		if err := conn.ReadJSON(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// secp256k1N is the order of secp256k1.
var secp256k1N, _ = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)

// The pipeline takes only batches of well-formed eth_sendRawTransaction
// calls; anything else is go-ethereum's to answer.
func TestParseSendBatch(t *testing.T) {
	call := `{"jsonrpc":"2.0","id":%s,"method":"eth_sendRawTransaction","params":%s}`
	for _, c := range []struct {
		name string
		body string
		ok   bool
	}{
		{"two calls", "[" + fmt.Sprintf(call, "1", `["0x01"]`) + "," + fmt.Sprintf(call, `"a"`, `["0x02"]`) + "]", true},
		{"one call", "[" + fmt.Sprintf(call, "-7", `["0x"]`) + "]", true},
		{"empty batch", "[]", false},
		{"not a batch", fmt.Sprintf(call, "1", `["0x01"]`), false},
		{"another method", `[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}]`, false},
		{"notification", `[{"jsonrpc":"2.0","method":"eth_sendRawTransaction","params":["0x01"]}]`, false},
		{"null id", "[" + fmt.Sprintf(call, "null", `["0x01"]`) + "]", false},
		{"object id", "[" + fmt.Sprintf(call, "{}", `["0x01"]`) + "]", false},
		{"version 1", `[{"jsonrpc":"1.0","id":1,"method":"eth_sendRawTransaction","params":["0x01"]}]`, false},
		{"two params", "[" + fmt.Sprintf(call, "1", `["0x01","0x02"]`) + "]", false},
		{"no params", "[" + fmt.Sprintf(call, "1", `[]`) + "]", false},
		{"bad hex", "[" + fmt.Sprintf(call, "1", `["0xzz"]`) + "]", false},
		{"no 0x", "[" + fmt.Sprintf(call, "1", `["01"]`) + "]", false},
		{"params an object", "[" + fmt.Sprintf(call, "1", `{"a":"0x01"}`) + "]", false},
		{"over the limit", "[" + strings.Repeat(fmt.Sprintf(call, "1", `["0x01"]`)+",", 3) + fmt.Sprintf(call, "1", `["0x01"]`) + "]", false},
		{"trailing garbage", "[" + fmt.Sprintf(call, "1", `["0x01"]`) + "]x", false},
	} {
		calls, ok := parseSendBatch([]byte(c.body), 3)
		if ok != c.ok {
			t.Errorf("%s: ok %v, want %v", c.name, ok, c.ok)
		}
		if ok && len(calls) == 0 {
			t.Errorf("%s: no calls", c.name)
		}
	}
}

// FuzzParseSendBatch: any body is either left to go-ethereum or read as
// calls whose bytes are exactly the hex of their parameter, and whose ids
// are a JSON number or string.
func FuzzParseSendBatch(f *testing.F) {
	f.Add([]byte(sendBatchBody([]string{"0x01", "0x"})))
	f.Add([]byte(`[{"jsonrpc":"2.0","id":"x","method":"eth_sendRawTransaction","params":["0xf86c"]}]`))
	f.Add([]byte(`[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		calls, ok := parseSendBatch(body, 100)
		if !ok {
			if calls != nil {
				t.Fatal("calls without ok")
			}
			return
		}
		if len(calls) == 0 || len(calls) > 100 {
			t.Fatalf("%d calls", len(calls))
		}
		var msgs []struct {
			ID     json.RawMessage
			Params []string
		}
		if err := json.Unmarshal(body, &msgs); err != nil || len(msgs) != len(calls) {
			t.Fatalf("parsed a body encoding/json reads otherwise: %v", err)
		}
		for i, c := range calls {
			if !json.Valid(c.ID) || !plainID(c.ID) {
				t.Fatalf("call %d: id %q", i, c.ID)
			}
			// go-ethereum reads "" as no bytes (hexutil.Bytes), which
			// hexutil.Decode refuses; anything else is 0x-hex.
			if p := msgs[i].Params[0]; p == "" {
				if len(c.Raw) != 0 {
					t.Fatalf("call %d: bytes %x from an empty string", i, c.Raw)
				}
			} else if want, err := hexutil.Decode(p); err != nil || !bytes.Equal(want, c.Raw) {
				t.Fatalf("call %d: bytes %x from %q (%v)", i, c.Raw, p, err)
			}
		}
	})
}

// haltedBackend is a testBackend whose node has halted.
type haltedBackend struct{ *testBackend }

func (haltedBackend) Halted() error { return errors.New("diverged") }

// FuzzPlanSends: whatever a client sends as a batch, the plan of its
// sends never panics, holds only calls go-ethereum dispatches to
// eth_sendRawTransaction (version "2.0", the method, an id that is not
// an object or array, one parameter that decodes as hexutil.Bytes, in
// the batch's order), and numbers its runs so that two calls share a run
// only when nothing stood between them in the batch.
func FuzzPlanSends(f *testing.F) {
	send := `{"jsonrpc":"2.0","id":%s,"method":"eth_sendRawTransaction","params":[%s]}`
	f.Add([]byte("[" + fmt.Sprintf(send, "1", `"0x01"`) + "," + fmt.Sprintf(send, "2", `"0x"`) + "]"))
	f.Add([]byte("[" + fmt.Sprintf(send, "1", `"0x01"`) + `,{"jsonrpc":"2.0","id":3,"method":"eth_chainId"},` + fmt.Sprintf(send, `"a"`, `"0x0203"`) + "," + fmt.Sprintf(send, "null", `"0x04"`) + "]"))
	f.Add([]byte("[" + fmt.Sprintf(send, "{}", `"0x01"`) + "," + fmt.Sprintf(send, "1", `null`) + "," + fmt.Sprintf(send, "1", `""`) + "]"))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte("[" + fmt.Sprintf(send, "1", `"0x01"`) + "," + fmt.Sprintf(send, "2", `"0x02"`) + `,{"params":{}}]`))
	s := &Server{limits: DefaultLimits}
	f.Fuzz(func(t *testing.T, body []byte) {
		p := s.planSends(body, "127.0.0.1:1")
		if p == nil {
			return
		}
		var msgs []struct {
			Version string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Method  string          `json:"method"`
			Params  json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(body, &msgs); err != nil {
			t.Fatalf("planned a body encoding/json refuses: %v", err)
		}
		k, run, prev := 0, 0, -2
		for i, m := range msgs {
			// go-ethereum reads params as an array only (else "non-array args").
			var params []json.RawMessage
			if m.Version != "2.0" || m.Method != "eth_sendRawTransaction" || firstByte(m.Params) != '[' ||
				json.Unmarshal(m.Params, &params) != nil || len(params) != 1 {
				continue
			}
			if len(m.ID) > 0 && (m.ID[0] == '{' || m.ID[0] == '[') {
				continue
			}
			var raw hexutil.Bytes
			if string(params[0]) == "null" || json.Unmarshal(params[0], &raw) != nil {
				continue
			}
			if k >= len(p.calls) {
				t.Fatalf("message %d is a send the plan lacks", i)
			}
			c := p.calls[k]
			if !bytes.Equal(c.raw, raw) {
				t.Fatalf("planned call %d: bytes %x, the message's %x", k, c.raw, raw)
			}
			if i != prev+1 {
				run++
			}
			if c.run != run {
				t.Fatalf("planned call %d in run %d, want %d", k, c.run, run)
			}
			prev, k = i, k+1
		}
		if k != len(p.calls) {
			t.Fatalf("the plan has %d calls, the body %d sends", len(p.calls), k)
		}
	})
}
