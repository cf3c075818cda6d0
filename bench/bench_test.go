package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/wallet"
)

func devKeys(t testing.TB, n int) []*crypto.PrivateKey {
	var keys []*crypto.PrivateKey
	for i := 0; i < n; i++ {
		k, err := genesis.DevKey(uint32(i))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

func startNode(t testing.TB) *node.Node {
	cfg := node.DefaultConfig()
	cfg.Dev = true
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Port = 0
	cfg.Raft.HeartbeatTimeout = node.Duration(200 * time.Millisecond)
	cfg.Raft.ElectionTimeout = node.Duration(200 * time.Millisecond)
	cfg.Raft.LeaderLeaseTimeout = node.Duration(100 * time.Millisecond)
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestLegacyBatchLoad is the load-tool acceptance check: pre-signed legacy
// transfers from the dev accounts, submitted in JSON-RPC batches, are all
// included with status 1. TALLY_BENCH_TXS raises the count for a
// measurement run.
func TestLegacyBatchLoad(t *testing.T) {
	txs := 4000
	if s := os.Getenv("TALLY_BENCH_TXS"); s != "" {
		txs, _ = strconv.Atoi(s)
	}
	n := startNode(t)
	ctx := context.Background()
	rep, err := Run(ctx, Config{RPC: []string{"http://" + n.HTTPAddr()}, Keys: devKeys(t, 20), Txs: txs, Batch: 500, Workers: 4, Legacy: true, Timeout: 2 * time.Minute, CeilingTxs: 500})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.Rejected != 0 || rep.Failed != 0 || rep.Included != txs {
		t.Fatalf("rejected %d (%s), status 0: %d, included %d of %d", rep.Rejected, rep.FirstError, rep.Failed, rep.Included, txs)
	}
	if rep.CeilingBefore <= 0 || rep.CeilingAfter <= 0 || rep.Ratio != rep.TPS/rep.Ceiling || rep.SubmitRate <= 0 || rep.LatencyP50 <= 0 ||
		rep.LatencyP50 > rep.LatencyP90 || rep.LatencyP90 > rep.LatencyP99 || rep.LatencyP99 > rep.LatencyMax {
		t.Fatalf("report fields inconsistent: %+v", rep)
	}
	// The node serves newHeads on its JSON-RPC port: the blocks are
	// followed by subscription, not by polling.
	if rep.ObservedBy != "newHeads" {
		t.Fatalf("applied blocks seen by %q, want newHeads", rep.ObservedBy)
	}
	// A second run continues from the pending nonces, with EIP-1559 txs,
	// over two endpoints of which the first is down: the worker that starts
	// there, and the control reads, fail over to the node.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	// It is paced at 1000/s with batches of 100: the tokens for the last
	// four batches take 0.4 s to come, however fast the node answers.
	rep, err = Run(ctx, Config{RPC: []string{down, "http://" + n.HTTPAddr()}, Keys: devKeys(t, 5), Txs: 500, Batch: 100, Workers: 2, Rate: 1000, CeilingTxs: -1})
	if err != nil || rep.Included != 500 || rep.Failed != 0 {
		t.Fatalf("second run: %v %+v", err, rep)
	}
	if rep.SubmitTime < 400*time.Millisecond || rep.OfferedRate != 1000 || rep.Ceiling != 0 {
		t.Fatalf("paced run: submission took %v at %v/s offered (ceiling %v): the pacing did not hold", rep.SubmitTime, rep.OfferedRate, rep.Ceiling)
	}
	// The first node is down, so no subscription: the tool polls (through
	// the client that fails over) and still stamps every transfer.
	if rep.ObservedBy != "polling" || rep.LatencyP50 <= 0 {
		t.Fatalf("second run: applied blocks seen by %q, p50 %v; want polling and a latency", rep.ObservedBy, rep.LatencyP50)
	}
}

// TestWSURL: the subscription goes to the WebSocket endpoint on the same
// host and port as the JSON-RPC URL.
func TestWSURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8545": "ws://127.0.0.1:8545",
		"https://node.bank/rpc": "wss://node.bank/rpc",
		"ws://127.0.0.1:8546":   "ws://127.0.0.1:8546",
		"wss://node.bank":       "wss://node.bank",
		"/var/run/tally.ipc":    "",
		"127.0.0.1:8545":        "",
	} {
		got, ok := wsURL(in)
		if got != want || ok != (want != "") {
			t.Errorf("wsURL(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// TestCeilingChecksRecovery: Ceiling measures real work (every sender
// recovered and compared), for either transaction type.
func TestCeilingChecksRecovery(t *testing.T) {
	for _, legacy := range []bool{true, false} {
		r, err := Ceiling(300, legacy)
		if err != nil || r <= 0 {
			t.Fatalf("legacy %v: %v, %v", legacy, r, err)
		}
	}
	if _, err := Ceiling(0, true); err == nil {
		t.Fatal("a ceiling over no transactions measured something")
	}
}

// TestFreshRecipients: with FreshRecipients every transfer pays an
// account of its own (the state grows by one account per transfer), and
// no two (sender, nonce) pairs share a recipient.
func TestFreshRecipients(t *testing.T) {
	seen := map[common.Address]bool{}
	for s := 0; s < 3; s++ {
		for _, nonce := range []uint64{0, 1, 1 << 32, ^uint64(0)} {
			a := FreshRecipient(s, nonce)
			if seen[a] {
				t.Fatalf("sender %d nonce %d: recipient %s again", s, nonce, a)
			}
			seen[a] = true
		}
	}
	n := startNode(t)
	url := "http://" + n.HTTPAddr()
	rep, err := Run(context.Background(), Config{RPC: []string{url}, Keys: devKeys(t, 2), Txs: 40, Batch: 10, Workers: 2, FreshRecipients: true, Timeout: time.Minute, CeilingTxs: -1})
	if err != nil || rep.Included != 40 || rep.Failed != 0 {
		t.Fatalf("run: %v %+v", err, rep)
	}
	c, err := wallet.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for s := 0; s < 2; s++ {
		for nonce := uint64(0); nonce < 20; nonce++ {
			var bal hexutil.Big
			if err := c.Call(context.Background(), &bal, "eth_getBalance", FreshRecipient(s, nonce), "latest"); err != nil {
				t.Fatal(err)
			}
			if bal.ToInt().Int64() != 1 {
				t.Fatalf("recipient of sender %d nonce %d holds %s, want 1", s, nonce, bal.ToInt())
			}
		}
	}
}

// TestReceiptOrder: the receipts are asked for by block and position, so
// that a node answers each batch from the few blocks it keeps decoded,
// whatever order the transactions were signed or hashed in.
func TestReceiptOrder(t *testing.T) {
	byHash := map[common.Hash]*item{}
	for i := range 300 {
		it := &item{hash: common.Hash{byte(i * 7), byte(i)}, block: uint64(1 + (i*37)%10), index: (i * 11) % 30}
		byHash[it.hash] = it
	}
	got := receiptOrder(byHash)
	if len(got) != len(byHash) {
		t.Fatalf("%d hashes for %d transactions", len(got), len(byHash))
	}
	for i := 1; i < len(got); i++ {
		a, b := byHash[got[i-1]], byHash[got[i]]
		if a.block > b.block || (a.block == b.block && a.index > b.index) {
			t.Fatalf("receipt %d (block %d, index %d) asked for after block %d, index %d", i, b.block, b.index, a.block, a.index)
		}
	}
}
