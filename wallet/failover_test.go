package wallet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"
)

// rpcErrorServer answers every JSON-RPC request with status and, when msg
// is set, a JSON-RPC error object, as a node (or a proxy before it) does.
func rpcErrorServer(t *testing.T, status, code int, msg string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(status)
		if msg != "" {
			body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "error": map[string]any{"code": code, "message": msg}})
			w.Write(body)
		}
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// hangUpServer reads each request and closes the connection without an
// answer: the request may have been served, its answer is lost.
func hangUpServer(t *testing.T, forward func(body []byte)) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if forward != nil {
			forward(body)
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// stalledEndpoint accepts connections and never answers, as a stopped
// (SIGSTOP) process's listening socket does.
func stalledEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + l.Addr().String()
}

// refusedEndpoint is an address nothing listens on (a killed node).
func refusedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// TestUnavailable classifies the errors go-ethereum's rpc client really
// returns for each way an endpoint can fail or answer.
func TestUnavailable(t *testing.T) {
	cases := []struct {
		name string
		url  string
		want bool
	}{
		{"connection refused", refusedEndpoint(t), true},
		{"answer lost (connection closed)", hangUpServer(t, nil), true},
		{"HTTP 503 with a JSON-RPC body (connection cap)", rpcErrorServer(t, 503, -32005, "too many connections"), true},
		{"HTTP 502 from a proxy", rpcErrorServer(t, 502, 0, ""), true},
		{"HTTP 429", rpcErrorServer(t, 429, 0, ""), true},
		{"HTTP 400", rpcErrorServer(t, 400, 0, ""), false},
		{"HTTP 413 (request too large)", rpcErrorServer(t, 413, 0, ""), false},
		{"node halted", rpcErrorServer(t, 200, -32000, "node halted: diverged at block 7"), true},
		{"no leader", rpcErrorServer(t, 200, -32000, "no leader to forward to: no route"), true},
		{"forward timed out", rpcErrorServer(t, 200, -32000, "forward to leader: context deadline exceeded"), true},
		{"not replicated", rpcErrorServer(t, 200, -32000, "admitted, but no other validator confirmed holding it: timeout (it stays pending)"), true},
		{"limit exceeded", rpcErrorServer(t, 200, -32005, "rate limit exceeded for 127.0.0.1 (10 tx/s)"), true},
		{"internal error", rpcErrorServer(t, 200, -32603, "internal error"), true},
		{"nonce too low", rpcErrorServer(t, 200, -32000, "nonce too low: next nonce 5, tx nonce 4"), false},
		{"already known", rpcErrorServer(t, 200, -32000, "already known"), false},
		{"insufficient funds", rpcErrorServer(t, 200, -32000, "insufficient funds for transfer: balance 0"), false},
		{"invalid params", rpcErrorServer(t, 200, -32602, "invalid argument 0: hex string without 0x prefix"), false},
		{"reverted", rpcErrorServer(t, 200, 3, "execution reverted: frozen"), false},
		{"method not found", rpcErrorServer(t, 200, -32601, "the method eth_mine does not exist/is not available"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := rpc.DialContext(ctx, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var out any
			err = c.CallContext(ctx, &out, "eth_chainId")
			if err == nil {
				t.Fatal("no error")
			}
			if got := Unavailable(err); got != tc.want {
				t.Fatalf("Unavailable(%T %v) = %v, want %v", err, err, got, tc.want)
			}
		})
	}
	if Unavailable(context.Canceled) || Unavailable(nil) || Unavailable(ErrNotFound) {
		t.Fatal("the caller's cancellation, nil or not found taken for unavailability")
	}
}

// TestFailoverDeterministic: a deterministic answer is returned from the
// first endpoint that gives it; the next endpoint is never asked.
func TestFailoverDeterministic(t *testing.T) {
	var second atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		second.Add(1)
		w.Header().Set("content-type", "application/json")
		w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":"0x539"}`))
	}))
	defer s.Close()
	ctx := context.Background()
	for _, msg := range []string{"nonce too low: next nonce 5, tx nonce 4", "execution reverted: frozen", "insufficient funds for transfer"} {
		c, err := DialEndpoints(ctx, []string{rpcErrorServer(t, 200, -32000, msg), s.URL}, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		var out any
		if err := c.Call(ctx, &out, "eth_chainId"); err == nil || err.Error() != msg {
			t.Fatalf("%q: got %v", msg, err)
		}
		c.Close()
	}
	if n := second.Load(); n != 0 {
		t.Fatalf("the second endpoint was asked %d times after a deterministic answer", n)
	}
	// A refusal from the endpoint asked after a stalled one makes it the
	// current one: the next call does not wait for the stalled one again.
	refusing := rpcErrorServer(t, 200, 3, "execution reverted: frozen")
	c, err := DialEndpoints(ctx, []string{stalledEndpoint(t), refusing}, Options{StallTimeout: 100 * time.Millisecond, RetryFor: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out any
	if err := c.Call(ctx, &out, "eth_call"); err == nil || c.Current() != refusing {
		t.Fatalf("after a stall and a revert: err %v, current %s", err, c.Current())
	}
}

// TestFailoverStalled: an endpoint that accepts connections and never
// answers (a paused process) costs one stall timeout; the request also
// goes to the next endpoint, which becomes the current one.
func TestFailoverStalled(t *testing.T) {
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("content-type", "application/json")
		w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":"0x539"}`))
	}))
	defer good.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialEndpoints(ctx, []string{stalledEndpoint(t), good.URL}, Options{StallTimeout: 100 * time.Millisecond, RetryFor: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, err := c.ChainID(ctx)
	if err != nil || id.Int64() != 1337 {
		t.Fatalf("chain id %v %v", id, err)
	}
	if c.Current() != good.URL {
		t.Fatalf("current %s, want %s", c.Current(), good.URL)
	}
}

// TestFailoverUnavailable: with every endpoint unavailable a call goes
// round them for RetryFor and then reports ErrUnavailable naming the last
// failure; with RetryFor 0 it tries each once; the caller's context ends
// it sooner.
func TestFailoverUnavailable(t *testing.T) {
	var asked atomic.Int32
	halted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("content-type", "application/json")
		w.Write([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"node halted: test"}}`))
	}))
	defer halted.Close()
	urls := []string{refusedEndpoint(t), halted.URL}
	ctx := context.Background()

	c, err := DialEndpoints(ctx, urls, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out any
	err = c.Call(ctx, &out, "eth_chainId")
	if !errors.Is(err, ErrUnavailable) || asked.Load() != 1 {
		t.Fatalf("one pass: err %v, halted node asked %d times", err, asked.Load())
	}
	c.Close()

	c, err = DialEndpoints(ctx, urls, Options{RetryFor: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	asked.Store(0)
	start := time.Now()
	err = c.Call(ctx, &out, "eth_chainId")
	if !errors.Is(err, ErrUnavailable) || asked.Load() < 3 {
		t.Fatalf("retry: err %v after %v, halted node asked %d times", err, time.Since(start), asked.Load())
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("retry for 600ms took %v", time.Since(start))
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	c.opts.RetryFor = time.Hour
	if err := c.Call(short, &out, "eth_chainId"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller's deadline: %v", err)
	}
}

// testFailover runs the client over failed endpoints in front of a real
// dev node (TestAgainstNode): reads reach the node past a refused and a
// stalled endpoint, and sends whose answers are lost are re-sent and
// admitted once.
func testFailover(ctx context.Context, t *testing.T, nodeURL string) {
	opts := Options{StallTimeout: 200 * time.Millisecond, RetryFor: 10 * time.Second}
	key := devKey(t, 7)
	to := freshAddress(t)

	t.Run("Reads", func(t *testing.T) {
		c, err := DialEndpoints(ctx, []string{refusedEndpoint(t), stalledEndpoint(t), nodeURL}, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.ChainID(ctx); err != nil {
			t.Fatal(err)
		}
		if c.Current() != nodeURL {
			t.Fatalf("current endpoint %s, want the node %s", c.Current(), nodeURL)
		}
		if _, err := c.Balance(ctx, key.Address()); err != nil {
			t.Fatal(err)
		}
		// Not found is an answer: no endpoint is tried for it again.
		if _, err := c.Receipt(ctx, common.BytesToHash(to.Bytes())); !errors.Is(err, ErrNotFound) {
			t.Fatalf("receipt of an unknown hash: %v", err)
		}
	})

	t.Run("WebSocketDownAtDial", func(t *testing.T) {
		// A WebSocket dial connects at once; a node down when the client
		// is made is dialled again at its first use instead of failing
		// the client.
		down := "ws://" + strings.TrimPrefix(refusedEndpoint(t), "http://")
		up := "ws://" + strings.TrimPrefix(nodeURL, "http://")
		c, err := DialEndpoints(ctx, []string{down, up}, opts)
		if err != nil {
			t.Fatalf("a list with one node down: %v", err)
		}
		defer c.Close()
		if _, err := c.Balance(ctx, key.Address()); err != nil || c.Current() != up {
			t.Fatalf("balance over WebSocket: %v (current %s)", err, c.Current())
		}
		if _, err := Dial(ctx, down); err == nil {
			t.Fatal("Dial of a single WebSocket endpoint that is down: no error")
		}
	})

	// lossy forwards each request to the node and loses its answer.
	var forwarded atomic.Int32
	lossy := hangUpServer(t, func(body []byte) {
		forwarded.Add(1)
		resp, err := http.Post(nodeURL, "application/json", bytes.NewReader(body))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	c, err := DialEndpoints(ctx, []string{lossy, nodeURL}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("SendAnswerLost", func(t *testing.T) {
		nonce, err := c.PendingNonce(ctx, key.Address())
		if err != nil {
			t.Fatal(err)
		}
		c.setCurrent(0) // the lossy endpoint first
		tx, err := c.Transfer(ctx, key, to, big.NewInt(3))
		if err != nil {
			t.Fatalf("transfer whose first answer was lost: %v", err)
		}
		if forwarded.Load() == 0 {
			t.Fatal("the lossy endpoint was not used")
		}
		if tx.Nonce() != nonce {
			t.Fatalf("signed with nonce %d, want %d", tx.Nonce(), nonce)
		}
		r, err := c.WaitReceipt(ctx, tx.Hash())
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("receipt %v %v", r, err)
		}
		// One intent, one transaction: the next nonce is one further.
		if n, err := c.PendingNonce(ctx, key.Address()); err != nil || n != nonce+1 {
			t.Fatalf("pending nonce after one transfer: %d %v, want %d", n, err, nonce+1)
		}
	})

	t.Run("SendRefusalIsAnswer", func(t *testing.T) {
		// A different transaction with a used nonce: the re-send's "nonce
		// too low" is for a transaction no node has, so it is the error.
		chainID, err := c.ChainID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stale, err := SignTransfer(key, chainID, 0, freshAddress(t), big.NewInt(1), false)
		if err != nil {
			t.Fatal(err)
		}
		c.setCurrent(0)
		if err := c.SendSigned(ctx, stale); err == nil || !nonceTooLow(errors.Unwrap(err)) {
			t.Fatalf("a stale nonce after a lost answer: %v", err)
		}
	})

	t.Run("BatchItemsUnavailable", func(t *testing.T) {
		// A node that forwards a batch and answers every other item "no
		// leader to forward to" (those were admitted all the same: the
		// answer, not the admission, failed): the client re-sends just those
		// items to the next node, whose "already known" is success.
		var relayed atomic.Int32
		flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			resp, err := http.Post(nodeURL, "application/json", bytes.NewReader(body))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			var items []map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&items); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			for i, it := range items {
				if i%2 == 1 {
					relayed.Add(1)
					delete(it, "result")
					it["error"] = map[string]any{"code": -32000, "message": "no leader to forward to: leader changed"}
				}
			}
			w.Header().Set("content-type", "application/json")
			json.NewEncoder(w).Encode(items)
		}))
		defer flaky.Close()
		fc, err := DialEndpoints(ctx, []string{flaky.URL, nodeURL}, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer fc.Close()
		chainID, err := fc.ChainID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nonce, err := fc.PendingNonce(ctx, key.Address())
		if err != nil {
			t.Fatal(err)
		}
		fc.setCurrent(0)
		var raws [][]byte
		var txs []*types.Transaction
		for i := range 10 {
			tx, err := SignTransfer(key, chainID, nonce+uint64(i), to, big.NewInt(1), false)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tx.MarshalBinary()
			raws, txs = append(raws, raw), append(txs, tx)
		}
		hashes, errs, err := fc.SendRawBatch(ctx, raws)
		if err != nil {
			t.Fatal(err)
		}
		if relayed.Load() == 0 {
			t.Fatal("no item was answered unavailable")
		}
		for i, tx := range txs {
			if errs[i] != nil || hashes[i] != tx.Hash() {
				t.Fatalf("item %d: hash %s err %v, want %s", i, hashes[i], errs[i], tx.Hash())
			}
		}
		if r, err := fc.WaitReceipt(ctx, txs[9].Hash()); err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("last receipt %v %v", r, err)
		}
		if n, _ := fc.PendingNonce(ctx, key.Address()); n != nonce+10 {
			t.Fatalf("pending nonce %d, want %d", n, nonce+10)
		}
	})

	t.Run("BatchAnswerLost", func(t *testing.T) {
		chainID, err := c.ChainID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nonce, err := c.PendingNonce(ctx, key.Address())
		if err != nil {
			t.Fatal(err)
		}
		var raws [][]byte
		var txs []*types.Transaction
		for i := range 20 {
			tx, err := SignTransfer(key, chainID, nonce+uint64(i), to, big.NewInt(1), i%2 == 0)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tx.MarshalBinary()
			raws, txs = append(raws, raw), append(txs, tx)
		}
		c.setCurrent(0)
		hashes, errs, err := c.SendRawBatch(ctx, raws)
		if err != nil {
			t.Fatal(err)
		}
		for i, tx := range txs {
			if errs[i] != nil || hashes[i] != tx.Hash() {
				t.Fatalf("item %d: hash %s err %v, want %s", i, hashes[i], errs[i], tx.Hash())
			}
		}
		r, err := c.WaitReceipt(ctx, txs[len(txs)-1].Hash())
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("last receipt %v %v", r, err)
		}
		if n, _ := c.PendingNonce(ctx, key.Address()); n != nonce+20 {
			t.Fatalf("pending nonce %d, want %d", n, nonce+20)
		}
	})
}
