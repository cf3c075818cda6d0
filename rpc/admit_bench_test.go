package rpc

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/store"
)

// acceptBackend admits every transaction at once, so a benchmark measures
// the server's own work on a batch and nothing of the pool's.
type acceptBackend struct{ *testBackend }

func (acceptBackend) SubmitTx(context.Context, *types.Transaction) error { return nil }

// BenchmarkSendBatchServer measures the CPU time the JSON-RPC server itself spends
// on a batch of 500 eth_sendRawTransaction calls over HTTP (reading the
// JSON, decoding and hashing each transaction, dispatching, writing the
// replies) with every sender already cached, so the signature recovery
// every node must do anyway is left out. It reports the process's CPU
// nanoseconds per transaction (user and system, all threads: the machine
// is shared, and wall time would count other processes' turns) and their
// ratio to the CPU time of one recovery (chain.Sender, libsecp256k1)
// measured in the same run: what the server adds per transaction, in
// units of the work that bounds throughput.
func BenchmarkSendBatchServer(b *testing.B) {
	db, err := store.Open(b.TempDir(), store.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	g := genesis.Dev()
	if err := db.InitGenesis(g); err != nil {
		b.Fatal(err)
	}
	senders := chain.NewSenderCache(chain.NewSigner(g.ChainIDBig()), 4096)
	tb := &testBackend{db: db, senders: senders, pool: mempool.New(mempool.DefaultConfig, db, senders), heads: NewHeadFeed(1)}
	limits := DefaultLimits
	limits.Rate = RateLimits{} // the load tool's senders are exempt on a node
	srv, err := NewServer(acceptBackend{tb}, limits, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	const batch = 500
	key, err := genesis.DevKey(0)
	if err != nil {
		b.Fatal(err)
	}
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0xbe, 0xef}
	raws := make([]string, batch)
	txs := make([]*types.Transaction, batch)
	for i := range raws {
		tx, err := chain.SignTx(types.NewTx(&types.LegacyTx{Nonce: uint64(i), To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}), id, key)
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := tx.MarshalBinary()
		txs[i], raws[i] = tx, hexutil.Encode(raw)
	}
	tb.senders.Senders(txs) // cached: the benchmark leaves recovery out
	body := sendBatchBody(raws)
	signer := tb.senders.Signer()
	start := cpuTime()
	for _, raw := range raws {
		tx, err := chain.DecodeTx(hexutil.MustDecode(raw)) // a fresh object: go-ethereum caches a sender in it
		if err != nil {
			b.Fatal(err)
		}
		if _, err := chain.Sender(signer, tx); err != nil {
			b.Fatal(err)
		}
	}
	recoverNs := float64(cpuTime()-start) / batch
	b.ResetTimer()
	start = cpuTime()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "127.0.0.1:1"
		w := &discardWriter{h: http.Header{}}
		srv.ServeHTTP(w, req)
		if w.status != 0 && w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
	perTx := float64(cpuTime()-start) / float64(b.N*batch)
	b.ReportMetric(perTx, "cpu-ns/tx")
	b.ReportMetric(recoverNs, "recover-cpu-ns/tx")
	b.ReportMetric(perTx/recoverNs, "server/recovery")
}

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// cpuTime is the CPU time this process has used, user and system, in
// nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
