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
	keys := devKeys(b, genesis.DevAccounts)
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
			reportToR(b, float64(admitted)/took.Seconds(), r)
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
	benchFollowerBatches(b, nil, func(follower *Node) func(body []byte) ([]singleReply, error) {
		conn, _, err := websocket.DefaultDialer.Dial("ws://"+follower.HTTPAddr(), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		return func(body []byte) ([]singleReply, error) {
			conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
			if err := conn.WriteMessage(websocket.TextMessage, body); err != nil {
				return nil, err
			}
			var replies []singleReply
			err := conn.ReadJSON(&replies)
			return replies, err
		}
	})
}
