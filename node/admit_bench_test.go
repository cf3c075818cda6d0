package node

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
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
	keys := devKeys(b, genesis.DevAccounts)
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
	reportToR(b, tps/float64(b.N), ceiling/float64(b.N))
}

// devKeys is the first n dev accounts' keys: the senders of the
// benchmarks' transfers.
func devKeys(b *testing.B, n int) []*crypto.PrivateKey {
	keys := make([]*crypto.PrivateKey, n)
	for i := range keys {
		k, err := genesis.DevKey(uint32(i))
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = k
	}
	return keys
}

// reportToR reports tps transfers/s, R/s (the decode + recovery ceiling
// measured in the same run) and their ratio.
func reportToR(b *testing.B, tps, r float64) {
	b.ReportMetric(tps, "txs/s")
	b.ReportMetric(r, "R/s")
	b.ReportMetric(tps/r, "ratio_to_R")
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
	chainID := `{"jsonrpc":"2.0","id":"chain","method":"eth_chainId","params":[]}`
	benchFollowerBatches(b, []string{chainID}, func(follower *Node) func(body []byte) ([]singleReply, error) {
		url := "http://" + follower.HTTPAddr()
		return func(body []byte) ([]singleReply, error) {
			resp, err := http.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			var replies []singleReply
			err = json.NewDecoder(resp.Body).Decode(&replies)
			return replies, err
		}
	})
}

// benchFollowerBatches is the body of the benchmarks that send JSON-RPC
// batches to a follower of a three-node loopback cluster (fsync off), one
// batch at a time, each of the calls lead and then 250
// eth_sendRawTransaction calls of pre-signed legacy transfers from the 20
// dev accounts in turn. Each iteration signs 8 batches (untimed) and
// hands each to the send that dial returns for the follower (timed),
// which returns the batch's replies: one a call, each an answer, not an
// error. It reports the transfers admitted per second (the replies, not
// inclusion), the forwarded messages the leader received per batch, and
// the ratio to R measured in the same run.
func benchFollowerBatches(b *testing.B, lead []string, dial func(follower *Node) func(body []byte) ([]singleReply, error)) {
	nodes := startTestnet(b, 3)
	li := leaderOf(b, nodes)
	leader, follower := nodes[li], nodes[(li+1)%len(nodes)]
	send := dial(follower)
	const perBatch, batches = 250, 8
	keys := devKeys(b, genesis.DevAccounts)
	nonces := make([]uint64, len(keys))
	var admitted int
	var took time.Duration
	var forwards float64
	for b.Loop() {
		b.StopTimer()
		bodies := make([][]byte, batches)
		for k := range bodies {
			calls := append([]string(nil), lead...)
			for i := range perBatch {
				s := (k*perBatch + i) % len(keys)
				calls = append(calls, singleTransferCall(b, keys[s], nonces[s]))
				nonces[s]++
			}
			bodies[k] = []byte("[" + strings.Join(calls, ",") + "]")
		}
		before := counterValue(b, leader.metrics.forwardBatches)
		b.StartTimer()
		start := time.Now()
		for _, body := range bodies {
			replies, err := send(body)
			if err != nil || len(replies) != len(lead)+perBatch {
				b.Fatalf("%d replies: %v", len(replies), err)
			}
			for _, r := range replies {
				r.check(b)
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
	reportToR(b, float64(admitted)/took.Seconds(), r)
	b.ReportMetric(forwards/float64(b.N*batches), "forwards/batch")
}
