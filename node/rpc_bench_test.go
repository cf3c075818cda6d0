package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/gorilla/websocket"

	"github.com/tally-ledger/tally/bench"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// BenchmarkConcurrentSingleCalls is what wallets do to the leader of a
// three-node loopback cluster (fsync off): each of N clients, one dev
// account each, sends one eth_sendRawTransaction (a pre-signed legacy
// transfer) over its own keep-alive HTTP connection and waits for the
// answer before sending its next. It reports the transfers admitted per
// second (the replies, not inclusion) and the ratio to R measured in the
// same run; "batch" sends the same transfers as one JSON-RPC batch per
// round of N, the pipeline's grouped path, for comparison.
func BenchmarkConcurrentSingleCalls(b *testing.B) {
	nodes := startTestnet(b, 3)
	leader := nodes[leaderOf(b, nodes)]
	url := "http://" + leader.HTTPAddr()
	keys := make([]*crypto.PrivateKey, genesis.DevAccounts)
	for i := range keys {
		keys[i], _ = genesis.DevKey(uint32(i))
	}
	nonces := make([]uint64, len(keys))
	r, err := bench.Ceiling(10000, true)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		clients int
		batch   bool
	}{{"clients=1", 1, false}, {"clients=4", 4, false}, {"clients=20", 20, false}, {"batch=20", 20, true}} {
		b.Run(c.name, func(b *testing.B) {
			const perClient = 100
			tr := &http.Transport{MaxIdleConnsPerHost: c.clients}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: time.Minute}
			var admitted int
			var took time.Duration
			for b.Loop() {
				b.StopTimer()
				// calls[k][i]: client k's i-th call.
				calls := make([][]string, c.clients)
				for k := range calls {
					for range perClient {
						calls[k] = append(calls[k], singleTransferCall(b, keys[k], nonces[k]))
						nonces[k]++
					}
				}
				b.StartTimer()
				start := time.Now()
				if c.batch {
					for i := range perClient {
						var body bytes.Buffer
						body.WriteByte('[')
						for k := range calls {
							if k > 0 {
								body.WriteByte(',')
							}
							body.WriteString(calls[k][i])
						}
						body.WriteByte(']')
						var replies []singleReply
						postSingle(b, hc, url, body.Bytes(), &replies)
						for _, rep := range replies {
							rep.check(b)
						}
					}
				} else {
					var wg sync.WaitGroup
					for k := range calls {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for _, call := range calls[k] {
								var rep singleReply
								postSingle(b, hc, url, []byte(call), &rep)
								rep.check(b)
							}
						}()
					}
					wg.Wait()
				}
				took += time.Since(start)
				admitted += c.clients * perClient
			}
			tps := float64(admitted) / took.Seconds()
			b.ReportMetric(tps, "txs/s")
			b.ReportMetric(r, "R/s")
			b.ReportMetric(tps/r, "ratio_to_R")
		})
	}
}

// singleTransferCall is an eth_sendRawTransaction call of a legacy
// transfer from key at nonce.
func singleTransferCall(b *testing.B, key *crypto.PrivateKey, nonce uint64) string {
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0x7a, 0xd6}
	tx, err := chain.SignTx(types.NewTx(&types.LegacyTx{Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}), id, key)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := tx.MarshalBinary()
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["%s"]}`, hexutil.Encode(raw))
}

type singleReply struct {
	Result string
	Error  *struct{ Message string }
}

func (r singleReply) check(b *testing.B) {
	if r.Error != nil || r.Result == "" {
		b.Errorf("refused: %+v", r.Error)
	}
}

func postSingle(b *testing.B, hc *http.Client, url string, body []byte, out any) {
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		b.Error(err)
	}
}

// BenchmarkWebSocketBatchFollower sends batches of 250
// eth_sendRawTransaction calls (pre-signed legacy transfers from 20 dev
// accounts) over one WebSocket to a follower of a three-node loopback
// cluster (fsync off), one batch at a time, and reports the transfers
// admitted per second (the replies, not inclusion), the forwarded
// messages the leader received per batch, and the ratio to R measured in
// the same run. Before a WebSocket batch was planned (rpc/sendplan.go),
// each of its sends was forwarded on its own.
func BenchmarkWebSocketBatchFollower(b *testing.B) {
	nodes := startTestnet(b, 3)
	li := leaderOf(b, nodes)
	leader, follower := nodes[li], nodes[(li+1)%len(nodes)]
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+follower.HTTPAddr(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	const perBatch, batches = 250, 8
	keys := make([]*crypto.PrivateKey, genesis.DevAccounts)
	for i := range keys {
		keys[i], _ = genesis.DevKey(uint32(i))
	}
	nonces := make([]uint64, len(keys))
	var admitted int
	var took time.Duration
	var forwards float64
	for b.Loop() {
		b.StopTimer()
		bodies := make([][]byte, batches)
		for k := range bodies {
			var body bytes.Buffer
			body.WriteByte('[')
			for i := range perBatch {
				s := (k*perBatch + i) % len(keys)
				if i > 0 {
					body.WriteByte(',')
				}
				body.WriteString(singleTransferCall(b, keys[s], nonces[s]))
				nonces[s]++
			}
			body.WriteByte(']')
			bodies[k] = body.Bytes()
		}
		before := counterValue(b, leader.metrics.forwardBatches)
		b.StartTimer()
		start := time.Now()
		for _, body := range bodies {
			conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
			if err := conn.WriteMessage(websocket.TextMessage, body); err != nil {
				b.Fatal(err)
			}
			var replies []singleReply
			if err := conn.ReadJSON(&replies); err != nil || len(replies) != perBatch {
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
	tps := float64(admitted) / took.Seconds()
	b.ReportMetric(tps, "txs/s")
	b.ReportMetric(r, "R/s")
	b.ReportMetric(tps/r, "ratio_to_R")
	b.ReportMetric(forwards/float64(b.N*batches), "forwards/batch")
}
