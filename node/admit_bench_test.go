package node

import (
	"context"
	"testing"
	"time"

	"github.com/tally-ledger/tally/bench"
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
