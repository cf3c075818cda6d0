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

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

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

// The batch pipeline answers each call of a batch of
// eth_sendRawTransaction as go-ethereum's server answers the same calls
// one after another: every item's verdict and error text is compared with
// the answers of the fallback path (the same batch with one more call of
// another method, which go-ethereum's server handles item by item through
// SendRawTransaction) on a fresh node, and with the error go-ethereum
// gives. A batch over http.max-batch-items is refused whole, as
// go-ethereum refuses it.
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
			fast := newTestBackend(t)
			ts := serve(t, fast, RateLimits{})
			status, got := postRaw(t, ts.URL, sendBatchBody(c.raws))
			if status != http.StatusOK || len(got) != len(c.raws) {
				t.Fatalf("status %d, %d replies to %d calls", status, len(got), len(c.raws))
			}
			// The reference: the same calls, handled by go-ethereum's
			// server one by one (an eth_chainId call makes the batch one
			// the pipeline does not take).
			slow := newTestBackend(t)
			ref := serve(t, slow, RateLimits{})
			_, wantReplies := postRaw(t, ref.URL, sendBatchBody(c.raws, `{"jsonrpc":"2.0","id":"chain","method":"eth_chainId","params":[]}`))
			for i, r := range got {
				w := c.want[i]
				if string(r.ID) != fmt.Sprint(i+1) || r.Version != "2.0" {
					t.Errorf("call %d: id %s version %q", i, r.ID, r.Version)
				}
				if w.msg == "" {
					if r.Error != nil || r.Result == nil {
						t.Errorf("call %d: %+v, want a hash", i, r.Error)
					}
				} else if r.Error == nil || r.Error.Code != w.code || !strings.HasPrefix(r.Error.Message, w.msg) {
					t.Errorf("call %d: %+v, want %d %q…", i, r.Error, w.code, w.msg)
				}
				ref := wantReplies[i]
				if (r.Error == nil) != (ref.Error == nil) || (r.Error != nil && *r.Error != *ref.Error) || string(r.Result) != string(ref.Result) {
					t.Errorf("call %d: pipeline %+v %v, go-ethereum's path %+v %v", i, r.Error, r.Result, ref.Error, ref.Result)
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
					t.Errorf("tx %s pooled %v by the pipeline, %v by go-ethereum's path", tx.Hash(), inFast, inSlow)
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
		_, got := postRaw(t, ts.URL, sendBatchBody([]string{rawHex(t, ok0), rawHex(t, ok1), rawHex(t, signedTransfer(t, k1, 0))}))
		if len(got) != 1 || got[0].Error == nil || got[0].Error.Code != CodeInvalidRequest || got[0].Error.Message != "batch too large" {
			t.Fatalf("replies %+v, want one -32600 batch too large", got)
		}
		if q, _ := b.pool.Stats(); q != 0 {
			t.Fatalf("%d transactions admitted from a batch over the limit", q)
		}
	})
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
