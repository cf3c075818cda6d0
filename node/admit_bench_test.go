package node

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/bench"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// The admission benchmarks run the load tool of `tally bench` (bench.Run:
// pre-signed legacy transfers in JSON-RPC batches of 500 from 20 dev
// accounts, 4 workers) against nodes in this process, through a dev node
// and through a follower of a three-node loopback cluster (fsync off).
// They report transfers/s and the ratio to R, the decode + recovery
// ceiling measured in the same run, since the machine's speed moves.
// With -cpuprofile the profile holds the nodes and the load tool: the
// tool's own signing and R measurement are left out with
// go tool pprof -ignore 'bench\.(sign|Ceiling)'. docs/benchmarks.md has
// the commands and the figures.

// admitBenchTxs is how many transfers one benchmark iteration sends.
const admitBenchTxs = 10000

func BenchmarkAdmitOneNode(b *testing.B) {
	n := startDevNode(b, b.TempDir())
	runAdmitBench(b, "http://"+n.HTTPAddr())
}

func BenchmarkAdmitFollower(b *testing.B) {
	nodes := startTestnet(b, 3)
	follower := nodes[(leaderOf(b, nodes)+1)%len(nodes)]
	runAdmitBench(b, "http://"+follower.HTTPAddr())
}

func runAdmitBench(b *testing.B, url string) {
	keys := make([]*crypto.PrivateKey, 20)
	for i := range keys {
		k, err := genesis.DevKey(uint32(i))
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = k
	}
	var tps, ceiling float64
	for b.Loop() {
		rep, err := bench.Run(context.Background(), bench.Config{RPC: []string{url}, Keys: keys, Txs: admitBenchTxs,
			Batch: 500, Workers: 4, Legacy: true, Timeout: 2 * time.Minute, CeilingTxs: 10000})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Rejected > 0 {
			b.Fatalf("%d rejected: %s", rep.Rejected, rep.FirstError)
		}
		tps += rep.TPS
		ceiling += rep.Ceiling
	}
	b.ReportMetric(tps/float64(b.N), "txs/s")
	b.ReportMetric(ceiling/float64(b.N), "R/s")
	b.ReportMetric(tps/ceiling, "ratio_to_R")
}

// BenchmarkMixedBatchFollower sends mixed JSON-RPC batches (an eth_chainId
// call, then 250 eth_sendRawTransaction calls of pre-signed legacy
// transfers from 20 dev accounts) to a follower of a three-node loopback
// cluster (fsync off), one batch at a time, and reports the transfers
// admitted per second (the replies, not inclusion), the forwarded
// messages the leader received per batch, and the ratio to R measured
// in the same run. Before the sends of a mixed batch were admitted as a
// group, each was forwarded on its own.
func BenchmarkMixedBatchFollower(b *testing.B) {
	nodes := startTestnet(b, 3)
	li := leaderOf(b, nodes)
	leader, follower := nodes[li], nodes[(li+1)%len(nodes)]
	url := "http://" + follower.HTTPAddr()
	const perBatch, batches = 250, 8
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0x7a, 0xd5}
	keys := make([]*crypto.PrivateKey, 20)
	for i := range keys {
		keys[i], _ = genesis.DevKey(uint32(i))
	}
	nonces := make([]uint64, len(keys))
	var admitted int
	var took time.Duration
	var forwards float64
	for b.Loop() {
		b.StopTimer()
		bodies := make([]string, batches)
		for k := range bodies {
			calls := []string{`{"jsonrpc":"2.0","id":"chain","method":"eth_chainId","params":[]}`}
			for i := range perBatch {
				s := (k*perBatch + i) % len(keys)
				tx, err := chain.SignTx(types.NewTx(&types.LegacyTx{Nonce: nonces[s], To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}), id, keys[s])
				if err != nil {
					b.Fatal(err)
				}
				nonces[s]++
				raw, _ := tx.MarshalBinary()
				calls = append(calls, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":["%s"]}`, i, hexutil.Encode(raw)))
			}
			bodies[k] = "[" + strings.Join(calls, ",") + "]"
		}
		before := counterValue(b, leader.metrics.forwardBatches)
		b.StartTimer()
		start := time.Now()
		for _, body := range bodies {
			resp, err := http.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			var replies []struct{ Error *struct{ Message string } }
			err = json.NewDecoder(resp.Body).Decode(&replies)
			resp.Body.Close()
			if err != nil || len(replies) != perBatch+1 {
				b.Fatalf("%d replies: %v", len(replies), err)
			}
			for _, r := range replies {
				if r.Error != nil {
					b.Fatalf("refused: %s", r.Error.Message)
				}
			}
			admitted += perBatch
		}
		took += time.Since(start)
		forwards += counterValue(b, leader.metrics.forwardBatches) - before
	}
	b.StopTimer()
	r, err := bench.Ceiling(10000, true)
	if err != nil {
		b.Fatal(err)
	}
	tps := float64(admitted) / took.Seconds()
	b.ReportMetric(tps, "txs/s")
	b.ReportMetric(r, "R/s")
	b.ReportMetric(tps/r, "ratio_to_R")
	b.ReportMetric(forwards/float64(b.N*batches), "forwards/batch")
}
